"""Portfolio report: delinquency by bucket, month-end roll rates and vintage curves.

Every figure is rebuilt from the instalments themselves (due dates and the day each was settled),
so the report needs no snapshots and gives the same answer however late it is run. An account's
days past due at the end of a day are counted from its oldest instalment that was due before that
day and not settled by its end, exactly as the daily sweep ages it.
"""

from __future__ import annotations

import calendar
import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

BUCKET_ORDER = ("current", "1-30", "31-60", "61-90", "91-180", "180+")


@dataclass(frozen=True)
class InstalmentHistory:
    due_on: date
    settled_on: date | None
    amount_minor: int  # principal and fees still owed now (0 once settled)


@dataclass(frozen=True)
class AccountHistory:
    order_id: str
    delivered_on: date
    principal_minor: int
    instalments: tuple[InstalmentHistory, ...]
    closed_on: date | None = None  # refunded or cancelled accounts leave the book


def bucket_of(days_past_due: int) -> str:
    if days_past_due <= 0:
        return "current"
    for upper, name in ((30, "1-30"), (60, "31-60"), (90, "61-90"), (180, "91-180")):
        if days_past_due <= upper:
            return name
    return "180+"


def days_past_due_at_end_of(account: AccountHistory, day: date) -> int:
    late = [
        item.due_on
        for item in account.instalments
        if item.due_on < day and (item.settled_on is None or item.settled_on > day)
    ]
    return (day - min(late)).days if late else 0


def is_open_at_end_of(account: AccountHistory, day: date) -> bool:
    if account.delivered_on > day or (account.closed_on is not None and account.closed_on <= day):
        return False
    return any(item.settled_on is None or item.settled_on > day for item in account.instalments)


def month_ends(first: date, last: date) -> list[date]:
    ends = []
    year, month = first.year, first.month
    while True:
        end = date(year, month, calendar.monthrange(year, month)[1])
        if end > last:
            break
        ends.append(end)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return ends


@dataclass
class PortfolioReport:
    as_of: date
    bucket_counts: dict[str, int] = field(default_factory=dict)
    bucket_amounts_minor: dict[str, int] = field(default_factory=dict)
    # month end → bucket → count of open accounts
    history: dict[date, dict[str, int]] = field(default_factory=dict)
    # (from bucket, to bucket) → share of accounts, over all consecutive month ends
    roll_rates: dict[tuple[str, str], float] = field(default_factory=dict)
    # delivery month "YYYY-MM" → share of principal ever 30+ days past due, by months on book
    vintages: dict[str, list[float]] = field(default_factory=dict)


def build_report(accounts: list[AccountHistory], *, as_of: date) -> PortfolioReport:
    report = PortfolioReport(as_of=as_of)
    report.bucket_counts = dict.fromkeys(BUCKET_ORDER, 0)
    report.bucket_amounts_minor = dict.fromkeys(BUCKET_ORDER, 0)
    for account in accounts:
        if not is_open_at_end_of(account, as_of):
            continue
        bucket = bucket_of(days_past_due_at_end_of(account, as_of))
        report.bucket_counts[bucket] += 1
        report.bucket_amounts_minor[bucket] += sum(
            item.amount_minor for item in account.instalments
        )
    if not accounts:
        return report
    first = min(account.delivered_on for account in accounts)
    ends = month_ends(first, as_of)
    buckets_at: dict[date, dict[str, str]] = {}
    for end in ends:
        at_end = {
            account.order_id: bucket_of(days_past_due_at_end_of(account, end))
            for account in accounts
            if is_open_at_end_of(account, end)
        }
        buckets_at[end] = at_end
        counts = dict.fromkeys(BUCKET_ORDER, 0)
        for bucket in at_end.values():
            counts[bucket] += 1
        report.history[end] = counts
    moves: dict[tuple[str, str], int] = defaultdict(int)
    starts: dict[str, int] = defaultdict(int)
    for earlier, later in itertools.pairwise(ends):
        for order_id, bucket in buckets_at[earlier].items():
            following = buckets_at[later].get(order_id, "closed")
            moves[(bucket, following)] += 1
            starts[bucket] += 1
    report.roll_rates = {
        (source, target): count / starts[source]
        for (source, target), count in sorted(moves.items())
    }
    by_vintage: dict[str, list[AccountHistory]] = defaultdict(list)
    for account in accounts:
        by_vintage[f"{account.delivered_on:%Y-%m}"].append(account)
    for vintage, members in sorted(by_vintage.items()):
        total = sum(account.principal_minor for account in members) or 1
        curve = []
        months_on_book = 1
        while True:
            horizon = min(_add_months(min(a.delivered_on for a in members), months_on_book), as_of)
            bad = sum(
                account.principal_minor for account in members if _ever_30_plus_by(account, horizon)
            )
            curve.append(bad / total)
            if horizon >= as_of or months_on_book >= 24:
                break
            months_on_book += 1
        report.vintages[vintage] = curve
    return report


def _ever_30_plus_by(account: AccountHistory, horizon: date) -> bool:
    for item in account.instalments:
        thirty_one_days_late = item.due_on + timedelta(days=31)
        if thirty_one_days_late <= horizon and (
            item.settled_on is None or item.settled_on >= thirty_one_days_late
        ):
            return True
    return False


def _add_months(start: date, months: int) -> date:
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def write_chart(report: PortfolioReport, path: Path) -> Path:
    """Delinquency by bucket over month ends (stacked) and the vintage curves, as PNG or SVG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (history_axes, vintage_axes) = pyplot.subplots(1, 2, figsize=(12, 4.5))
    ends = sorted(report.history)
    labels = [f"{end:%Y-%m}" for end in ends]
    bottoms = [0] * len(ends)
    for bucket in BUCKET_ORDER:
        heights = [report.history[end][bucket] for end in ends]
        history_axes.bar(labels, heights, bottom=bottoms, label=bucket)
        bottoms = [bottom + height for bottom, height in zip(bottoms, heights, strict=True)]
    history_axes.set_title("Open accounts by delinquency bucket (month end)")
    history_axes.set_ylabel("accounts")
    history_axes.legend(fontsize="small")
    history_axes.tick_params(axis="x", labelrotation=45)
    for vintage, curve in report.vintages.items():
        vintage_axes.plot(
            range(1, len(curve) + 1), [share * 100 for share in curve], marker="o", label=vintage
        )
    vintage_axes.set_title("Vintage curves: principal ever 30+ days past due")
    vintage_axes.set_xlabel("months on book")
    vintage_axes.xaxis.get_major_locator().set_params(integer=True)
    vintage_axes.set_ylabel("% of principal")
    if report.vintages:
        vintage_axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
    return path
