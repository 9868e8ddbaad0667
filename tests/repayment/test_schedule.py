"""Pure repayment arithmetic: plans, the fee cap, due dates and the allocation waterfall."""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from usefirst.repayment.schedule import (
    PLANS,
    Applied,
    Owed,
    PlannedInstalment,
    add_months,
    allocate,
    annual_rate_within_cap,
    due_dates,
    instalment_count,
    plan_instalments,
)

# Independent arithmetic used to check the implementation (not imported from it).


def present_value(payments_minor: list[int], monthly_rate: Fraction) -> Fraction:
    """Value today of ``payments_minor`` due at the end of months 1, 2, … at ``monthly_rate``."""
    total = Fraction(0)
    discount = Fraction(1)
    for payment in payments_minor:
        discount /= 1 + monthly_rate
        total += payment * discount
    return total


def monthly_irr_bracket(
    principal_minor: int, payments_minor: list[int], *, steps: int = 80
) -> tuple[Fraction, Fraction]:
    """Bisect for the monthly rate r where present_value(payments, r) == principal.

    Returns (low, high) with the rate inside; present value strictly falls as the rate rises.
    """
    assert sum(payments_minor) >= principal_minor
    low, high = Fraction(0), Fraction(1)
    while present_value(payments_minor, high) > principal_minor:
        high *= 2
    for _ in range(steps):
        middle = (low + high) / 2
        if present_value(payments_minor, middle) > principal_minor:
            low = middle
        else:
            high = middle
    return low, high


def half_up_basis_points(amount_minor: int, basis_points: int) -> int:
    return (2 * amount_minor * basis_points + 10_000) // 20_000


def even_split(total_minor: int, parts: int) -> list[int]:
    base, remainder = divmod(total_minor, parts)
    return [base + (1 if index < remainder else 0) for index in range(parts)]


def payments_of(plan: list[PlannedInstalment]) -> list[int]:
    return [instalment.principal_minor + instalment.fees_minor for instalment in plan]


def apr_within_cap(principal_minor: int, payments_minor: list[int], cap: Fraction) -> bool:
    """APR (12 × monthly IRR) <= cap, checked exactly: the IRR is at most the cap iff the
    payments discounted at the cap's monthly rate are worth at most the principal."""
    return present_value(payments_minor, cap / 12) <= principal_minor


# plan_instalments


def test_plans_and_counts() -> None:
    assert PLANS == ("pay_after_delivery", "instalments_3", "instalments_6")
    assert [instalment_count(plan) for plan in PLANS] == [1, 3, 6]
    with pytest.raises(KeyError):
        instalment_count("instalments_12")


def test_pay_after_delivery_is_one_free_instalment() -> None:
    plan = plan_instalments(
        principal_minor=123_457, plan="pay_after_delivery", fee_bps_per_month=500, apr_cap_bps=2_400
    )
    assert plan == [PlannedInstalment(seq=1, principal_minor=123_457, fees_minor=0)]


def test_instalments_3_with_default_fee_under_the_cap() -> None:
    plan = plan_instalments(
        principal_minor=100_000, plan="instalments_3", fee_bps_per_month=50, apr_cap_bps=2_400
    )
    assert plan == [
        PlannedInstalment(seq=1, principal_minor=33_334, fees_minor=500),
        PlannedInstalment(seq=2, principal_minor=33_333, fees_minor=500),
        PlannedInstalment(seq=3, principal_minor=33_333, fees_minor=500),
    ]


def test_instalments_6_remainders_go_to_the_earliest() -> None:
    plan = plan_instalments(
        principal_minor=100_004, plan="instalments_6", fee_bps_per_month=47, apr_cap_bps=2_400
    )
    # fee = 100 004 × 0.47% × 6 = 2 820.11… → 2 820, split 470 each.
    assert [item.seq for item in plan] == [1, 2, 3, 4, 5, 6]
    assert [item.principal_minor for item in plan] == [16_668] * 2 + [16_667] * 4
    assert [item.fees_minor for item in plan] == [470] * 6
    assert sum(item.fees_minor for item in plan) == 2_820


