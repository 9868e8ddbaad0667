"""Orders and their lifecycle on the order's own row: review → approved → shipped → delivered →
repaid, with overdue, declined, cancelled and refunded on the side. What a checkout, a delivery, a
payment or a refund also does in other domains is in ``usefirst.flows``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import UpdateBase
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from usefirst.credit.repository import CreditRepository
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.db import AnySelect, Lookup, Part, look_up_together, new_row
from usefirst.kit.errors import Conflict, NotFound, ValidationFailed
from usefirst.kit.ids import new_id
from usefirst.kit.money import check_currency
from usefirst.orders.models import Order, Refund
from usefirst.orders.repository import OrderRepository
from usefirst.orders.tracking import normalise_tracking_number
from usefirst.repayment import schedule
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


def add_order(session: Session, order: Order) -> None:
    """Record a ``new_order`` with the unit of work (flushed at once: risk's record and the
    order's event follow it)."""
    OrderRepository(session).add(order)
    session.flush()


def new_order(
    *,
    request: CheckoutRequest,
    items: list[dict[str, Any]],
    amount_minor: int,
    outcome: str,
    reasons: list[dict[str, str]],
    cipher: FieldCipher,
    now: datetime,
    shipping_address_hash: str | None,
) -> Order:
    """The decided checkout as an order, approved or not (its status is the outcome), not yet
    stored (``add_order`` or ``insert_order``). ``shipping_address_hash`` is risk's keyed hash
    of the address."""
    return new_row(
        Order,
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
        shipping_address_hash=shipping_address_hash,
        device_id=request.device_id,
        ip=request.ip,
        decision_outcome=outcome,
        decision_reasons=reasons,
        decided_at=now,
        carrier=None,
        tracking_number=None,
        shipped_at=None,
        delivered_at=None,
        delivery_confirmation=None,
        cancelled_at=None,
        repaid_at=None,
        created_at=now,
        updated_at=now,
    )


def insert_order(order: Order) -> Part:
    """What stores a ``new_order``, as a part of a larger write (``kit.db.write_prepared``);
    ``attach_order`` then makes the object the session's."""
    return OrderRepository.insert_part(order)


def attach_order(session: Session, order: Order) -> None:
    """An order written by ``insert_order``, known to the session as if it had been read."""
    make_transient_to_detached(order)
    session.add(order)


def find_order(session: Session, *, order_id: str, merchant_id: str | None = None) -> Order:
    """The order, or 404; a merchant sees only its own orders (another's is 404, no leak)."""
    order = OrderRepository(session).find(order_id)
    if order is None or (merchant_id is not None and order.merchant_id != merchant_id):
        raise NotFound("No such order.")
    return order


def is_shoppers_order(shopper_id: str, order_id: str) -> Lookup[bool]:
    """Whether the order is the shopper's, read with other look-ups."""
    return Lookup(
        OrderRepository.owned_statement(shopper_id, order_id), lambda row: row is not None
    )


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
    order = find_order(session, order_id=order_id, merchant_id=merchant_id)
    # Money movement for a shopper always locks the credit line first, then the order: both
    # are sent together (one round trip on PostgreSQL) and run in that order.
    _line, locked = look_up_together(
        session,
        Lookup(CreditRepository.lock_statement(order.shopper_id), _required_line),
        Lookup(OrderRepository.lock_statement(order.shopper_id, order.id), _required_order),
    )
    # The order as it is now that it is locked (what ``populate_existing`` did).
    for name, value in locked.items():
        set_committed_value(order, name, value)
    return order


def _required_line(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        raise NotFound("No credit line for this shopper.")
    return row


def _required_order(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        raise NotFound("No such order.")
    return row


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
    carrier, tracking_number = checked_shipment(carrier=carrier, tracking_number=tracking_number)
    order = _lock(session, order_id=order_id, merchant_id=merchant_id)
    ship_order(order, carrier=carrier, tracking_number=tracking_number, now=now)
    return order


def checked_shipment(*, carrier: str, tracking_number: str) -> tuple[str, str]:
    """The carrier and tracking number as stored (stripped, normalised), or 422."""
    carrier, tracking_number = carrier.strip(), normalise_tracking_number(tracking_number)
    if not 1 <= len(carrier) <= 64:
        raise ValidationFailed("carrier must have 1 to 64 characters.", field="carrier")
    if not 4 <= len(tracking_number) <= 64 or not tracking_number.isascii():
        raise ValidationFailed(
            "tracking_number must have 4 to 64 ASCII characters.", field="tracking_number"
        )
    return carrier, tracking_number


def ship_order(order: Order, *, carrier: str, tracking_number: str, now: datetime) -> None:
    """``mark_shipped`` of an order read and locked beforehand (after its shopper's credit
    line), the shipment checked (``checked_shipment``): the status checked and the shipment
    set on the object."""
    _require_status(order, ("approved",), "ship")
    order.status = "shipped"
    order.carrier = carrier
    order.tracking_number = tracking_number
    order.shipped_at = now
    order.updated_at = now


def shipment_writes(order: Order) -> UpdateBase:
    """The shipment ``ship_order`` set on the order, as a part of one statement."""
    return OrderRepository.columns_write(
        order, ("status", "carrier", "tracking_number", "shipped_at", "updated_at")
    )


def mark_delivered(session: Session, *, order_id: str, automatic: bool, now: datetime) -> Order:
    """The shopper confirmed receipt of a shipped order (or the clock did: ``automatic``)."""
    order = _lock(session, order_id=order_id)
    deliver(order, automatic=automatic, now=now)
    return order


def deliver(order: Order, *, automatic: bool, now: datetime) -> None:
    """``mark_delivered`` of an order read and locked beforehand (after its shopper's credit
    line): the status checked and the delivery set on the object."""
    _require_status(order, ("shipped",), "confirm receipt of")
    order.status = "delivered"
    order.delivered_at = now
    order.delivery_confirmation = "automatic" if automatic else "shopper"
    order.updated_at = now


def order_by_id(order_id: str, merchant_id: str | None = None) -> Lookup[Order]:
    """``find_order`` as a look-up to send with others: an order not known to any session, or
    404 (a merchant sees only its own orders)."""

    def read(row: dict[str, Any] | None) -> Order:
        if row is None or (merchant_id is not None and row["merchant_id"] != merchant_id):
            raise NotFound("No such order.")
        return Order(**row)

    return Lookup(OrderRepository.by_id_statement(order_id), read)


def delivery_writes(order: Order) -> UpdateBase:
    """The delivery ``deliver`` set on the order, as a part of one statement."""
    return OrderRepository.columns_write(
        order, ("status", "delivered_at", "delivery_confirmation", "updated_at")
    )


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


def shoppers_order_locked(shopper_id: str, order_id: str) -> Lookup[Order | None]:
    """The shopper's order, locked (after the shopper's credit line: send this after its
    lock), read with other look-ups: an order not known to any session, None when the shopper
    has no such order."""
    return Lookup(
        OrderRepository.lock_statement(shopper_id, order_id),
        lambda row: None if row is None else Order(**row),
    )


def is_active(order: Order) -> bool:
    """Delivered or overdue: the order's instalments are being paid."""
    return order.status in ACTIVE_STATUSES


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


def repaid_writes(order: Order) -> UpdateBase:
    """What ``clear_overdue`` and ``mark_repaid`` set on the order, as a part of one
    statement."""
    return OrderRepository.columns_write(order, ("status", "repaid_at", "updated_at"))


def reopen_after_reversal(order: Order, *, is_overdue: bool, now: datetime) -> None:
    """A payment that repaid the order was reversed by the provider: it is owed again."""
    if order.status == "repaid":
        order.status = "overdue" if is_overdue else "delivered"
        order.repaid_at = None
        order.updated_at = now
    elif order.status == "delivered" and is_overdue:
        order.status = "overdue"
        order.updated_at = now


def active_orders_reading(shopper_id: str) -> AnySelect:
    """The shopper's delivered or overdue orders (``active_order_ids``' orders), by id, as a
    statement to send with other reads; ``orders_of_rows`` makes them orders."""
    return OrderRepository.of_shopper_statement(shopper_id, ACTIVE_STATUSES)


def orders_of_rows(rows: Sequence[dict[str, Any]]) -> list[Order]:
    """Orders (known to no session) from rows of every column."""
    return [Order(**row) for row in rows]


def active_order_ids(session: Session, *, shopper_id: str) -> list[str]:
    return [row.id for row in OrderRepository(session).of_shopper(shopper_id, ACTIVE_STATUSES)]


# --- daily sweep parts -------------------------------------------------------------------------


def mark_overdue(session: Session, *, keys: list[tuple[str, str]], now: datetime) -> list[Order]:
    """The delivered orders among ``keys`` (an instalment of each just turned overdue) turn
    overdue; returns them, read afresh."""
    repository = OrderRepository(session)
    turned = repository.delivered_to_overdue(keys, now=now)
    session.expire_all()
    return repository.many(turned)


def mark_charged_off(session: Session, *, order: Order, now: datetime) -> None:
    """The daily sweep wrote off what was left of the order."""
    order.status = "charged_off"
    order.updated_at = now
    session.flush()


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


def delivery_confirmation(session: Session, *, order: Order) -> Literal["shopper", "automatic"]:
    return "automatic" if order.delivery_confirmation == "automatic" else "shopper"


def delivered_orders(session: Session) -> list[Order]:
    return OrderRepository(session).delivered()
