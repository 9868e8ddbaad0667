"""Collections: the dunning ladder's reminders and order-level steps (call queue, bureau report,
legal referral, charge-off), the collector queue and calls, the contact log, late-fee waivers,
legal cases and the portfolio report. Credit-bureau files are in ``bureau``, the contact policy in
``contact_policy``; the flows in ``usefirst.flows`` combine these with the other domains.

Reminders and calls obey the contact policy, and stop once the instalment is paid, the order
cancelled or disputed. Every attempt is logged. A reminder says what is true when it goes out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from usefirst.collections import portfolio
from usefirst.collections.contact_policy import (
    ContactPolicy,
    phone_reported_wrong,
    refusal_to_contact,
)
from usefirst.collections.ladder import LADDER_CONFIG_KIND, Ladder, load_ladder, parse_ladder
from usefirst.collections.models import (
    ContactAttempt,
    DelinquentOrder,
    HardshipRequest,
    LateFeeWaiver,
    LegalCase,
)
from usefirst.collections.repository import CollectionsRepository, ReminderStep
from usefirst.disputes import pauses
from usefirst.disputes.repository import DisputeRepository
from usefirst.identity.models import Shopper
from usefirst.identity.repository import IdentityRepository
from usefirst.kit import config_versions
from usefirst.kit.clock import as_utc
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.errors import Conflict, NotFound, ValidationFailed
from usefirst.kit.ids import new_id
from usefirst.kit.outbox import enqueue
from usefirst.kit.settings import Settings
from usefirst.notify.templates import TemplateCatalog
from usefirst.orders.models import Order
from usefirst.orders.repository import OrderRepository
from usefirst.repayment.repository import RepaymentRepository

CONTACT_TOPIC = "contact"
CALL_OUTCOMES = ("reached", "no_answer", "wrong_number", "promise_to_pay", "refused")
BUCKETS = ((0, "current"), (30, "1-30"), (60, "31-60"), (90, "61-90"), (180, "91-180"))


class ContactNotAllowed(Conflict):
    code = "contact_not_allowed"
    default_message = "The contact policy forbids contacting this shopper now."


class PromiseExceedsOutstanding(ValidationFailed):
    code = "promise_exceeds_outstanding"
    default_message = "A promise to pay cannot be more than the order still owes."


def ladder_of(session: Session, settings: Settings) -> Ladder:
    """The ladder in force: the newest version saved in the console, else the ladder file."""
    return config_versions.in_force(
        session,
        kind=LADDER_CONFIG_KIND,
        parse=lambda version: parse_ladder(version.content, source=f"version {version.number}"),
        fallback=lambda: load_ladder(settings.dunning_ladder_file),
        max_age_seconds=settings.config_refresh_seconds,
    )


def template_catalog_of(settings: Settings) -> TemplateCatalog:
    """The built-in reminder templates with the operator's overrides, validated on load."""
    if settings.templates_file is None:
        return TemplateCatalog()
    overrides = json.loads(settings.templates_file.read_text(encoding="utf-8"))
    return TemplateCatalog(overrides=overrides)


def delinquency_bucket(days_past_due: int) -> str:
    for upper, name in BUCKETS:
        if days_past_due <= upper:
            return name
    return "180+"


# --- the contact policy ----------------------------------------------------------------------


def policy_for_shopper(session: Session, *, settings: Settings, shopper_id: str) -> ContactPolicy:
    """The contact policy on the shopper's own clock: their quiet hours and their day."""
    shopper = _shopper(session, shopper_id)
    return ContactPolicy.from_settings(settings).in_zone(shopper.time_zone)


def _shopper(session: Session, shopper_id: str) -> Shopper:
    shopper = IdentityRepository(session).get_shopper(shopper_id)
    if shopper is None:
        raise NotFound("No such shopper.")
    return shopper


# --- the dunning ladder ----------------------------------------------------------------------


