"""Auto-debit: shoppers with a mandate are charged on the due date through the payment rail, and
a declined charge is tried again on the retry schedule (``rails/retry.toml``).

The nightly part (``run_due_charges``, one step of the daily sweep) only decides: which
instalments are charged today, as which attempt, for how much; each attempt is a ``rail_charges``
row and an outbox message due at the schedule's ``charge_at`` (never in the quiet hours). The
worker sends it (``ChargeSubmitter``: no database lock is held while the provider is called; the
idempotency key ``order:seq:attempt`` makes a retried send charge once). Money reaches the books
only when the provider confirms it: a verified callback (``receive_callback``) or, when none
came, a query (``ChargeQuerier``), and then through the normal payment waterfall
(``flows.payments.pay``), exactly once per charge (the charge row is locked and moves to
``succeeded`` with the payment it posted).

Charging stops for an instalment once it is paid, while its order is disputed, when the
shopper's mandate is revoked, or when the attempts run out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from usefirst.collections import service as collections_service
from usefirst.credit import service as credit_service
from usefirst.disputes import pauses
from usefirst.disputes import service as dispute_service
from usefirst.flows import payments
from usefirst.identity import service as identity_service
from usefirst.kit.business_day import DailyContext
from usefirst.kit.clock import Clock, business_date
from usefirst.kit.db import Database
from usefirst.kit.errors import Conflict, InvariantViolated, UsefirstError
from usefirst.kit.outbox import enqueue
from usefirst.kit.settings import Settings
from usefirst.ledger import accounts
from usefirst.ledger.accounts import EntryKind, Leg
from usefirst.ledger.service import post_entry
from usefirst.notify.service import publish_event
from usefirst.orders import service as order_service
from usefirst.rails import service as rails_service
from usefirst.rails.models import RailCharge
from usefirst.rails.provider import (
    CallbackRejected,
    ChargeRequest,
    ChargeStatus,
    PaymentProvider,
    ProviderRefused,
    ProviderUnavailable,
)
from usefirst.rails.retry import RetrySchedule, load_retry_schedule
from usefirst.repayment import service as repayment_service
from usefirst.risk import counters as risk_counters

# The daily sweep names its step by this (the summary and the CLI show it).
AUTO_DEBIT_JOB = "usefirst.flows.auto_debit:run_due_charges"
CHARGE_TOPIC = "rails.charge"
QUERY_TOPIC = "rails.query"
# The day before each swept date is reconciled against the provider's statement (the worker).
RECONCILE_TOPIC = "rails.reconcile"
# A charge still processing at the provider is asked about again this many times, then left to
# the day's reconciliation.
MAX_QUERIES = 5


def retry_schedule_of(settings: Settings) -> RetrySchedule:
    return load_retry_schedule(
        settings.auto_debit_retry_file,
        quiet_start=settings.quiet_hours_start,
        quiet_end=settings.quiet_hours_end,
    )


def local_instant(day: date, moment: time, time_zone: str) -> datetime:
    return datetime.combine(day, moment, tzinfo=ZoneInfo(time_zone)).astimezone(UTC)


def _latest_attempts(charges: list[RailCharge]) -> dict[tuple[str, str, int], RailCharge]:
    latest: dict[tuple[str, str, int], RailCharge] = {}
    for charge in charges:
        key = (charge.shopper_id, charge.order_id, charge.seq)
        if key not in latest or charge.attempt > latest[key].attempt:
            latest[key] = charge
    return latest


def run_due_charges(session: Session, context: DailyContext) -> dict[str, int]:
    """Schedule today's charges: the first attempt for each instalment of a shopper with an
    active mandate that is due today (or fell due within the retry window and was never
    charged), and the next attempt of each declined charge whose retry day is today. Returns
    counts for the sweep's summary."""
    settings = context.settings
    counts = {"charges_scheduled": 0, "retries_scheduled": 0, "stopped": 0}
    if settings.payment_provider == "none":
        return counts
    schedule = retry_schedule_of(settings)
    business_on = context.business_on
    mandates = rails_service.active_mandates_by_shopper(session, provider=settings.payment_provider)
    due = repayment_service.due_instalments(session, shopper_ids=sorted(mandates), on=business_on)
    latest = _latest_attempts(
        rails_service.charges_of_shoppers(session, shopper_ids=sorted(mandates))
    )
    window_days = schedule.retry_days[-1] if schedule.retry_days else 0
    submit_at = local_instant(business_on, schedule.charge_at, settings.time_zone)
    disputed: dict[tuple[str, str], bool] = {}
    # Orders a hardship request holds are not charged (their retries stop): one query for all.
    held = collections_service.held_orders(
        session, keys=sorted({(row.shopper_id, row.order_id) for row in due})
    )
    for instalment in due:
        assert instalment.due_on is not None
        order_key = (instalment.shopper_id, instalment.order_id)
        if order_key not in disputed:
            disputed[order_key] = pauses.is_open(
                dispute_service.pause_of(
                    session, shopper_id=instalment.shopper_id, order_id=instalment.order_id
                )
            )
        last = latest.get((instalment.shopper_id, instalment.order_id, instalment.seq))
        if last is None:
            if (business_on - instalment.due_on).days > window_days:
                continue
            attempt = 1
        elif (
            last.status == "failed"
            and last.next_attempt_on is not None
            and last.next_attempt_on <= business_on
            and last.attempt < schedule.max_attempts
        ):
            attempt = last.attempt + 1
        else:
            continue
        if disputed[order_key] or order_key in held:
            if last is not None and last.status == "failed":
                last.next_attempt_on = None
                last.stop_reason = "disputed" if disputed[order_key] else "hardship"
            counts["stopped"] += 1
            continue
        charge = rails_service.schedule_charge(
            session,
            mandate=mandates[instalment.shopper_id],
            order_id=instalment.order_id,
            seq=instalment.seq,
            attempt=attempt,
            amount_minor=instalment.remaining_minor,
            currency=instalment.currency,
            charge_on=business_on,
            submit_at=submit_at,
            now=context.now,
        )
        enqueue(
            session,
            topic=CHARGE_TOPIC,
            payload={"shopper_id": charge.shopper_id, "charge_id": charge.id},
            now=context.now,
            available_at=submit_at,
        )
        counts["charges_scheduled" if attempt == 1 else "retries_scheduled"] += 1
    enqueue(
        session,
        topic=RECONCILE_TOPIC,
        payload={
            "provider": settings.payment_provider,
            "statement_on": (business_on - timedelta(days=1)).isoformat(),
        },
        now=context.now,
        available_at=submit_at,
    )
    session.flush()
    return counts


