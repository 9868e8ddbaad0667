"""Clawbacks: charging a merchant for money the platform lost or returned on its order. merchants
checks what may be taken back, the ledger debits the merchant's payable (which may go negative;
the next payouts net it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from usefirst.ledger import accounts
from usefirst.ledger import service as ledger_service
from usefirst.ledger.accounts import AccountRef, EntryKind
from usefirst.merchants import settlement


def claw_back(
    session: Session,
    *,
    merchant_id: str,
    order_id: str | None,
    amount_minor: int,
    currency: str,
    reason: str,
    now: datetime,
    credit: AccountRef | None = None,
) -> str:
    """Debit the merchant's payable by ``amount_minor`` (a dispute decided for the shopper, say).

    ``credit`` is the account the money goes to; by default the platform's merchant recoveries
    (the loss was booked elsewhere). A dispute that cancels the shopper's debt passes the shopper's
    receivable instead. Returns the journal entry id.
    """
    reason = settlement.check_clawback(amount_minor=amount_minor, currency=currency, reason=reason)
    return ledger_service.post_transfer(
        session,
        kind=EntryKind.MERCHANT_CLAWBACK,
        debit=accounts.merchant_payable(merchant_id),
        credit=credit or accounts.MERCHANT_RECOVERIES,
        amount_minor=amount_minor,
        currency=currency,
        now=now,
        merchant_id=merchant_id,
        order_id=order_id,
        memo=f"clawback: {reason}",
    )


def claw_back_paid_order(
    session: Session,
    *,
    merchant_id: str,
    order_id: str,
    currency: str,
    reason: str,
    now: datetime,
) -> tuple[str, int] | None:
    """Take back what a merchant kept of an order it was already paid for (a sale confirmed as
    fraud with the merchant's part in it), down to zero. Returns the entry id and amount; None
    when the sale was not paid out yet or nothing is left to take."""
    kept_minor = settlement.kept_of_paid_order(
        session, merchant_id=merchant_id, order_id=order_id, currency=currency
    )
    if kept_minor is None:
        return None
    entry_id = claw_back(
        session,
        merchant_id=merchant_id,
        order_id=order_id,
        amount_minor=kept_minor,
        currency=currency,
        reason=reason,
        now=now,
    )
    return entry_id, kept_minor
