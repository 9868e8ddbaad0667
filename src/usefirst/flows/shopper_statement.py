"""A shopper's statement: their open orders with each instalment's amount due, what is overdue
and due next, what was charged off but is still owed, and the credit they hold."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from usefirst.credit import service as credit_service
from usefirst.flows.payments import held_credit_of
from usefirst.identity import service as identity_service
from usefirst.kit.clock import business_date
from usefirst.kit.errors import ValidationFailed
from usefirst.kit.settings import Settings
from usefirst.orders import service as order_service
from usefirst.rails import service as rails_service
from usefirst.repayment import service as repayment_service
from usefirst.repayment.statement_pdf import StatementFacts, render_statement_pdf


def shopper_statement(session: Session, *, shopper_id: str, today: date) -> dict[str, Any]:
    identity_service.get_shopper(session, shopper_id=shopper_id)
    line = credit_service.get_credit_line(session, shopper_id=shopper_id)
    orders = order_service.orders_of_shopper(
        session, shopper_id=shopper_id, statuses=order_service.ACTIVE_STATUSES
    )
    lines = repayment_service.statement_lines(
        session, shopper_id=shopper_id, order_ids=[order.id for order in orders], today=today
    )
    outstanding = overdue = 0
    next_due_on: date | None = None
    order_views = []
    for order in orders:
        instalments = lines.get(order.id, [])
        for item in instalments:
            due = item["amount_due_minor"]
            outstanding += due
            item_due_on = item["due_on"]
            if due and item_due_on is not None:
                if item["status"] == "overdue":
                    overdue += due
                elif next_due_on is None or item_due_on < next_due_on:
                    next_due_on = item_due_on
        order_views.append(
            {
                "order_id": order.id,
                "merchant_id": order.merchant_id,
                "plan": order.plan,
                "status": order.status,
                "amount_minor": order.amount_minor,
                "instalments": instalments,
            }
        )
    charged_off = order_service.orders_of_shopper(
        session, shopper_id=shopper_id, statuses=("charged_off",)
    )
    charged_off_lines = repayment_service.statement_lines(
        session, shopper_id=shopper_id, order_ids=[order.id for order in charged_off], today=today
    )
    return {
        "shopper_id": shopper_id,
        "currency": line.currency,
        "orders": order_views,
        # Written off in the ledger but still owed: paying it posts as a recovery.
        "charged_off_minor": sum(
            item["amount_due_minor"] for items in charged_off_lines.values() for item in items
        ),
        "outstanding_minor": outstanding,
        "overdue_minor": overdue,
        "next_due_on": next_due_on,
        "unapplied_credit_minor": held_credit_of(
            session, shopper_id=shopper_id, currency=line.currency
        ),
    }


def monthly_statement_pdf(
    session: Session, *, shopper_id: str, period: str, settings: Settings, today: date
) -> bytes:
    """The shopper's statement of a month (``YYYY-MM``, up to the current one) as PDF."""
    try:
        first = date.fromisoformat(f"{period}-01")
    except ValueError:
        raise ValidationFailed("period must be YYYY-MM.", field="period") from None
    if len(period) != 7 or first > today:
        raise ValidationFailed("period must be YYYY-MM, not after this month.", field="period")
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    view = shopper_statement(session, shopper_id=shopper_id, today=today)
    orders = order_service.orders_of_shopper(
        session,
        shopper_id=shopper_id,
        statuses=order_service.ALL_STATUSES,
    )
    lines = repayment_service.statement_lines(
        session, shopper_id=shopper_id, order_ids=[order.id for order in orders], today=today
    )
    due = [
        (order_id, item["seq"], item["due_on"], item["amount_due_minor"], item["status"])
        for order_id, items in sorted(lines.items())
        for item in items
        if item["due_on"] is not None and first <= item["due_on"] < following
    ]
    payments = [
        (business_date(payment.created_at, settings.time_zone), payment.id, payment.amount_minor,
         payment.method)
        for payment in repayment_service.payments_of(session, shopper_id=shopper_id)
        if first <= business_date(payment.created_at, settings.time_zone) < following
    ]  # fmt: skip
    charges = [
        (charge.charge_on, charge.order_id, charge.attempt, charge.amount_minor, charge.status)
        for charge in rails_service.charges_of_shoppers(session, shopper_ids=[shopper_id])
        if first <= charge.charge_on < following
    ]
    return render_statement_pdf(
        StatementFacts(
            shopper_id=shopper_id,
            period=period,
            currency=str(view["currency"]),
            lender_name=settings.lender_name,
            generated_on=today,
            due=due,
            payments=payments,
            charges=sorted(charges),
            outstanding_minor=int(view["outstanding_minor"]),
            overdue_minor=int(view["overdue_minor"]),
            held_credit_minor=held_credit_of(
                session, shopper_id=shopper_id, currency=str(view["currency"])
            ),
        )
    )