def _instalment_of(session: Session, charge: RailCharge) -> Any:
    for row in repayment_service.instalments_of(
        session, shopper_id=charge.shopper_id, order_id=charge.order_id
    ):
        if row.seq == charge.seq:
            return row
    return None


def stop_reason(session: Session, charge: RailCharge) -> str | None:
    """Why a scheduled charge must not be sent any more, or None."""
    mandate = rails_service.mandate_of(
        session, shopper_id=charge.shopper_id, mandate_id=charge.mandate_id
    )
    if mandate.status != "active":
        return "mandate_revoked"
    instalment = _instalment_of(session, charge)
    if instalment is None or instalment.status not in ("pending", "overdue"):
        return "instalment_paid"
    if instalment.remaining_minor <= 0:
        return "instalment_paid"
    if pauses.is_open(
        dispute_service.pause_of(session, shopper_id=charge.shopper_id, order_id=charge.order_id)
    ):
        return "disputed"
    if collections_service.holding_hardship(
        session, shopper_id=charge.shopper_id, order_id=charge.order_id
    ):
        return "hardship"
    return None


def _quiet_until(settings: Settings, now: datetime) -> datetime | None:
    """The end of the quiet hours when ``now`` falls in them (operator's time zone)."""
    zone = ZoneInfo(settings.time_zone)
    local = now.astimezone(zone)
    start, end = settings.quiet_hours_start, settings.quiet_hours_end
    moment = local.time()
    spans_midnight = start > end
    is_quiet = (moment >= start or moment < end) if spans_midnight else start <= moment < end
    if not is_quiet:
        return None
    day = local.date() + timedelta(days=1) if spans_midnight and moment >= start else local.date()
    return local_instant(day, end, settings.time_zone)