def test_fee_with_remainder_goes_to_the_earliest() -> None:
    plan = plan_instalments(
        principal_minor=10_001, plan="instalments_3", fee_bps_per_month=100, apr_cap_bps=10_000
    )
    # fee = 10 001 × 1% × 3 = 300.03 → 300; principal 3 334 / 3 334 / 3 333.
    assert [(item.principal_minor, item.fees_minor) for item in plan] == [
        (3_334, 100),
        (3_334, 100),
        (3_333, 100),
    ]
    plan = plan_instalments(
        principal_minor=10_051, plan="instalments_3", fee_bps_per_month=100, apr_cap_bps=10_000
    )
    # fee = 301.53 → 302 → 101 / 101 / 100.
    assert [item.fees_minor for item in plan] == [101, 101, 100]


def test_fee_is_capped_at_the_largest_amount_within_the_apr_cap() -> None:
    # 3% a month over 6 months would be 18 000 on 100 000: far above a 24% APR.
    plan = plan_instalments(
        principal_minor=100_000, plan="instalments_6", fee_bps_per_month=300, apr_cap_bps=2_400
    )
    fees = [item.fees_minor for item in plan]
    assert fees == [1_186] * 5 + [1_185]
    cap = Fraction(2_400, 10_000)
    assert apr_within_cap(100_000, payments_of(plan), cap)
    one_more = [p + f for p, f in zip(even_split(100_000, 6), even_split(7_116, 6), strict=True)]
    assert not apr_within_cap(100_000, one_more, cap)


def test_zero_cap_means_no_fee() -> None:
    plan = plan_instalments(
        principal_minor=99_999, plan="instalments_3", fee_bps_per_month=50, apr_cap_bps=0
    )
    assert [item.fees_minor for item in plan] == [0, 0, 0]
    assert [item.principal_minor for item in plan] == [33_333] * 3


def test_zero_principal_is_all_zero() -> None:
    plan = plan_instalments(
        principal_minor=0, plan="instalments_6", fee_bps_per_month=50, apr_cap_bps=2_400
    )
    assert plan == [PlannedInstalment(seq, 0, 0) for seq in range(1, 7)]


def test_annual_rate_within_cap_at_the_boundary() -> None:
    # One payment of 102 a month after borrowing 100 is 2% a month, i.e. exactly 24% a year.
    assert annual_rate_within_cap(
        principal_minor=100, payments_minor=[102], cap_annual_rate=Fraction(24, 100)
    )
    assert not annual_rate_within_cap(
        principal_minor=100, payments_minor=[102], cap_annual_rate=Fraction(23, 100)
    )
    assert annual_rate_within_cap(
        principal_minor=100, payments_minor=[100], cap_annual_rate=Fraction(0)
    )
    assert not annual_rate_within_cap(
        principal_minor=100, payments_minor=[101], cap_annual_rate=Fraction(0)
    )


