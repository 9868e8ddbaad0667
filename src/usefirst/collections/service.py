"""Collections: late fees, the dunning ladder under the contact policy, the collector queue,
credit-bureau files, legal referral and charge-off.

The contact policy holds for every channel: only the shopper's own verified phone, email and app;
never between the quiet hours (deferred to the next allowed time, never dropped); at most
``max_contacts_per_day`` contacts and ``max_calls_per_day`` calls per shopper per day, both on
the shopper's own clock (their time zone); nothing once the instalment is paid, the order
cancelled or disputed. Every attempt is logged. A reminder says what is true when it goes out.
"""

from __future__ import annotations

import calendar
import dataclasses
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from usefirst.collections import bureau_format, evidence, portfolio
from usefirst.collections.ladder import LADDER_CONFIG_KIND, Ladder, load_ladder, parse_ladder
from usefirst.collections.models import BureauFile, ContactAttempt, LegalCase
from usefirst.collections.repository import CollectionsRepository, ReminderStep
from usefirst.credit import service as credit_service
from usefirst.identity import service as identity_service
from usefirst.identity.models import Shopper
from usefirst.kit import config_versions
from usefirst.kit.clock import as_utc, business_day_start
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.errors import Conflict, NotFound, ValidationFailed
from usefirst.kit.ids import new_id
from usefirst.kit.outbox import enqueue
from usefirst.kit.settings import Settings
from usefirst.merchants import service as merchant_service
from usefirst.notify.service import publish_event
from usefirst.notify.templates import TemplateCatalog, template_language_of
from usefirst.orders import service as order_service
from usefirst.orders.models import Order
from usefirst.orders.repository import OrderRepository
from usefirst.privacy.audit import record_accesses
from usefirst.repayment import service as repayment_service
from usefirst.repayment.models import Instalment
from usefirst.repayment.repository import RepaymentRepository

CONTACT_TOPIC = "contact"
CALL_OUTCOMES = ("reached", "no_answer", "wrong_number", "promise_to_pay", "refused")
BUCKETS = ((0, "current"), (30, "1-30"), (60, "31-60"), (90, "61-90"), (180, "91-180"))
COMPOUND_SURNAMES = ("欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙")


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


@dataclass(frozen=True)
class ContactPolicy:
    time_zone: str
    quiet_start: time
    quiet_end: time
    max_contacts_per_day: int
    max_calls_per_day: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ContactPolicy:
        return cls(
            time_zone=settings.time_zone,
            quiet_start=settings.quiet_hours_start,
            quiet_end=settings.quiet_hours_end,
            max_contacts_per_day=settings.max_contacts_per_day,
            max_calls_per_day=settings.max_calls_per_day,
        )

    def in_zone(self, time_zone: str) -> ContactPolicy:
        """The same policy on another clock: the shopper's (see ``policy_for_shopper``)."""
        return dataclasses.replace(self, time_zone=time_zone)

    def local(self, moment: datetime) -> datetime:
        return as_utc(moment).astimezone(ZoneInfo(self.time_zone))

    def at(self, day: date, clock_time: time) -> datetime:
        return as_utc(datetime.combine(day, clock_time, tzinfo=ZoneInfo(self.time_zone)))

    def is_quiet(self, moment: datetime) -> bool:
        local_time = self.local(moment).time()
        if self.quiet_start > self.quiet_end:  # the quiet hours span midnight
            return local_time >= self.quiet_start or local_time < self.quiet_end
        return self.quiet_start <= local_time < self.quiet_end

    def next_allowed(self, moment: datetime) -> datetime:
        if not self.is_quiet(moment):
            return moment
        local = self.local(moment)
        day = local.date()
        if self.quiet_start > self.quiet_end and local.time() >= self.quiet_start:
            day += timedelta(days=1)
        return self.at(day, self.quiet_end)

    def day_bounds(self, moment: datetime) -> tuple[datetime, datetime]:
        day = self.local(moment).date()
        return (
            business_day_start(day, self.time_zone),
            business_day_start(day + timedelta(days=1), self.time_zone),
        )

    def next_day_opening(self, moment: datetime) -> datetime:
        return self.at(self.local(moment).date() + timedelta(days=1), self.quiet_end)