@dataclass
class Outcome:
    outcome: str  # posted | recorded | duplicate | rejected
    reason: str | None = None


def apply_provider_result(
    session: Session,
    *,
    charge: RailCharge,
    state: str,
    provider: PaymentProvider,
    provider_charge_id: str,
    failure_code: str | None,
    source: str,
    settings: Settings,
    now: datetime,
    amount_minor: int = 0,
) -> Outcome:
    """What the provider confirmed about a charge (locked by the caller, after the shopper's
    credit line): a success is posted once through the payment waterfall; a decline schedules
    the next attempt or ends the tries."""
    today = business_date(now, settings.time_zone)
    if state == "succeeded":
        # Posted already (and perhaps reversed since): news of the same success posts nothing.
        if charge.status in ("succeeded", "reversed"):
            return Outcome("duplicate")
        posted = payments.pay(
            session,
            shopper_id=charge.shopper_id,
            amount_minor=charge.amount_minor,
            currency=charge.currency,
            order_id=charge.order_id,
            method=provider.payment_method,
            external_ref=f"{provider.name}:{provider_charge_id}",
            today=today,
            settings=settings,
            now=now,
        )
        if charge.provider_charge_id is None:
            charge.provider_charge_id = provider_charge_id
        rails_service.mark_succeeded(
            charge, payment_id=posted.payment.id, confirmed_by=source, now=now
        )
        publish_event(
            session,
            event_type="payment.received",
            data=payments.payment_received_data(
                posted, provider=provider.name, charge_id=charge.id
            ),
            now=now,
            settings=settings,
            shopper_id=charge.shopper_id,
        )
        left_minor = sum(
            row.remaining_minor
            for row in repayment_service.instalments_of(
                session, shopper_id=charge.shopper_id, order_id=charge.order_id
            )
        )
        collections_service.queue_notice(
            session,
            shopper_id=charge.shopper_id,
            order_id=charge.order_id,
            seq=charge.seq,
            step=collections_service.MONEY_NOTICE_STEP,
            template="payment_received",
            now=now,
            facts={"amount_paid_minor": charge.amount_minor, "amount_left_minor": left_minor},
        )
        return Outcome("posted")
    if state == "failed":
        if charge.status in ("succeeded", "reversed"):
            return Outcome("rejected", "already_succeeded")
        if charge.status == "failed":
            return Outcome("duplicate")
        instalment = _instalment_of(session, charge)
        schedule = retry_schedule_of(settings)
        next_on = None
        if instalment is not None and instalment.due_on is not None:
            next_on = schedule.next_attempt_on(
                due_on=instalment.due_on, failed_attempt=charge.attempt, today=today
            )
        if charge.provider_charge_id is None:
            charge.provider_charge_id = provider_charge_id
        rails_service.mark_failed(
            charge,
            failure_code=failure_code or "declined",
            next_attempt_on=next_on,
            confirmed_by=source,
            now=now,
        )
        publish_event(
            session,
            event_type="charge.failed",
            data={
                "charge_id": charge.id,
                "shopper_id": charge.shopper_id,
                "order_id": charge.order_id,
                "seq": charge.seq,
                "attempt": charge.attempt,
                "amount_minor": charge.amount_minor,
                "currency": charge.currency,
                "failure_code": charge.failure_code,
                # When it will be tried again (the retry schedule's charge_at, local time), or
                # None when no attempt is left.
                "next_attempt_on": next_on,
                "next_attempt_at": (
                    local_instant(next_on, schedule.charge_at, settings.time_zone)
                    if next_on is not None
                    else None
                ),
            },
            now=now,
            settings=settings,
            shopper_id=charge.shopper_id,
        )
        if instalment is not None and instalment.due_on is not None:
            facts: dict[str, Any] = {
                "amount_due_minor": charge.amount_minor,
                "due_on": instalment.due_on.isoformat(),
            }
            if next_on is not None:
                facts["next_try_on"] = next_on.isoformat()
            collections_service.queue_notice(
                session,
                shopper_id=charge.shopper_id,
                order_id=charge.order_id,
                seq=charge.seq,
                step=collections_service.MONEY_NOTICE_STEP,
                template="charge_failed" if next_on is not None else "charge_failed_final",
                now=now,
                facts=facts,
            )
        return Outcome("recorded")
    if state == "reversed":
        return reverse_charge(
            session, charge=charge, amount_minor=amount_minor, settings=settings, now=now
        )
    return Outcome("rejected", "unsupported_event")


