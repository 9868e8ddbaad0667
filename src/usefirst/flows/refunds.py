"""Refunds: the merchant gives back part or all of an order. The refund first reduces what the
shopper still owes on it (latest instalments first, their unpaid fees waived), and the rest is
money the shopper already paid and gets back; the ledger records each part, the credit the
reduced debt held is released, and the order is refunded or repaid when nothing is left."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.orm import Session

from usefirst.credit import service as credit_service
from usefirst.flows.order_events import publish_order_event
from usefirst.flows.payments import refresh_freeze
from usefirst.kit.settings import Settings
from usefirst.ledger import accounts
from usefirst.ledger.accounts import EntryKind
from usefirst.ledger.service import post_transfer
from usefirst.orders import service as order_service
from usefirst.orders.models import Order, Refund
from usefirst.repayment import service as repayment_service
from usefirst.risk import counters as risk_counters


def refund(
    session: Session,
    *,
    order_id: str,
    merchant_id: str,
    amount_minor: int,
    reason: str,
    today: date,
    settings: Settings,
    now: datetime,
) -> tuple[Order, Refund]:
    order = order_service.start_refund(
        session,
        order_id=order_id,
        merchant_id=merchant_id,
        amount_minor=amount_minor,
        reason=reason,
        now=now,
    )
    if order.status == "shipped":
        # Not delivered yet: nothing is owed in the ledger; the schedule simply shrinks.
        repayment_service.replan_before_delivery(
            session,
            shopper_id=order.shopper_id,
            order_id=order.id,
            principal_minor=order_service.unrefunded_minor(order),
            plan=order.plan,
            settings=settings,
        )
        split = repayment_service.RefundSplit(amount_minor, 0, 0)
    else:
        split = repayment_service.apply_refund(
            session,
            shopper_id=order.shopper_id,
            order_id=order.id,
            amount_minor=amount_minor,
            today=today,
            now=now,
        )
        _post_refund_entries(session, order=order, split=split, now=now)
    credit_service.release(
        session, shopper_id=order.shopper_id, amount_minor=split.reduced_debt_minor
    )
    row = order_service.record_refund(
        session,
        order=order,
        amount_minor=amount_minor,
        reduced_debt_minor=split.reduced_debt_minor,
        waived_fees_minor=split.waived_fees_minor,
        returned_to_shopper_minor=split.returned_to_shopper_minor,
        reason=reason,
        now=now,
    )
    order_service.finish_refund(
        order,
        is_schedule_settled=order.id
        in repayment_service.settled_order_ids(session, order.shopper_id, {order.id}),
        now=now,
    )
    refresh_freeze(session, shopper_id=order.shopper_id, now=now)
    risk_counters.observe_orders(session, orders=[order], now=now)
    publish_order_event(
        session,
        order=order,
        event_type="order.refunded",
        settings=settings,
        now=now,
        extra={"refund": order_service.refund_view(row)},
    )
    return order, row


def _post_refund_entries(
    session: Session, *, order: Order, split: repayment_service.RefundSplit, now: datetime
) -> None:
    receivable = accounts.shopper_receivable(order.shopper_id)
    payable = accounts.merchant_payable(order.merchant_id)
    entries = (
        (EntryKind.REFUND_REDUCING_DEBT, payable, receivable, split.reduced_debt_minor,
         "refund reduces what the shopper owes"),
        (EntryKind.FEE_WAIVER, accounts.INSTALMENT_FEE_INCOME, receivable, split.waived_fees_minor,
         "plan fee waived on refunded instalments"),
        (EntryKind.LATE_FEE_WAIVER, accounts.LATE_FEE_INCOME, receivable,
         split.waived_late_fees_minor, "late fees waived on refunded instalments"),
        (EntryKind.REFUND_TO_SHOPPER, payable, accounts.PLATFORM_CASH,
         split.returned_to_shopper_minor, "refund of money the shopper already paid"),
    )  # fmt: skip
    for kind, debit, credit, amount_minor, memo in entries:
        post_transfer(
            session,
            kind=kind,
            debit=debit,
            credit=credit,
            amount_minor=amount_minor,
            currency=order.currency,
            now=now,
            order_id=order.id,
            shopper_id=order.shopper_id,
            merchant_id=order.merchant_id,
            memo=memo,
        )
