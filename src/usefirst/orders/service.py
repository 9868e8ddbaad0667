"""Checkout and the order lifecycle: review → approved → shipped → delivered → repaid, with
overdue, declined, cancelled and refunded on the side."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy.orm import Session

from usefirst.credit import service as credit_service
from usefirst.credit.policy import Reason
from usefirst.identity import service as identity_service
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.errors import Conflict, NotFound, ValidationFailed
from usefirst.kit.ids import new_id
from usefirst.kit.money import check_currency
from usefirst.kit.settings import Settings
from usefirst.ledger import accounts
from usefirst.ledger.accounts import EntryKind
from usefirst.ledger.service import post_transfer
from usefirst.merchants import service as merchant_service
from usefirst.notify.service import publish_event
from usefirst.orders.models import Order, Refund
from usefirst.orders.repository import OrderRepository
from usefirst.orders.tracking import normalise_tracking_number
from usefirst.repayment import schedule
from usefirst.repayment import service as repayment_service
from usefirst.repayment.models import Instalment
from usefirst.risk import decision as risk_decision
from usefirst.risk import monitors as risk_monitors

MAX_ORDER_AMOUNT_MINOR = 10_000_000_00
ACTIVE_STATUSES = ("delivered", "overdue")
REFUNDABLE_STATUSES = ("shipped", "delivered", "overdue", "repaid")


class OrderStateConflict(Conflict):
    code = "order_state_conflict"
    default_message = "The order is not in a state that allows this."


class RefundExceedsOrder(Conflict):
    code = "refund_exceeds_order"
    default_message = "The refund is larger than what is left of the order."


@dataclass(frozen=True)
class Item:
    sku: str
    name: str
    category: str
    quantity: int
    unit_price_minor: int


@dataclass(frozen=True)
class CheckoutRequest:
    shopper_id: str
    merchant_id: str
    currency: str
    items: list[Item]
    plan: str
    shipping_address: str
    device_id: str | None = None
    ip: str | None = None


@dataclass(frozen=True)
class Decision:
    outcome: str  # approved | review | step_up | declined
    reasons: list[Reason]
    score: int | None
    decided_at: datetime

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "outcome": self.outcome,
            "reasons": [reason.as_dict() for reason in self.reasons],
            "decided_at": self.decided_at,
        }
        if self.score is not None:
            body["score"] = self.score
        return body


def _validate_items(items: list[Item]) -> int:
    if not items:
        raise ValidationFailed("An order needs at least one item.", field="items")
    total = 0
    for index, item in enumerate(items):
        if not 1 <= item.quantity <= 10_000:
            raise ValidationFailed("quantity must be 1 to 10000.", field=f"items.{index}.quantity")
        if item.unit_price_minor < 0:
            raise ValidationFailed(
                "unit_price_minor must not be negative.", field=f"items.{index}.unit_price_minor"
            )
        for name in ("sku", "name", "category"):
            if not getattr(item, name).strip():
                raise ValidationFailed(f"{name} must not be empty.", field=f"items.{index}.{name}")
        total += item.quantity * item.unit_price_minor
    if total <= 0:
        raise ValidationFailed("The order total must be positive.", field="items")
    if total > MAX_ORDER_AMOUNT_MINOR:
        raise ValidationFailed("The order total is too large.", field="items")
    return total


def checkout(
    session: Session,
    *,
    request: CheckoutRequest,
    cipher: FieldCipher,
    settings: Settings,
    now: datetime,
) -> tuple[Order, Decision]:
    """Decide a checkout and record the order, approved or not. Approval reserves the amount
    against the shopper's available credit in one conditional update."""
    check_currency(request.currency)
    if request.plan not in schedule.PLANS:
        raise ValidationFailed(f"plan must be one of {', '.join(schedule.PLANS)}.", field="plan")
    amount = _validate_items(request.items)
    if not request.shipping_address.strip():
        raise ValidationFailed("shipping_address must not be empty.", field="shipping_address")
    shopper = identity_service.get_shopper(session, shopper_id=request.shopper_id)
    merchant = merchant_service.get_merchant(session, merchant_id=request.merchant_id)
    line = credit_service.get_credit_line(session, shopper_id=shopper.id)
    if line.currency != request.currency:
        raise ValidationFailed(f"This shopper's credit is in {line.currency}.", field="currency")
    items = [item.__dict__ for item in request.items]
    # Risk reads history before this order exists and before its credit is reserved.
    assessment = risk_decision.assess_checkout(
        session,
        shopper_id=shopper.id,
        merchant_id=merchant.id,
        amount_minor=amount,
        items=items,
        device_id=request.device_id,
        ip=request.ip,
        shipping_address=request.shipping_address,
        credit_limit_minor=line.limit_minor,
        credit_used_minor=line.used_minor,
        cipher=cipher,
        settings=settings,
        now=now,
    )

    reasons: list[Reason] = []
    if shopper.status != "active" or line.status == "closed":
        reasons.append(Reason("credit_line_closed", "The shopper has no open credit line."))
    elif merchant.status in ("suspended", "banned"):
        reasons.append(
            Reason("merchant_not_accepting", "This merchant cannot take pay-later orders now.")
        )
    elif line.status == "frozen":
        reasons.append(credit_service.frozen_reason(line))
    elif assessment.outcome == "declined":
        reasons.extend(assessment.reasons)
    elif not credit_service.try_reserve(session, shopper_id=shopper.id, amount_minor=amount):
        reasons.append(
            Reason(
                "credit_limit_exceeded",
                "The order is larger than the shopper's available credit.",
            )
        )
    # approved, or held with its credit reserved: review (the merchant must not ship) or
    # step_up (the shopper confirms with a one-time code first)
    outcome = "declined" if reasons else assessment.outcome
    if outcome == "approved":
        reasons.append(Reason("within_credit_limit", "The order fits the available credit."))
    elif outcome in ("review", "step_up"):
        reasons.extend(assessment.reasons)
    decision = Decision(outcome=outcome, reasons=reasons, score=line.score, decided_at=now)

    order = Order(
        shopper_id=shopper.id,
        id=new_id("order"),
        merchant_id=merchant.id,
        currency=request.currency,
        plan=request.plan,
        status=outcome,
        amount_minor=amount,
        refunded_minor=0,
        items=items,
        shipping_address_encrypted=cipher.encrypt(
            request.shipping_address.strip(), field="shipping_address"
        ),
        device_id=request.device_id,
        ip=request.ip,
        decision_outcome=outcome,
        decision_reasons=[reason.as_dict() for reason in reasons],
        decided_at=now,
        created_at=now,
        updated_at=now,
    )
    OrderRepository(session).add(order)
    session.flush()
    if outcome in ("approved", "review", "step_up"):
        repayment_service.create_schedule(
            session,
            shopper_id=shopper.id,
            order_id=order.id,
            currency=order.currency,
            principal_minor=amount,
            plan=order.plan,
            settings=settings,
        )
    risk_decision.record_checkout_decision(
        session,
        order=order,
        assessment=assessment,
        reasons=reasons,
        credit_score=line.score,
        cipher=cipher,
        settings=settings,
        now=now,
    )
    session.flush()
    _publish(session, order, f"order.{outcome}", settings=settings, now=now)
    return order, decision


