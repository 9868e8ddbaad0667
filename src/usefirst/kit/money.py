"""Money is an integer of minor units (fen for CNY) beside an ISO 4217 code. No float touches it.

Every rounding decision lives here, with its remainder rule stated.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from usefirst.kit.errors import ValidationFailed

# Currencies this engine lends in, with the number of minor-unit digits.
SUPPORTED_CURRENCIES: dict[str, int] = {"CNY": 2}


def check_currency(currency: str, *, field: str = "currency") -> str:
    if currency not in SUPPORTED_CURRENCIES:
        raise ValidationFailed(
            f"Currency {currency!r} is not supported; use one of {sorted(SUPPORTED_CURRENCIES)}.",
            field=field,
        )
    return currency


@dataclass(frozen=True, slots=True)
class Money:
    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount_minor, int) or isinstance(self.amount_minor, bool):
            raise TypeError("amount_minor must be an int of minor units")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount_minor + other.amount_minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount_minor - other.amount_minor, self.currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot mix {self.currency} and {other.currency}")

    def format(self) -> str:
        digits = SUPPORTED_CURRENCIES.get(self.currency, 2)
        sign = "-" if self.amount_minor < 0 else ""
        whole, fraction = divmod(abs(self.amount_minor), 10**digits)
        return f"{sign}{whole:,}.{fraction:0{digits}d} {self.currency}"


def split_evenly(total_minor: int, parts: int) -> list[int]:
    """Split ``total_minor`` into ``parts`` amounts that differ by at most one minor unit.

    Remainder rule: the earliest parts carry the extra unit, so the sum is exactly the total.
    """
    if parts <= 0:
        raise ValueError("parts must be positive")
    if total_minor < 0:
        raise ValueError("total_minor must not be negative")
    base, remainder = divmod(total_minor, parts)
    return [base + 1 if index < remainder else base for index in range(parts)]


def basis_points_of(amount_minor: int, basis_points: int) -> int:
    """``amount × bps / 10 000``, rounded half up to the minor unit (never negative for >= 0)."""
    return int((Fraction(amount_minor * basis_points, 10_000) + Fraction(1, 2)) // 1)


def rate_of(amount_minor: int, rate: Fraction) -> int:
    """``amount × rate``, rounded half up to the minor unit."""
    return int((amount_minor * rate + Fraction(1, 2)) // 1)
