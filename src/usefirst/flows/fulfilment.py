"""Fulfilment: the merchant ships, the shopper confirms receipt (or the clock does), and the
repayment clock starts: due dates are set, the debt enters the ledger, held credit is applied."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any

from sqlalchemy import literal
from sqlalchemy.orm import Session

from usefirst.credit import service as credit_service
from usefirst.flows import risk_effects
from usefirst.flows.order_events import (
    insert_order_event,
    publish_order_event,
    publish_order_events,
)
from usefirst.flows.payments import apply_held_credit, follow_schedules, writes_together
from usefirst.kit.db import one_statement, parts_bound, rows_together
from usefirst.kit.errors import NotFound
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
from usefirst.repayment.models import Instalment
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
    response share it).

    On PostgreSQL (not Citus) the shipment reads what it needs in two round trips (the order by
    id with the BEGIN; then the credit line and the order locked in the fixed lock order, the
    order's risk facts, the other orders with its tracking number, its instalments and the
    merchant) and, when the shipment monitor finds nothing (it would open a case and hold the
    merchant's settlement otherwise), writes the order, the risk counters and the
    ``order.shipped`` event with its outbox messages as one statement. Otherwise the previous
    way, in the same transaction."""
    if writes_together(session):
        done = _ship_lean(
            session,
            order_id=order_id,
            merchant_id=merchant_id,
            carrier=carrier,
            tracking_number=tracking_number,
            settings=settings,
            now=now,
        )
        if done is not None:
            return done
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