def find_order(session: Session, *, order_id: str, merchant_id: str | None = None) -> Order:
    """The order, or 404; a merchant sees only its own orders (another's is 404, no leak)."""
    order = OrderRepository(session).find(order_id)
    if order is None or (merchant_id is not None and order.merchant_id != merchant_id):
        raise NotFound("No such order.")
    return order


def lock_order(session: Session, *, order_id: str) -> Order:
    """The order, locked (after its shopper's credit line, the fixed lock order), or 404."""
    return _lock(session, order_id=order_id)


def release_held_order(
    session: Session, *, order_id: str, settings: Settings, now: datetime
) -> Order:
    """A held order (review or step_up) proceeds: approved, its credit stays reserved."""
    order = _lock(session, order_id=order_id)
    _require_status(order, ("review", "step_up"), "approve")
    order.status = "approved"
    order.updated_at = now
    session.flush()
    _publish(session, order, "order.approved", settings=settings, now=now)
    return order


def decline_held_order(
    session: Session,
    *,
    order_id: str,
    reason_code: str,
    reason_message: str,
    settings: Settings,
    now: datetime,
) -> Order:
    """A held order (review or step_up) is declined after all: its schedule is dropped and its
    reserved credit released."""
    order = _lock(session, order_id=order_id)
    _require_status(order, ("review", "step_up"), "decline")
    repayment_service.cancel_schedule(session, shopper_id=order.shopper_id, order_id=order.id)
    credit_service.release(session, shopper_id=order.shopper_id, amount_minor=order.amount_minor)
    order.status = "declined"
    order.decision_reasons = [
        *order.decision_reasons,
        Reason(reason_code, reason_message).as_dict(),
    ]
    order.updated_at = now
    session.flush()
    _publish(session, order, "order.declined", settings=settings, now=now)
    return order