def reminder_steps_on(
    *, business_on: date, ladder: Ladder, policy: ContactPolicy, now: datetime
) -> list[ReminderStep]:
    """The (step, channel) pairs of the ladder whose reminders fall on ``business_on``, with the
    time each goes out under the quiet hours of the policy's time zone (the same for every
    instalment of a step whose shopper lives in that zone)."""
    steps = []
    for step_index, step in enumerate(ladder.reminder_steps()):
        wanted_at = max(policy.at(business_on, step.send_at), now)
        scheduled_at = policy.next_allowed(wanted_at)
        is_deferred = scheduled_at != wanted_at
        for channel_index, channel in enumerate(step.channels):
            steps.append(
                ReminderStep(
                    step_index=step_index,
                    channel_index=channel_index,
                    step_day=step.day,
                    step=f"day_{step.day:+d}",
                    due_on=business_on - timedelta(days=step.day),
                    channel=channel,
                    template=step.template,
                    scheduled_at=scheduled_at,
                    status="deferred" if is_deferred else "scheduled",
                    status_reason="quiet_hours" if is_deferred else None,
                    time_zone=policy.time_zone,
                )
            )
    return steps


def plan_reminders(
    session: Session,
    *,
    business_on: date,
    ladder: Ladder,
    settings: Settings,
    cipher: FieldCipher,
    now: datetime,
) -> int:
    """Plan every reminder step that falls on ``business_on``, once per instalment and channel,
    set-based (see ``CollectionsRepository.plan_reminders``), at the step's time on the
    shopper's clock: the steps are worked out once per time zone shoppers live in (a handful).
    Returns how many go out."""
    policy = ContactPolicy.from_settings(settings)
    session.flush()
    repository = CollectionsRepository(session)
    steps = [
        step
        for time_zone in repository.shopper_time_zones()
        for step in reminder_steps_on(
            business_on=business_on, ladder=ladder, policy=policy.in_zone(time_zone), now=now
        )
    ]
    _, to_send = repository.plan_reminders(steps=steps, topic=CONTACT_TOPIC, now=now)
    return to_send


@dataclass
class EscalationSummary:
    call_queue: int = 0
    bureau_reported: int = 0
    legal_referred: int = 0
    charged_off: int = 0


def escalate_overdue(
    session: Session, *, business_on: date, ladder: Ladder, now: datetime
) -> EscalationSummary:
    """Set-based: first delinquency, call queue and bureau report for every overdue order that
    reaches them today (see ``CollectionsRepository.escalate_overdue``): the summary counts the
    orders that entered the call queue and were reported to the bureau."""
    session.flush()
    call_queue, bureau_reported = CollectionsRepository(session).escalate_overdue(
        business_on=business_on,
        call_queue_day=ladder.action_day("call_queue"),
        bureau_report_day=ladder.action_day("bureau_report"),
        now=now,
    )
    session.expire_all()
    return EscalationSummary(call_queue=call_queue, bureau_reported=bureau_reported)


@dataclass(frozen=True)
class PastDueOrder:
    """An undisputed overdue order far enough past due for one of the ladder's later steps."""

    order: Order
    days_past_due: int
    reaches_legal_referral: bool
    reaches_charge_off: bool


def orders_due_for_legal_or_charge_off(
    session: Session, *, business_on: date, ladder: Ladder
) -> list[PastDueOrder]:
    """The orders whose days past due reach legal referral or charge-off today (each step still
    happens once per order: ``refer_to_legal`` and the charge-off record it)."""
    legal_day = ladder.action_day("legal_referral")
    charge_off_day = ladder.action_day("charge_off")
    later_days = [day for day in (legal_day, charge_off_day) if day is not None]
    if not later_days:
        return []
    repository = CollectionsRepository(session)
    rows = repository.past_due_at_least(business_on=business_on, days=min(later_days))
    orders = {
        (order.shopper_id, order.id): order
        for order in OrderRepository(session).many(
            [(shopper_id, order_id) for shopper_id, order_id, _ in rows]
        )
    }
    return [
        PastDueOrder(
            order=orders[(shopper_id, order_id)],
            days_past_due=days_past_due,
            reaches_legal_referral=legal_day is not None and days_past_due >= legal_day,
            reaches_charge_off=charge_off_day is not None and days_past_due >= charge_off_day,
        )
        for shopper_id, order_id, days_past_due in rows
    ]


