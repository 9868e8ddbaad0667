"""An operator waives an order's unpaid late fees (all, or up to an amount): the fees come off
the instalments, a reversing journal entry takes them out of late-fee income, the waiver keeps
the reason in full, and the order follows its schedule (it may have nothing overdue left, or be
paid in full)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from usefirst.collections import service as collections_service
from usefirst.collections.models import LateFeeWaiver
from usefirst.flows import payments
from usefirst.kit.ids import new_id
from usefirst.kit.settings import Settings
from usefirst.ledger import accounts
from usefirst.ledger.accounts import EntryKind
from usefirst.ledger.service import post_transfer
from usefirst.orders import service as order_service
from usefirst.repayment import service as repayment_service


def waive_late_fees(
    session: Session,
    *,
    order_id: str,
    amount_minor: int | None,
    reason: str,
    operator_id: str | None,
    settings: Settings,
    now: datetime,
) -> LateFeeWaiver:
    reason = collections_service.check_waiver(amount_minor=amount_minor, reason=reason)
    order = order_service.lock_order(session, order_id=order_id)
    waived = repayment_service.waive_unpaid_late_fees(
        session,
        shopper_id=order.shopper_id,
        order_id=order.id,
        amount_minor=amount_minor,
        now=now,
    )
    if waived == 0:
        raise order_service.OrderStateConflict("The order has no unpaid late fees to waive.")
    waiver_id = new_id("late_fee_waiver")
    entry_id = post_transfer(
        session,
        kind=EntryKind.LATE_FEE_WAIVER,
        debit=accounts.LATE_FEE_INCOME,
        credit=accounts.shopper_receivable(order.shopper_id),
        amount_minor=waived,
        currency=order.currency,
        now=now,
        shopper_id=order.shopper_id,
        order_id=order.id,
        reference_id=waiver_id,
        # The reason stays in the waiver alone: erasure can clear it there, never in the ledger.
        memo=f"late fees waived ({waiver_id})",
    )
    waiver = collections_service.record_waiver(
        session,
        order=order,
        waiver_id=waiver_id,
        entry_id=entry_id,
        amount_minor=waived,
        reason=reason,
        operator_id=operator_id,
        now=now,
    )
    # With the fees gone the order may have nothing overdue left, or nothing left to pay.
    payments.follow_schedules(
        session, shopper_id=order.shopper_id, order_ids=[order.id], settings=settings, now=now
    )
    return waiver