def policy_for_shopper(session: Session, *, settings: Settings, shopper_id: str) -> ContactPolicy:
    """The contact policy on the shopper's own clock: their quiet hours and their day."""
    shopper = identity_service.get_shopper(session, shopper_id=shopper_id)
    return ContactPolicy.from_settings(settings).in_zone(shopper.time_zone)


def _refusal_to_contact(
    session: Session, *, policy: ContactPolicy, shopper_id: str, channel: str, now: datetime
) -> str | None:
    """Why the policy forbids contacting the shopper on ``channel`` right now, or None."""
    if policy.is_quiet(now):
        return "quiet_hours"
    repository = CollectionsRepository(session)
    start, end = policy.day_bounds(now)
    if repository.contacts_between(shopper_id, start, end) >= policy.max_contacts_per_day:
        return "daily_contact_limit"
    if (
        channel == "call"
        and repository.contacts_between(shopper_id, start, end, channel="call")
        >= policy.max_calls_per_day
    ):
        return "daily_call_limit"
    return None


PHONE_REPORTED_WRONG = "phone_reported_wrong"


def _phone_reported_wrong(session: Session, shopper: Shopper) -> bool:
    """A number a collector found to be someone else's is not used again: SMS and calls to it
    stop. The report is matched by the phone's mask, the only form the call log keeps."""
    return CollectionsRepository(session).phone_reported_wrong(shopper.id, shopper.phone_masked)


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
    if order.legal_referred_on is not None:
        return None
    order.legal_referred_on = business_on
    order.updated_at = now
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
    order.charged_off_on = business_on
    order.charged_off_minor = amount_minor
    order.updated_at = now


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


def last_swept_on(session: Session) -> date | None:
    return CollectionsRepository(session).last_swept_on()


# --- delivering reminders --------------------------------------------------------------------


def _still_due(session: Session, attempt: ContactAttempt) -> str | None:
    """Why a planned reminder must not go out any more, or None."""
    order = order_service.find_order(session, order_id=attempt.order_id)
    if order.is_disputed:
        return "dispute_open"
    # A repaid order has every instalment paid: its reminders stop for the reason "paid" below.
    if order.status in ("cancelled", "refunded", "charged_off"):
        return f"order_{order.status}"
    rows = repayment_service.instalments_of(
        session, shopper_id=attempt.shopper_id, order_id=attempt.order_id
    )
    instalment = next((row for row in rows if row.seq == attempt.seq), None)
    if instalment is None or instalment.remaining_minor == 0:
        return "paid"
    return None


@dataclass(frozen=True)
class OutgoingMessage:
    attempt_id: str
    shopper_id: str
    channel: str
    destination: str
    destination_masked: str
    subject: str | None
    text: str
    push_payload: dict[str, Any] | None


# A failed SMS or email is tried this many times in all, the n-th retry n x this long after.
DELIVERY_TRIES = 3
DELIVERY_RETRY_AFTER = timedelta(minutes=30)