def refer_to_legal(
    session: Session, *, order: Order, business_on: date, now: datetime
) -> LegalCase | None:
    """Open the order's legal case, claiming what it still owes; None if it was referred
    before."""
    delinquency = _delinquency_of(session, order=order, now=now)
    if delinquency.legal_referred_on is not None:
        return None
    delinquency.legal_referred_on = business_on
    delinquency.updated_at = now
    rows = RepaymentRepository(session).instalments_of_order(order.shopper_id, order.id)
    case = LegalCase(
        shopper_id=order.shopper_id,
        id=new_id("legal_case"),
        order_id=order.id,
        status="referred",
        claimed_principal_minor=sum(row.unpaid_principal_minor for row in rows),
        claimed_fees_minor=sum(row.unpaid_fees_minor for row in rows),
        currency=order.currency,
        opened_at=now,
        updated_at=now,
    )
    CollectionsRepository(session).add(case)
    session.flush()
    return case


def record_charge_off(
    session: Session, *, order: Order, business_on: date, amount_minor: int, now: datetime
) -> None:
    """Record that the order was charged off on ``business_on``, ``amount_minor`` written off."""
    delinquency = _delinquency_of(session, order=order, now=now)
    delinquency.charged_off_on = business_on
    delinquency.charged_off_minor = amount_minor
    delinquency.updated_at = now


def _delinquency_of(session: Session, *, order: Order, now: datetime) -> DelinquentOrder:
    """The order's record in collections (made by the sweep's escalation; made here for an
    order that reaches a later step without one)."""
    repository = CollectionsRepository(session)
    delinquency = repository.delinquency(order.shopper_id, order.id)
    if delinquency is None:
        delinquency = DelinquentOrder(
            shopper_id=order.shopper_id, order_id=order.id, charged_off_minor=0, updated_at=now
        )
        repository.add(delinquency)
    return delinquency


# --- the sweep's record of swept dates -------------------------------------------------------


def claim_sweep_date(session: Session, *, business_on: date, now: datetime) -> bool:
    """Record that the sweep of ``business_on`` runs; False when it already has."""
    return CollectionsRepository(session).claim_sweep_date(business_on, now=now)


def raise_work_mem_for_sweep(session: Session) -> None:
    CollectionsRepository(session).raise_work_mem_for_sweep()


def record_sweep_summary(
    session: Session, *, business_on: date, summary: dict[str, object]
) -> None:
    CollectionsRepository(session).record_sweep_summary(business_on, summary)


def is_swept(session: Session, *, business_on: date) -> bool:
    """Whether every step of the sweep of ``business_on`` is done (its summary is recorded)."""
    return CollectionsRepository(session).is_swept(business_on)


def claim_sweep_step(session: Session, *, business_on: date, step: str, now: datetime) -> bool:
    """Record that ``step`` of the sweep of ``business_on`` runs in this transaction; False when
    it is already done."""
    return CollectionsRepository(session).claim_sweep_step(business_on, step, now=now)


def record_sweep_step_counts(
    session: Session, *, business_on: date, step: str, counts: dict[str, int]
) -> None:
    CollectionsRepository(session).record_sweep_step_counts(business_on, step, counts)


def sweep_steps_done(session: Session, *, business_on: date) -> dict[str, dict[str, int]]:
    """The steps of the sweep of ``business_on`` that are done, with what each did."""
    return CollectionsRepository(session).sweep_steps_done(business_on)


def last_swept_on(session: Session) -> date | None:
    return CollectionsRepository(session).last_swept_on()


# --- delivering reminders --------------------------------------------------------------------


def attempt_of(session: Session, *, shopper_id: str, attempt_id: str) -> ContactAttempt | None:
    return CollectionsRepository(session).attempt(shopper_id, attempt_id)


