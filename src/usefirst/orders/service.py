"""Orders and their lifecycle on the order's own row: review → approved → shipped → delivered →
repaid, with overdue, declined, cancelled and refunded on the side. What a checkout, a delivery, a
payment or a refund also does in other domains is in ``usefirst.flows``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy.orm import Session

from usefirst.credit import service as credit_service
from usefirst.credit.repository import CreditRepository
from usefirst.kit.clock import business_date
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.errors import Conflict, InvariantViolated, NotFound, ValidationFailed
from usefirst.kit.ids import new_id
from usefirst.kit.money import check_currency
from usefirst.kit.settings import Settings
from usefirst.ledger import accounts
from usefirst.ledger.accounts import EntryKind
from usefirst.ledger.service import post_transfer
from usefirst.merchants import service as merchant_service
from usefirst.notify.service import publish_event
from usefirst.orders.models import LateFeeWaiver, Order, Refund
from usefirst.orders.repository import OrderRepository
from usefirst.orders.tracking import normalise_tracking_number
from usefirst.repayment import schedule
from usefirst.repayment import service as repayment_service
from usefirst.repayment.models import Instalment
from usefirst.repayment.repository import RepaymentRepository

MAX_ORDER_AMOUNT_MINOR = 10_000_000_00
ACTIVE_STATUSES = ("delivered", "overdue")
REFUNDABLE_STATUSES = ("shipped", "delivered", "overdue", "repaid")
# Held by risk: review (the merchant must not ship) or step_up (the shopper confirms with a code).
HELD_STATUSES = ("review", "step_up")


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

    def item_documents(self) -> list[dict[str, Any]]:
        """The items as the order stores them and risk reads them."""
        return [asdict(item) for item in self.items]


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


def validate_checkout(request: CheckoutRequest) -> int:
    """Check what the checkout asks for (currency, plan, items, address); the order's total."""
    check_currency(request.currency)
    if request.plan not in schedule.PLANS:
        raise ValidationFailed(f"plan must be one of {', '.join(schedule.PLANS)}.", field="plan")
    amount = _validate_items(request.items)
    if not request.shipping_address.strip():
        raise ValidationFailed("shipping_address must not be empty.", field="shipping_address")
    return amount


def create_order(
    session: Session,
    *,
    request: CheckoutRequest,
    items: list[dict[str, Any]],
    amount_minor: int,
    outcome: str,
    reasons: list[dict[str, str]],
    cipher: FieldCipher,
    now: datetime,
) -> Order:
    """Record the decided checkout as an order, approved or not (its status is the outcome)."""
    order = Order(
        shopper_id=request.shopper_id,
        id=new_id("order"),
        merchant_id=request.merchant_id,
        currency=request.currency,
        plan=request.plan,
        status=outcome,
        amount_minor=amount_minor,
        refunded_minor=0,
        items=items,
        shipping_address_encrypted=cipher.encrypt(
            request.shipping_address.strip(), field="shipping_address"
        ),
        device_id=request.device_id,
        ip=request.ip,
        decision_outcome=outcome,
        decision_reasons=reasons,
        decided_at=now,
        created_at=now,
        updated_at=now,
    )
    OrderRepository(session).add(order)
    session.flush()
    return order


def find_order(session: Session, *, order_id: str, merchant_id: str | None = None) -> Order:
    """The order, or 404; a merchant sees only its own orders (another's is 404, no leak)."""
    order = OrderRepository(session).find(order_id)
    if order is None or (merchant_id is not None and order.merchant_id != merchant_id):
        raise NotFound("No such order.")
    return order


def lock_order(session: Session, *, order_id: str) -> Order:
    """The order, locked (after its shopper's credit line, the fixed lock order), or 404."""
    return _lock(session, order_id=order_id)


def release_hold(session: Session, *, order_id: str, now: datetime) -> Order:
    """A held order (review or step_up) proceeds: approved, its credit stays reserved."""
    order = _lock(session, order_id=order_id)
    _require_status(order, HELD_STATUSES, "approve")
    order.status = "approved"
    order.updated_at = now
    return order


