"""Cancellation of an order not shipped yet: its schedule is dropped and its credit released."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from usefirst.credit import service as credit_service
from usefirst.flows.order_events import publish_order_event
from usefirst.kit.settings import Settings
from usefirst.orders import service as order_service
from usefirst.orders.models import Order
from usefirst.repayment import service as repayment_service
from usefirst.risk import counters as risk_counters


def cancel(
    session: Session, *, order_id: str, merchant_id: str | None, settings: Settings, now: datetime
) -> Order:
    order = order_service.mark_cancelled(
        session, order_id=order_id, merchant_id=merchant_id, now=now
    )
    repayment_service.cancel_schedule(session, shopper_id=order.shopper_id, order_id=order.id)
    credit_service.release(
        session, shopper_id=order.shopper_id, amount_minor=order_service.unrefunded_minor(order)
    )
    risk_counters.observe_orders(session, orders=[order], now=now)
    publish_order_event(
        session, order=order, event_type="order.cancelled", settings=settings, now=now
    )
    return order
