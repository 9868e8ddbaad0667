"""Fulfilment: the merchant ships, the shopper confirms receipt (or the clock does), and the
repayment clock starts: due dates are set, the debt enters the ledger, held credit is applied."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.orm import Session

from usefirst.credit import service as credit_service
from usefirst.flows.order_events import publish_order_event, publish_order_events
from usefirst.flows.payments import follow_schedules
from usefirst.kit.settings import Settings
from usefirst.merchants import service as merchant_service
from usefirst.orders import service as order_service
from usefirst.orders.models import Order
from usefirst.repayment import service as repayment_service
from usefirst.risk import monitors as risk_monitors


def ship(
    session: Session,
    *,
    order_id: str,
    merchant_id: str,
    carrier: str,
    tracking_number: str,
    settings: Settings,
    now: datetime,
) -> Order:
    order = order_service.mark_shipped(
        session,
        order_id=order_id,
        merchant_id=merchant_id,
        carrier=carrier,
        tracking_number=tracking_number,
        now=now,
    )
    session.flush()
    risk_monitors.after_shipment(session, order=order, now=now)
    publish_order_event(
        session, order=order, event_type="order.shipped", settings=settings, now=now
    )
    return order


def confirm_receipt(
    session: Session,
    *,
    order_id: str,
    delivered_on: date,
    settings: Settings,
    now: datetime,
    automatic: bool = False,
) -> Order:
    order = order_service.mark_delivered(session, order_id=order_id, automatic=automatic, now=now)
    merchant = merchant_service.get_merchant(session, merchant_id=order.merchant_id)
    repayment_service.activate_schedule(
        session,
        shopper_id=order.shopper_id,
        merchant_id=order.merchant_id,
        order_id=order.id,
        currency=order.currency,
        plan=order.plan,
        merchant_fee_rate_bps=merchant.fee_rate_bps,
        delivered_on=delivered_on,
        settings=settings,
        now=now,
    )
    session.flush()
    risk_monitors.after_delivery(session, order=order, now=now)
    publish_order_event(
        session,
        order=order,
        event_type="order.delivered",
        settings=settings,
        now=now,
        extra={"confirmation": "automatic" if automatic else "shopper"},
    )
    # Held credit applied at delivery pays the shopper's instalments oldest due first, so it can
    # settle, or clear the overdue part of, the shopper's other orders as well as this one.
    follow_schedules(
        session,
        shopper_id=order.shopper_id,
        order_ids=order_service.active_order_ids(session, shopper_id=order.shopper_id),
        settings=settings,
        now=now,
    )
    return order


def auto_confirm_shipped(
    session: Session,
    *,
    shipped_before: datetime,
    business_on: date,
    settings: Settings,
    now: datetime,
) -> int:
    """Confirm receipt of every order shipped before ``shipped_before`` and still unconfirmed,
    as ``confirm_receipt(automatic=True)`` would one by one, in a few statements: the orders in
    one update, their schedules activated and posted in batches, one ``order.delivered`` event
    each. Returns how many were confirmed. (A step of the daily sweep.)"""
    keys = order_service.shipped_unconfirmed_before(session, moment=shipped_before)
    if not keys:
        return 0
    session.flush()
    credit_service.lock_credit_lines(session, shopper_ids=sorted({key[0] for key in keys}))
    orders = order_service.mark_many_delivered_automatically(session, keys=keys, now=now)
    # Held here so that the monitors and events below find them in the session.
    merchants = merchant_service.merchants_by_id(
        session, merchant_ids=(order.merchant_id for order in orders)
    )
    with_held_credit = repayment_service.activate_schedules(
        session,
        activations=[
            repayment_service.ScheduleActivation(
                shopper_id=order.shopper_id,
                merchant_id=order.merchant_id,
                order_id=order.id,
                currency=order.currency,
                plan=order.plan,
                merchant_fee_rate_bps=merchants[order.merchant_id].fee_rate_bps,
            )
            for order in orders
        ],
        delivered_on=business_on,
        settings=settings,
        now=now,
    )
    for order in orders:
        risk_monitors.after_delivery(session, order=order, now=now)
    publish_order_events(
        session,
        orders=orders,
        event_type="order.delivered",
        settings=settings,
        now=now,
        extra={"confirmation": "automatic"},
    )
    # Held credit applied at delivery may settle, or clear the overdue part of, the shopper's
    # orders (see confirm_receipt); without it nothing else of the shopper's changed.
    for shopper_id in with_held_credit:
        follow_schedules(
            session,
            shopper_id=shopper_id,
            order_ids=order_service.active_order_ids(session, shopper_id=shopper_id),
            settings=settings,
            now=now,
        )
    return len(orders)
