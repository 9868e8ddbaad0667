"""What a shopper may do about their own debt, over the platform's API: see what it costs to
close an order today and pay it off early, move a due date once, and get back an overpayment the
platform holds (after which their data can be erased)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy.orm import Session

from usefirst.collections import service as collections_service
from usefirst.credit import service as credit_service
from usefirst.flows import payments
from usefirst.flows.auto_debit import PaymentProviderUnavailable
from usefirst.identity import service as identity_service
from usefirst.kit.errors import Conflict, ValidationFailed
from usefirst.kit.settings import Settings
from usefirst.ledger import accounts
from usefirst.ledger.accounts import EntryKind
from usefirst.ledger.service import post_transfer
from usefirst.notify.service import publish_event
from usefirst.orders import service as order_service
from usefirst.orders.models import Order
from usefirst.rails import service as rails_service
from usefirst.rails.provider import PaymentProvider, ProviderRefused, ProviderUnavailable
from usefirst.repayment import service as repayment_service


class OrderNotOpen(Conflict):
    code = "order_not_open"
    default_message = "Only a delivered or overdue order can be paid off or extended."


class PayoffAmountMismatch(Conflict):
    code = "payoff_amount_mismatch"
    default_message = "The amount is not today's payoff amount; ask for a new quote."


class NoCreditBalance(Conflict):
    code = "no_credit_balance"
    default_message = "The platform holds no overpayment of this shopper's."


class NoChargeToRefund(Conflict):
    code = "no_charge_to_refund"
    default_message = (
        "No charge through the payment provider is large enough to refund the balance against; "
        "pay it out through the platform instead."
    )


def _open_order(session: Session, *, order_id: str) -> Order:
    order = order_service.find_order(session, order_id=order_id)
    if order.status not in ("delivered", "overdue"):
        raise OrderNotOpen()
    return order


def payoff_quote(session: Session, *, order_id: str, today: date) -> dict[str, Any]:
    """What closes the order today (valid until the end of ``today``, the operator's business
    day: late fees may accrue from tomorrow, and an instalment falling due earns its fee)."""
    order = _open_order(session, order_id=order_id)
    quote = repayment_service.payoff_quote(
        session, shopper_id=order.shopper_id, order_id=order.id, today=today
    )
    return {
        "order_id": order.id,
        "currency": order.currency,
        "principal_minor": quote.principal_minor,
        "late_fees_minor": quote.late_fees_minor,
        "plan_fees_earned_minor": quote.plan_fees_earned_minor,
        "plan_fees_rebated_minor": quote.plan_fees_rebated_minor,
        "payoff_minor": quote.payoff_minor,
        "valid_on": today,
    }


def pay_off(
    session: Session,
    *,
    order_id: str,
    amount_minor: int,
    method: str,
    external_ref: str | None,
    settings: Settings,
    today: date,
    now: datetime,
) -> dict[str, Any]:
    """Pay the order off today with exactly the quoted amount: the unearned plan fee is rebated
    (a ledger entry), the payment goes through the waterfall, the order is repaid."""
    order = _open_order(session, order_id=order_id)
    credit_service.lock_credit_line(session, shopper_id=order.shopper_id)
    quote = repayment_service.payoff_quote(
        session, shopper_id=order.shopper_id, order_id=order.id, today=today
    )
    if amount_minor != quote.payoff_minor:
        raise PayoffAmountMismatch(
            f"Today's payoff amount is {quote.payoff_minor}.", field="amount_minor"
        )
    rebated = repayment_service.rebate_unearned_plan_fees(
        session, shopper_id=order.shopper_id, order_id=order.id, today=today
    )
    if rebated:
        post_transfer(
            session,
            kind=EntryKind.PAYOFF_REBATE,
            debit=accounts.INSTALMENT_FEE_INCOME,
            credit=accounts.shopper_receivable(order.shopper_id),
            amount_minor=rebated,
            currency=order.currency,
            now=now,
            shopper_id=order.shopper_id,
            order_id=order.id,
            memo="unearned plan fee rebated at early payoff",
        )
    outcome = payments.pay_order_in_full(
        session,
        order=order,
        amount_minor=amount_minor,
        method=method,
        external_ref=external_ref,
        today=today,
        settings=settings,
        now=now,
    )
    payments.publish_reported_receipt(session, outcome, settings=settings, now=now)
    return {
        "order_id": order.id,
        "payment_id": outcome.payment.id,
        "paid_minor": amount_minor,
        "plan_fees_rebated_minor": rebated,
        "order_status": order_service.find_order(session, order_id=order.id).status,
    }


def extend_due_date(
    session: Session,
    *,
    order_id: str,
    seq: int,
    days: int,
    settings: Settings,
    today: date,
    now: datetime,
) -> dict[str, Any]:
    """Move one instalment's due date by up to ``extension_max_days`` days, once per order,
    before it is past due. Reminders, late fees and auto-debit follow the new date."""
    if not 1 <= days <= settings.extension_max_days:
        raise ValidationFailed(
            f"days must be between 1 and {settings.extension_max_days}.", field="days"
        )
    order = _open_order(session, order_id=order_id)
    if order.status != "delivered":
        raise OrderNotOpen("An overdue order cannot be extended.")
    credit_service.lock_credit_line(session, shopper_id=order.shopper_id)
    row = repayment_service.extend_instalment(
        session, shopper_id=order.shopper_id, order_id=order.id, seq=seq, days=days, today=today
    )
    view = {
        "order_id": order.id,
        "seq": row.seq,
        "due_on": row.due_on,
        "extended_days": row.extended_days,
    }
    publish_event(
        session,
        event_type="order.due_date_extended",
        data={**view, "shopper_id": order.shopper_id},
        now=now,
        settings=settings,
        merchant_id=None,
        shopper_id=order.shopper_id,
    )
    assert row.due_on is not None
    collections_service.queue_notice(
        session,
        shopper_id=order.shopper_id,
        order_id=order.id,
        seq=row.seq,
        step=collections_service.MONEY_NOTICE_STEP,
        template="due_date_extended",
        now=now,
        facts={"amount_due_minor": row.remaining_minor, "due_on": row.due_on.isoformat()},
    )
    return view


def refund_credit_balance(
    session: Session,
    *,
    shopper_id: str,
    via: Literal["provider", "platform"],
    external_ref: str | None,
    idempotency_key: str,
    provider: PaymentProvider | None,
    settings: Settings,
    now: datetime,
) -> dict[str, Any]:
    """Pay back the overpayment the platform holds for the shopper: through the payment
    provider (a refund against a charge of theirs large enough; the one call to a provider made
    under the shopper's lock, bounded by its timeout) or recorded as paid out by the platform
    (``external_ref`` names its transfer). Afterwards erasure is no longer held up by it."""
    identity_service.get_shopper(session, shopper_id=shopper_id)
    line = credit_service.lock_credit_line(session, shopper_id=shopper_id)
    held = payments.held_credit_of(session, shopper_id=shopper_id, currency=line.currency)
    if held <= 0:
        raise NoCreditBalance()
    provider_refund_id = None
    if via == "provider":
        if provider is None:
            raise NoChargeToRefund()
        charge = next(
            (
                row
                for row in reversed(
                    rails_service.charges_of_shoppers(session, shopper_ids=[shopper_id])
                )
                if row.status == "succeeded"
                and row.provider == provider.name
                and row.provider_charge_id is not None
                and row.amount_minor >= held
            ),
            None,
        )
        if charge is None or charge.provider_charge_id is None:
            raise NoChargeToRefund()
        try:
            provider_refund_id = provider.refund(
                provider_charge_id=charge.provider_charge_id,
                amount_minor=held,
                idempotency_key=f"credit-refund:{shopper_id}:{idempotency_key}",
            )
        except ProviderRefused as refused:
            raise NoChargeToRefund(f"The provider refused the refund ({refused.code}).") from None
        except ProviderUnavailable:
            raise PaymentProviderUnavailable() from None
        external_ref = f"{provider.name}:{provider_refund_id}"
    entry = post_transfer(
        session,
        kind=EntryKind.CREDIT_BALANCE_REFUND,
        debit=accounts.shopper_unapplied_credit(shopper_id),
        credit=accounts.PLATFORM_CASH,
        amount_minor=held,
        currency=line.currency,
        now=now,
        shopper_id=shopper_id,
        memo=f"credit balance refunded ({via}: {external_ref or '-'})",
    )
    view = {
        "shopper_id": shopper_id,
        "refunded_minor": held,
        "currency": line.currency,
        "via": via,
        "external_ref": external_ref,
        "entry_id": entry,
    }
    publish_event(
        session,
        event_type="credit_balance.refunded",
        data=view,
        now=now,
        settings=settings,
        shopper_id=shopper_id,
    )
    return view