def template_true_on(template: str, *, due_on: date, on: date) -> str:
    """The reminder template whose wording is true when sent on ``on``. A reminder planned for
    before or on the due date can go out later (deferred by quiet hours or the daily cap): it
    must not then say "due on D" or "due today" once D has passed, but say what is overdue."""
    if template == "reminder_upcoming" and on == due_on:
        return "reminder_due_today"
    if template in ("reminder_upcoming", "reminder_due_today") and on > due_on:
        return "overdue_notice"
    if template == "reminder_due_today" and on < due_on:
        return "reminder_upcoming"
    return template


# --- the collector queue ---------------------------------------------------------------------


def overdue_facts(session: Session, order: Order, today: date) -> tuple[int, int]:
    """What is overdue on the order (minor units) and its days past due, disputes paused."""
    rows = RepaymentRepository(session).instalments_of_order(order.shopper_id, order.id)
    overdue = [row for row in rows if row.status == "overdue" and row.due_on is not None]
    overdue_minor = sum(row.remaining_minor for row in overdue)
    pause = DisputeRepository(session).pause_of(order.shopper_id, order.id)
    days = max(
        (
            pauses.days_past_due_on(pause, due_on=row.due_on, on=today)
            for row in overdue
            if row.due_on
        ),
        default=0,
    )
    return overdue_minor, days


def _promise_state(
    session: Session, order: Order, today: date
) -> tuple[dict[str, Any] | None, bool]:
    """The latest promise to pay and whether it still holds (keeps the order out of the queue)."""
    promise = CollectionsRepository(session).latest_promise(order.shopper_id, order.id)
    if promise is None or promise.promise_on is None or promise.promise_minor is None:
        return None, False
    paid_since = sum(
        allocation.fees_minor + allocation.principal_minor
        for allocation in RepaymentRepository(session).allocations_of_order(
            order.shopper_id, order.id
        )
        if allocation.created_at >= promise.created_at
    )
    kept = paid_since >= promise.promise_minor
    holds = not kept and today <= promise.promise_on
    state = "kept" if kept else ("pending" if holds else "broken")
    return (
        {
            "promise_on": promise.promise_on,
            "promise_minor": promise.promise_minor,
            "paid_since_minor": paid_since,
            "status": state,
        },
        holds,
    )


def orders_in_call_queue(session: Session) -> list[Order]:
    """The overdue orders that entered the call queue, by id."""
    orders = OrderRepository(session).many(CollectionsRepository(session).in_call_queue())
    return sorted((order for order in orders if order.status == "overdue"), key=lambda o: o.id)


def collection_queue(session: Session, *, today: date, limit: int) -> list[dict[str, Any]]:
    entries = []
    for order in orders_in_call_queue(session):
        if pauses.is_open(DisputeRepository(session).pause_of(order.shopper_id, order.id)):
            continue
        overdue_minor, days_past_due = overdue_facts(session, order, today)
        if overdue_minor == 0:
            continue
        promise, holds = _promise_state(session, order, today)
        if holds:
            continue
        entry: dict[str, Any] = {
            "order_id": order.id,
            "shopper_id": order.shopper_id,
            "overdue_minor": overdue_minor,
            "currency": order.currency,
            "days_past_due": days_past_due,
            "bucket": delinquency_bucket(days_past_due),
            "priority": overdue_minor * days_past_due,
        }
        if promise is not None:
            entry["promise"] = promise
        entries.append(entry)
    entries.sort(key=lambda item: (-item["priority"], item["order_id"]))
    return entries[:limit]


def check_call_outcome(
    *, outcome: str, promise_on: date | None, promise_minor: int | None, today: date
) -> None:
    """Refuse a call outcome that is not one of ``CALL_OUTCOMES``, or a promise to pay without
    a date within 30 days and a positive amount (and promise fields on any other outcome)."""
    if outcome not in CALL_OUTCOMES:
        raise ValidationFailed(
            f"outcome must be one of {', '.join(CALL_OUTCOMES)}.", field="outcome"
        )
    if outcome == "promise_to_pay":
        if promise_on is None or not today <= promise_on <= today + timedelta(days=30):
            raise ValidationFailed(
                "A promise to pay needs promise_on within the next 30 days.", field="promise_on"
            )
        if promise_minor is None or promise_minor <= 0:
            raise ValidationFailed(
                "A promise to pay needs a positive promise_minor.", field="promise_minor"
            )
    elif promise_on is not None or promise_minor is not None:
        raise ValidationFailed(
            "promise_on and promise_minor go with promise_to_pay only.", field="outcome"
        )


