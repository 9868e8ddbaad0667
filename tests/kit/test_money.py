"""Money arithmetic: the one place rounding happens, with its remainder rule."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from usefirst.kit.errors import ValidationFailed
from usefirst.kit.money import (
    SUPPORTED_CURRENCIES,
    Money,
    basis_points_of,
    check_currency,
    rate_of,
    split_evenly,
)

# split_evenly


@pytest.mark.parametrize(
    ("total_minor", "parts", "expected"),
    [
        (100, 3, [34, 33, 33]),
        (101, 3, [34, 34, 33]),
        (99, 3, [33, 33, 33]),
        (5, 6, [1, 1, 1, 1, 1, 0]),
        (0, 3, [0, 0, 0]),
        (7, 1, [7]),
        (100_000, 6, [16_667, 16_667, 16_667, 16_667, 16_666, 16_666]),
    ],
)
def test_split_evenly_exact_examples(total_minor: int, parts: int, expected: list[int]) -> None:
    assert split_evenly(total_minor, parts) == expected


@given(total_minor=st.integers(min_value=0, max_value=10**15), parts=st.integers(1, 60))
def test_split_evenly_properties(total_minor: int, parts: int) -> None:
    amounts = split_evenly(total_minor, parts)

    assert len(amounts) == parts
    assert all(isinstance(amount, int) for amount in amounts)
    assert sum(amounts) == total_minor
    assert max(amounts) - min(amounts) <= 1
    # Earliest parts carry the remainder: the list never increases.
    assert amounts == sorted(amounts, reverse=True)
    assert amounts.count(total_minor // parts + 1) == total_minor % parts


@pytest.mark.parametrize("parts", [0, -1, -5])
def test_split_evenly_rejects_non_positive_parts(parts: int) -> None:
    with pytest.raises(ValueError, match="parts must be positive"):
        split_evenly(100, parts)


def test_split_evenly_rejects_negative_total() -> None:
    with pytest.raises(ValueError, match="total_minor must not be negative"):
        split_evenly(-1, 3)


# basis_points_of / rate_of


@pytest.mark.parametrize(
    ("amount_minor", "basis_points", "expected"),
    [
        (10_000, 150, 150),  # exact
        (100_000, 50, 500),
        (1, 5_000, 1),  # 0.5 rounds up
        (3, 5_000, 2),  # 1.5 rounds up
        (5, 1_000, 1),  # 0.5 rounds up
        (4, 1_000, 0),  # 0.4 rounds down
        (6, 1_000, 1),  # 0.6 rounds up
        (149, 100, 1),  # 1.49 rounds down
        (150, 100, 2),  # 1.50 rounds up
        (12_345, 250, 309),  # 308.625 rounds up
        (12_345, 0, 0),
        (0, 9_999, 0),
        (999_999_999_999, 10_000, 999_999_999_999),
    ],
)
def test_basis_points_of_rounds_half_up(
    amount_minor: int, basis_points: int, expected: int
) -> None:
    result = basis_points_of(amount_minor, basis_points)
    assert result == expected
    assert type(result) is int


@given(amount_minor=st.integers(0, 10**14), basis_points=st.integers(0, 100_000))
def test_basis_points_of_is_the_nearest_unit_with_halves_up(
    amount_minor: int, basis_points: int
) -> None:
    exact = Fraction(amount_minor * basis_points, 10_000)
    result = basis_points_of(amount_minor, basis_points)

    assert result >= 0
    assert abs(exact - result) <= Fraction(1, 2)
    if exact - int(exact) == Fraction(1, 2):
        assert result == int(exact) + 1


def test_rate_of_rounds_half_up() -> None:
    assert rate_of(3, Fraction(1, 2)) == 2
    assert rate_of(10, Fraction(1, 3)) == 3
    assert rate_of(20, Fraction(1, 3)) == 7
    assert rate_of(1, Fraction(1, 3)) == 0


# Money


def test_money_adds_and_subtracts_in_one_currency() -> None:
    assert Money(150, "CNY") + Money(75, "CNY") == Money(225, "CNY")
    assert Money(150, "CNY") - Money(175, "CNY") == Money(-25, "CNY")


@pytest.mark.parametrize("amount", [1.5, 1.0, "100", None, True, Fraction(1, 1)])
def test_money_refuses_anything_but_int(amount: object) -> None:
    with pytest.raises(TypeError, match="amount_minor must be an int"):
        Money(amount, "CNY")  # type: ignore[arg-type]


def test_money_refuses_to_mix_currencies() -> None:
    with pytest.raises(ValueError, match="cannot mix CNY and USD"):
        Money(100, "CNY") + Money(100, "USD")
    with pytest.raises(ValueError, match="cannot mix USD and CNY"):
        Money(100, "USD") - Money(100, "CNY")


def test_money_is_immutable() -> None:
    money = Money(100, "CNY")
    with pytest.raises(AttributeError):
        money.amount_minor = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("amount_minor", "expected"),
    [
        (0, "0.00 CNY"),
        (5, "0.05 CNY"),
        (123_456_789, "1,234,567.89 CNY"),
        (-1_050, "-10.50 CNY"),
    ],
)
def test_money_format(amount_minor: int, expected: str) -> None:
    assert Money(amount_minor, "CNY").format() == expected


# check_currency


def test_check_currency_accepts_supported() -> None:
    assert SUPPORTED_CURRENCIES == {"CNY": 2}
    assert check_currency("CNY") == "CNY"


@pytest.mark.parametrize("currency", ["USD", "cny", "", "CN", "RMB"])
def test_check_currency_rejects_unsupported(currency: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_currency(currency, field="order.currency")
    assert caught.value.status_code == 422
    assert caught.value.field == "order.currency"
    assert caught.value.to_body()["error"] == {
        "code": "validation_error",
        "message": caught.value.message,
        "field": "order.currency",
    }
    assert repr(currency) in caught.value.message


def test_check_currency_default_field() -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_currency("EUR")
    assert caught.value.field == "currency"