@given(
    principal_minor=st.integers(min_value=1, max_value=10**10),
    plan_name=st.sampled_from(["instalments_3", "instalments_6"]),
    fee_bps_per_month=st.integers(min_value=0, max_value=2_000),
    apr_cap_bps=st.integers(min_value=0, max_value=10_000),
)
def test_plan_never_exceeds_the_apr_cap(
    principal_minor: int, plan_name: str, fee_bps_per_month: int, apr_cap_bps: int
) -> None:
    count = {"instalments_3": 3, "instalments_6": 6}[plan_name]
    plan = plan_instalments(
        principal_minor=principal_minor,
        plan=plan_name,
        fee_bps_per_month=fee_bps_per_month,
        apr_cap_bps=apr_cap_bps,
    )
    cap = Fraction(apr_cap_bps, 10_000)
    principals = [item.principal_minor for item in plan]
    fees = [item.fees_minor for item in plan]
    total_fee = sum(fees)
    payments = payments_of(plan)

    assert [item.seq for item in plan] == list(range(1, count + 1))
    assert principals == even_split(principal_minor, count)
    assert fees == even_split(total_fee, count)
    wanted_fee = half_up_basis_points(principal_minor, fee_bps_per_month * count)
    assert 0 <= total_fee <= wanted_fee

    # Numerical IRR by bisection: the APR lies in [12 × low, 12 × high].
    low, high = monthly_irr_bracket(principal_minor, payments)
    assert present_value(payments, high) <= principal_minor <= present_value(payments, low)
    assert high - low < Fraction(1, 2**70)
    assert 12 * low <= cap
    assert apr_within_cap(principal_minor, payments, cap)

    if total_fee < wanted_fee:
        # Capped: the fee is the largest within the cap; one more minor unit crosses it.
        plus_one = [
            p + f for p, f in zip(principals, even_split(total_fee + 1, count), strict=True)
        ]
        assert not apr_within_cap(principal_minor, plus_one, cap)
        _, plus_one_high = monthly_irr_bracket(principal_minor, plus_one)
        assert 12 * plus_one_high > cap
    else:
        assert total_fee == wanted_fee


@given(
    principal_minor=st.integers(min_value=0, max_value=10**10),
    fee_bps_per_month=st.integers(min_value=0, max_value=5_000),
)
def test_pay_after_delivery_never_has_a_fee(principal_minor: int, fee_bps_per_month: int) -> None:
    plan = plan_instalments(
        principal_minor=principal_minor,
        plan="pay_after_delivery",
        fee_bps_per_month=fee_bps_per_month,
        apr_cap_bps=0,
    )
    assert plan == [PlannedInstalment(1, principal_minor, 0)]


# add_months / due_dates


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2025, 1, 31), 1, date(2025, 2, 28)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2025, 1, 31), 2, date(2025, 3, 31)),
        (date(2025, 3, 31), 1, date(2025, 4, 30)),
        (date(2025, 12, 15), 1, date(2026, 1, 15)),
        (date(2025, 11, 30), 3, date(2026, 2, 28)),
        (date(2025, 10, 31), 25, date(2027, 11, 30)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2024, 2, 29), 48, date(2028, 2, 29)),
        (date(2025, 6, 10), 0, date(2025, 6, 10)),
        (date(2025, 3, 31), -1, date(2025, 2, 28)),
        (date(2026, 1, 15), -1, date(2025, 12, 15)),
    ],
)
def test_add_months(start: date, months: int, expected: date) -> None:
    assert add_months(start, months) == expected


@given(
    start=st.dates(min_value=date(1950, 1, 1), max_value=date(2200, 12, 31)),
    months=st.integers(min_value=-120, max_value=120),
)
def test_add_months_moves_the_calendar_month_and_clamps_the_day(start: date, months: int) -> None:
    result = add_months(start, months)
    assert (result.year * 12 + result.month) - (start.year * 12 + start.month) == months
    if result.day != start.day:
        assert result.day < start.day
        assert (result + timedelta(days=1)).day == 1  # clamped to the month's last day


def test_due_dates_pay_after_delivery() -> None:
    assert due_dates(
        plan="pay_after_delivery", delivered_on=date(2026, 1, 28), pay_within_days=7
    ) == [date(2026, 2, 4)]
    assert due_dates(
        plan="pay_after_delivery", delivered_on=date(2025, 12, 28), pay_within_days=7
    ) == [date(2026, 1, 4)]
    assert due_dates(
        plan="pay_after_delivery", delivered_on=date(2026, 1, 28), pay_within_days=0
    ) == [date(2026, 1, 28)]


