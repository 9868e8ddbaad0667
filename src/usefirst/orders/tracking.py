"""Tracking numbers in one form, so that a reused waybill is found however it was typed.

Every carrier format the engine knows (risk.monitors.CARRIER_FORMATS) is upper-case letters and
digits only, and carriers print long numbers in groups; so case, whitespace and hyphens carry no
meaning and are dropped. Numbers are stored in this form (migration 0020 brought those stored
before into it), so comparisons are plain equality on the column's index."""

from __future__ import annotations

# The only characters dropped (tracking numbers are ASCII): whitespace and the hyphen.
IGNORED_CHARACTERS = " \t\n\r\x0b\x0c-"
_DROP = str.maketrans("", "", IGNORED_CHARACTERS)


def normalise_tracking_number(tracking_number: str) -> str:
    return tracking_number.translate(_DROP).upper()