def reverse_charge(
    session: Session, *, charge: RailCharge, amount_minor: int, settings: Settings, now: datetime
) -> Outcome:
    """The provider took back a charge it had settled (a chargeback): the payment it posted is
    undone with a ledger entry, the instalments it paid are owed again (overdue when past due,
    freezing the shopper's credit), and the charge is not tried again. Only a whole charge is
    reversed here; a partial reversal, or one whose held credit the shopper has already spent,
    is left to an operator (reported as a break, nothing posted)."""
    if charge.status == "reversed":
        return Outcome("duplicate")
    if charge.status != "succeeded" or charge.payment_id is None:
        return Outcome("rejected", "not_settled")
    if amount_minor != charge.amount_minor:
        return Outcome("rejected", "partial_reversal")
    payment = repayment_service.payment_of(
        session, shopper_id=charge.shopper_id, payment_id=charge.payment_id
    )
    assert payment is not None
    held = payments.held_credit_of(session, shopper_id=charge.shopper_id, currency=charge.currency)
    if held < payment.unapplied_minor:
        return Outcome("rejected", "held_credit_spent")
    today = business_date(now, settings.time_zone)
    undone = repayment_service.reverse_payment(
        session, shopper_id=charge.shopper_id, payment_id=payment.id, today=today, now=now
    )
    if (
        undone.to_receivable_minor + undone.recovered_minor + payment.unapplied_minor
        != payment.amount_minor
    ):
        raise InvariantViolated(f"payment {payment.id} does not add up to its allocations")
    post_entry(
        session,
        kind=EntryKind.PAYMENT_REVERSAL,
        currency=charge.currency,
        legs=[
            Leg(accounts.PLATFORM_CASH, -payment.amount_minor),
            Leg(accounts.shopper_receivable(charge.shopper_id), undone.to_receivable_minor),
            Leg(accounts.RECOVERIES, undone.recovered_minor),
            Leg(accounts.shopper_unapplied_credit(charge.shopper_id), payment.unapplied_minor),
        ],
        now=now,
        shopper_id=charge.shopper_id,
        order_id=charge.order_id,
        reference_id=payment.id,
        memo=f"{charge.provider} reversed charge {charge.provider_charge_id}",
    )
    credit_service.take_back_after_reversal(
        session, shopper_id=charge.shopper_id, amount_minor=undone.reopened_principal_minor
    )
    grouped = repayment_service.instalments_of_orders(
        session, shopper_id=charge.shopper_id, order_ids=undone.order_ids
    )
    any_overdue = False
    for order_id, rows in grouped.items():
        is_overdue = any(row.status == "overdue" for row in rows)
        any_overdue = any_overdue or is_overdue
        order = order_service.find_order(session, order_id=order_id)
        order_service.reopen_after_reversal(order, is_overdue=is_overdue, now=now)
        risk_counters.observe_orders(session, orders=[order], now=now)
    if any_overdue:
        credit_service.freeze_for_overdue(session, shopper_id=charge.shopper_id, now=now)
    rails_service.mark_reversed(charge, amount_minor=amount_minor, now=now)
    session.flush()
    publish_event(
        session,
        event_type="payment.reversed",
        data={
            "payment_id": payment.id,
            "shopper_id": charge.shopper_id,
            "order_id": charge.order_id,
            "charge_id": charge.id,
            "amount_minor": amount_minor,
            "currency": charge.currency,
        },
        now=now,
        settings=settings,
        shopper_id=charge.shopper_id,
    )
    return Outcome("reversed")