def check_call_allowed(
    session: Session,
    *,
    order: Order,
    shopper: Shopper,
    promise_minor: int | None,
    settings: Settings,
    now: datetime,
) -> None:
    """Refuse a collector's call the contact policy forbids: the order disputed or not overdue,
    the phone reported wrong, quiet hours or the day's caps; and a promise larger than the debt.
    The caller holds the shopper's credit-line lock (the day's contacts are counted under it)."""
    if pauses.is_open(DisputeRepository(session).pause_of(order.shopper_id, order.id)):
        raise ContactNotAllowed("The order is disputed: collection contacts are paused.")
    if order.status != "overdue":
        raise ContactNotAllowed(f"The order is {order.status}, not overdue: no call is needed.")
    if phone_reported_wrong(session, shopper):
        raise ContactNotAllowed(
            "A collector reported the shopper's phone on file as a wrong number: it is not called "
            "or sent SMS again (only the shopper's own number may be contacted)."
        )
    if promise_minor is not None:
        owed_minor = sum(
            row.remaining_minor
            for row in RepaymentRepository(session).instalments_of_order(order.shopper_id, order.id)
        )
        if promise_minor > owed_minor:
            raise PromiseExceedsOutstanding(
                f"promise_minor is more than the {owed_minor} the order still owes.",
                field="promise_minor",
            )
    refusal = refusal_to_contact(
        session,
        policy=policy_for_shopper(session, settings=settings, shopper_id=order.shopper_id),
        shopper_id=order.shopper_id,
        channel="call",
        now=now,
    )
    if refusal is not None:
        messages = {
            "quiet_hours": "No calls between the quiet hours in the shopper's time zone.",
            "daily_contact_limit": "The shopper had the most contacts allowed today.",
            "daily_call_limit": "The shopper was already called today.",
        }
        raise ContactNotAllowed(messages[refusal])


def log_call(
    session: Session,
    *,
    order: Order,
    outcome: str,
    promise_on: date | None,
    promise_minor: int | None,
    note: str | None,
    operator_id: str | None,
    destination_masked: str,
    now: datetime,
) -> ContactAttempt:
    """The collector's call, in the shopper's contact log."""
    attempt = ContactAttempt(
        shopper_id=order.shopper_id,
        id=new_id("contact"),
        order_id=order.id,
        seq=0,
        channel="call",
        step_day=None,
        step="collector_call",
        template=None,
        scheduled_at=now,
        sent_at=now,
        status="sent",
        outcome=outcome,
        promise_on=promise_on,
        promise_minor=promise_minor,
        note=(note or "").strip()[:2000] or None,
        operator_id=operator_id,
        destination_masked=destination_masked,
        created_at=now,
    )
    CollectionsRepository(session).add(attempt)
    session.flush()
    return attempt


def contacts_of(
    session: Session,
    *,
    shopper_id: str,
    starting_after: str | None = None,
    limit: int | None = None,
) -> list[ContactAttempt]:
    """The shopper's contact log in the order planned; a page of it after the attempt
    ``starting_after`` (which must be one of the shopper's)."""
    _shopper(session, shopper_id)
    repository = CollectionsRepository(session)
    after = None
    if starting_after is not None:
        after = repository.attempt(shopper_id, starting_after)
        if after is None:
            raise ValidationFailed(
                "starting_after is not a contact of this shopper.", field="starting_after"
            )
    return repository.attempts_of_shopper(shopper_id, after=after, limit=limit)


def contact_view(attempt: ContactAttempt) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": attempt.id,
        "order_id": attempt.order_id,
        "seq": attempt.seq,
        "channel": attempt.channel,
        "step": attempt.step,
        "template": attempt.template,
        "scheduled_at": attempt.scheduled_at,
        "sent_at": attempt.sent_at,
        "status": attempt.status,
        "status_reason": attempt.status_reason,
        "destination_masked": attempt.destination_masked,
    }
    if attempt.outcome is not None:
        view["outcome"] = attempt.outcome
        view["promise_on"] = attempt.promise_on
        view["promise_minor"] = attempt.promise_minor
        view["note"] = attempt.note
        view["operator_id"] = attempt.operator_id
    return view


