"""What an operator of a lending book watches, read from the database when Prometheus scrapes:
decisions by outcome and reason, the approval rate, declines by risk rule, the overdue amount by
bucket, the webhook backlog and its age, failed deliveries, the last sweep, settlement totals and
reconciliation breaks.

Read from the database rather than counted in memory, so that every API process reports the same
book (a scrape of any of them is right; sum() over instances is not needed) and a restart loses
nothing. One read serves scrapes for ``refresh_seconds`` so a scrape storm cannot load the
database. Every label value comes from a fixed set (outcomes, buckets, topics, components) or
from codes the engine itself defines (decision reasons, rule ids), cut to a known shape.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter as Tally
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from usefirst.collections.models import SweepRun
from usefirst.flows.reconcile import audit as ledger_audit
from usefirst.kit.models import OutboxMessage
from usefirst.merchants.models import Settlement
from usefirst.orders.models import Order
from usefirst.repayment.models import Instalment
from usefirst.risk.models import RiskDecision
from usefirst.runtime import Runtime

OVERDUE_BUCKETS = (("1-30", 1, 30), ("31-60", 31, 60), ("61-90", 61, 90), ("91+", 91, None))
SETTLEMENT_COMPONENTS = (
    "gross",
    "refunded",
    "fee",
    "reserve",
    "reserve_released",
    "clawback",
    "fines",
    "net",
)
_CODE = re.compile(r"[a-z0-9_.:-]{1,64}")
OTHER = "other"


def bounded_code(value: object) -> str:
    """A reason code or rule id as a label value; anything not shaped like one is "other"."""
    return value if isinstance(value, str) and _CODE.fullmatch(value) else OTHER


def overdue_bucket(days_past_due: int) -> str:
    for name, low, high in OVERDUE_BUCKETS:
        if days_past_due >= low and (high is None or days_past_due <= high):
            return name
    raise ValueError(f"{days_past_due} days past due is not overdue")


@dataclass
class BookFigures:
    decisions: Tally[tuple[str, str]] = field(default_factory=Tally)  # (outcome, reason)
    decisions_24h: Tally[str] = field(default_factory=Tally)  # outcome
    rule_declines_24h: Tally[str] = field(default_factory=Tally)  # rule id
    overdue_minor: Tally[tuple[str, str]] = field(default_factory=Tally)  # (bucket, currency)
    outbox_pending: Tally[str] = field(default_factory=Tally)  # topic
    outbox_oldest_age_seconds: dict[str, float] = field(default_factory=dict)
    outbox_failed: Tally[str] = field(default_factory=Tally)
    last_sweep_business_on: date | None = None
    last_sweep_completed_at: datetime | None = None
    sweep_lag_days: int | None = None
    settlements: Tally[str] = field(default_factory=Tally)  # currency
    settlement_minor: Tally[tuple[str, str]] = field(default_factory=Tally)  # (component, cur)
    reconciliation_breaks: int = 0


def read_book(session: Session, *, now: datetime, today: date) -> BookFigures:
    figures = BookFigures()
    for outcome, reasons, count in session.execute(
        select(Order.decision_outcome, Order.decision_reasons, func.count()).group_by(
            Order.decision_outcome, Order.decision_reasons
        )
    ):
        for reason in reasons or [{"code": "none"}]:
            figures.decisions[(bounded_code(outcome), bounded_code(reason.get("code")))] += count
    since = now - timedelta(hours=24)
    for outcome, count in session.execute(
        select(Order.decision_outcome, func.count())
        .where(Order.decided_at >= since)
        .group_by(Order.decision_outcome)
    ):
        figures.decisions_24h[bounded_code(outcome)] += count
    for (hits,) in session.execute(
        select(RiskDecision.rule_hits).where(
            RiskDecision.decided_at >= since, RiskDecision.outcome == "declined"
        )
    ):
        for hit in hits or []:
            figures.rule_declines_24h[bounded_code(hit.get("id"))] += 1

    remaining = (
        Instalment.principal_minor
        + Instalment.fees_minor
        + Instalment.late_fees_minor
        - Instalment.paid_principal_minor
        - Instalment.paid_fees_minor
    )
    for due_on, currency, amount in session.execute(
        select(Instalment.due_on, Instalment.currency, func.sum(remaining))
        .where(Instalment.status == "overdue")
        .group_by(Instalment.due_on, Instalment.currency)
    ):
        days = (today - due_on).days if due_on is not None else 1
        figures.overdue_minor[(overdue_bucket(max(days, 1)), bounded_code(currency.lower()))] += (
            int(amount or 0)
        )

    pending = (OutboxMessage.delivered_at.is_(None), OutboxMessage.failed_at.is_(None))
    for topic, count, oldest in session.execute(
        select(OutboxMessage.topic, func.count(), func.min(OutboxMessage.created_at))
        .where(*pending, OutboxMessage.available_at <= now)
        .group_by(OutboxMessage.topic)
    ):
        figures.outbox_pending[bounded_code(topic)] += count
        figures.outbox_oldest_age_seconds[bounded_code(topic)] = max(
            (now - oldest).total_seconds(), 0.0
        )
    for topic, count in session.execute(
        select(OutboxMessage.topic, func.count())
        .where(OutboxMessage.failed_at.is_not(None))
        .group_by(OutboxMessage.topic)
    ):
        figures.outbox_failed[bounded_code(topic)] += count

    last = session.execute(
        select(SweepRun.business_on, SweepRun.completed_at)
        .order_by(SweepRun.business_on.desc())
        .limit(1)
    ).first()
    if last is not None:
        figures.last_sweep_business_on, figures.last_sweep_completed_at = last
        figures.sweep_lag_days = (today - last[0]).days

    columns = {
        "gross": Settlement.gross_minor,
        "refunded": Settlement.refunded_minor,
        "fee": Settlement.fee_minor,
        "reserve": Settlement.reserve_minor,
        "reserve_released": Settlement.reserve_released_minor,
        "clawback": Settlement.clawback_minor,
        "fines": Settlement.fines_minor,
        "net": Settlement.net_minor,
    }
    for row in session.execute(
        select(
            Settlement.currency,
            func.count(),
            *(func.sum(column) for column in columns.values()),
        ).group_by(Settlement.currency)
    ):
        currency = bounded_code(row[0].lower())
        figures.settlements[currency] += row[1]
        for component, total in zip(columns, row[2:], strict=True):
            figures.settlement_minor[(component, currency)] += int(total or 0)

    figures.reconciliation_breaks = len(ledger_audit(session).problems)
    return figures


def _timestamp(moment: datetime | None) -> float:
    return moment.timestamp() if moment is not None else 0.0


def metric_families(figures: BookFigures) -> Iterator[Metric]:
    decisions = CounterMetricFamily(
        "usefirst_checkout_decisions",
        "Checkout decisions since the book began, by outcome and reason code",
        labels=["outcome", "reason"],
    )
    for (outcome, reason), count in sorted(figures.decisions.items()):
        decisions.add_metric([outcome, reason], count)
    yield decisions

    recent = GaugeMetricFamily(
        "usefirst_checkout_decisions_24h",
        "Checkout decisions in the last 24 hours, by outcome",
        labels=["outcome"],
    )
    for outcome in sorted(set(figures.decisions_24h) | {"approved", "declined"}):
        recent.add_metric([outcome], figures.decisions_24h[outcome])
    yield recent

    total_24h = sum(figures.decisions_24h.values())
    yield GaugeMetricFamily(
        "usefirst_checkout_approval_ratio_24h",
        "Share of the last 24 hours' checkout decisions that were approved (0 when none)",
        value=figures.decisions_24h["approved"] / total_24h if total_24h else 0.0,
    )

    rules = GaugeMetricFamily(
        "usefirst_risk_rule_declines_24h",
        "Declined checkouts in the last 24 hours that each risk rule fired on",
        labels=["rule"],
    )
    for rule, count in sorted(figures.rule_declines_24h.items()):
        rules.add_metric([rule], count)
    yield rules

    overdue = GaugeMetricFamily(
        "usefirst_overdue_minor",
        "Amount overdue (minor units) by days past due",
        labels=["bucket", "currency"],
    )
    currencies = {currency for _, currency in figures.overdue_minor} or {"cny"}
    for currency in sorted(currencies):
        for bucket, _, _ in OVERDUE_BUCKETS:
            overdue.add_metric([bucket, currency], figures.overdue_minor[(bucket, currency)])
    yield overdue

    backlog = GaugeMetricFamily(
        "usefirst_outbox_backlog", "Outbox messages due and not yet delivered", labels=["topic"]
    )
    age = GaugeMetricFamily(
        "usefirst_outbox_oldest_age_seconds",
        "Age of the oldest due, undelivered outbox message",
        labels=["topic"],
    )
    failed = CounterMetricFamily(
        "usefirst_outbox_failed",
        "Outbox messages that failed after every attempt",
        labels=["topic"],
    )
    topics = sorted(set(figures.outbox_pending) | set(figures.outbox_failed) | {"webhook"})
    for topic in topics:
        backlog.add_metric([topic], figures.outbox_pending[topic])
        age.add_metric([topic], figures.outbox_oldest_age_seconds.get(topic, 0.0))
        failed.add_metric([topic], figures.outbox_failed[topic])
    yield from (backlog, age, failed)

    yield GaugeMetricFamily(
        "usefirst_sweep_last_completed_timestamp_seconds",
        "When the last daily sweep completed (Unix time; 0 before the first)",
        value=_timestamp(figures.last_sweep_completed_at),
    )
    yield GaugeMetricFamily(
        "usefirst_sweep_lag_days",
        "Business days between today and the last swept date (1 or more: a sweep is late)",
        value=figures.sweep_lag_days if figures.sweep_lag_days is not None else -1,
    )

    settlements = CounterMetricFamily(
        "usefirst_settlements", "Merchant settlements paid", labels=["currency"]
    )
    amounts = CounterMetricFamily(
        "usefirst_settlement_minor",
        "Settled amounts (minor units) by component",
        labels=["component", "currency"],
    )
    for currency in sorted(set(figures.settlements) or {"cny"}):
        settlements.add_metric([currency], figures.settlements[currency])
        for component in SETTLEMENT_COMPONENTS:
            amounts.add_metric(
                [component, currency], figures.settlement_minor[(component, currency)]
            )
    yield from (settlements, amounts)

    yield GaugeMetricFamily(
        "usefirst_reconciliation_breaks",
        "Ledger reconciliation problems (unbalanced entries, receivables that differ from "
        "statements); anything above 0 needs a person",
        value=figures.reconciliation_breaks,
    )


class BookCollector(Collector):
    def __init__(self, runtime: Runtime, *, refresh_seconds: float) -> None:
        self.runtime = runtime
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._figures: BookFigures | None = None
        self._read_seconds = 0.0

    def figures(self) -> BookFigures:
        with self._lock:
            if self._figures is None or time.monotonic() - self._read_at >= self.refresh_seconds:
                started = time.perf_counter()
                with self.runtime.work(read_only=True) as work:
                    self._figures = read_book(work.session, now=work.now, today=work.today)
                self._read_seconds = time.perf_counter() - started
                self._read_at = time.monotonic()
            return self._figures

    def collect(self) -> Iterable[Metric]:
        yield from metric_families(self.figures())
        yield GaugeMetricFamily(
            "usefirst_book_metrics_read_seconds",
            "How long the last read of the book's figures took",
            value=self._read_seconds,
        )