def receive_callback(
    session: Session,
    *,
    provider: PaymentProvider,
    headers: Mapping[str, str],
    body: bytes,
    settings: Settings,
    now: datetime,
) -> Outcome:
    """A provider's callback: verified, matched to the charge it is about, then applied once.
    Every callback is recorded with what became of it; a refused one changes nothing else."""
    try:
        event = provider.parse_callback(headers=headers, body=body)
    except CallbackRejected as rejected:
        rails_service.record_callback(
            session,
            provider=provider.name,
            outcome="rejected",
            reason=rejected.reason,
            source="callback",
            now=now,
        )
        return Outcome("rejected", rejected.reason)

    def refuse(reason: str, charge: RailCharge | None = None) -> Outcome:
        rails_service.record_callback(
            session,
            provider=provider.name,
            outcome="rejected",
            reason=reason,
            source="callback",
            event_id=event.event_id,
            event_type=event.event_type,
            charge=charge,
            provider_charge_id=event.provider_charge_id,
            amount_minor=event.amount_minor,
            now=now,
        )
        return Outcome("rejected", reason)

    found = rails_service.charge_by_reference(
        session, provider=provider.name, reference=event.reference
    )
    if found is not None and (
        found.provider_charge_id is not None
        and found.provider_charge_id != event.provider_charge_id
    ):
        found = None
    if rails_service.has_accepted_event(session, provider=provider.name, event_id=event.event_id):
        return refuse("replayed", found)
    if found is None:
        return refuse("unknown_charge")
    # Lock order of every money movement: the shopper's credit line, then the rows it moves.
    credit_service.lock_credit_line(session, shopper_id=found.shopper_id)
    charge = rails_service.charge_of(
        session, shopper_id=found.shopper_id, charge_id=found.id, for_update=True
    )
    assert charge is not None
    if event.currency != charge.currency or (
        event.event_type != "charge.reversed" and event.amount_minor != charge.amount_minor
    ):
        return refuse("amount_mismatch", charge)
    state = {
        "charge.succeeded": "succeeded",
        "charge.failed": "failed",
        "charge.reversed": "reversed",
    }[event.event_type]
    outcome = apply_provider_result(
        session,
        charge=charge,
        state=state,
        provider=provider,
        provider_charge_id=event.provider_charge_id,
        failure_code=event.failure_code,
        source="callback",
        settings=settings,
        now=now,
        amount_minor=event.amount_minor,
    )
    rails_service.record_callback(
        session,
        provider=provider.name,
        outcome=outcome.outcome,
        reason=outcome.reason,
        source="callback",
        event_id=event.event_id,
        event_type=event.event_type,
        charge=charge,
        provider_charge_id=event.provider_charge_id,
        amount_minor=event.amount_minor,
        now=now,
    )
    return outcome


def _apply_status(
    session: Session,
    *,
    shopper_id: str,
    charge_id: str,
    status: ChargeStatus,
    provider: PaymentProvider,
    source: str,
    settings: Settings,
    now: datetime,
) -> Outcome:
    """A charge's status as the provider reports it when asked (query or statement)."""
    credit_service.lock_credit_line(session, shopper_id=shopper_id)
    charge = rails_service.charge_of(
        session, shopper_id=shopper_id, charge_id=charge_id, for_update=True
    )
    if charge is None:
        return Outcome("rejected", "unknown_charge")
    if status.amount_minor != charge.amount_minor or status.currency != charge.currency:
        outcome = Outcome("rejected", "amount_mismatch")
    elif status.state == "processing":
        return Outcome("recorded", "processing")
    else:
        outcome = apply_provider_result(
            session,
            charge=charge,
            state=status.state,
            provider=provider,
            provider_charge_id=status.provider_charge_id,
            failure_code=status.failure_code,
            source=source,
            settings=settings,
            now=now,
        )
    rails_service.record_callback(
        session,
        provider=provider.name,
        outcome=outcome.outcome,
        reason=outcome.reason,
        source=source,
        event_type=f"charge.{status.state}",
        charge=charge,
        provider_charge_id=status.provider_charge_id,
        amount_minor=status.amount_minor,
        now=now,
    )
    return outcome


