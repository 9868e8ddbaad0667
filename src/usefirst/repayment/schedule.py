"""Pure repayment arithmetic: plans, instalment splits, the fee cap and the allocation waterfall.

Nothing here touches the database, so every rule can be property-tested on its own.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction

from usefirst.kit.money import basis_points_of, split_evenly

PLANS = ("pay_after_delivery", "instalments_3", "instalments_6")


def instalment_count(plan: str) -> int:
    return {"pay_after_delivery": 1, "instalments_3": 3, "instalments_6": 6}[plan]


def add_months(start: date, months: int) -> date:
    """Same day ``months`` later; clamped to the month's last day (31 Jan + 1 → 28/29 Feb)."""
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return date(year, month, day)


def annual_rate_within_cap(
    *, principal_minor: int, payments_minor: list[int], cap_annual_rate: Fraction
) -> bool:
    """True when the plan's annual percentage rate is at or below ``cap_annual_rate``.

    The APR is the rate at which the monthly payments' present value equals the principal; present
    value falls as the rate rises, so APR <= cap exactly when the payments discounted at the cap are
    worth no more than the principal. Exact rational arithmetic: rounding never crosses the cap.
    """
    monthly = 1 + cap_annual_rate / 12
    present_value = sum(
        (Fraction(payment) / monthly**month for month, payment in enumerate(payments_minor, 1)),
        Fraction(0),
    )
    return present_value <= principal_minor


def annual_rate_bps(*, principal_minor: int, payments_minor: list[int]) -> int:
    """The plan's annual percentage rate in basis points, rounded up (a disclosure never states
    less than the cost): the nominal yearly rate (12 x the monthly rate) at which the monthly
    payments' present value equals the principal, as the APR cap measures it. 0 when the
    payments add up to no more than the principal."""
    if principal_minor <= 0 or sum(payments_minor) <= principal_minor:
        return 0

    def within(rate_bps: int) -> bool:
        return annual_rate_within_cap(
            principal_minor=principal_minor,
            payments_minor=payments_minor,
            cap_annual_rate=Fraction(rate_bps, 10_000),
        )

    low, high = 0, 10_000
    while not within(high):
        low, high = high, high * 2
    while low + 1 < high:  # within(high) holds, within(low) does not
        middle = (low + high) // 2
        if within(middle):
            high = middle
        else:
            low = middle
    return high


@dataclass(frozen=True)
class PlannedInstalment:
    seq: int
    principal_minor: int
    fees_minor: int


def plan_instalments(
    *, principal_minor: int, plan: str, fee_bps_per_month: int, apr_cap_bps: int
) -> list[PlannedInstalment]:
    """Split the principal evenly (earliest instalments carry the remainder) and add the plan fee.

    The fee is ``fee_bps_per_month`` of the principal for each month of the plan, flat, lowered if
    needed so the annualised cost never exceeds ``apr_cap_bps``. ``pay_after_delivery`` is free.
    """
    count = instalment_count(plan)
    principals = split_evenly(principal_minor, count)
    if plan == "pay_after_delivery" or principal_minor == 0:
        return [PlannedInstalment(seq, amount, 0) for seq, amount in enumerate(principals, 1)]
    wanted_fee = basis_points_of(principal_minor, fee_bps_per_month * count)
    cap = Fraction(apr_cap_bps, 10_000)

    def within_cap(total_fee: int) -> bool:
        fees = split_evenly(total_fee, count)
        payments = [p + f for p, f in zip(principals, fees, strict=True)]
        return annual_rate_within_cap(
            principal_minor=principal_minor, payments_minor=payments, cap_annual_rate=cap
        )

    total_fee = wanted_fee
    if not within_cap(total_fee):
        low, high = 0, total_fee  # within_cap(low) holds (no fee); find the largest that does
        while low < high:
            middle = (low + high + 1) // 2
            if within_cap(middle):
                low = middle
            else:
                high = middle - 1
        total_fee = low
    fees = split_evenly(total_fee, count)
    return [
        PlannedInstalment(seq, principal, fee)
        for seq, (principal, fee) in enumerate(zip(principals, fees, strict=True), 1)
    ]


def due_dates(*, plan: str, delivered_on: date, pay_within_days: int) -> list[date]:
    if plan == "pay_after_delivery":
        return [delivered_on + timedelta(days=pay_within_days)]
    return [add_months(delivered_on, month) for month in range(1, instalment_count(plan) + 1)]


@dataclass(frozen=True)
class Owed:
    """What is still unpaid on one instalment, in waterfall order."""

    key: tuple[str, int]  # (order_id, seq)
    fees_minor: int
    principal_minor: int


@dataclass(frozen=True)
class Applied:
    key: tuple[str, int]
    fees_minor: int
    principal_minor: int


def allocate(amount_minor: int, owed: list[Owed]) -> tuple[list[Applied], int]:
    """Apply ``amount_minor`` to instalments in the given order (oldest due first): within each,
    fees before principal. Returns the allocations and what is left over (never negative)."""
    if amount_minor < 0:
        raise ValueError("amount_minor must not be negative")
    left = amount_minor
    applied: list[Applied] = []
    for item in owed:
        if left == 0:
            break
        fees = min(left, item.fees_minor)
        left -= fees
        principal = min(left, item.principal_minor)
        left -= principal
        if fees or principal:
            applied.append(Applied(item.key, fees, principal))
    return applied, left
