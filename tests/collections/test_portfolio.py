"""Portfolio figures rebuilt from crafted instalment histories."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from usefirst.collections.portfolio import (
    AccountHistory,
    InstalmentHistory,
    bucket_of,
    build_report,
    days_past_due_at_end_of,
    write_chart,
)


def account(
    order_id: str, delivered_on: date, *items: tuple[date, date | None, int]
) -> AccountHistory:
    return AccountHistory(
        order_id=order_id,
        delivered_on=delivered_on,
        principal_minor=10_000,
        instalments=tuple(InstalmentHistory(due, settled, owed) for due, settled, owed in items),
    )


def test_bucket_boundaries() -> None:
    assert [bucket_of(days) for days in (0, 1, 30, 31, 60, 61, 90, 91, 180, 181)] == [
        "current",
        "1-30",
        "1-30",
        "31-60",
        "31-60",
        "61-90",
        "61-90",
        "91-180",
        "91-180",
        "180+",
    ]


def test_days_past_due_follow_the_daily_sweep() -> None:
    unpaid = account("a", date(2026, 1, 1), (date(2026, 1, 10), None, 10_000))
    assert days_past_due_at_end_of(unpaid, date(2026, 1, 10)) == 0  # due today: not late yet
    assert days_past_due_at_end_of(unpaid, date(2026, 1, 11)) == 1
    paid_late = account("b", date(2026, 1, 1), (date(2026, 1, 10), date(2026, 1, 15), 0))
    assert days_past_due_at_end_of(paid_late, date(2026, 1, 14)) == 4
    assert days_past_due_at_end_of(paid_late, date(2026, 1, 15)) == 0


def test_report_buckets_roll_rates_and_vintages(tmp_path: Path) -> None:
    good = account("good", date(2026, 1, 5), (date(2026, 2, 5), date(2026, 2, 1), 0))
    late_then_paid = account("late", date(2026, 1, 5), (date(2026, 1, 20), date(2026, 2, 25), 0))
    never = account("never", date(2026, 1, 5), (date(2026, 1, 12), None, 10_000))
    report = build_report([good, late_then_paid, never], as_of=date(2026, 3, 31))

    assert report.bucket_counts == {
        "current": 0,
        "1-30": 0,
        "31-60": 0,
        "61-90": 1,
        "91-180": 0,
        "180+": 0,
    }
    assert report.bucket_amounts_minor["61-90"] == 10_000
    # Month ends: Jan 31 (good current, late 11 days, never 19 days), Feb 28, Mar 31.
    assert report.history[date(2026, 1, 31)] == {
        "current": 1,
        "1-30": 2,
        "31-60": 0,
        "61-90": 0,
        "91-180": 0,
        "180+": 0,
    }
    assert report.history[date(2026, 2, 28)]["31-60"] == 1
    assert report.roll_rates == {
        ("1-30", "31-60"): 0.5,
        ("1-30", "closed"): 0.5,
        ("31-60", "61-90"): 1.0,
        ("current", "closed"): 1.0,
    }
    # January's vintage: "never" (a third of the principal) is 30+ late by its second month,
    # "late" crossed 31 days late on Feb 20 before being paid.
    assert report.vintages["2026-01"][0] == 0.0
    assert report.vintages["2026-01"][1] == 2 / 3
    chart = write_chart(report, tmp_path / "portfolio.svg")
    assert chart.read_text().startswith("<?xml")