def _lock(session: Session, *, order_id: str, merchant_id: str | None = None) -> Order:
    found = find_order(session, order_id=order_id, merchant_id=merchant_id)
    # Money movement for a shopper always locks the credit line first, then the order.
    credit_service.lock_credit_line(session, shopper_id=found.shopper_id)
    order = OrderRepository(session).lock(found.shopper_id, order_id)
    if order is None:
        raise NotFound("No such order.")
    return order


def _require_status(order: Order, allowed: tuple[str, ...], action: str) -> None:
    if order.status not in allowed:
        raise OrderStateConflict(
            f"Cannot {action} an order that is {order.status}; allowed from: {', '.join(allowed)}."
        )


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
    carrier, tracking_number = carrier.strip(), normalise_tracking_number(tracking_number)
    if not 1 <= len(carrier) <= 64:
        raise ValidationFailed("carrier must have 1 to 64 characters.", field="carrier")
    if not 4 <= len(tracking_number) <= 64 or not tracking_number.isascii():
        raise ValidationFailed(
            "tracking_number must have 4 to 64 ASCII characters.", field="tracking_number"
        )
    order = _lock(session, order_id=order_id, merchant_id=merchant_id)
    _require_status(order, ("approved",), "ship")
    order.status = "shipped"
    order.carrier = carrier
    order.tracking_number = tracking_number
    order.shipped_at = now
    order.updated_at = now
    session.flush()
    risk_monitors.after_shipment(session, order=order, now=now)
    _publish(session, order, "order.shipped", settings=settings, now=now)
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
    order = _lock(session, order_id=order_id)
    _require_status(order, ("shipped",), "confirm receipt of")
    merchant = merchant_service.get_merchant(session, merchant_id=order.merchant_id)
    order.status = "delivered"
    order.delivered_at = now
    order.delivery_confirmation = "automatic" if automatic else "shopper"
    order.updated_at = now
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
    _publish(
        session,
        order,
        "order.delivered",
        settings=settings,
        now=now,
        extra={"confirmation": "automatic" if automatic else "shopper"},
    )
    # Held credit applied at delivery pays the shopper's instalments oldest due first, so it can
    # settle, or clear the overdue part of, the shopper's other orders as well as this one.
    active_ids = [
        row.id for row in OrderRepository(session).of_shopper(order.shopper_id, ACTIVE_STATUSES)
    ]
    _follow_schedules(
        session, shopper_id=order.shopper_id, order_ids=active_ids, settings=settings, now=now
    )
    return order