class ContactDeliverer:
    """Outbox handler for planned reminders: re-checks the contact policy at send time, then
    sends through the channel and records the outcome. Delivery failures are recorded, not
    raised."""

    def __init__(self, *, runtime: Any, sms_gateway: Any, email_sender: Any) -> None:
        self.runtime = runtime
        self.sms_gateway = sms_gateway
        self.email_sender = email_sender
        self.templates = template_catalog_of(runtime.settings)

    def __call__(self, payload: dict[str, Any]) -> None:
        message = self._prepare(payload)
        if message is None:
            return
        if message.channel == "sms":
            delivery = self.sms_gateway.send(
                to_e164=message.destination, text=message.text, reference=message.attempt_id
            )
        elif message.channel == "email":
            delivery = self.email_sender.send(
                to_address=message.destination,
                subject=message.subject or "",
                text=message.text,
                reference=message.attempt_id,
            )
        else:
            delivery = None
        with self.runtime.work() as work:
            attempt = CollectionsRepository(work.session).attempt(
                message.shopper_id, message.attempt_id
            )
            if attempt is None or attempt.status not in ("scheduled", "deferred"):
                return
            attempt.sent_at = work.now
            attempt.status_reason = None  # a deferral's reason no longer applies once sent
            attempt.destination_masked = message.destination_masked
            if message.push_payload is not None:
                publish_event(
                    work.session,
                    event_type="notification.push",
                    data=message.push_payload,
                    now=work.now,
                    settings=self.runtime.settings,
                    shopper_id=message.shopper_id,
                )
                attempt.status = "sent"
            elif delivery is not None and delivery.status == "sent":
                attempt.status = "sent"
                attempt.provider_reference = delivery.provider_reference
            elif int(payload.get("try", 1)) < DELIVERY_TRIES:
                # A gateway or mail server that failed is tried again later; the contact policy
                # is checked afresh then (the shopper may have paid, or it may be night).
                retry_at = work.now + DELIVERY_RETRY_AFTER * int(payload.get("try", 1))
                attempt.status, attempt.sent_at, attempt.scheduled_at = "deferred", None, retry_at
                attempt.status_reason = (
                    f"delivery_failed: {delivery.error if delivery else 'no channel'}"[:200]
                )
                enqueue(
                    work.session,
                    topic=CONTACT_TOPIC,
                    payload={**payload, "try": int(payload.get("try", 1)) + 1},
                    now=work.now,
                    available_at=retry_at,
                )
            else:
                attempt.status = "failed"
                attempt.status_reason = (delivery.error if delivery else "no channel")[:200]

    def _prepare(self, payload: dict[str, Any]) -> OutgoingMessage | None:
        settings = self.runtime.settings
        with self.runtime.work() as work:
            session, now = work.session, work.now
            repository = CollectionsRepository(session)
            attempt = repository.attempt(payload["shopper_id"], payload["attempt_id"])
            if attempt is None or attempt.status not in ("scheduled", "deferred"):
                return None
            reason = _still_due(session, attempt)
            if reason is not None:
                attempt.status, attempt.status_reason = "suppressed", reason
                return None
            # One worker at a time counts and claims a shopper's contacts of the day: two workers
            # sending two of the shopper's reminders at once would both see room under the cap.
            credit_service.lock_credit_line(session, shopper_id=attempt.shopper_id)
            policy = policy_for_shopper(session, settings=settings, shopper_id=attempt.shopper_id)
            refusal = _refusal_to_contact(
                session,
                policy=policy,
                shopper_id=attempt.shopper_id,
                channel=attempt.channel,
                now=now,
            )
            if refusal is not None:
                later = (
                    policy.next_allowed(now)
                    if refusal == "quiet_hours"
                    else policy.next_day_opening(now)
                )
                attempt.status, attempt.status_reason, attempt.scheduled_at = (
                    "deferred",
                    refusal,
                    later,
                )
                enqueue(session, topic=CONTACT_TOPIC, payload=payload, now=now, available_at=later)
                return None
            message = self._render(session, attempt, today=policy.local(now).date())
            if message is not None:
                attempt.sent_at = now  # claimed: counts towards the day's cap until the outcome
            return message

    def _render(
        self, session: Session, attempt: ContactAttempt, *, today: date
    ) -> OutgoingMessage | None:
        """The message as true on ``today`` (the shopper's date when it goes out)."""
        settings = self.runtime.settings
        shopper = identity_service.get_shopper(session, shopper_id=attempt.shopper_id)
        details = identity_service.contact_details(
            session, shopper_id=attempt.shopper_id, cipher=self.runtime.cipher
        )
        order = order_service.find_order(session, order_id=attempt.order_id)
        merchant = merchant_service.get_merchant(session, merchant_id=order.merchant_id)
        instalment = next(
            row
            for row in repayment_service.instalments_of(
                session, shopper_id=attempt.shopper_id, order_id=attempt.order_id
            )
            if row.seq == attempt.seq
        )
        assert instalment.due_on is not None and attempt.template is not None
        template = template_true_on(attempt.template, due_on=instalment.due_on, on=today)
        variables: dict[str, object] = {
            "shopper_name": details.display_name,
            "merchant_name": merchant.name,
            "order_reference": order.id,
            "amount_due_minor": instalment.remaining_minor,
            "due_on": instalment.due_on,
            "how_to_pay": settings.how_to_pay,
            "currency": order.currency,
        }
        if template in ("overdue_notice", "final_notice_bureau", "bureau_reported"):
            variables["days_past_due"] = max(
                order_service.days_past_due_on(order, due_on=instalment.due_on, on=today), 1
            )
        if template in (
            "reminder_upcoming",
            "reminder_due_today",
            "overdue_notice",
            "final_notice_bureau",
        ):
            variables["bureau_reporting_days"] = (
                ladder_of(session, settings).action_day("bureau_report") or 30
            )
        channel = attempt.channel
        rendered = self.templates.render(
            template,
            channel=channel,
            language=template_language_of(shopper.language),
            variables=variables,
        )
        if channel == "email":
            if details.email is None or self.email_sender is None:
                attempt.status = "suppressed"
                attempt.status_reason = (
                    "no_verified_email" if details.email is None else "email_not_configured"
                )
                return None
            destination, masked = details.email, details.email_masked or ""
        elif channel == "sms":
            if _phone_reported_wrong(session, shopper):
                attempt.status, attempt.status_reason = "suppressed", PHONE_REPORTED_WRONG
                return None
            destination, masked = details.phone_e164, details.phone_masked
        else:
            destination, masked = details.external_id, f"app:{details.external_id}"
        push_payload = None
        if channel == "push":
            push_payload = {
                "shopper_id": details.shopper_id,
                "external_id": details.external_id,
                "order_id": order.id,
                "template": template,
                "text": rendered.text,
            }
        attempt.template = template  # the log shows what the shopper was actually told
        return OutgoingMessage(
            attempt_id=attempt.id,
            shopper_id=attempt.shopper_id,
            channel=channel,
            destination=destination,
            destination_masked=masked,
            subject=rendered.subject,
            text=rendered.text,
            push_payload=push_payload,
        )


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
    rows = repayment_service.instalments_of(session, shopper_id=order.shopper_id, order_id=order.id)
    overdue = [row for row in rows if row.status == "overdue" and row.due_on is not None]
    overdue_minor = sum(row.remaining_minor for row in overdue)
    days = max(
        (
            order_service.days_past_due_on(order, due_on=row.due_on, on=today)
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
        amount
        for at, amount in repayment_service.allocations_to_order(
            session, shopper_id=order.shopper_id, order_id=order.id
        )
        if at >= promise.created_at
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


def collection_queue(session: Session, *, today: date, limit: int) -> list[dict[str, Any]]:
    entries = []
    for order in order_service.orders_in_call_queue(session):
        if order.is_disputed:
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


def record_call(
    session: Session,
    *,
    order_id: str,
    outcome: str,
    promise_on: date | None,
    promise_minor: int | None,
    note: str | None,
    operator_id: str | None,
    settings: Settings,
    cipher: FieldCipher,
    today: date,
    now: datetime,
) -> ContactAttempt:
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
    order = order_service.find_order(session, order_id=order_id)
    credit_service.lock_credit_line(session, shopper_id=order.shopper_id)
    if order.is_disputed:
        raise ContactNotAllowed("The order is disputed: collection contacts are paused.")
    if order.status != "overdue":
        raise ContactNotAllowed(f"The order is {order.status}, not overdue: no call is needed.")
    if _phone_reported_wrong(
        session, identity_service.get_shopper(session, shopper_id=order.shopper_id)
    ):
        raise ContactNotAllowed(
            "A collector reported the shopper's phone on file as a wrong number: it is not called "
            "or sent SMS again (only the shopper's own number may be contacted)."
        )
    if promise_minor is not None:
        owed_minor = sum(
            row.remaining_minor
            for row in repayment_service.instalments_of(
                session, shopper_id=order.shopper_id, order_id=order.id
            )
        )
        if promise_minor > owed_minor:
            raise PromiseExceedsOutstanding(
                f"promise_minor is more than the {owed_minor} the order still owes.",
                field="promise_minor",
            )
    refusal = _refusal_to_contact(
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
    details = identity_service.contact_details(session, shopper_id=order.shopper_id, cipher=cipher)
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
        destination_masked=details.phone_masked,
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
    identity_service.get_shopper(session, shopper_id=shopper_id)
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


def evidence_pdf(
    session: Session, *, case_id: str, cipher: FieldCipher, settings: Settings, now: datetime
) -> bytes:
    case = get_legal_case(session, case_id=case_id)
    order = order_service.find_order(session, order_id=case.order_id)
    merchant = merchant_service.get_merchant(session, merchant_id=order.merchant_id)
    identity = identity_service.legal_identity(session, shopper_id=order.shopper_id, cipher=cipher)
    consent = identity_service.latest_consent(session, shopper_id=order.shopper_id)
    if consent is None:
        raise Conflict("The shopper has no consent record; the pack cannot be made.")
    rows = repayment_service.instalments_of(session, shopper_id=order.shopper_id, order_id=order.id)
    delivered_event = order_service.delivery_confirmation(session, order=order)
    pack = evidence.EvidencePack(
        case_id=case.id,
        generated_at=now,
        lender_name=settings.lender_name,
        shopper=evidence.ShopperFacts(
            shopper_id=identity.shopper_id,
            name=identity.name,
            national_id_masked=identity.national_id_masked,
            phone_masked=identity.phone_masked,
            enrolled_at=identity.enrolled_at,
        ),
        consent=evidence.ConsentFacts(
            privacy_policy_version=consent.privacy_policy_version,
            credit_report_authorized=consent.credit_report_authorized,
            recorded_at=consent.recorded_at,
            source=consent.source,
        ),
        order=evidence.OrderFacts(
            order_id=order.id,
            merchant_name=merchant.name,
            created_at=order.created_at,
            plan=order.plan,
            amount_minor=order.amount_minor,
            currency=order.currency,
            items=[
                evidence.ItemFacts(
                    name=str(item["name"]),
                    quantity=int(item["quantity"]),
                    unit_price_minor=int(item["unit_price_minor"]),
                )
                for item in order.items
            ],
        ),
        shipment=evidence.ShipmentFacts(
            carrier=order.carrier or "",
            tracking_number=order.tracking_number or "",
            shipped_at=order.shipped_at,
            delivered_at=order.delivered_at,
            confirmation=delivered_event,
        )
        if order.shipped_at is not None
        else None,
        instalments=[
            evidence.InstalmentFacts(
                seq=row.seq,
                due_on=row.due_on,
                principal_minor=row.principal_minor,
                fees_minor=row.all_fees_minor,
                paid_minor=row.paid_principal_minor + row.paid_fees_minor,
                status=row.status,
            )
            for row in rows
        ],
        payments=[
            evidence.PaymentFacts(
                payment_id=payment_id, paid_at=paid_at, amount_minor=amount, method=method
            )
            for payment_id, paid_at, amount, method in repayment_service.payments_to_order(
                session, shopper_id=order.shopper_id, order_id=order.id
            )
        ],
        reminders=[
            evidence.ReminderFacts(
                sent_at=attempt.sent_at or attempt.scheduled_at,
                channel=attempt.channel,
                template=attempt.template or attempt.step,
                status=attempt.status,
            )
            for attempt in CollectionsRepository(session).attempts_of_shopper(order.shopper_id)
            if attempt.order_id == order.id
        ],
        claimed_principal_minor=case.claimed_principal_minor,
        claimed_fees_minor=case.claimed_fees_minor,
        fee_cap_note=(
            f"Late fees: {settings.late_fee_bps_per_day / 100:g}% of overdue principal per day, "
            f"capped at {settings.late_fee_cap_bps_of_principal / 100:g}% of the principal; all "
            f"fees within an annualised {settings.apr_cap_bps / 100:g}%."
        ),
    )
    return evidence.render_evidence_pdf(pack, time_zone=settings.time_zone)


# --- credit-bureau files ---------------------------------------------------------------------

PERIOD_PATTERN = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
# A fixed floor, not the month of the first order: an engine with no orders yet still writes its
# (empty) monthly files. A period before 2000 can only be a typo ("0000-01" is not even a date).
EARLIEST_PERIOD_YEAR = 2000


def period_end_of(period: str, *, today: date) -> date:
    match = PERIOD_PATTERN.fullmatch(period)
    if match is None:
        raise ValidationFailed("period must be YYYY-MM with a month from 01 to 12.", field="period")
    year, month = int(match.group(1)), int(match.group(2))
    if year < EARLIEST_PERIOD_YEAR:
        raise ValidationFailed(
            f"The period must not be before {EARLIEST_PERIOD_YEAR}-01.", field="period"
        )
    first = date(year, month, 1)
    if first > today:
        raise ValidationFailed("The period has not started yet.", field="period")
    last = date(year, month, calendar.monthrange(year, month)[1])
    return min(last, today)


def _split_name(name: str) -> tuple[str, str]:
    surname_length = 2 if name[:2] in COMPOUND_SURNAMES and len(name) > 2 else 1
    if len(name) <= surname_length:
        return name, name
    return name[:surname_length], name[surname_length:]


def bureau_accounts(
    session: Session, *, period_end: date, cipher: FieldCipher
) -> list[bureau_format.BureauAccount]:
    accounts = []
    period_start = period_end.replace(day=1)
    for order in order_service.orders_reported_to_bureau(session, reported_by=period_end):
        if identity_service.is_erased(
            identity_service.get_shopper(session, shopper_id=order.shopper_id)
        ):
            # Erasure needs every account settled; an erased shopper is no longer reported.
            continue
        identity = identity_service.legal_identity(
            session, shopper_id=order.shopper_id, cipher=cipher
        )
        line = credit_service.get_credit_line(session, shopper_id=order.shopper_id)
        rows = repayment_service.instalments_of(
            session, shopper_id=order.shopper_id, order_id=order.id
        )
        payments = repayment_service.allocations_to_order(
            session, shopper_id=order.shopper_id, order_id=order.id
        )
        balance = sum(
            row.remaining_minor
            for row in rows
            if row.status in ("pending", "overdue", "charged_off")
        )
        late_rows = [
            row
            for row in rows
            if row.remaining_minor
            and row.due_on is not None
            and row.due_on < period_end
            and row.status in ("overdue", "charged_off")
        ]
        days_past_due = max(
            (
                order_service.days_past_due_on(order, due_on=row.due_on, on=period_end)
                for row in late_rows
                if row.due_on
            ),
            default=0,
        )
        past_due = sum(row.remaining_minor for row in late_rows)
        if order.status == "charged_off":
            standing: bureau_format.AccountStanding = "charged_off"
        elif balance == 0:
            standing = "paid"
            # For a paid account the days past due are how late it was when paid off in this
            # period: the Payment Rating of status 13 reports them (0 when paid in time or in an
            # earlier period).
            days_past_due = max(
                (
                    (row.settled_on - row.due_on).days
                    for row in rows
                    if row.settled_on is not None
                    and row.due_on is not None
                    and period_start <= row.settled_on <= period_end
                ),
                default=0,
            )
            days_past_due = max(days_past_due, 0)
        elif days_past_due >= 30:
            standing = "past_due"
        else:
            standing = "current"
        surname, given_name = _split_name(identity.name)
        last_payment = max((at for at, _ in payments), default=None)
        closed_on = None
        if standing == "paid" or (order.status == "charged_off" and balance == 0):
            closed_on = max((row.settled_on for row in rows if row.settled_on), default=period_end)
        accounts.append(
            bureau_format.BureauAccount(
                account_number=order.id,
                shopper_id=order.shopper_id,
                surname=surname,
                given_name=given_name,
                birth_on=date(
                    int(identity.national_id[6:10]),
                    int(identity.national_id[10:12]),
                    int(identity.national_id[12:14]),
                ),
                national_id=identity.national_id,
                phone_e164=identity.phone_e164,
                opened_on=as_utc(order.created_at).date(),
                credit_limit_minor=line.limit_minor,
                highest_credit_minor=order.amount_minor,
                original_amount_minor=order.amount_minor,
                terms_duration=len(rows),
                terms_frequency="P" if order.plan == "pay_after_delivery" else "M",
                scheduled_monthly_payment_minor=rows[0].principal_minor + rows[0].fees_minor
                if rows
                else 0,
                actual_payment_minor=sum(
                    amount
                    for at, amount in payments
                    if period_start <= as_utc(at).date() <= period_end
                ),
                current_balance_minor=balance,
                amount_past_due_minor=past_due
                if standing in ("past_due", "current", "charged_off")
                else 0,
                days_past_due=days_past_due,
                status=standing,
                date_of_first_delinquency=date_of_first_delinquency(order, rows, as_of=period_end),
                date_closed=closed_on,
                date_last_payment=as_utc(last_payment).date() if last_payment else None,
                charge_off_amount_minor=order.charged_off_minor,
                is_disputed=order.is_disputed,
                is_dispute_resolved=not order.is_disputed
                and order.dispute_resolved_on is not None
                and period_start <= order.dispute_resolved_on <= period_end,
                account_information_on=period_end,
                currency=order.currency,
                payment_history_profile=payment_history_profile(order, rows, period_end=period_end),
            )
        )
    return accounts


def _month_end_before(day: date) -> date:
    return day.replace(day=1) - timedelta(days=1)


def _history_code(order: Order, rows: list[Instalment], *, month_end: date) -> str:
    """The account's Metro 2 payment history code as it stood at ``month_end``."""
    if order.charged_off_on is not None and order.charged_off_on <= month_end:
        return "L"
    live = [row for row in rows if row.status != "cancelled" and row.due_on is not None]
    unpaid = [row for row in live if row.settled_on is None or row.settled_on > month_end]
    if live and not unpaid:
        return "E"  # zero balance and current
    # Disputes count as of what was known then: a closed one once it closed, an open one since it
    # opened (the windows of closed disputes are not kept, only their total).
    paused = 0
    if order.dispute_resolved_on is not None and order.dispute_resolved_on <= month_end:
        paused = order.dispute_paused_days or 0
    if order.disputed_since_on is not None and order.disputed_since_on <= month_end:
        paused += (month_end - order.disputed_since_on).days
    days_past_due = max(
        (
            (month_end - row.due_on).days - paused
            for row in unpaid
            if row.due_on is not None and row.due_on < month_end
        ),
        default=0,
    )
    return bureau_format.payment_history_code_for_days(max(days_past_due, 0))


def date_of_first_delinquency(order: Order, rows: list[Instalment], *, as_of: date) -> date | None:
    """The Metro 2 Date of First Delinquency as of ``as_of``: the first day of the latest run of
    days on which some instalment was unpaid past its due date. An account brought current and
    later late again starts a new run (the bureau's seven-year clock runs from it); a run still
    open, or the one that ended in payment in full or charge-off, is the one reported. An
    instalment is unpaid until settled in full."""
    if order.first_delinquent_on is None:
        return None
    late_spans = sorted(
        (row.due_on + timedelta(days=1), row.settled_on)
        for row in rows
        if row.status != "cancelled"
        and row.due_on is not None
        and row.due_on < as_of
        and (row.settled_on is None or row.settled_on > row.due_on + timedelta(days=1))
    )
    run_start: date | None = None
    run_end: date | None = None  # exclusive; None while an instalment of the run is unpaid
    for starts_on, settled_on in late_spans:
        if run_start is None or (run_end is not None and starts_on > run_end):
            run_start, run_end = starts_on, settled_on
        elif run_end is not None:
            run_end = None if settled_on is None else max(run_end, settled_on)
    return run_start or order.first_delinquent_on


def payment_history_profile(order: Order, rows: list[Instalment], *, period_end: date) -> str:
    """The Metro 2 24-month payment history profile: the account's code at the end of each of
    the 24 months before the reported one, most recent first, from the instalments' due and
    settlement dates (an instalment counts as unpaid until settled in full). It stops at the
    month the account opened; the format pads the months before with ``B``."""
    opened_on = as_utc(order.created_at).date()
    codes: list[str] = []
    month_end = _month_end_before(period_end)
    while len(codes) < bureau_format.PAYMENT_HISTORY_MONTHS and month_end >= opened_on.replace(
        day=1
    ):
        codes.append(_history_code(order, rows, month_end=month_end))
        month_end = _month_end_before(month_end)
    return "".join(codes)


# The associated data of a bureau file's ciphertext: its column's name without "_encrypted", as
# for every encrypted column (key rotation finds and re-encrypts them by that rule).
BUREAU_FILE_FIELD = "content"


def bureau_file_text(row: BureauFile, cipher: FieldCipher) -> str:
    """The file as sent to the bureau. A file stored before encryption at rest (migration 0016)
    is still its text until ``usefirst keys rotate`` encrypts it."""
    stored = row.content_encrypted
    if cipher.is_ciphertext(stored):
        return cipher.decrypt(stored, field=BUREAU_FILE_FIELD)
    return stored


def create_bureau_file(
    session: Session,
    *,
    period: str,
    file_format: str,
    cipher: FieldCipher,
    settings: Settings,
    today: date,
    now: datetime,
) -> BureauFile:
    if file_format not in ("metro2", "jsonl"):
        raise ValidationFailed("format must be metro2 or jsonl.", field="format")
    period_end = period_end_of(period, today=today)
    accounts = bureau_accounts(session, period_end=period_end, cipher=cipher)
    if file_format == "metro2":
        content = bureau_format.write_metro2(
            reporter=bureau_format.ReporterInfo(
                identification_number=settings.bureau_reporter_id,
                reporter_name=settings.lender_name,
                reporter_address=settings.bureau_reporter_address,
            ),
            accounts=accounts,
            period_end=period_end,
            activity_on=today,
        )
    else:
        content = bureau_format.write_jsonl(accounts, period_end)
    row = BureauFile(
        id=new_id("bureau_file"),
        period=period,
        format=file_format,
        records=len(accounts),
        content_encrypted=cipher.encrypt(content, field=BUREAU_FILE_FIELD),
        created_at=now,
    )
    CollectionsRepository(session).add(row)
    session.flush()
    # Making the file decrypted each reported shopper's identity: a system read, audited.
    record_accesses(
        session,
        actor="system:bureau-file",
        action="bureau_file.create",
        subject_shopper_ids=[account.shopper_id for account in accounts],
        fields=["name", "national_id", "phone"],
        purpose=f"credit-bureau file {row.id} for {period} ({file_format})",
        now=now,
        reference_id=row.id,
    )
    return row


def monthly_bureau_files(
    session: Session, *, business_on: date, cipher: FieldCipher, settings: Settings, now: datetime
) -> int:
    """On the first day of a month, report the month just ended (once per period and format)."""
    if business_on.day != 1:
        return 0
    last_month_end = business_on - timedelta(days=1)
    period = f"{last_month_end:%Y-%m}"
    made = 0
    for file_format in ("metro2", "jsonl"):
        # A file made before the month ended (on demand, mid-month) covers only part of it and
        # does not stand in for the month-end file.
        if any(
            as_utc(row.created_at) >= now
            for row in CollectionsRepository(session).bureau_files(
                period=period, file_format=file_format
            )
        ):
            continue
        create_bureau_file(
            session,
            period=period,
            file_format=file_format,
            cipher=cipher,
            settings=settings,
            today=last_month_end,
            now=now,
        )
        made += 1
    return made


def bureau_file_view(row: BureauFile) -> dict[str, Any]:
    return {
        "id": row.id,
        "period": row.period,
        "format": row.format,
        "records": row.records,
        "created_at": row.created_at,
    }


def get_bureau_file(session: Session, *, file_id: str) -> BureauFile:
    row = CollectionsRepository(session).bureau_file(file_id)
    if row is None:
        raise NotFound("No such bureau file.")
    return row


def list_bureau_files(
    session: Session, *, starting_after: str | None = None, limit: int | None = None
) -> list[BureauFile]:
    return list(
        CollectionsRepository(session).bureau_files(starting_after=starting_after, limit=limit)
    )


# --- portfolio -------------------------------------------------------------------------------


def portfolio_report(session: Session, *, as_of: date) -> portfolio.PortfolioReport:
    accounts = []
    for order in order_service.delivered_orders(session):
        assert order.delivered_at is not None
        rows = repayment_service.instalments_of(
            session, shopper_id=order.shopper_id, order_id=order.id
        )
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