def decline_hold(
    session: Session, *, order_id: str, reason: dict[str, str], now: datetime
) -> Order:
    """A held order (review or step_up) is declined after all, with one more reason."""
    order = _lock(session, order_id=order_id)
    _require_status(order, HELD_STATUSES, "decline")
    order.status = "declined"
    order.decision_reasons = [*order.decision_reasons, reason]
    order.updated_at = now
    return order


def _lock(session: Session, *, order_id: str, merchant_id: str | None = None) -> Order:
    found = find_order(session, order_id=order_id, merchant_id=merchant_id)
    # Money movement for a shopper always locks the credit line first, then the order.
    if CreditRepository(session).get(found.shopper_id, for_update=True) is None:
        raise NotFound("No credit line for this shopper.")
    order = OrderRepository(session).lock(found.shopper_id, order_id)
    if order is None:
        raise NotFound("No such order.")
    return order


def _require_status(order: Order, allowed: tuple[str, ...], action: str) -> None:
    if order.status not in allowed:
        raise OrderStateConflict(
            f"Cannot {action} an order that is {order.status}; allowed from: {', '.join(allowed)}."
        )


def mark_shipped(
    session: Session,
    *,
    order_id: str,
    merchant_id: str,
    carrier: str,
    tracking_number: str,
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
    return order


def mark_delivered(session: Session, *, order_id: str, automatic: bool, now: datetime) -> Order:
    """The shopper confirmed receipt of a shipped order (or the clock did: ``automatic``)."""
    order = _lock(session, order_id=order_id)
    _require_status(order, ("shipped",), "confirm receipt of")
    order.status = "delivered"
    order.delivered_at = now
    order.delivery_confirmation = "automatic" if automatic else "shopper"
    order.updated_at = now
    return order


def shipped_unconfirmed_before(session: Session, *, moment: datetime) -> list[tuple[str, str]]:
    """(shopper_id, order_id) of the orders shipped before ``moment`` and still unconfirmed,
    except those with an open dispute."""
    return OrderRepository(session).shipped_before(moment)


def mark_many_delivered_automatically(
    session: Session, *, keys: list[tuple[str, str]], now: datetime
) -> list[Order]:
    """``mark_delivered(automatic=True)`` in one update for those of the orders still shipped
    (their credit lines locked by the caller); the orders that turned delivered, in key order."""
    repository = OrderRepository(session)
    delivered = set(repository.shipped_to_delivered(keys, confirmation="automatic", now=now))
    return repository.many([key for key in keys if key in delivered])


def mark_cancelled(
    session: Session, *, order_id: str, merchant_id: str | None, now: datetime
) -> Order:
    order = _lock(session, order_id=order_id, merchant_id=merchant_id)
    _require_status(order, (*HELD_STATUSES, "approved"), "cancel")
    order.status = "cancelled"
    order.cancelled_at = now
    order.updated_at = now
    return order


def unrefunded_minor(order: Order) -> int:
    return order.amount_minor - order.refunded_minor


def start_refund(
    session: Session,
    *,
    order_id: str,
    merchant_id: str,
    amount_minor: int,
    reason: str,
    now: datetime,
) -> Order:
    """Check a refund against the order and count it as refunded; the order keeps its status
    (``finish_refund`` sets it once the schedule took the refund)."""
    if amount_minor <= 0:
        raise ValidationFailed("amount_minor must be a positive integer.", field="amount_minor")
    if not 1 <= len(reason.strip()) <= 500:
        raise ValidationFailed("reason must have 1 to 500 characters.", field="reason")
    order = _lock(session, order_id=order_id, merchant_id=merchant_id)
    _require_status(order, REFUNDABLE_STATUSES, "refund")
    remaining = unrefunded_minor(order)
    if amount_minor > remaining:
        raise RefundExceedsOrder(
            f"At most {remaining} can still be refunded on this order.", field="amount_minor"
        )
    order.refunded_minor += amount_minor
    order.updated_at = now
    return order


def record_refund(
    session: Session,
    *,
    order: Order,
    amount_minor: int,
    reduced_debt_minor: int,
    waived_fees_minor: int,
    returned_to_shopper_minor: int,
    reason: str,
    now: datetime,
) -> Refund:
    row = Refund(
        shopper_id=order.shopper_id,
        id=new_id("refund"),
        order_id=order.id,
        merchant_id=order.merchant_id,
        currency=order.currency,
        amount_minor=amount_minor,
        reduced_debt_minor=reduced_debt_minor,
        waived_fees_minor=waived_fees_minor,
        returned_to_shopper_minor=returned_to_shopper_minor,
        reason=reason.strip(),
        created_at=now,
    )
    OrderRepository(session).add(row)
    session.flush()
    return row


def finish_refund(order: Order, *, is_schedule_settled: bool, now: datetime) -> None:
    """A refund of all of the order refunds it; one that leaves nothing owed repays it."""
    if order.refunded_minor == order.amount_minor:
        order.status = "refunded"
    elif order.status in ACTIVE_STATUSES and is_schedule_settled:
        order.status = "repaid"
        order.repaid_at = now


def lock_active_order(session: Session, *, shopper_id: str, order_id: str) -> Order | None:
    """The delivered or overdue order, locked (the caller holds the shopper's credit line);
    None for an order in any other state."""
    order = OrderRepository(session).lock(shopper_id, order_id)
    if order is None or order.status not in ACTIVE_STATUSES:
        return None
    return order


def clear_overdue(order: Order, *, now: datetime) -> None:
    """Nothing of the order is overdue any more: an overdue order is delivered again."""
    if order.status == "overdue":
        order.status = "delivered"
        order.updated_at = now


def mark_repaid(order: Order, *, now: datetime) -> bool:
    """Every instalment is paid: a delivered or overdue order is repaid (True when it became)."""
    if order.status not in ACTIVE_STATUSES:
        return False
    order.status = "repaid"
    order.repaid_at = now
    order.updated_at = now
    return True


def active_order_ids(session: Session, *, shopper_id: str) -> list[str]:
    return [row.id for row in OrderRepository(session).of_shopper(shopper_id, ACTIVE_STATUSES)]


# --- for the collections functions below until they leave orders (the flows have their own) --


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


# --- daily sweep parts -------------------------------------------------------------------------


def mark_overdue(session: Session, *, business_on: date, settings: Settings, now: datetime) -> int:
    """Instalments due before ``business_on`` and unpaid turn overdue, their shoppers' credit
    freezes and their delivered orders turn overdue (one ``order.overdue`` event each). Returns
    how many orders had an instalment turn overdue."""
    pairs = sorted(repayment_service.overdue_candidates(session, business_on=business_on))
    if not pairs:
        return 0
    shopper_ids = sorted({shopper for shopper, _ in pairs})
    session.flush()
    # Same lock order as payments and checkouts: credit lines first, then instalments and orders.
    credit_service.lock_credit_lines(session, shopper_ids=shopper_ids)
    repayment_service.mark_overdue(session, business_on=business_on, shopper_ids=shopper_ids)
    credit_service.freeze_many_for_overdue(session, shopper_ids=shopper_ids, now=now)
    repository = OrderRepository(session)
    turned = repository.delivered_to_overdue(pairs, now=now)
    session.expire_all()
    _publish_many(session, repository.many(turned), "order.overdue", settings=settings, now=now)
    return len(pairs)


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


def order_view(
    session: Session, order: Order, instalments: list[Instalment] | None = None
) -> dict[str, Any]:
    """The order as the API shows it, with its instalments (read unless given)."""
    if instalments is None:
        instalments = RepaymentRepository(session).instalments_of_order(order.shopper_id, order.id)
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


ALL_STATUSES = (
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
)


def orders_of_shopper(
    session: Session, *, shopper_id: str, statuses: tuple[str, ...] = ALL_STATUSES
) -> list[Order]:
    return OrderRepository(session).of_shopper(shopper_id, statuses)


# --- collections support ---------------------------------------------------------------------

COLLECTIONS_FLAGS = ("call_queue_since_on", "bureau_reported_on", "legal_referred_on")


def orders_by_key(session: Session, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Order]:
    repository = OrderRepository(session)
    found: dict[tuple[str, str], Order] = {}
    for shopper_id, order_id in keys:
        order = repository.get(shopper_id, order_id)
        if order is not None:
            found[(shopper_id, order_id)] = order
    return found


def mark_collections_step(
    session: Session, *, order: Order, flag: str, business_on: date, now: datetime
) -> bool:
    """Record that a one-time collections step reached the order. False if it already had."""
    if flag not in COLLECTIONS_FLAGS:
        raise InvariantViolated(f"unknown collections flag {flag!r}")
    if getattr(order, flag) is not None:
        return False
    setattr(order, flag, business_on)
    order.updated_at = now
    return True


def escalate_overdue(
    session: Session,
    *,
    business_on: date,
    call_queue_day: int | None,
    bureau_report_day: int | None,
    now: datetime,
) -> tuple[int, int]:
    """Set-based: first delinquency, call queue and bureau report for every overdue order that
    reaches them today (see ``OrderRepository.escalate_overdue``). Returns (entered the call
    queue, reported to the bureau)."""
    session.flush()
    reached = OrderRepository(session).escalate_overdue(
        business_on=business_on,
        call_queue_day=call_queue_day,
        bureau_report_day=bureau_report_day,
        now=now,
    )
    session.expire_all()
    return reached


def orders_past_due(session: Session, *, business_on: date, days: int) -> list[tuple[Order, int]]:
    """The undisputed overdue orders at least ``days`` past due, with their days past due."""
    repository = OrderRepository(session)
    rows = repository.past_due_at_least(business_on=business_on, days=days)
    keys = [(shopper_id, order_id) for shopper_id, order_id, _ in rows]
    orders = {(order.shopper_id, order.id): order for order in repository.many(keys)}
    return [(orders[(shopper_id, order_id)], dpd) for shopper_id, order_id, dpd in rows]


def set_dispute_flag(
    session: Session,
    *,
    order_id: str,
    is_disputed: bool,
    settings: Settings,
    now: datetime,
    today: date | None = None,
) -> Order:
    """Open or close the order's shopper dispute (the disputes workflow calls this; idempotent).

    While a dispute is open the order's days past due stop counting: no late fee, no reminder
    after the due date and no escalation step happens, and the bureau file carries compliance
    code XB. On closing, the past-due days the dispute covered (those of its business dates,
    ``today`` excluded at the start and included at the end, after the order's oldest unpaid
    instalment fell due) are added to ``dispute_paused_days``: days past due = days since due −
    paused days, so dunning resumes where it stopped. The file of the period the dispute closed in
    carries XH. ``today`` is the business date (default: that of ``now``)."""
    on = today if today is not None else business_date(now, settings.time_zone)
    order = _lock(session, order_id=order_id)
    if order.is_disputed == is_disputed:
        return order
    if is_disputed:
        order.disputed_since_on = on
    else:
        opened_on = order.disputed_since_on or on
        unpaid_due_ons = [
            row.due_on
            for row in repayment_service.instalments_of(
                session, shopper_id=order.shopper_id, order_id=order.id
            )
            if row.due_on is not None and row.due_on < on and row.remaining_minor > 0
        ]
        if unpaid_due_ons:
            paused_from = max(opened_on, min(unpaid_due_ons))
            order.dispute_paused_days += max((on - paused_from).days, 0)
        order.disputed_since_on = None
        order.dispute_resolved_on = on
    order.is_disputed = is_disputed
    order.updated_at = now
    session.flush()
    return order


def paused_days_on(order: Order, on: date) -> int:
    """The days an order's disputes paused its days past due, as of ``on`` (an open dispute
    pauses every day since it opened)."""
    paused = order.dispute_paused_days or 0
    if order.is_disputed and order.disputed_since_on is not None:
        paused += max((on - order.disputed_since_on).days, 0)
    return paused


def days_past_due_on(order: Order, *, due_on: date, on: date) -> int:
    """Days past due of an instalment of the order due on ``due_on``, as of ``on``: days since
    it fell due less the days disputes paused, never negative."""
    return max((on - due_on).days - paused_days_on(order, on), 0)


def charge_off(
    session: Session, *, order: Order, business_on: date, settings: Settings, now: datetime
) -> int:
    """Write off what is left of a long-unpaid order. The debt stays owed: later payments are
    recoveries. The shopper's credit line closes."""
    credit_service.lock_credit_line(session, shopper_id=order.shopper_id)
    written_off = repayment_service.charge_off_schedule(
        session, shopper_id=order.shopper_id, order_id=order.id
    )
    if written_off.total_minor:
        post_transfer(
            session,
            kind=EntryKind.CHARGE_OFF,
            debit=accounts.WRITE_OFF_EXPENSE,
            credit=accounts.shopper_receivable(order.shopper_id),
            amount_minor=written_off.total_minor,
            currency=order.currency,
            now=now,
            shopper_id=order.shopper_id,
            order_id=order.id,
            memo="charge-off of a long-unpaid order",
        )
    order.status = "charged_off"
    order.charged_off_on = business_on
    order.charged_off_minor = written_off.total_minor
    order.updated_at = now
    credit_service.close_after_charge_off(session, shopper_id=order.shopper_id, now=now)
    session.flush()
    _publish(session, order, "order.charged_off", settings=settings, now=now)
    return written_off.total_minor


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
    """An operator waives unpaid late fees (all, or up to an amount), by a reversing entry."""
    reason = reason.strip()
    if not 1 <= len(reason) <= 500:
        raise ValidationFailed("reason must have 1 to 500 characters.", field="reason")
    if amount_minor is not None and amount_minor <= 0:
        raise ValidationFailed("amount_minor must be positive.", field="amount_minor")
    order = _lock(session, order_id=order_id)
    waived = repayment_service.waive_unpaid_late_fees(
        session, shopper_id=order.shopper_id, order_id=order.id, amount_minor=amount_minor
    )
    if waived == 0:
        raise OrderStateConflict("The order has no unpaid late fees to waive.")
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
    waiver = LateFeeWaiver(
        shopper_id=order.shopper_id,
        id=waiver_id,
        order_id=order.id,
        entry_id=entry_id,
        currency=order.currency,
        amount_minor=waived,
        reason=reason,
        operator_id=operator_id,
        created_at=now,
    )
    OrderRepository(session).add(waiver)
    session.flush()
    _follow_schedules(
        session, shopper_id=order.shopper_id, order_ids=[order.id], settings=settings, now=now
    )
    return waiver


def late_fee_waiver_view(row: LateFeeWaiver) -> dict[str, Any]:
    return {
        "id": row.id,
        "order_id": row.order_id,
        "amount_minor": row.amount_minor,
        "currency": row.currency,
        "reason": row.reason,
        "operator_id": row.operator_id,
        "entry_id": row.entry_id,
        "created_at": row.created_at,
    }


def orders_in_call_queue(session: Session) -> list[Order]:
    return OrderRepository(session).in_call_queue()


def orders_reported_to_bureau(session: Session, *, reported_by: date) -> list[Order]:
    return OrderRepository(session).reported_to_bureau(reported_by)


def delivery_confirmation(session: Session, *, order: Order) -> Literal["shopper", "automatic"]:
    return "automatic" if order.delivery_confirmation == "automatic" else "shopper"


def delivered_orders(session: Session) -> list[Order]:
    return OrderRepository(session).delivered()