@dataclass(frozen=True)
class RailWork:
    """What the worker's rail handlers need: the database, the clock, settings, the provider."""

    database: Database
    clock: Clock
    settings: Settings
    provider: PaymentProvider


class ChargeSubmitter:
    """The worker's handler of ``rails.charge``: send one scheduled charge to the provider."""

    def __init__(self, rail: RailWork) -> None:
        self.database = rail.database
        self.clock = rail.clock
        self.settings = rail.settings
        self.provider = rail.provider

    def __call__(self, payload: dict[str, Any]) -> None:
        shopper_id, charge_id = str(payload["shopper_id"]), str(payload["charge_id"])
        with self.database.transaction() as session:
            now = self.clock.now(session)
            charge = rails_service.charge_of(
                session, shopper_id=shopper_id, charge_id=charge_id, for_update=True
            )
            if charge is None or charge.status != "scheduled":
                return
            reason = stop_reason(session, charge)
            if reason is not None:
                rails_service.cancel_charge(charge, reason=reason, now=now)
                return
            quiet_until = _quiet_until(self.settings, now)
            if quiet_until is not None:
                enqueue(
                    session,
                    topic=CHARGE_TOPIC,
                    payload=payload,
                    now=now,
                    available_at=quiet_until,
                )
                return
            mandate = rails_service.mandate_of(
                session, shopper_id=shopper_id, mandate_id=charge.mandate_id
            )
            request = ChargeRequest(
                mandate_id=mandate.provider_mandate_id,
                amount_minor=charge.amount_minor,
                currency=charge.currency,
                reference=charge.id,
                idempotency_key=charge.idempotency_key,
                description=f"instalment {charge.seq} of order {charge.order_id}",
            )
        try:
            status = self.provider.charge(request)
        except ProviderRefused as refused:
            with self.database.transaction() as session:
                now = self.clock.now(session)
                charge = rails_service.charge_of(
                    session, shopper_id=shopper_id, charge_id=charge_id, for_update=True
                )
                if charge is not None and charge.status == "scheduled":
                    rails_service.mark_failed(
                        charge,
                        failure_code=refused.code,
                        next_attempt_on=None,
                        confirmed_by="request",
                        now=now,
                    )
            return
        # ProviderUnavailable propagates: the outbox sends again later with the same key.
        if status.state == "failed":
            # A decline the provider stated in its verified answer (Alipay's trade.pay declines
            # synchronously and sends no notification): applied as a confirmed decline, so the
            # retry schedule runs.
            with self.database.transaction() as session:
                _apply_status(
                    session,
                    shopper_id=shopper_id,
                    charge_id=charge_id,
                    status=status,
                    provider=self.provider,
                    source="request",
                    settings=self.settings,
                    now=self.clock.now(session),
                )
            return
        with self.database.transaction() as session:
            now = self.clock.now(session)
            charge = rails_service.charge_of(
                session, shopper_id=shopper_id, charge_id=charge_id, for_update=True
            )
            if charge is None:
                return
            if charge.status == "scheduled":
                rails_service.mark_submitted(
                    charge, provider_charge_id=status.provider_charge_id, now=now
                )
            elif charge.provider_charge_id is None:
                charge.provider_charge_id = status.provider_charge_id
            if charge.status == "submitted":
                # The answer to a request is not a confirmation: ask again later if no callback
                # has settled it by then.
                enqueue(
                    session,
                    topic=QUERY_TOPIC,
                    payload={"shopper_id": shopper_id, "charge_id": charge_id, "round": 1},
                    now=now,
                    available_at=now
                    + timedelta(seconds=self.settings.auto_debit_query_after_seconds),
                )