def _ship_lean(
    session: Session,
    *,
    order_id: str,
    merchant_id: str,
    carrier: str,
    tracking_number: str,
    settings: Settings,
    now: datetime,
) -> tuple[Order, dict[str, Any]] | None:
    """``ship_with_view``'s lean path (PostgreSQL); None when the shipment must take the
    previous way (nothing written yet, the locks taken kept)."""
    carrier, tracking_number = order_service.checked_shipment(
        carrier=carrier, tracking_number=tracking_number
    )
    found_lookup = order_service.order_by_id(order_id, merchant_id)
    (found_rows,) = rows_together(session, [found_lookup.statement])
    found = found_lookup.read(found_rows[0] if found_rows else None)
    shopper_id = found.shopper_id
    line_lookup = credit_service.locked_line_standing(shopper_id)
    order_lookup = order_service.shoppers_order_locked(shopper_id, order_id)
    merchant_lookup = merchant_service.merchant_by_id(found.merchant_id)
    shipped = Order(**{**found_rows[0], "tracking_number": tracking_number})
    line_rows, order_rows, fact_rows, tracking_rows, instalment_rows, merchant_rows = rows_together(
        session,
        [
            line_lookup.statement,
            order_lookup.statement,
            risk_counters.facts_reading([(shopper_id, order_id)]),
            risk_monitors.tracking_reading(shipped),
            repayment_service.instalments_of_order_reading(shopper_id, order_id),
            merchant_lookup.statement,
        ],
        parameters=[line_lookup.parameters, order_lookup.parameters, *[None] * 4],
    )
    # The checks of ``ship``, in its order.
    line_lookup.read(line_rows[0] if line_rows else None)
    order = order_lookup.read(order_rows[0] if order_rows else None)
    if order is None:
        raise NotFound("No such order.")
    order_service.ship_order(order, carrier=carrier, tracking_number=tracking_number, now=now)
    if not risk_monitors.is_quiet_shipment(order, tracking_rows):
        return None
    merchant = merchant_lookup.read(merchant_rows[0] if merchant_rows else None)
    view = order_service.order_view(
        session, order, repayment_service.instalments_of_rows(instalment_rows)
    )
    bound, values = parts_bound(
        [
            *risk_counters.observed_writes([order], fact_rows, now=now),
            *insert_order_event(
                order=order,
                event_type="order.shipped",
                settings=settings,
                now=now,
                view=view,
                merchant_webhook_url=merchant.webhook_url,
            ),
        ]
    )
    rows_together(
        session,
        [
            one_statement(
                [order_service.shipment_writes(order), *bound],
                answer=[literal(True).label("written")],
            )
        ],
        parameters=[values],
    )
    # Objects of this order the caller's session holds are stale now: read afresh when used.
    session.expire_all()
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
        transfers=_activation_entries(
            order, activation, merchant_fee_rate_bps=merchant.fee_rate_bps
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


def confirm_receipt_with_view(
    session: Session,
    *,
    order_id: str,
    delivered_on: date,
    settings: Settings,
    now: datetime,
) -> tuple[Order, dict[str, Any]]:
    """``confirm_receipt`` by the shopper, and the order as the API shows it after it.

    On PostgreSQL (not Citus) the receipt reads what it needs in two round trips (the order by
    id with the BEGIN; then, all filtered by its shopper, the credit line and the order locked
    in the fixed lock order, the order's instalments locked, the shopper's delivered or overdue
    orders with their instalments' standing and risk facts, the merchant, the shopper's held
    credit and the order's open case) and, when the receipt does only what a plain delivery does
    (``_receipt_lean``: no held credit to apply, at most a new case that holds nothing, nothing
    of the shopper's other orders or line to bring in line), writes everything as two
    statements sent together: the risk counters, the entries' accounts and postings; then the
    order, its instalments, the entries' headers, the case and its action, the
    ``order.delivered`` event with its outbox messages. Any other receipt takes the previous
    way (``confirm_receipt``) in the same transaction."""
    if writes_together(session):
        done = _receipt_lean(
            session, order_id=order_id, delivered_on=delivered_on, settings=settings, now=now
        )
        if done is not None:
            return done
    order = confirm_receipt(
        session, order_id=order_id, delivered_on=delivered_on, settings=settings, now=now
    )
    return order, order_service.order_view(session, order)


def _receipt_lean(
    session: Session, *, order_id: str, delivered_on: date, settings: Settings, now: datetime
) -> tuple[Order, dict[str, Any]] | None:
    """``confirm_receipt_with_view``'s lean path (PostgreSQL); None when the receipt must take
    the previous way (nothing written yet, the locks taken kept)."""
    found_lookup = order_service.order_by_id(order_id)
    (found_rows,) = rows_together(session, [found_lookup.statement])
    found = found_lookup.read(found_rows[0] if found_rows else None)
    shopper_id = found.shopper_id
    line_lookup = credit_service.locked_line_standing(shopper_id)
    order_lookup = order_service.shoppers_order_locked(shopper_id, order_id)
    merchant_lookup = merchant_service.merchant_by_id(found.merchant_id)
    (
        line_rows,
        order_rows,
        instalment_rows,
        active_rows,
        standing_rows,
        fact_rows,
        merchant_rows,
        held_rows,
        case_rows,
    ) = rows_together(
        session,
        [
            line_lookup.statement,
            order_lookup.statement,
            repayment_service.instalments_locked(shopper_id, order_id),
            order_service.active_orders_reading(shopper_id),
            repayment_service.order_standings(shopper_id),
            risk_counters.shopper_facts_reading(
                shopper_id, statuses=order_service.ACTIVE_STATUSES, order_id=order_id
            ),
            merchant_lookup.statement,
            ledger_service.balance_reading(
                accounts.shopper_unapplied_credit(shopper_id), found.currency
            ),
            risk_monitors.open_case_reading(found),
        ],
        parameters=[line_lookup.parameters, order_lookup.parameters, *[None] * 7],
    )
    # The checks of ``confirm_receipt``, in its order.
    line = line_lookup.read(line_rows[0] if line_rows else None)
    order = order_lookup.read(order_rows[0] if order_rows else None)
    if order is None:
        raise NotFound("No such order.")
    order_service.deliver(order, automatic=False, now=now)
    merchant = merchant_lookup.read(merchant_rows[0] if merchant_rows else None)
    instalments = repayment_service.instalments_of_rows(instalment_rows)
    activation = repayment_service.activate_rows(
        instalments, plan=order.plan, delivered_on=delivered_on, settings=settings
    )
    if int(held_rows[0]["balance_minor"]) < 0:
        return None  # held credit to apply: apply_held_credit and follow_schedules write
    risk_writes = risk_monitors.quiet_delivery_writes(
        order=order, merchant=merchant, open_case_rows=case_rows, now=now
    )
    if risk_writes is None:
        return None
    others = [other for other in order_service.orders_of_rows(active_rows) if other.id != order.id]
    if not _follows_without_change(
        instalments, others=others, standing_rows=standing_rows, fact_rows=fact_rows, line=line
    ):
        return None
    posted = ledger_service.transfers_rows(
        transfers=_activation_entries(
            order, activation, merchant_fee_rate_bps=merchant.fee_rate_bps
        ),
        now=now,
    )
    ledger_writes = ledger_service.transfers_writes(posted)
    if ledger_writes is None:
        return None  # nothing to post (an order refunded in full before delivery)
    view = order_service.order_view(session, order, instalments)
    counted, counted_values = parts_bound(
        risk_counters.observed_writes([order], fact_rows, now=now)
    )
    told, told_values = parts_bound(
        insert_order_event(
            order=order,
            event_type="order.delivered",
            settings=settings,
            now=now,
            view=view,
            merchant_webhook_url=merchant.webhook_url,
            extra={"confirmation": "shopper"},
        )
    )
    written = literal(True).label("written")
    rows_together(
        session,
        [
            # Unreferenced parts run last to first: the counters (as ``observe_orders`` writes
            # them, before anything else as in ``confirm_receipt``), then the postings, then
            # the accounts (checked by the postings' foreign key at the end of the statement).
            one_statement(
                [ledger_writes.accounts, ledger_writes.postings, *counted], answer=[written]
            ),
            one_statement(
                [
                    order_service.delivery_writes(order),
                    *repayment_service.activation_writes(instalments),
                    ledger_writes.entries,
                    *([ledger_writes.open_items] if ledger_writes.open_items is not None else []),
                    *risk_writes,
                    *told,
                ],
                answer=[written],
            ),
        ],
        parameters=[counted_values, told_values],
    )
    # Objects of this order the caller's session holds are stale now: read afresh when used.
    session.expire_all()
    return order, view


def _follows_without_change(
    instalments: list[Instalment],
    *,
    others: list[Order],
    standing_rows: list[dict[str, Any]],
    fact_rows: list[dict[str, Any]],
    line: credit_service.LineStanding,
) -> bool:
    """Whether ``follow_schedules`` after this receipt (no held credit applied) would write
    nothing: the delivered order owes something (it is not repaid at once), no other
    delivered or overdue order of the shopper is to be delivered again or repaid or to move
    its risk counters, and the line is not frozen for an overdue payment (to be unfrozen)."""
    if all(row.status in repayment_service.CLOSED_STATUSES for row in instalments):
        return False
    if credit_service.is_unfrozen_by_paying(line):
        return False
    standing = {row["order_id"]: row for row in standing_rows}
    for other in others:
        found = standing.get(other.id)
        if found is None:
            continue
        if found["is_closed"] or (other.status == "overdue" and not found["is_overdue"]):
            return False
    return not risk_counters.observes_a_change(others, fact_rows)


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


def _activation_entries(
    order: Order, activation: repayment_service.Activation, *, merchant_fee_rate_bps: int
) -> list[tuple[EntryKind, Transfer]]:
    """The entries of an activation (``_activation_transfers``) with their kinds, in the
    order they are posted."""
    return list(
        zip(
            ACTIVATION_ENTRY_KINDS,
            _activation_transfers(order, activation, merchant_fee_rate_bps=merchant_fee_rate_bps),
            strict=True,
        )
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
