"""Tracking numbers are stored and compared in one form, however a merchant typed them."""

from __future__ import annotations

import pytest

from usefirst.orders.tracking import normalise_tracking_number


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("sf1234567890123", "SF1234567890123"),
        ("SF 1234 5678 9012 3", "SF1234567890123"),
        ("SF-1234-5678-9012-3", "SF1234567890123"),
        (" yt\t9876543210\n", "YT9876543210"),
        ("JD0001234567-1-1-", "JD000123456711"),
    ],
)
def test_case_whitespace_and_hyphens_carry_no_meaning(typed: str, stored: str) -> None:
    assert normalise_tracking_number(typed) == stored


def test_a_stored_number_is_already_in_its_form() -> None:
    stored = normalise_tracking_number("sf 1234-5678")
    assert stored == "SF12345678"
    assert normalise_tracking_number(stored) == stored


def test_other_punctuation_is_kept_so_distinct_numbers_stay_distinct() -> None:
    assert normalise_tracking_number("SF123/456") == "SF123/456"
    assert normalise_tracking_number("SF123.456") != normalise_tracking_number("SF123456")
