"""Fulfilment: the merchant ships, the shopper confirms receipt (or the clock does), and the
repayment clock starts: due dates are set, the debt enters the ledger, held credit is applied."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from usefirst.credit import service as credit_service
from usefirst.flows import risk_effects
from usefirst.flows.order_events import publish_order_event, publish_order_events
from usefirst.flows.payments import apply_held_credit, follow_schedules
from usefirst.kit.money import basis_points_of
from usefirst.kit.settings import Settings
from usefirst.ledger import accounts
from usefirst.ledger import service as ledger_service
from usefirst.ledger.accounts import EntryKind
from usefirst.ledger.service import Transfer
from usefirst.merchants import service as merchant_service
from usefirst.orders import service as order_service
from usefirst.orders.models import Order
from usefirst.repayment import service as repayment_service
from usefirst.risk import counters as risk_counters
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
    order, _view = ship_with_view(
        session,
        order_id=order_id,
        merchant_id=merchant_id,
        carrier=carrier,
        tracking_number=tracking_number,
        settings=settings,
        now=now,
    )
    return order


def ship_with_view(
    session: Session,
    *,
    order_id: str,
    merchant_id: str,
    carrier: str,
    tracking_number: str,
    settings: Settings,
    now: datetime,
) -> tuple[Order, dict[str, Any]]:
    """``ship``, and the shipped order as the API shows it (read once: the event and the
    response share it)."""
    order = order_service.mark_shipped(
        session,
        order_id=order_id,
        merchant_id=merchant_id,
        carrier=carrier,
        tracking_number=tracking_number,
        now=now,
    )
    risk_counters.observe_orders(session, orders=[order], now=now)
    risk_monitors.after_shipment(session, order=order, now=now, effects=risk_effects)
    view = order_service.order_view(session, order)
    publish_order_event(
        session,
        order=order,
        event_type="order.shipped",
        settings=settings,
        now=now,
        view=view,
        one_statement=True,
    )
    return order, view


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
    risk_counters.observe_orders(session, orders=[order], now=now)
    merchant = merchant_service.get_merchant(session, merchant_id=order.merchant_id)
    activation = repayment_service.activate_schedule(
        session,
        shopper_id=order.shopper_id,
        order_id=order.id,
        plan=order.plan,
        delivered_on=delivered_on,
        settings=settings,
    )
    ledger_service.post_kinds_of_transfers(
        session,
        transfers=list(
            zip(
                ACTIVATION_ENTRY_KINDS,
                _activation_transfers(
                    order, activation, merchant_fee_rate_bps=merchant.fee_rate_bps
                ),
                strict=True,
            )
        ),
        now=now,
    )
    session.flush()
    apply_held_credit(
        session, shopper_id=order.shopper_id, currency=order.currency, today=delivered_on, now=now
    )
    session.flush()
    risk_monitors.after_delivery(session, order=order, now=now, effects=risk_effects)
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
    risk_counters.observe_orders(session, orders=orders, now=now)
    # Held here so that the monitors and events below find them in the session.
    merchants = merchant_service.merchants_by_id(
        session, merchant_ids=(order.merchant_id for order in orders)
    )
    with_held_credit = _activate_delivered(
        session,
        orders=orders,
        merchant_fee_rates_bps={
            merchant_id: merchant.fee_rate_bps for merchant_id, merchant in merchants.items()
        },
        delivered_on=business_on,
        settings=settings,
        now=now,
    )
    risk_monitors.after_deliveries(session, orders=orders, now=now, effects=risk_effects)
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


# The entries of an activation, in the order they are posted.
ACTIVATION_ENTRY_KINDS = (
    EntryKind.ORDER_ACTIVATION,
    EntryKind.MERCHANT_FEE,
    EntryKind.INSTALMENT_FEE,
)


def _activation_transfers(
    order: Order, activation: repayment_service.Activation, *, merchant_fee_rate_bps: int
) -> tuple[Transfer, Transfer, Transfer]:
    """The debt enters the ledger: the principal moves from the merchant's payable to the
    shopper's receivable; the merchant's fee is taken from its payable; the plan fee is added to
    the receivable."""
    receivable = accounts.shopper_receivable(order.shopper_id)
    payable = accounts.merchant_payable(order.merchant_id)
    return (
        Transfer(
            debit=receivable,
            credit=payable,
            amount_minor=activation.principal_minor,
            currency=order.currency,
            shopper_id=order.shopper_id,
            merchant_id=order.merchant_id,
            order_id=order.id,
            memo="order delivered: shopper owes the principal, merchant is owed it",
        ),
        Transfer(
            debit=payable,
            credit=accounts.MERCHANT_FEE_INCOME,
            amount_minor=basis_points_of(activation.principal_minor, merchant_fee_rate_bps),
            currency=order.currency,
            merchant_id=order.merchant_id,
            order_id=order.id,
            memo=f"merchant fee {merchant_fee_rate_bps} bps",
        ),
        Transfer(
            debit=receivable,
            credit=accounts.INSTALMENT_FEE_INCOME,
            amount_minor=activation.fees_minor,
            currency=order.currency,
            shopper_id=order.shopper_id,
            order_id=order.id,
            memo=f"{order.plan} fee",
        ),
    )


def _activate_delivered(
    session: Session,
    *,
    orders: list[Order],
    merchant_fee_rates_bps: dict[str, int],
    delivered_on: date,
    settings: Settings,
    now: datetime,
) -> list[str]:
    """What ``confirm_receipt`` does to the schedule and the ledger, for many orders delivered
    on the same day: due dates set in one flush, each entry kind posted in one batch, held credit
    applied for the shoppers who have some. The caller holds the shoppers' credit-line locks.
    Returns the shoppers whose held credit was applied."""
    if not orders:
        return []
    activations = repayment_service.activate_schedules(
        session,
        activations=[
            repayment_service.ScheduleActivation(
                shopper_id=order.shopper_id, order_id=order.id, plan=order.plan
            )
            for order in orders
        ],
        delivered_on=delivered_on,
        settings=settings,
    )
    transfers = [
        _activation_transfers(
            order, activation, merchant_fee_rate_bps=merchant_fee_rates_bps[order.merchant_id]
        )
        for order, activation in zip(orders, activations, strict=True)
    ]
    for index, kind in enumerate(ACTIVATION_ENTRY_KINDS):
        ledger_service.post_transfers(
            session, kind=kind, transfers=[entries[index] for entries in transfers], now=now
        )
    session.flush()
    applied: list[str] = []
    by_currency: dict[str, set[str]] = defaultdict(set)
    for order in orders:
        by_currency[order.currency].add(order.shopper_id)
    for currency, shopper_ids in sorted(by_currency.items()):
        held = ledger_service.balances_of(
            session,
            [accounts.shopper_unapplied_credit(shopper_id) for shopper_id in sorted(shopper_ids)],
            currency,
        )
        for account, balance in sorted(held.items(), key=lambda item: str(item[0].owner_id)):
            if balance < 0 and account.owner_id is not None:
                apply_held_credit(
                    session,
                    shopper_id=account.owner_id,
                    currency=currency,
                    today=delivered_on,
                    now=now,
                )
                applied.append(account.owner_id)
    return sorted(set(applied))
