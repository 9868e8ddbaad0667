"""A held order (risk put it in review, or asked the shopper for a one-time code) is resolved:
released, it proceeds approved with its credit still reserved; declined, its schedule is dropped
and its credit released. Risk resolves holds (step-up codes, cases) through these."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from usefirst.credit import service as credit_service
from usefirst.credit.policy import Reason
from usefirst.flows.order_events import publish_order_event
from usefirst.kit.settings import Settings
from usefirst.orders import service as order_service
from usefirst.orders.models import Order
from usefirst.repayment import service as repayment_service
from usefirst.risk import counters as risk_counters


def release_held_order(
    session: Session, *, order_id: str, settings: Settings, now: datetime
) -> Order:
    """A held order (review or step_up) proceeds: approved, its credit stays reserved."""
    order = order_service.release_hold(session, order_id=order_id, now=now)
    risk_counters.observe_orders(session, orders=[order], now=now)
    publish_order_event(
        session, order=order, event_type="order.approved", settings=settings, now=now
    )
    return order


def decline_held_order(
    session: Session,
    *,
    order_id: str,
    reason_code: str,
    reason_message: str,
    settings: Settings,
    now: datetime,
) -> Order:
    """A held order (review or step_up) is declined after all: its schedule is dropped and its
    reserved credit released."""
    order = order_service.decline_hold(
        session, order_id=order_id, reason=Reason(reason_code, reason_message).as_dict(), now=now
    )
    repayment_service.cancel_schedule(session, shopper_id=order.shopper_id, order_id=order.id)
    credit_service.release(session, shopper_id=order.shopper_id, amount_minor=order.amount_minor)
    risk_counters.observe_orders(session, orders=[order], now=now)
    publish_order_event(
        session, order=order, event_type="order.declined", settings=settings, now=now
    )
    return order
