"""Tracking numbers in one form, so that a reused waybill is found however it was typed.

Every carrier format the engine knows (risk.monitors.CARRIER_FORMATS) is upper-case letters and
digits only, and carriers print long numbers in groups; so case, whitespace and hyphens carry no
meaning and are dropped. Numbers stored before the engine normalised on write hold what the
merchant typed (stripped), so comparisons go through the same form in SQL as well."""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

# The only characters dropped (tracking numbers are ASCII): whitespace and the hyphen.
IGNORED_CHARACTERS = " \t\n\r\x0b\x0c-"
_DROP = str.maketrans("", "", IGNORED_CHARACTERS)


def normalise_tracking_number(tracking_number: str) -> str:
    return tracking_number.translate(_DROP).upper()


def normalised_in_sql(
    column: InstrumentedAttribute[str | None],
) -> ColumnElement[str | None]:
    """The stored column in the form of ``normalise_tracking_number``."""
    expression: ColumnElement[str | None] = column.expression
    for character in IGNORED_CHARACTERS:
        expression = func.replace(expression, character, "")
    return func.upper(expression)
