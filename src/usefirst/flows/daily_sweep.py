"""The daily sweep of a business date: every domain's nightly work, step by step, each step
committed on its own, idempotent per date and step, resumable after a crash at any step.

Each business date D is swept once, in this order: disputes whose deadline passed are settled
(so that one settled today resumes dunning today) and expired step-up checks lapse; orders shipped
more than ``auto_confirm_days`` ago are confirmed; instalments due before D and unpaid turn
overdue (freezing the shopper's credit); one day of late fees is charged; order-level collections
steps happen (call queue, credit-bureau reporting, legal referral, charge-off); the reminders of
the dunning ladder that fall on D are planned; on the first of a month the bureau files of the
month just ended are written. Then the risk monitors and the nightly graph look at the day's book
(before settlement, so that orders of a ring found tonight are held from today's payout), merchants
are settled, complaints past their deadline are flagged, the checkout's top-buyer bounds are made
exact and the online signals no checkout reads any more are pruned. ``STEPS`` lists them; the
comment above it says how to add one.

Every collections step is set-based: a handful of statements over the whole book (``UPDATE …
FROM``, ``INSERT … SELECT``, journal entries posted in batches), not a loop over rows in Python, so
a day costs about the same number of statements for a hundred instalments as for a million. Only
the rare per-order steps (legal referral, charge-off, held credit at auto-confirmation) go one by
one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from usefirst.collections import service as collections_service
from usefirst.collections.ladder import Ladder
from usefirst.credit import service as credit_service
from usefirst.flows import (
    auto_debit,
    bureau_reporting,
    dispute_resolution,
    fulfilment,
    hardship,
    late_fees,
    risk_monitoring,
    settlement_run,
    step_up,
)
from usefirst.flows.order_events import publish_order_event, publish_order_events
from usefirst.kit.business_day import DailyContext
from usefirst.kit.clock import business_day_start
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.db import Database
from usefirst.kit.errors import InvariantViolated, ValidationFailed
from usefirst.kit.settings import Settings
from usefirst.ledger import accounts
from usefirst.ledger.accounts import EntryKind
from usefirst.ledger.service import post_transfer
from usefirst.notify.service import publish_event
from usefirst.orders import service as order_service
from usefirst.orders.models import Order
from usefirst.privacy import complaints
from usefirst.repayment import service as repayment_service
from usefirst.risk import counters as risk_counters
from usefirst.risk import signal_upkeep

# The summary names other domains' jobs as "module:function" where each was first registered:
# the names are part of the stored summary and of the CLI's output, so they stay when a job moves.
DISPUTE_DEADLINES = "usefirst.disputes.tasks:enforce_deadlines"
STEP_UP_EXPIRY = "usefirst.risk.service:expire_step_ups"
FIRST_INSTALMENT_MISSED = "usefirst.risk.monitors:first_instalment_missed"
MERCHANT_DRIFT = "usefirst.risk.monitors:merchant_drift"
NIGHTLY_GRAPH = "usefirst.risk.graph:nightly_graph"
RISK_COUNTER_BOUNDS = "usefirst.risk.counters:refresh_window_bounds"
RISK_SIGNAL_PRUNE = "usefirst.risk.signal_upkeep:prune"
MERCHANT_SETTLEMENT = "usefirst.merchants.settlement:settle_daily"
OVERDUE_COMPLAINTS = "usefirst.privacy.complaints:flag_overdue_complaints"
JOB_NAMES = (
    DISPUTE_DEADLINES,
    STEP_UP_EXPIRY,
    FIRST_INSTALMENT_MISSED,
    MERCHANT_DRIFT,
    NIGHTLY_GRAPH,
    MERCHANT_SETTLEMENT,
    OVERDUE_COMPLAINTS,
    auto_debit.AUTO_DEBIT_JOB,
    hardship.HARDSHIP_JOB,
    RISK_COUNTER_BOUNDS,
    RISK_SIGNAL_PRUNE,
)


class SweepDateInFuture(ValidationFailed):
    code = "sweep_date_in_future"
    default_message = "A business date after today cannot be swept yet."


@dataclass
class SweepSummary:
    business_on: date
    already_ran: bool
    auto_confirmed: int = 0
    newly_overdue_orders: int = 0
    late_fees_minor: int = 0
    reminders_planned: int = 0
    call_queue: int = 0
    bureau_reported: int = 0
    legal_referred: int = 0
    charged_off: int = 0
    bureau_files: int = 0
    jobs: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self, *, with_jobs: bool = True) -> dict[str, object]:
        summary: dict[str, object] = {
            "business_on": self.business_on.isoformat(),
            "already_ran": self.already_ran,
            "auto_confirmed": self.auto_confirmed,
            "newly_overdue_orders": self.newly_overdue_orders,
            "late_fees_minor": self.late_fees_minor,
            "reminders_planned": self.reminders_planned,
            "call_queue": self.call_queue,
            "bureau_reported": self.bureau_reported,
            "legal_referred": self.legal_referred,
            "charged_off": self.charged_off,
            "bureau_files": self.bureau_files,
        }
        if with_jobs:
            summary["jobs"] = self.jobs
        return summary


# --- the steps -----------------------------------------------------------------------------
#
# The nightly run is a list of steps. Each step is one function ``(session, context) -> counts``
# that does one domain's part for the whole book in the session it is given; the stepped run
# (:func:`run_stepped_sweep`) gives each step a transaction of its own and commits it together
# with the step's row in ``sweep_steps``, so a step is done exactly once per business date and a
# run that crashed resumes at the first step not done. A step must therefore depend only on the
# database and the business date (never on what an earlier step returned in memory), and must not
# commit itself.
#
# Adding a step (as auto-debit of the instalments due was added, from the payment rails): write
# a function ``def run_due_charges(session, context) -> dict[str, int]`` in its flow, and add
# ``SweepStep(auto_debit.AUTO_DEBIT_JOB, _auto_debits, is_job=True)`` to ``STEPS`` where it
# belongs in the order. Its counts appear in the summary under ``jobs`` with its name, which is
# stable once released (it names the step's row in ``sweep_steps`` too). Call the function
# through its module at run time (as the wrappers below do) so a benchmark or a test can wrap it.
#
# Scale-out: every step works on the whole book through set-based statements that filter by
# nothing but the business date, so the same step can run per shard (one transaction per shard
# and step, ``sweep_steps`` keyed per shard then) without changing what it does.

COLLECTIONS_AUTO_CONFIRM = "usefirst.flows.fulfilment:auto_confirm_shipped"
COLLECTIONS_MARK_OVERDUE = "usefirst.flows.daily_sweep:mark_overdue"
COLLECTIONS_LATE_FEES = "usefirst.flows.daily_sweep:accrue_late_fees"
COLLECTIONS_ESCALATION = "usefirst.flows.daily_sweep:escalate"
COLLECTIONS_REMINDERS = "usefirst.collections.service:plan_reminders"
COLLECTIONS_BUREAU_FILES = "usefirst.flows.bureau_reporting:monthly_bureau_files"


@dataclass(frozen=True)
class SweepStep:
    """One step of the nightly run. ``name`` is stable (the row in ``sweep_steps``, and for a
    job the key of its counts in the summary's ``jobs``); ``is_job``: its counts are reported
    under ``jobs``, otherwise they are the collections fields of the summary."""

    name: str
    run: Callable[[Session, DailyContext], dict[str, int]]
    is_job: bool


def _enforce_dispute_deadlines(session: Session, context: DailyContext) -> dict[str, int]:
    return dispute_resolution.enforce_deadlines(session, context)


def _enforce_hardship(session: Session, context: DailyContext) -> dict[str, int]:
    return hardship.enforce_hardship(session, context)


def _expire_step_ups(session: Session, context: DailyContext) -> dict[str, int]:
    return step_up.expire_step_ups(session, context)


def _auto_confirm(session: Session, context: DailyContext) -> dict[str, int]:
    settings = context.settings
    confirmed = fulfilment.auto_confirm_shipped(
        session,
        shipped_before=business_day_start(
            context.business_on - timedelta(days=settings.auto_confirm_days - 1),
            settings.time_zone,
        ),
        business_on=context.business_on,
        settings=settings,
        now=context.now,
    )
    return {"auto_confirmed": confirmed}


def _mark_overdue(session: Session, context: DailyContext) -> dict[str, int]:
    newly_overdue = mark_overdue(
        session, business_on=context.business_on, settings=context.settings, now=context.now
    )
    return {"newly_overdue_orders": newly_overdue}


def _late_fees(session: Session, context: DailyContext) -> dict[str, int]:
    charged = accrue_late_fees(
        session, business_on=context.business_on, settings=context.settings, now=context.now
    )
    return {"late_fees_minor": charged}


def _escalate(session: Session, context: DailyContext) -> dict[str, int]:
    ladder = collections_service.ladder_of(session, context.settings)
    escalation = escalate(
        session,
        business_on=context.business_on,
        ladder=ladder,
        settings=context.settings,
        now=context.now,
    )
    return {
        "call_queue": escalation.call_queue,
        "bureau_reported": escalation.bureau_reported,
        "legal_referred": escalation.legal_referred,
        "charged_off": escalation.charged_off,
    }


def _plan_reminders(session: Session, context: DailyContext) -> dict[str, int]:
    ladder = collections_service.ladder_of(session, context.settings)
    planned = collections_service.plan_reminders(
        session,
        business_on=context.business_on,
        ladder=ladder,
        settings=context.settings,
        cipher=context.cipher,
        now=context.now,
    )
    return {"reminders_planned": planned}


def _auto_debits(session: Session, context: DailyContext) -> dict[str, int]:
    return auto_debit.run_due_charges(session, context)


def _bureau_files(session: Session, context: DailyContext) -> dict[str, int]:
    written = bureau_reporting.monthly_bureau_files(
        session,
        business_on=context.business_on,
        cipher=context.cipher,
        settings=context.settings,
        now=context.now,
    )
    return {"bureau_files": written}


def _first_instalment_missed(session: Session, context: DailyContext) -> dict[str, int]:
    return risk_monitoring.first_instalment_missed(session, context)


def _merchant_drift(session: Session, context: DailyContext) -> dict[str, int]:
    return risk_monitoring.merchant_drift(session, context)


def _nightly_graph(session: Session, context: DailyContext) -> dict[str, int]:
    return risk_monitoring.nightly_graph(session, context)


def _refresh_counter_bounds(session: Session, context: DailyContext) -> dict[str, int]:
    return {"bounds_refreshed": risk_counters.refresh_window_bounds(session, now=context.now)}


def _prune_signals(session: Session, context: DailyContext) -> dict[str, int]:
    # ``usefirst risk prune-signals`` at the sweep's instant (the first of the business date):
    # what no checkout from then on reads. A catch-up of an old date prunes less than the
    # command would today; the next date's step prunes the rest.
    pruned = signal_upkeep.prune(session, now=context.now)
    return {"events_deleted": pruned.events_deleted, "hours_deleted": pruned.hours_deleted}


def _settle(session: Session, context: DailyContext) -> dict[str, int]:
    return settlement_run.settle_daily(session, context)


def _flag_overdue_complaints(session: Session, context: DailyContext) -> dict[str, int]:
    return complaints.flag_overdue_complaints(session, context)


STEPS: tuple[SweepStep, ...] = (
    # First: the month-end file reports the book as the month left it, before today's late fees,
    # overdue marking and hardship changes (which belong to the new month) touch it.
    SweepStep(COLLECTIONS_BUREAU_FILES, _bureau_files, is_job=False),
    # Before collections: a dispute settled today for a missed deadline resumes dunning today.
    SweepStep(DISPUTE_DEADLINES, _enforce_dispute_deadlines, is_job=True),
    SweepStep(STEP_UP_EXPIRY, _expire_step_ups, is_job=True),
    # Before overdue and late fees: a hardship plan broken today is dunned from today.
    SweepStep(hardship.HARDSHIP_JOB, _enforce_hardship, is_job=True),
    SweepStep(COLLECTIONS_AUTO_CONFIRM, _auto_confirm, is_job=False),
    SweepStep(COLLECTIONS_MARK_OVERDUE, _mark_overdue, is_job=False),
    SweepStep(COLLECTIONS_LATE_FEES, _late_fees, is_job=False),
    SweepStep(COLLECTIONS_ESCALATION, _escalate, is_job=False),
    SweepStep(COLLECTIONS_REMINDERS, _plan_reminders, is_job=False),
    # Charges of the instalments due (payment rails), once the day's overdue and reminders are set.
    SweepStep(auto_debit.AUTO_DEBIT_JOB, _auto_debits, is_job=True),
    # After collections, on the day's book: the graph before settlement, so that the orders of a
    # ring found tonight are held from today's payout.
    SweepStep(FIRST_INSTALMENT_MISSED, _first_instalment_missed, is_job=True),
    SweepStep(MERCHANT_DRIFT, _merchant_drift, is_job=True),
    SweepStep(NIGHTLY_GRAPH, _nightly_graph, is_job=True),
    SweepStep(MERCHANT_SETTLEMENT, _settle, is_job=True),
    SweepStep(OVERDUE_COMPLAINTS, _flag_overdue_complaints, is_job=True),
    # The checkout's top-buyer bounds made exact again (orders aged out of the merchant window).
    SweepStep(RISK_COUNTER_BOUNDS, _refresh_counter_bounds, is_job=True),
    # The online signals' events and hour counts no checkout reads any more.
    SweepStep(RISK_SIGNAL_PRUNE, _prune_signals, is_job=True),
)
# The namespace of the advisory lock one runner of a date's stepped sweep holds (PostgreSQL).
SWEEP_LOCK_NAMESPACE = 21_0001


def _check_not_future(business_on: date, today: date) -> None:
    # Catch-up starts the day after the latest swept date, so sweeping ahead of today would make
    # it skip every day in between (no late fees, reminders or escalation for them).
    if business_on > today:
        raise SweepDateInFuture(
            f"{business_on} is in the future (today is {today}).", field="business_on"
        )


def _context(business_on: date, settings: Settings, cipher: FieldCipher) -> DailyContext:
    # The sweep for D acts at the first instant of D, whenever it actually runs (catch-up).
    now = business_day_start(business_on, settings.time_zone)
    return DailyContext(business_on=business_on, now=now, settings=settings, cipher=cipher)


def run_step(session: Session, step: SweepStep, context: DailyContext) -> dict[str, int] | None:
    """Do one step of the sweep of ``context.business_on`` in ``session`` and record it done;
    None (and nothing done) when it already is. The caller commits."""
    if not collections_service.claim_sweep_step(
        session, business_on=context.business_on, step=step.name, now=context.now
    ):
        return None
    collections_service.raise_work_mem_for_sweep(session)
    counts = step.run(session, context)
    collections_service.record_sweep_step_counts(
        session, business_on=context.business_on, step=step.name, counts=counts
    )
    return counts


def _summary_of(business_on: date, done: dict[str, dict[str, int]]) -> SweepSummary:
    summary = SweepSummary(business_on=business_on, already_ran=False)
    for step in STEPS:
        counts = done.get(step.name, {})
        if step.is_job:
            summary.jobs[step.name] = counts
        else:
            for name, value in counts.items():
                setattr(summary, name, value)
    return summary


def _finish(session: Session, context: DailyContext) -> SweepSummary | None:
    """Record the date swept with the summary of all its steps; None when it already was."""
    if not collections_service.claim_sweep_date(
        session, business_on=context.business_on, now=context.now
    ):
        return None
    done = collections_service.sweep_steps_done(session, business_on=context.business_on)
    missing = [step.name for step in STEPS if step.name not in done]
    if missing:
        raise InvariantViolated(f"sweep of {context.business_on} finishing without {missing}")
    summary = _summary_of(context.business_on, done)
    collections_service.record_sweep_summary(
        session, business_on=context.business_on, summary=summary.as_dict()
    )
    return summary


def run_stepped_sweep(
    database: Database,
    *,
    business_on: date,
    today: date,
    settings: Settings,
    cipher: FieldCipher,
    on_step_done: Callable[[str, float], None] | None = None,
) -> SweepSummary:
    """The nightly run of ``business_on`` as the worker and ``usefirst sweep`` run it: every step
    of ``STEPS`` in its own transaction, committed with its row in ``sweep_steps``, then the
    date's ``sweep_runs`` row with the summary of all steps. No step holds locks beyond its own
    work. After a crash at any point, running the date again does the steps not done yet and
    finishes it; the end state is the one :func:`run_sweep` reaches in one transaction.
    ``on_step_done`` hears each step this run did, with its wall time (commit included). A second
    runner of the same date (PostgreSQL) waits for the first one's advisory lock, then finds the
    date swept."""
    _check_not_future(business_on, today)
    context = _context(business_on, settings, cipher)
    with database.exclusive(SWEEP_LOCK_NAMESPACE, business_on.toordinal()):
        with database.transaction() as session:
            if collections_service.is_swept(session, business_on=business_on):
                return SweepSummary(business_on=business_on, already_ran=True)
        for step in STEPS:
            started = time.perf_counter()
            with database.transaction() as session:
                counts = run_step(session, step, context)
            if counts is not None and on_step_done is not None:
                on_step_done(step.name, time.perf_counter() - started)
        with database.transaction() as session:
            summary = _finish(session, context)
    return summary or SweepSummary(business_on=business_on, already_ran=True)


def run_sweep(
    session: Session, *, business_on: date, today: date, settings: Settings, cipher: FieldCipher
) -> SweepSummary:
    """The whole nightly run of ``business_on`` in the caller's one transaction (steps not yet
    done, then the date's summary): what :func:`run_stepped_sweep` does step by step."""
    _check_not_future(business_on, today)
    context = _context(business_on, settings, cipher)
    if collections_service.is_swept(session, business_on=business_on):
        return SweepSummary(business_on=business_on, already_ran=True)
    for step in STEPS:
        run_step(session, step, context)
    summary = _finish(session, context)
    return summary or SweepSummary(business_on=business_on, already_ran=True)


def mark_overdue(session: Session, *, business_on: date, settings: Settings, now: datetime) -> int:
    """Instalments due before ``business_on`` and unpaid turn overdue, their shoppers' credit
    freezes and their delivered orders turn overdue (one ``order.overdue`` event each). Returns
    how many orders had an instalment turn overdue."""
    keys = sorted(repayment_service.overdue_candidates(session, business_on=business_on))
    if not keys:
        return 0
    shopper_ids = sorted({shopper_id for shopper_id, _ in keys})
    session.flush()
    # Same lock order as payments and checkouts: credit lines first, then instalments and orders.
    credit_service.lock_credit_lines(session, shopper_ids=shopper_ids)
    repayment_service.mark_overdue(session, business_on=business_on, shopper_ids=shopper_ids)
    credit_service.freeze_many_for_overdue(session, shopper_ids=shopper_ids, now=now)
    turned_overdue = order_service.mark_overdue(session, keys=keys, now=now)
    risk_counters.observe_orders(session, orders=turned_overdue, now=now)
    publish_order_events(
        session, orders=turned_overdue, event_type="order.overdue", settings=settings, now=now
    )
    return len(keys)


def accrue_late_fees(
    session: Session, *, business_on: date, settings: Settings, now: datetime
) -> int:
    """Charge one day of late fees for ``business_on`` (set-based; see
    ``flows.late_fees.charge_daily_late_fees`` for the policy and its caps). Returns the total
    charged."""
    return late_fees.charge_daily_late_fees(
        session, business_on=business_on, settings=settings, now=now
    ).total_minor


def escalate(
    session: Session, *, business_on: date, ladder: Ladder, settings: Settings, now: datetime
) -> collections_service.EscalationSummary:
    """Order-level steps, by the order's days past due (since its oldest overdue instalment fell
    due, less the days a dispute paused). Each happens once per order; none happens while a
    dispute is open. The call queue and the bureau report are one set-based statement; legal
    referral and charge-off (rare, with cases, events and ledger entries) go order by order."""
    summary = collections_service.escalate_overdue(
        session, business_on=business_on, ladder=ladder, now=now
    )
    for due in collections_service.orders_due_for_legal_or_charge_off(
        session, business_on=business_on, ladder=ladder
    ):
        if due.reaches_legal_referral:
            case = collections_service.refer_to_legal(
                session, order=due.order, business_on=business_on, now=now
            )
            if case is not None:
                publish_event(
                    session,
                    event_type="legal.referred",
                    data=collections_service.legal_case_view(case),
                    now=now,
                    settings=settings,
                    merchant_id=None,
                    shopper_id=case.shopper_id,
                )
                summary.legal_referred += 1
        if due.reaches_charge_off:
            charge_off(
                session, order=due.order, business_on=business_on, settings=settings, now=now
            )
            summary.charged_off += 1
    return summary


def charge_off(
    session: Session, *, order: Order, business_on: date, settings: Settings, now: datetime
) -> int:
    """Write off what is left of a long-unpaid order. The debt stays owed: later payments are
    recoveries. The shopper's credit line closes. Returns the amount written off."""
    credit_service.lock_credit_line(session, shopper_id=order.shopper_id)
    written_off = repayment_service.charge_off_schedule(
        session, shopper_id=order.shopper_id, order_id=order.id
    )
    # Written-off principal frees its credit (the line closes below, so nothing is lent on it).
    credit_service.release(
        session, shopper_id=order.shopper_id, amount_minor=written_off.principal_minor
    )
    if written_off.total_minor:
        post_transfer(
            session,
            kind=EntryKind.CHARGE_OFF,
            debit=accounts.WRITE_OFF_EXPENSE,
            credit=accounts.shopper_receivable(order.shopper_id),
            amount_minor=written_off.total_minor,
            currency=order.currency,
            now=now,
            shopper_id=order.shopper_id,
            order_id=order.id,
            memo="charge-off of a long-unpaid order",
        )
    collections_service.record_charge_off(
        session,
        order=order,
        business_on=business_on,
        amount_minor=written_off.total_minor,
        now=now,
    )
    credit_service.close_after_charge_off(session, shopper_id=order.shopper_id, now=now)
    order_service.mark_charged_off(session, order=order, now=now)
    risk_counters.observe_orders(session, orders=[order], now=now)
    publish_order_event(
        session, order=order, event_type="order.charged_off", settings=settings, now=now
    )
    return written_off.total_minor


def last_swept_on(session: Session) -> date | None:
    return collections_service.last_swept_on(session)


def dates_to_sweep(*, last_swept: date | None, through: date) -> list[date]:
    start = through if last_swept is None else last_swept + timedelta(days=1)
    return [start + timedelta(days=offset) for offset in range((through - start).days + 1)]