# --- late-fee waivers ------------------------------------------------------------------------


def check_waiver(*, amount_minor: int | None, reason: str) -> str:
    """Refuse a waiver without a reason (1 to 500 characters) or with an amount that is not
    positive; the reason, trimmed."""
    reason = reason.strip()
    if not 1 <= len(reason) <= 500:
        raise ValidationFailed("reason must have 1 to 500 characters.", field="reason")
    if amount_minor is not None and amount_minor <= 0:
        raise ValidationFailed("amount_minor must be positive.", field="amount_minor")
    return reason


def record_waiver(
    session: Session,
    *,
    order: Order,
    waiver_id: str,
    entry_id: str,
    amount_minor: int,
    reason: str,
    operator_id: str | None,
    now: datetime,
) -> LateFeeWaiver:
    """The waiver with its reason in full (the journal entry ``entry_id`` reversed the fees)."""
    waiver = LateFeeWaiver(
        shopper_id=order.shopper_id,
        id=waiver_id,
        order_id=order.id,
        entry_id=entry_id,
        currency=order.currency,
        amount_minor=amount_minor,
        reason=reason,
        operator_id=operator_id,
        created_at=now,
    )
    CollectionsRepository(session).add(waiver)
    session.flush()
    return waiver


def late_fee_waiver_view(row: LateFeeWaiver) -> dict[str, Any]:
    return {
        "id": row.id,
        "order_id": row.order_id,
        "amount_minor": row.amount_minor,
        "currency": row.currency,
        "reason": row.reason,
        "operator_id": row.operator_id,
        "entry_id": row.entry_id,
        "created_at": row.created_at,
    }


# --- legal cases -----------------------------------------------------------------------------

LEGAL_TRANSITIONS = {
    "referred": ("filed", "closed"),
    "filed": ("judgment", "closed"),
    "judgment": ("closed",),
}


def legal_case_view(case: LegalCase) -> dict[str, Any]:
    return {
        "id": case.id,
        "order_id": case.order_id,
        "shopper_id": case.shopper_id,
        "status": case.status,
        "claimed": {
            "principal_minor": case.claimed_principal_minor,
            "fees_minor": case.claimed_fees_minor,
            "currency": case.currency,
        },
        "opened_at": case.opened_at,
        "updated_at": case.updated_at,
    }


def get_legal_case(session: Session, *, case_id: str) -> LegalCase:
    case = CollectionsRepository(session).legal_case(case_id)
    if case is None:
        raise NotFound("No such legal case.")
    return case


def list_legal_cases(
    session: Session, *, starting_after: str | None, limit: int
) -> list[LegalCase]:
    return CollectionsRepository(session).legal_cases(starting_after=starting_after, limit=limit)


def move_legal_case(session: Session, *, case_id: str, status: str, now: datetime) -> LegalCase:
    case = get_legal_case(session, case_id=case_id)
    if status not in LEGAL_TRANSITIONS.get(case.status, ()):
        raise Conflict(f"A {case.status} case cannot become {status}.", field="status")
    case.status = status
    case.updated_at = now
    return case


# --- portfolio -------------------------------------------------------------------------------


def portfolio_report(session: Session, *, as_of: date) -> portfolio.PortfolioReport:
    accounts = []
    for order in OrderRepository(session).delivered():
        assert order.delivered_at is not None
        rows = RepaymentRepository(session).instalments_of_order(order.shopper_id, order.id)
        accounts.append(
            portfolio.AccountHistory(
                order_id=order.id,
                delivered_on=as_utc(order.delivered_at).date(),
                principal_minor=order.amount_minor - order.refunded_minor,
                instalments=tuple(
                    portfolio.InstalmentHistory(
                        due_on=row.due_on,
                        settled_on=row.settled_on,
                        amount_minor=row.remaining_minor,
                    )
                    for row in rows
                    if row.due_on is not None and row.status != "cancelled"
                ),
                closed_on=as_utc(order.updated_at).date() if order.status == "refunded" else None,
            )
        )
    return portfolio.build_report(accounts, as_of=as_of)


