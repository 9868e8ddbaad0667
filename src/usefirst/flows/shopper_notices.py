"""Notices planned by the worker from what a request or a job wrote: the agreement of an approved
order, the receipt of a payment the platform reported, and a change of the shopper's credit line.

The request that causes one writes a single outbox row beside its event (or, for a credit
change, beside the change's record: ``credit.service._record_changes``), so the checkout and
the payment stay as lean as they were; here, in the worker's own transaction, the facts are read
from that event or change (fixed when it happened), the shopper is told by push, SMS and e-mail
(contact attempts sent by the reminders' deliverer under the contact policy), and for a credit
change the ``credit.limit_changed`` event is published. Each source is told once: a message
delivered again finds its notice planned already (``collections.service.has_notice_from``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from usefirst.collections import service as collections_service
from usefirst.credit import service as credit_service
from usefirst.kit.settings import Settings
from usefirst.notify import service as notify_service
from usefirst.repayment.schedule import annual_rate_bps

# The template of each kind of credit change the shopper is told about (a closed line is
# published as an event only: charge-off and fraud have their own letters).
CREDIT_CHANGE_TEMPLATES = {
    "raised": "credit_limit_raised",
    "lowered": "credit_limit_lowered",
    "frozen": "credit_frozen",
    "unfrozen": "credit_unfrozen",
}


class NoticePlanner:
    """Outbox handler for ``notify.service.NOTICE_TOPIC``: the notice an event tells."""

    def __init__(self, *, runtime: Any) -> None:
        self.runtime = runtime

    def __call__(self, payload: dict[str, Any]) -> None:
        with self.runtime.work() as work:
            plan_from_event(
                work.session,
                event_id=payload["event_id"],
                settings=self.runtime.settings,
                now=work.now,
            )


class CreditChangeAnnouncer:
    """Outbox handler for ``credit.service.CREDIT_CHANGE_TOPIC``: the event and the notice of
    a change of a credit line."""

    def __init__(self, *, runtime: Any) -> None:
        self.runtime = runtime

    def __call__(self, payload: dict[str, Any]) -> None:
        with self.runtime.work() as work:
            announce_credit_change(
                work.session, change=payload, settings=self.runtime.settings, now=work.now
            )


def plan_from_event(session: Session, *, event_id: str, settings: Settings, now: datetime) -> None:
    event = notify_service.event_of(session, event_id=event_id)
    if event is None:
        raise LookupError(f"event {event_id} is gone")
    if event.type == "order.approved":
        tell_terms(
            session, event_id=event.id, order=event.data["order"], settings=settings, now=now
        )
    elif event.type == "payment.received":
        tell_receipts(session, event_id=event.id, data=event.data, now=now)


def terms_of(order: dict[str, Any], *, pay_within_days: int) -> dict[str, Any]:
    """An approved order's agreement from its view: what is borrowed, the fees, the total cost,
    the annualised rate (basis points, rounded up) and each instalment's amount and when it
    falls due counted from delivery (the dates are fixed at delivery)."""
    instalments = order["instalments"]
    principal_minor = sum(row["principal_minor"] for row in instalments)
    fees_minor = sum(row["fees_minor"] for row in instalments)
    if order["plan"] == "pay_after_delivery":
        schedule = [
            {"amount_minor": row["amount_minor"], "days_after_delivery": pay_within_days}
            for row in instalments
        ]
    else:
        schedule = [
            {"amount_minor": row["amount_minor"], "months_after_delivery": row["seq"]}
            for row in instalments
        ]
    return {
        "principal_minor": principal_minor,
        "fees_minor": fees_minor,
        "total_cost_minor": principal_minor + fees_minor,
        "apr_bps": annual_rate_bps(
            principal_minor=principal_minor,
            payments_minor=[row["amount_minor"] for row in instalments],
        ),
        "schedule": schedule,
    }


def tell_terms(
    session: Session, *, event_id: str, order: dict[str, Any], settings: Settings, now: datetime
) -> None:
    """The agreement of an approved order: ``order.terms_disclosed`` and the notice."""
    shopper_id = order["shopper_id"]
    if collections_service.has_notice_from(session, shopper_id=shopper_id, source=event_id):
        return
    terms = terms_of(order, pay_within_days=settings.pay_within_days)
    collections_service.queue_notice(
        session,
        shopper_id=shopper_id,
        order_id=order["id"],
        seq=0,
        step=collections_service.ACCOUNT_NOTICE_STEP,
        template="order_terms",
        now=now,
        facts={**terms, "source": event_id},
    )
    notify_service.publish_event(
        session,
        event_type="order.terms_disclosed",
        data={
            "order_id": order["id"],
            "shopper_id": shopper_id,
            "plan": order["plan"],
            "currency": order["currency"],
            **terms,
        },
        now=now,
        settings=settings,
        shopper_id=shopper_id,
    )


def tell_receipts(session: Session, *, event_id: str, data: dict[str, Any], now: datetime) -> None:
    """A receipt for each order a reported payment reached: what it paid there, what is left."""
    shopper_id = data["shopper_id"]
    for line in data.get("orders", []):
        source = f"{event_id}:{line['order_id']}"
        if collections_service.has_notice_from(session, shopper_id=shopper_id, source=source):
            continue
        collections_service.queue_notice(
            session,
            shopper_id=shopper_id,
            order_id=line["order_id"],
            seq=0,
            step=collections_service.MONEY_NOTICE_STEP,
            template="payment_received",
            now=now,
            facts={
                "amount_paid_minor": line["paid_minor"],
                "amount_left_minor": line["left_minor"],
                "source": source,
            },
        )


def announce_credit_change(
    session: Session, *, change: dict[str, Any], settings: Settings, now: datetime
) -> None:
    """``credit.limit_changed`` and, for a limit raised or lowered or a line frozen or
    available again, the notice (no order named: it is about the shopper's account)."""
    shopper_id, source = change["shopper_id"], change["change_id"]
    template = CREDIT_CHANGE_TEMPLATES.get(change["kind"])
    if template is not None and collections_service.has_notice_from(
        session, shopper_id=shopper_id, source=source
    ):
        return
    line = credit_service.get_credit_line(session, shopper_id=shopper_id)
    notify_service.publish_event(
        session,
        event_type="credit.limit_changed",
        data={
            "shopper_id": shopper_id,
            "change_id": source,
            "kind": change["kind"],
            "previous_limit_minor": change["previous_limit_minor"],
            "new_limit_minor": change["new_limit_minor"],
            "currency": line.currency,
            "previous_status": change["previous_status"],
            "new_status": change["new_status"],
            "reason_code": change["reason_code"],
            "reason": change["reason"],
            "order_id": change["order_id"],
            "changed_at": change["changed_at"],
        },
        now=now,
        settings=settings,
        shopper_id=shopper_id,
    )
    if template is None:
        return
    facts: dict[str, Any] = {
        "new_limit_minor": change["new_limit_minor"],
        "reason_code": change["reason_code"],
        "currency": line.currency,
        "source": source,
    }
    if change["kind"] in ("raised", "lowered"):
        facts["old_limit_minor"] = change["previous_limit_minor"]
    collections_service.queue_notice(
        session,
        shopper_id=shopper_id,
        order_id=None,
        seq=0,
        step=collections_service.ACCOUNT_NOTICE_STEP,
        template=template,
        now=now,
        facts=facts,
    )
