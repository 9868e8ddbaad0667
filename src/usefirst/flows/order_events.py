"""Order events: each change of an order is published with the order as the API shows it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from usefirst.kit.db import Part
from usefirst.kit.settings import Settings
from usefirst.merchants import service as merchant_service
from usefirst.notify.service import insert_event, publish_event
from usefirst.orders import service as order_service
from usefirst.orders.models import Order
from usefirst.repayment import service as repayment_service


def publish_order_event(
    session: Session,
    *,
    order: Order,
    event_type: str,
    settings: Settings,
    now: datetime,
    extra: dict[str, Any] | None = None,
    view: dict[str, Any] | None = None,
    one_statement: bool = False,
) -> None:
    """``view``: the order as the API shows it, when the caller has it (else it is read).
    ``one_statement``: a request's single event, written with its messages by one statement on
    PostgreSQL (see ``notify.service.publish_event``). An ``order.approved`` event also tells
    the shopper the agreement (see ``tells_shopper``)."""
    data = {"order": view if view is not None else order_service.order_view(session, order)}
    if extra:
        data.update(extra)
    publish_event(
        session,
        event_type=event_type,
        data=data,
        now=now,
        settings=settings,
        merchant_id=order.merchant_id,
        shopper_id=order.shopper_id,
        one_statement=one_statement,
        tell_shopper=tells_shopper(event_type),
    )


def tells_shopper(event_type: str) -> bool:
    """Order events the shopper is told about as well: an approved order's agreement (its
    schedule, total cost and annualised rate; flows/shopper_notices.py plans the notice from
    the event, so the checkout writes one more outbox row in its one statement, nothing more)."""
    return event_type == "order.approved"


def insert_order_event(
    *,
    order: Order,
    event_type: str,
    settings: Settings,
    now: datetime,
    view: dict[str, Any],
    merchant_webhook_url: str | None,
    extra: dict[str, Any] | None = None,
) -> list[Part]:
    """``publish_order_event`` as parts of a larger write (``kit.db.write_prepared``), for a
    caller that has the order's view and its merchant's webhook URL."""
    return insert_event(
        event_type=event_type,
        data={"order": view, **(extra or {})},
        now=now,
        settings=settings,
        merchant_id=order.merchant_id,
        shopper_id=order.shopper_id,
        merchant_webhook_url=merchant_webhook_url,
        tell_shopper=tells_shopper(event_type),
    )


def publish_order_events(
    session: Session,
    *,
    orders: list[Order],
    event_type: str,
    settings: Settings,
    now: datetime,
    extra: dict[str, Any] | None = None,
) -> None:
    """``publish_order_event`` for many orders, their instalments read in one query per chunk."""
    if not orders:
        return
    instalments = repayment_service.instalments_of_many(
        session, keys=[(order.shopper_id, order.id) for order in orders]
    )
    # Keep the merchants loaded (one query, fresh even after ``expire_all``): publish_event
    # looks each order's merchant up by key.
    merchants = merchant_service.merchants_by_id(
        session, merchant_ids=(order.merchant_id for order in orders)
    )
    for order in orders:
        publish_event(
            session,
            event_type=event_type,
            data={
                "order": order_service.order_view(
                    session, order, instalments.get((order.shopper_id, order.id), [])
                ),
                **(extra or {}),
            },
            now=now,
            settings=settings,
            merchant_id=order.merchant_id,
            shopper_id=order.shopper_id,
        )
    del merchants