class ChargeQuerier:
    """The worker's handler of ``rails.query``: a charge with no callback yet is asked about."""

    def __init__(self, rail: RailWork) -> None:
        self.database = rail.database
        self.clock = rail.clock
        self.settings = rail.settings
        self.provider = rail.provider

    def __call__(self, payload: dict[str, Any]) -> None:
        shopper_id, charge_id = str(payload["shopper_id"]), str(payload["charge_id"])
        with self.database.transaction(read_only=True) as session:
            charge = rails_service.charge_of(session, shopper_id=shopper_id, charge_id=charge_id)
            if charge is None or charge.status != "submitted" or not charge.provider_charge_id:
                return
            provider_charge_id = charge.provider_charge_id
        status = self.provider.query(provider_charge_id=provider_charge_id)
        with self.database.transaction() as session:
            now = self.clock.now(session)
            outcome = _apply_status(
                session,
                shopper_id=shopper_id,
                charge_id=charge_id,
                status=status,
                provider=self.provider,
                source="query",
                settings=self.settings,
                now=now,
            )
            query_round = int(payload.get("round", 1))
            if outcome.reason == "processing" and query_round < MAX_QUERIES:
                enqueue(
                    session,
                    topic=QUERY_TOPIC,
                    payload={**payload, "round": query_round + 1},
                    now=now,
                    available_at=now
                    + timedelta(seconds=self.settings.auto_debit_query_after_seconds),
                )


# --- mandates and what the order shows ----------------------------------------------------------


class NoPaymentProvider(Conflict):
    code = "no_payment_provider"
    default_message = "This engine has no payment provider configured (USEFIRST_PAYMENT_PROVIDER)."


class PaymentProviderUnavailable(UsefirstError):
    status_code = 503
    code = "payment_provider_unavailable"
    default_message = "The payment provider did not answer; try again later."


class MandateNotInForce(Conflict):
    code = "mandate_not_in_force"
    default_message = "The provider says this mandate is not signed or no longer in force."


def authorise_mandate(
    session: Session,
    *,
    provider: PaymentProvider | None,
    shopper_id: str,
    idempotency_key: str,
    now: datetime,
    provider_mandate_id: str | None = None,
) -> dict[str, Any]:
    """The shopper authorises the engine to charge them through the provider (the platform
    collected their consent in its app); their due instalments are auto-debited from then on."""
    if provider is None:
        raise NoPaymentProvider()
    identity_service.get_shopper(session, shopper_id=shopper_id)
    try:
        mandate = provider.authorise_mandate(
            shopper_reference=shopper_id,
            idempotency_key=f"mandate:{shopper_id}:{idempotency_key}",
            provider_mandate_id=provider_mandate_id,
        )
    except ProviderRefused as refused:
        raise MandateNotInForce(f"The provider refused the mandate ({refused.code}).") from None
    except ProviderUnavailable:
        raise PaymentProviderUnavailable() from None
    if not mandate.is_active:
        raise MandateNotInForce()
    row = rails_service.add_mandate(
        session, shopper_id=shopper_id, provider=provider.name, mandate=mandate, now=now
    )
    return rails_service.mandate_view(row)


def revoke_mandate(
    session: Session,
    *,
    provider: PaymentProvider | None,
    shopper_id: str,
    mandate_id: str,
    now: datetime,
) -> dict[str, Any]:
    """The shopper withdraws the mandate: nothing more is charged on it (charges already sent
    still settle as the provider reports)."""
    row = rails_service.mandate_of(session, shopper_id=shopper_id, mandate_id=mandate_id)
    if row.status == "active":
        if provider is None or provider.name != row.provider:
            raise NoPaymentProvider()
        provider.revoke_mandate(mandate_id=row.provider_mandate_id)
    row = rails_service.revoke_mandate(
        session, shopper_id=shopper_id, mandate_id=mandate_id, now=now
    )
    return rails_service.mandate_view(row)


def mandates_of(session: Session, *, shopper_id: str) -> list[dict[str, Any]]:
    identity_service.get_shopper(session, shopper_id=shopper_id)
    return [
        rails_service.mandate_view(row)
        for row in rails_service.mandates_of(session, shopper_id=shopper_id)
    ]


def order_charges(
    session: Session, *, order_id: str, merchant_id: str | None = None
) -> dict[str, Any]:
    """Every auto-debit attempt on the order's instalments and every callback about each."""
    order = order_service.find_order(session, order_id=order_id, merchant_id=merchant_id)
    return {
        "order_id": order.id,
        "data": rails_service.order_charges_view(
            session, shopper_id=order.shopper_id, order_id=order.id
        ),
    }