# --- hardship requests -------------------------------------------------------------------------


class HardshipAlreadyOpen(Conflict):
    code = "hardship_already_open"
    default_message = "A hardship request on this order is already open or its plan is running."


class HardshipNotFound(NotFound):
    code = "hardship_not_found"
    default_message = "No such hardship request."


class HardshipNotOpen(Conflict):
    code = "hardship_not_open"
    default_message = "This hardship request is not awaiting an answer."


class HardshipNoOffer(Conflict):
    code = "hardship_no_offer"
    default_message = "No settlement is on offer on this hardship request."


def holding_hardship(session: Session, *, shopper_id: str, order_id: str) -> HardshipRequest | None:
    """The request that holds the order's dunning (open, offered or plan), if any."""
    return CollectionsRepository(session).holding_hardship(shopper_id, order_id)


def has_holding_hardship(session: Session, *, shopper_id: str) -> bool:
    return CollectionsRepository(session).has_holding_hardship(shopper_id)


def held_orders(session: Session, *, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    return CollectionsRepository(session).held_orders(keys)


def open_hardship(
    session: Session,
    *,
    order: Order,
    opened_by: str,
    reason: str,
    owed_minor: int,
    operator_id: str | None,
    answer_days: int,
    today: date,
    now: datetime,
) -> HardshipRequest:
    """Record a hardship request; the order's dunning holds from now (the set-based sweep steps
    and auto-debit read the holding requests). The caller holds the shopper's credit line."""
    repository = CollectionsRepository(session)
    if repository.holding_hardship(order.shopper_id, order.id) is not None:
        raise HardshipAlreadyOpen()
    request = HardshipRequest(
        shopper_id=order.shopper_id,
        id=new_id("hardship"),
        order_id=order.id,
        status="open",
        opened_by=opened_by,
        reason=reason,
        currency=order.currency,
        owed_minor=owed_minor,
        opened_on=today,
        answer_due_on=today + timedelta(days=answer_days),
        operator_id=operator_id,
        written_off_minor=0,
        created_at=now,
        updated_at=now,
    )
    repository.add(request)
    session.flush()
    return request


def find_hardship(
    session: Session, *, request_id: str, for_update: bool = False
) -> HardshipRequest:
    repository = CollectionsRepository(session)
    found = repository.hardship_by_id(request_id)
    if found is None:
        raise HardshipNotFound()
    if not for_update:
        return found
    locked = repository.hardship(found.shopper_id, found.id, for_update=True)
    assert locked is not None
    return locked


def decide_hardship(
    request: HardshipRequest,
    *,
    decision: str,
    operator_id: str | None,
    note: str | None,
    plan_months: int | None,
    settlement_minor: int | None,
    settlement_valid_until_on: date | None,
    today: date,
    now: datetime,
) -> None:
    """The operator's answer to an open request: a plan (status plan), a settlement offered
    (status offered) or a refusal (status declined, dunning resumes)."""
    if request.status != "open":
        raise HardshipNotOpen()
    request.decision = decision
    request.decision_note = note
    request.operator_id = operator_id
    request.decided_on = today
    request.updated_at = now
    if decision == "plan":
        request.status = "plan"
        request.plan_months = plan_months
    elif decision == "settlement":
        request.status = "offered"
        request.settlement_minor = settlement_minor
        request.settlement_valid_until_on = settlement_valid_until_on
    else:
        request.status = "declined"
        request.ended_on = today


HARDSHIP_NOTICE_STEP = "hardship_notice"
# Notices about money that moved (a receipt, a failed charge, a due date moved): their facts are
# fixed when it happened, and they go out whatever the instalment's state when they are sent.
MONEY_NOTICE_STEP = "money_notice"
# Notices about the shopper's account and agreements (a checkout's terms, a credit limit
# changed): facts fixed when it happened, sent whatever has happened since; a limit notice names
# no order.
ACCOUNT_NOTICE_STEP = "account_notice"
NOTICE_STEPS = (HARDSHIP_NOTICE_STEP, MONEY_NOTICE_STEP, ACCOUNT_NOTICE_STEP)
# Notices that go out whatever the order's state when they are sent.
NOTICES_SENT_WHATEVER_HAPPENS = (MONEY_NOTICE_STEP, ACCOUNT_NOTICE_STEP)
NOTICE_CHANNELS = ("push", "sms", "email")


def queue_notice(
    session: Session,
    *,
    shopper_id: str,
    order_id: str | None,
    seq: int,
    step: str,
    template: str,
    now: datetime,
    facts: dict[str, Any] | None = None,
) -> list[ContactAttempt]:
    """Tell the shopper something about order ``order_id`` (instalment ``seq``; 0 for the whole
    order; no order for a notice about their account) on each channel: contact attempts sent by
    the reminders' deliverer, so the contact policy (quiet hours, the daily cap, only the
    shopper's own verified channels) and the contact log apply as to any reminder. ``facts`` are
    the message's own variables (amounts in minor units, dates ISO), fixed now; ``source``
    (the event or change it tells of) among them is not a variable but keeps a notice from being
    planned twice (see ``has_notice_from``)."""
    repository = CollectionsRepository(session)
    attempts = []
    for channel in NOTICE_CHANNELS:
        attempt = ContactAttempt(
            shopper_id=shopper_id,
            id=new_id("contact"),
            order_id=order_id,
            seq=seq,
            channel=channel,
            step_day=None,
            step=step,
            template=template,
            scheduled_at=now,
            status="scheduled",
            facts=facts,
            created_at=now,
        )
        repository.add(attempt)
        attempts.append(attempt)
    session.flush()
    for attempt in attempts:
        enqueue(
            session,
            topic=CONTACT_TOPIC,
            payload={"shopper_id": shopper_id, "attempt_id": attempt.id},
            now=now,
        )
    return attempts


def has_notice_from(session: Session, *, shopper_id: str, source: str) -> bool:
    """Whether a notice planned from ``source`` (an event or a credit change) exists already:
    the planner runs at least once per source, and tells the shopper once."""
    return any(
        attempt.facts is not None and attempt.facts.get("source") == source
        for attempt in CollectionsRepository(session).attempts_of_shopper(
            shopper_id, after=None, limit=None
        )
    )


def end_hardship(request: HardshipRequest, *, status: str, today: date, now: datetime) -> None:
    """A holding request ends: completed (plan kept), broken (a plan payment missed past its
    notice), settled (the settlement paid) or lapsed (the offer not taken up in time)."""
    request.status = status
    request.ended_on = today
    request.updated_at = now


def hardship_view(request: HardshipRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "shopper_id": request.shopper_id,
        "order_id": request.order_id,
        "status": request.status,
        "opened_by": request.opened_by,
        "reason": request.reason,
        "currency": request.currency,
        "owed_minor": request.owed_minor,
        "opened_on": request.opened_on,
        "answer_due_on": request.answer_due_on,
        "decision": request.decision,
        "decision_note": request.decision_note,
        "decided_on": request.decided_on,
        "plan_months": request.plan_months,
        "plan_instalment_minor": request.plan_instalment_minor,
        "settlement_minor": request.settlement_minor,
        "settlement_valid_until_on": request.settlement_valid_until_on,
        "written_off_minor": request.written_off_minor,
        "missed_notice_on": request.missed_notice_on,
        "ended_on": request.ended_on,
    }


def hardships_of_order(
    session: Session, *, shopper_id: str, order_id: str
) -> list[HardshipRequest]:
    return CollectionsRepository(session).hardships_of_order(shopper_id, order_id)


def holding_hardships(session: Session) -> list[HardshipRequest]:
    return CollectionsRepository(session).holding_hardships()


def list_hardships(
    session: Session, *, status: str | None, starting_after: str | None, limit: int
) -> list[HardshipRequest]:
    return CollectionsRepository(session).hardships(
        status=status, starting_after=starting_after, limit=limit
    )
