"""Reminder delivery: the outbox handler that sends a planned reminder (SMS, email or app push)
when its time comes.

At send time the reminder is checked again against what is true then: the order may be paid,
cancelled or disputed (the reminder is suppressed), the contact policy may forbid contacting the
shopper now (quiet hours, the day's cap: it is deferred), the phone may have been reported wrong.
The message is written as true on the shopper's date, sent outside the transaction, and the
outcome recorded in a second one; a failed SMS or email is tried again later. Delivery failures
are recorded, not raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy.orm import Session

from usefirst.collections import contact_policy
from usefirst.collections import service as collections_service
from usefirst.collections.models import ContactAttempt
from usefirst.credit import service as credit_service
from usefirst.disputes import pauses
from usefirst.disputes import service as dispute_service
from usefirst.identity import service as identity_service
from usefirst.kit.outbox import enqueue
from usefirst.kit.settings import Settings
from usefirst.merchants import service as merchant_service
from usefirst.notify.service import publish_event
from usefirst.notify.templates import template_language_of
from usefirst.orders import service as order_service
from usefirst.orders.models import Order
from usefirst.rails import service as rails_service
from usefirst.repayment import service as repayment_service
from usefirst.repayment.models import Instalment


def _still_due(session: Session, attempt: ContactAttempt) -> str | None:
    """Why a planned reminder must not go out any more, or None. A notice tells of something that
    happened (a hardship decision, a payment, a failed charge), so neither a dispute nor the
    hardship hold stops it, and a receipt goes out though the instalment is paid."""
    if attempt.step in collections_service.NOTICES_SENT_WHATEVER_HAPPENS:
        return None
    assert attempt.order_id is not None  # only an account notice names no order
    order = order_service.find_order(session, order_id=attempt.order_id)
    is_hardship_notice = attempt.step == collections_service.HARDSHIP_NOTICE_STEP
    if not is_hardship_notice and pauses.is_open(
        dispute_service.pause_of(session, shopper_id=order.shopper_id, order_id=order.id)
    ):
        return "dispute_open"
    if not is_hardship_notice and collections_service.holding_hardship(
        session, shopper_id=order.shopper_id, order_id=order.id
    ):
        return "hardship"
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
        self.templates = collections_service.template_catalog_of(runtime.settings)

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
            attempt = collections_service.attempt_of(
                work.session, shopper_id=message.shopper_id, attempt_id=message.attempt_id
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
                    topic=collections_service.CONTACT_TOPIC,
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
            attempt = collections_service.attempt_of(
                session, shopper_id=payload["shopper_id"], attempt_id=payload["attempt_id"]
            )
            if attempt is None or attempt.status not in ("scheduled", "deferred"):
                return None
            reason = _still_due(session, attempt)
            if reason is not None:
                attempt.status, attempt.status_reason = "suppressed", reason
                return None
            # One worker at a time counts and claims a shopper's contacts of the day: two workers
            # sending two of the shopper's reminders at once would both see room under the cap.
            credit_service.lock_credit_line(session, shopper_id=attempt.shopper_id)
            policy = collections_service.policy_for_shopper(
                session, settings=settings, shopper_id=attempt.shopper_id
            )
            refusal = contact_policy.refusal_to_contact(
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
                enqueue(
                    session,
                    topic=collections_service.CONTACT_TOPIC,
                    payload=payload,
                    now=now,
                    available_at=later,
                )
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
        assert attempt.template is not None
        order = (
            order_service.find_order(session, order_id=attempt.order_id)
            if attempt.order_id is not None
            else None
        )
        if attempt.facts is not None:
            template = attempt.template
            variables = _notice_variables(
                attempt.facts,
                shopper_name=details.display_name,
                merchant_name=(
                    merchant_service.get_merchant(session, merchant_id=order.merchant_id).name
                    if order is not None
                    else None
                ),
                order=order,
                settings=settings,
            )
        else:
            assert order is not None and attempt.order_id is not None
            merchant = merchant_service.get_merchant(session, merchant_id=order.merchant_id)
            instalment = next(
                row
                for row in repayment_service.instalments_of(
                    session, shopper_id=attempt.shopper_id, order_id=attempt.order_id
                )
                if row.seq == attempt.seq
            )
            assert instalment.due_on is not None
            # A reminder retried after a failed delivery was logged with the wording it was sent
            # in; it is worded afresh from its ladder template.
            template = collections_service.template_true_on(
                LADDER_WORDING.get(attempt.template, attempt.template),
                due_on=instalment.due_on,
                on=today,
            )
            variables = _variables(
                session,
                template,
                shopper_name=details.display_name,
                merchant_name=merchant.name,
                order=order,
                instalment=instalment,
                settings=settings,
                today=today,
            )
            next_try_on = _next_charge_on(session, instalment, settings=settings, today=today)
            if next_try_on is not None and template in AUTO_DEBIT_WORDING:
                template = AUTO_DEBIT_WORDING[template]
                variables["next_try_on"] = next_try_on
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
            if contact_policy.phone_reported_wrong(session, shopper):
                attempt.status, attempt.status_reason = (
                    "suppressed",
                    contact_policy.PHONE_REPORTED_WRONG,
                )
                return None
            destination, masked = details.phone_e164, details.phone_masked
        else:
            destination, masked = details.external_id, f"app:{details.external_id}"
        push_payload = None
        if channel == "push":
            push_payload = {
                "shopper_id": details.shopper_id,
                "external_id": details.external_id,
                "order_id": order.id if order is not None else None,
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


# The wording of a reminder to a shopper whose instalment will be charged to their mandate.
AUTO_DEBIT_WORDING = {
    "reminder_upcoming": "reminder_autodebit",
    "reminder_due_today": "reminder_autodebit",
    "overdue_notice": "overdue_notice_autodebit",
}
LADDER_WORDING = {
    "reminder_autodebit": "reminder_upcoming",
    "overdue_notice_autodebit": "overdue_notice",
}


def _next_charge_on(
    session: Session, instalment: Instalment, *, settings: Settings, today: date
) -> date | None:
    """When auto-debit will next try to charge the instalment, or None: its due date while it is
    not yet charged and the shopper has an active mandate with the configured provider, then
    the next try after a failed charge (from the retry schedule), if any is left."""
    if settings.payment_provider == "none" or instalment.due_on is None:
        return None
    if not any(
        mandate.status == "active" and mandate.provider == settings.payment_provider
        for mandate in rails_service.mandates_of(session, shopper_id=instalment.shopper_id)
    ):
        return None
    charges = [
        charge
        for charge in rails_service.charges_of_shoppers(
            session, shopper_ids=[instalment.shopper_id]
        )
        if charge.order_id == instalment.order_id and charge.seq == instalment.seq
    ]
    if not charges:
        return instalment.due_on if instalment.due_on >= today else None
    latest = max(charges, key=lambda charge: charge.attempt)
    if latest.status in ("scheduled", "submitted"):
        return latest.charge_on
    if latest.status == "failed" and latest.next_attempt_on is not None:
        return max(latest.next_attempt_on, today)
    return None


def _notice_variables(
    facts: dict[str, Any],
    *,
    shopper_name: str,
    merchant_name: str | None,
    order: Order | None,
    settings: Settings,
) -> dict[str, object]:
    """A notice's variables: its facts as fixed when it happened (a date ``..._on`` in ISO form),
    with who it is to, the merchant, the order and how to pay where the template says them (a
    notice about the shopper's account has no merchant or order; its facts give the currency)."""
    variables: dict[str, object] = {
        "shopper_name": shopper_name,
        "how_to_pay": settings.how_to_pay,
    }
    if order is not None and merchant_name is not None:
        variables.update(
            merchant_name=merchant_name, order_reference=order.id, currency=order.currency
        )
    for name, value in facts.items():
        if name == "source":  # what the notice tells of, not something it says
            continue
        variables[name] = date.fromisoformat(value) if name.endswith("_on") else value
    return variables


def _variables(
    session: Session,
    template: str,
    *,
    shopper_name: str,
    merchant_name: str,
    order: Order,
    instalment: Instalment,
    settings: Settings,
    today: date,
) -> dict[str, object]:
    """What the template says, as true on ``today``: the days past due only where it speaks of
    them, the days until bureau reporting only where it warns of it."""
    assert instalment.due_on is not None
    variables: dict[str, object] = {
        "shopper_name": shopper_name,
        "merchant_name": merchant_name,
        "order_reference": order.id,
        "amount_due_minor": instalment.remaining_minor,
        "due_on": instalment.due_on,
        "how_to_pay": settings.how_to_pay,
        "currency": order.currency,
    }
    if template in ("overdue_notice", "final_notice_bureau", "bureau_reported"):
        variables["days_past_due"] = max(
            pauses.days_past_due_on(
                dispute_service.pause_of(session, shopper_id=order.shopper_id, order_id=order.id),
                due_on=instalment.due_on,
                on=today,
            ),
            1,
        )
    if template in (
        "reminder_upcoming",
        "reminder_due_today",
        "overdue_notice",
        "final_notice_bureau",
    ):
        variables["bureau_reporting_days"] = (
            collections_service.ladder_of(session, settings).action_day("bureau_report") or 30
        )
    return variables