def test_due_dates_instalments_do_not_drift_after_a_short_month() -> None:
    assert due_dates(plan="instalments_3", delivered_on=date(2026, 1, 31), pay_within_days=7) == [
        date(2026, 2, 28),
        date(2026, 3, 31),
        date(2026, 4, 30),
    ]
    assert due_dates(plan="instalments_6", delivered_on=date(2025, 8, 31), pay_within_days=7) == [
        date(2025, 9, 30),
        date(2025, 10, 31),
        date(2025, 11, 30),
        date(2025, 12, 31),
        date(2026, 1, 31),
        date(2026, 2, 28),
    ]


# allocate


def test_allocate_fees_before_principal_oldest_first() -> None:
    owed = [
        Owed(("ord_a", 1), fees_minor=100, principal_minor=1_000),
        Owed(("ord_a", 2), fees_minor=50, principal_minor=1_000),
        Owed(("ord_b", 1), fees_minor=0, principal_minor=500),
    ]
    applied, left = allocate(1_300, owed)
    assert applied == [
        Applied(("ord_a", 1), fees_minor=100, principal_minor=1_000),
        Applied(("ord_a", 2), fees_minor=50, principal_minor=150),
    ]
    assert left == 0


def test_allocate_partial_fee_takes_no_principal() -> None:
    owed = [Owed(("ord_a", 1), fees_minor=100, principal_minor=1_000)]
    assert allocate(60, owed) == ([Applied(("ord_a", 1), 60, 0)], 0)


def test_allocate_returns_the_overpayment() -> None:
    owed = [
        Owed(("ord_a", 1), fees_minor=10, principal_minor=90),
        Owed(("ord_a", 2), fees_minor=0, principal_minor=0),
        Owed(("ord_a", 3), fees_minor=0, principal_minor=100),
    ]
    applied, left = allocate(250, owed)
    # Nothing owed on seq 2, so no empty allocation for it.
    assert applied == [Applied(("ord_a", 1), 10, 90), Applied(("ord_a", 3), 0, 100)]
    assert left == 50


def test_allocate_edge_cases() -> None:
    owed = [Owed(("ord_a", 1), fees_minor=5, principal_minor=5)]
    assert allocate(0, owed) == ([], 0)
    assert allocate(700, []) == ([], 700)
    with pytest.raises(ValueError, match="must not be negative"):
        allocate(-1, owed)


owed_lists = st.lists(
    st.tuples(st.integers(0, 5_000), st.integers(0, 50_000)), min_size=0, max_size=12
).map(
    lambda pairs: [
        Owed(("ord_x", seq), fees_minor=fees, principal_minor=principal)
        for seq, (fees, principal) in enumerate(pairs, 1)
    ]
)


@given(owed=owed_lists, data=st.data())
def test_allocate_waterfall_properties(owed: list[Owed], data: st.DataObject) -> None:
    total_owed = sum(item.fees_minor + item.principal_minor for item in owed)
    amount = data.draw(st.integers(min_value=0, max_value=total_owed + 10_000), label="amount")

    applied, left = allocate(amount, owed)

    assert sum(a.fees_minor + a.principal_minor for a in applied) + left == amount
    assert left == max(0, amount - total_owed)
    assert all(a.fees_minor + a.principal_minor > 0 for a in applied)
    by_key = {a.key: a for a in applied}
    assert len(by_key) == len(applied)
    # Allocations come in waterfall order.
    order = [item.key for item in owed]
    assert [a.key for a in applied] == sorted(by_key, key=order.index)

    all_earlier_paid = True
    for item in owed:
        got = by_key.get(item.key, Applied(item.key, 0, 0))
        assert 0 <= got.fees_minor <= item.fees_minor
        assert 0 <= got.principal_minor <= item.principal_minor
        if got.principal_minor > 0:
            assert got.fees_minor == item.fees_minor  # fees first
        if got.fees_minor or got.principal_minor:
            assert all_earlier_paid  # money only after every earlier one is paid in full
        fully_paid = (got.fees_minor, got.principal_minor) == (
            item.fees_minor,
            item.principal_minor,
        )
        all_earlier_paid = all_earlier_paid and fully_paid
    if left > 0:
        assert all_earlier_paid