def cancel(
    session: Session, *, order_id: str, merchant_id: str | None, settings: Settings, now: datetime
) -> Order:
    order = _lock(session, order_id=order_id, merchant_id=merchant_id)
    _require_status(order, ("review", "step_up", "approved"), "cancel")
    repayment_service.cancel_schedule(session, shopper_id=order.shopper_id, order_id=order.id)
    credit_service.release(
        session,
        shopper_id=order.shopper_id,
        amount_minor=order.amount_minor - order.refunded_minor,
    )
    order.status = "cancelled"
    order.cancelled_at = now
    order.updated_at = now
    session.flush()
    _publish(session, order, "order.cancelled", settings=settings, now=now)
    return order


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
    if amount_minor <= 0:
        raise ValidationFailed("amount_minor must be a positive integer.", field="amount_minor")
    if not 1 <= len(reason.strip()) <= 500:
        raise ValidationFailed("reason must have 1 to 500 characters.", field="reason")
    order = _lock(session, order_id=order_id, merchant_id=merchant_id)
    _require_status(order, REFUNDABLE_STATUSES, "refund")
    remaining = order.amount_minor - order.refunded_minor
    if amount_minor > remaining:
        raise RefundExceedsOrder(
            f"At most {remaining} can still be refunded on this order.", field="amount_minor"
        )
    order.refunded_minor += amount_minor
    order.updated_at = now
    if order.status == "shipped":
        # Not delivered yet: nothing is owed in the ledger; the schedule simply shrinks.
        repayment_service.replan_before_delivery(
            session,
            shopper_id=order.shopper_id,
            order_id=order.id,
            principal_minor=order.amount_minor - order.refunded_minor,
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
        )
        _post_refund_entries(session, order=order, split=split, now=now)
    credit_service.release(
        session, shopper_id=order.shopper_id, amount_minor=split.reduced_debt_minor
    )
    row = Refund(
        shopper_id=order.shopper_id,
        id=new_id("refund"),
        order_id=order.id,
        merchant_id=order.merchant_id,
        currency=order.currency,
        amount_minor=amount_minor,
        reduced_debt_minor=split.reduced_debt_minor,
        waived_fees_minor=split.waived_fees_minor,
        returned_to_shopper_minor=split.returned_to_shopper_minor,
        reason=reason.strip(),
        created_at=now,
    )
    OrderRepository(session).add(row)
    session.flush()
    if order.refunded_minor == order.amount_minor:
        order.status = "refunded"
    elif order.status in ACTIVE_STATUSES and order.id in repayment_service.settled_order_ids(
        session, order.shopper_id, {order.id}
    ):
        order.status = "repaid"
        order.repaid_at = now
    _refresh_freeze(session, shopper_id=order.shopper_id, now=now)
    session.flush()
    _publish(
        session,
        order,
        "order.refunded",
        settings=settings,
        now=now,
        extra={"refund": refund_view(row)},
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


def settle_order(session: Session, *, order: Order, settings: Settings, now: datetime) -> None:
    """Every instalment is paid: the order is repaid; on time, it grows the shopper's limit."""
    if order.status not in ACTIVE_STATUSES:
        return
    order.status = "repaid"
    order.repaid_at = now
    order.updated_at = now
    if repayment_service.was_repaid_on_time(
        session, shopper_id=order.shopper_id, order_id=order.id
    ):
        credit_service.record_on_time_repayment(
            session,
            shopper_id=order.shopper_id,
            order_id=order.id,
            policy=credit_service.policy_from_settings(settings),
            now=now,
        )
    session.flush()
    _publish(session, order, "order.repaid", settings=settings, now=now)


def after_payment(
    session: Session,
    *,
    outcome: repayment_service.PaymentOutcome,
    settings: Settings,
    now: datetime,
) -> None:
    _follow_schedules(
        session,
        shopper_id=outcome.payment.shopper_id,
        order_ids=sorted({allocation.order_id for allocation in outcome.allocations}),
        settings=settings,
        now=now,
    )


def _follow_schedules(
    session: Session, *, shopper_id: str, order_ids: list[str], settings: Settings, now: datetime
) -> None:
    """Bring delivered or overdue orders in line with their instalments after money reached
    them: an order with nothing overdue left is delivered again, a fully paid one is repaid,
    and the shopper's credit unfreezes once nothing is overdue."""
    repository = OrderRepository(session)
    grouped = repayment_service.instalments_of_orders(
        session, shopper_id=shopper_id, order_ids=sorted(order_ids)
    )
    for order_id, rows in grouped.items():
        order = repository.lock(shopper_id, order_id)
        if order is None or order.status not in ACTIVE_STATUSES:
            continue
        if order.status == "overdue" and not any(row.status == "overdue" for row in rows):
            order.status = "delivered"
            order.updated_at = now
        if all(row.status in ("paid", "cancelled") for row in rows):
            settle_order(session, order=order, settings=settings, now=now)
    _refresh_freeze(session, shopper_id=shopper_id, now=now)


def _refresh_freeze(session: Session, *, shopper_id: str, now: datetime) -> None:
    if not repayment_service.has_overdue(session, shopper_id=shopper_id):
        credit_service.unfreeze_after_overdue_cleared(session, shopper_id=shopper_id, now=now)


def pay(
    session: Session,
    *,
    shopper_id: str,
    amount_minor: int,
    currency: str,
    order_id: str | None,
    method: str,
    external_ref: str | None,
    today: date,
    settings: Settings,
    now: datetime,
) -> repayment_service.PaymentOutcome:
    """A payment from the shopper, with its effect on orders and credit."""
    identity_service.get_shopper(session, shopper_id=shopper_id)
    if order_id is not None:
        order = find_order(session, order_id=order_id)
        if order.shopper_id != shopper_id:
            raise NotFound("No such order for this shopper.", field="order_id")
    outcome = repayment_service.receive_payment(
        session,
        shopper_id=shopper_id,
        amount_minor=amount_minor,
        currency=currency,
        order_id=order_id,
        method=method,
        external_ref=external_ref,
        today=today,
        now=now,
    )
    after_payment(session, outcome=outcome, settings=settings, now=now)
    return outcome


# --- daily sweep parts -------------------------------------------------------------------------


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
    each. Returns how many were confirmed."""
    repository = OrderRepository(session)
    keys = repository.shipped_before(shipped_before)
    if not keys:
        return 0
    session.flush()
    credit_service.lock_credit_lines(session, shopper_ids=sorted({key[0] for key in keys}))
    confirmed = set(repository.shipped_to_delivered(keys, confirmation="automatic", now=now))
    orders = repository.many([key for key in keys if key in confirmed])
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
    _publish_many(
        session,
        orders,
        "order.delivered",
        settings=settings,
        now=now,
        extra={"confirmation": "automatic"},
    )
    # Held credit applied at delivery may settle, or clear the overdue part of, the shopper's
    # orders (see confirm_receipt); without it nothing else of the shopper's changed.
    for shopper_id in with_held_credit:
        active_ids = [row.id for row in repository.of_shopper(shopper_id, ACTIVE_STATUSES)]
        _follow_schedules(
            session, shopper_id=shopper_id, order_ids=active_ids, settings=settings, now=now
        )
    return len(orders)


def mark_overdue(
    session: Session, *, keys: list[tuple[str, str]], settings: Settings, now: datetime
) -> None:
    """The delivered orders among ``keys`` (an instalment of each just turned overdue) turn
    overdue, one ``order.overdue`` event each."""
    repository = OrderRepository(session)
    turned = repository.delivered_to_overdue(keys, now=now)
    session.expire_all()
    _publish_many(session, repository.many(turned), "order.overdue", settings=settings, now=now)


def _publish_many(
    session: Session,
    orders: list[Order],
    event_type: str,
    *,
    settings: Settings,
    now: datetime,
    extra: dict[str, Any] | None = None,
) -> None:
    """``_publish`` for many orders, their instalments read in one query per chunk."""
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
                "order": _order_view(order, instalments.get((order.shopper_id, order.id), [])),
                **(extra or {}),
            },
            now=now,
            settings=settings,
            merchant_id=order.merchant_id,
            shopper_id=order.shopper_id,
        )
    del merchants


# --- views -------------------------------------------------------------------------------------


def order_view(session: Session, order: Order) -> dict[str, Any]:
    instalments = repayment_service.instalments_of(
        session, shopper_id=order.shopper_id, order_id=order.id
    )
    return _order_view(order, instalments)


def _order_view(order: Order, instalments: list[Instalment]) -> dict[str, Any]:
    shipment = None
    if order.shipped_at is not None:
        shipment = {
            "carrier": order.carrier,
            "tracking_number": order.tracking_number,
            "shipped_at": order.shipped_at,
            "delivered_at": order.delivered_at,
        }
    return {
        "id": order.id,
        "shopper_id": order.shopper_id,
        "merchant_id": order.merchant_id,
        "amount_minor": order.amount_minor,
        "refunded_minor": order.refunded_minor,
        "currency": order.currency,
        "plan": order.plan,
        "status": order.status,
        "items": order.items,
        "shipment": shipment,
        "instalments": [
            {
                "seq": row.seq,
                "due_on": row.due_on,
                "amount_minor": row.principal_minor + row.all_fees_minor,
                "principal_minor": row.principal_minor,
                "fees_minor": row.all_fees_minor,
                "late_fees_minor": row.late_fees_minor,
                "paid_minor": row.paid_principal_minor + row.paid_fees_minor,
                "status": row.status,
            }
            for row in instalments
        ],
        "created_at": order.created_at,
    }


def refund_view(row: Refund) -> dict[str, Any]:
    return {
        "id": row.id,
        "order_id": row.order_id,
        "amount_minor": row.amount_minor,
        "currency": row.currency,
        "reduced_debt_minor": row.reduced_debt_minor,
        "waived_fees_minor": row.waived_fees_minor,
        "returned_to_shopper_minor": row.returned_to_shopper_minor,
        "reason": row.reason,
        "created_at": row.created_at,
    }


def statement(session: Session, *, shopper_id: str, today: date) -> dict[str, Any]:
    identity_service.get_shopper(session, shopper_id=shopper_id)
    line = credit_service.get_credit_line(session, shopper_id=shopper_id)
    orders = OrderRepository(session).of_shopper(shopper_id, ACTIVE_STATUSES)
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
    charged_off = OrderRepository(session).of_shopper(shopper_id, ("charged_off",))
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
        "unapplied_credit_minor": repayment_service.unapplied_credit_of(
            session, shopper_id=shopper_id, currency=line.currency
        ),
    }


def _publish(
    session: Session,
    order: Order,
    event_type: str,
    *,
    settings: Settings,
    now: datetime,
    extra: dict[str, Any] | None = None,
) -> None:
    data = {"order": order_view(session, order)}
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
    )


def orders_of_shopper(session: Session, *, shopper_id: str) -> list[Order]:
    return OrderRepository(session).of_shopper(
        shopper_id,
        (
            "review",
            "step_up",
            "approved",
            "shipped",
            "delivered",
            "overdue",
            "repaid",
            "declined",
            "cancelled",
            "refunded",
            "charged_off",
        ),
    )


# --- collections support ---------------------------------------------------------------------


def orders_by_key(session: Session, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Order]:
    repository = OrderRepository(session)
    found: dict[tuple[str, str], Order] = {}
    for shopper_id, order_id in keys:
        order = repository.get(shopper_id, order_id)
        if order is not None:
            found[(shopper_id, order_id)] = order
    return found


def charge_off(session: Session, *, order: Order, settings: Settings, now: datetime) -> None:
    """The order is charged off (the daily sweep's charge-off wrote off what was left of it)."""
    order.status = "charged_off"
    order.updated_at = now
    session.flush()
    _publish(session, order, "order.charged_off", settings=settings, now=now)


def after_late_fees_waived(
    session: Session, *, order: Order, settings: Settings, now: datetime
) -> None:
    """Late fees of the (locked) order were waived: with them gone it may have nothing overdue
    left, or nothing left to pay."""
    _follow_schedules(
        session, shopper_id=order.shopper_id, order_ids=[order.id], settings=settings, now=now
    )


def delivery_confirmation(session: Session, *, order: Order) -> Literal["shopper", "automatic"]:
    return "automatic" if order.delivery_confirmation == "automatic" else "shopper"


def delivered_orders(session: Session) -> list[Order]:
    return OrderRepository(session).delivered()
