"""All SQL of orders and refunds."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Row,
    Select,
    Table,
    UpdateBase,
    and_,
    case,
    func,
    select,
    update,
)
from sqlalchemy.orm import Session

from usefirst.collections.repository import ever_delinquent
from usefirst.disputes.repository import open_dispute_on
from usefirst.kit.db import AnySelect, Part, in_chunks, in_list, pairs_in, row_values, rows_part
from usefirst.kit.personal_data import ShopperRecords, tables_of
from usefirst.orders import models
from usefirst.orders.models import Order, Refund

# Bound lists stay well below the drivers' parameter limits.
CHUNK = 1000
# Rows fetched at a time when a whole range of orders is streamed.
STREAM_ROWS = 500


# What a checkout saw of its order, in this order (the online signals' backfill, the signal
# study and its test oracle read these): keys, merchant, amount, time, device, IP, encrypted
# shipping address, decision outcome.
CHECKOUT_COLUMNS = (
    Order.id,
    Order.shopper_id,
    Order.merchant_id,
    Order.amount_minor,
    Order.created_at,
    Order.device_id,
    Order.ip,
    Order.shipping_address_encrypted,
    Order.decision_outcome,
)


def order_states_sql() -> str:
    """Every order's keys, merchant, creation time, amount, device, status and refunded amount,
    as a subquery for other domains' set-based SQL (``FROM {order_states_sql()} o``): what
    risk's counters are rebuilt from, read in one statement without naming the table."""
    return (
        "(SELECT shopper_id, id, merchant_id, created_at, amount_minor, device_id, status,"
        " refunded_minor FROM orders)"
    )


class OrderRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: Order | Refund) -> None:
        self.session.add(row)

    @staticmethod
    def insert_part(order: Order) -> Part:
        return rows_part(cast(Table, Order.__table__), [row_values(order)])

    def find(self, order_id: str) -> Order | None:
        return self.session.scalars(select(Order).where(Order.id == order_id)).first()

    @staticmethod
    def by_id_statement(order_id: str) -> AnySelect:
        """``find`` as a statement to send with other look-ups: every column of the order."""
        return select(*Order.__table__.columns).where(Order.id == order_id)

    @staticmethod
    def columns_write(order: Order, columns: Sequence[str]) -> UpdateBase:
        """The order's ``columns`` (as set on the object) written, as a part of one
        statement."""
        return (
            update(Order)
            .where(Order.shopper_id == order.shopper_id, Order.id == order.id)
            .values({name: getattr(order, name) for name in columns})
        )

    @staticmethod
    def others_with_tracking_number_statement(
        tracking_number: str, *, other_than: str, limit: int
    ) -> AnySelect:
        """``others_with_tracking_number`` as a statement to send with other reads."""
        return (
            select(Order.id, Order.shopper_id, Order.merchant_id)
            .where(Order.tracking_number == tracking_number, Order.id != other_than)
            .order_by(Order.id)
            .limit(limit)
        )

    def get(self, shopper_id: str, order_id: str) -> Order | None:
        return self.session.get(Order, (shopper_id, order_id))

    def lock(self, shopper_id: str, order_id: str) -> Order | None:
        # Filtered by the distribution column (shopper_id) as Citus requires for FOR UPDATE.
        return self.session.scalars(
            select(Order)
            .where(Order.shopper_id == shopper_id, Order.id == order_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one_or_none()

    @staticmethod
    def owned_statement(shopper_id: str, order_id: str) -> AnySelect:
        """The order's id if it is the shopper's (``kit.db.Lookup``)."""
        return select(Order.id).where(Order.shopper_id == shopper_id, Order.id == order_id)

    @staticmethod
    def lock_statement(shopper_id: str, order_id: str) -> AnySelect:
        """``lock`` as a statement to send with other look-ups (``kit.db.Lookup``): every
        column of the order, locked."""
        return (
            select(*Order.__table__.columns)
            .where(Order.shopper_id == shopper_id, Order.id == order_id)
            .with_for_update()
        )

    @staticmethod
    def of_shopper_statement(shopper_id: str, statuses: Sequence[str]) -> AnySelect:
        """``of_shopper`` as a statement to send with other reads: every column."""
        return (
            select(*Order.__table__.columns)
            .where(Order.shopper_id == shopper_id, Order.status.in_(statuses))
            .order_by(Order.id)
        )

    def of_shopper(self, shopper_id: str, statuses: Sequence[str]) -> list[Order]:
        return list(
            self.session.scalars(
                select(Order)
                .where(Order.shopper_id == shopper_id, Order.status.in_(statuses))
                .order_by(Order.id)
            )
        )

    def shipped_before(self, moment: datetime) -> list[tuple[str, str]]:
        """Orders shipped before ``moment`` and not yet confirmed, except those with an open
        dispute: a shopper who says the parcel never came is not made to owe for it by the
        clock (the countdown resumes when the dispute is decided for the merchant)."""
        rows = self.session.execute(
            select(Order.shopper_id, Order.id)
            .where(
                Order.status == "shipped",
                Order.shipped_at < moment,
                ~open_dispute_on(Order.shopper_id, Order.id),
            )
            .order_by(Order.shipped_at)
        ).all()
        return [(r[0], r[1]) for r in rows]

    def delivered(self) -> list[Order]:
        return list(
            self.session.scalars(
                select(Order).where(Order.delivered_at.is_not(None)).order_by(Order.id)
            )
        )

    # --- the daily sweep, set-based ----------------------------------------------------------

    def many(self, keys: Sequence[tuple[str, str]]) -> list[Order]:
        """The orders of (shopper_id, order_id) keys, in key order."""
        found: dict[tuple[str, str], Order] = {}
        for chunk in in_chunks(self.session, keys, size=CHUNK):
            for order in self.session.scalars(
                select(Order)
                .where(pairs_in(self.session, Order.shopper_id, Order.id, chunk))
                .execution_options(populate_existing=True)
            ):
                found[(order.shopper_id, order.id)] = order
        return [found[key] for key in keys if key in found]

    def shipped_to_delivered(
        self, keys: Sequence[tuple[str, str]], *, confirmation: str, now: datetime
    ) -> list[tuple[str, str]]:
        """Mark those of the orders still shipped delivered now; the keys of those marked."""
        delivered: list[tuple[str, str]] = []
        for chunk in in_chunks(self.session, keys, size=CHUNK):
            rows = self.session.execute(
                update(Order)
                .where(
                    pairs_in(self.session, Order.shopper_id, Order.id, chunk),
                    Order.status == "shipped",
                )
                .values(
                    status="delivered",
                    delivered_at=now,
                    delivery_confirmation=confirmation,
                    updated_at=now,
                )
                .returning(Order.shopper_id, Order.id)
                .execution_options(synchronize_session=False)
            ).all()
            delivered.extend((row[0], row[1]) for row in rows)
        return delivered

    def delivered_to_overdue(
        self, keys: Sequence[tuple[str, str]], *, now: datetime
    ) -> list[tuple[str, str]]:
        """Turn those of the orders that are delivered overdue; the keys of those that turned."""
        turned: list[tuple[str, str]] = []
        for chunk in in_chunks(self.session, keys, size=CHUNK):
            rows = self.session.execute(
                update(Order)
                .where(
                    pairs_in(self.session, Order.shopper_id, Order.id, chunk),
                    Order.status == "delivered",
                )
                .values(status="overdue", updated_at=now)
                .returning(Order.shopper_id, Order.id)
                .execution_options(synchronize_session=False)
            ).all()
            turned.extend((row[0], row[1]) for row in rows)
        return sorted(turned)

    # --- reads for risk's monitors and link graph --------------------------------------------

    def others_with_tracking_number(
        self, tracking_number: str, *, other_than: str, limit: int
    ) -> list[tuple[str, str, str]]:
        """Other orders with this (normalised) tracking number, by id: (order id, shopper id,
        merchant id)."""
        rows = self.session.execute(
            self.others_with_tracking_number_statement(
                tracking_number, other_than=other_than, limit=limit
            )
        ).all()
        return [(row[0], row[1], row[2]) for row in rows]

    def shoppers_with_reused_tracking_numbers(
        self, *, shipped_since: datetime
    ) -> list[tuple[str, str]]:
        """(shopper id, tracking number) of the orders whose tracking number is on more than one
        order shipped since ``shipped_since``."""
        # Stored normalised (migration 0020): equal numbers compare equal.
        reused = (
            select(Order.tracking_number)
            .where(Order.tracking_number.is_not(None), Order.shipped_at >= shipped_since)
            .group_by(Order.tracking_number)
            .having(func.count() > 1)
        )
        rows = self.session.execute(
            select(Order.shopper_id, Order.tracking_number).where(
                Order.tracking_number.in_(reused.scalar_subquery())
            )
        ).all()
        return [(row[0], row[1] or "") for row in rows]

    def facts_of_shoppers_created_since(
        self, shopper_ids: Sequence[str], *, since: datetime, items_from_minor: int = 0
    ) -> Sequence[Row[*tuple[Any, ...]]]:
        """What the link graph scores of the shoppers' orders created since ``since`` (shopper,
        id, merchant, status, amounts, items, tracking number, shipping, delivery and creation
        times), by
        shopper and id: columns, not orders, so that thousands of them load quickly. Items only
        of orders of at least ``items_from_minor`` (None for the others: not sent, not decoded)."""
        return self.session.execute(
            select(
                Order.shopper_id,
                Order.id,
                Order.merchant_id,
                Order.status,
                Order.amount_minor,
                Order.refunded_minor,
                case((Order.amount_minor >= items_from_minor, Order.items), else_=None).label(
                    "items"
                ),
                Order.tracking_number,
                Order.shipped_at,
                Order.delivered_at,
                Order.created_at,
            )
            .where(in_list(self.session, Order.shopper_id, shopper_ids), Order.created_at >= since)
            .order_by(Order.shopper_id, Order.id)
        ).all()

    def placed_between(self, *, since: datetime, until: datetime) -> Iterator[Any]:
        """Every order placed in [since, until), oldest first (then by id), with what its
        checkout saw (``CHECKOUT_COLUMNS``): one statement, streamed ``STREAM_ROWS`` rows at a
        time."""
        statement = (
            select(*CHECKOUT_COLUMNS)
            .where(Order.created_at >= since, Order.created_at < until)
            .order_by(Order.created_at, Order.id)
            .execution_options(yield_per=STREAM_ROWS)
        )
        yield from self.session.execute(statement)

    def of_merchant_among(
        self, order_ids: Sequence[str], *, merchant_id: str, statuses: Sequence[str]
    ) -> list[Order]:
        """Those of the orders that are the merchant's and in one of ``statuses``."""
        return list(
            self.session.scalars(
                select(Order).where(
                    Order.id.in_(order_ids),
                    Order.merchant_id == merchant_id,
                    Order.status.in_(statuses),
                )
            )
        )

    def merchant_books(
        self, *, since: datetime, recent_from: datetime, first_instalment_due: Select[str, str]
    ) -> list[MerchantBook]:
        """Per merchant with orders created since ``since``, by merchant id: its pay-later orders
        lent (not declined, cancelled or held) and their amounts, and those of its orders whose
        first instalment came due (``first_instalment_due``: the (shopper id, order id) of those,
        from the repayment repository) and of them those that became delinquent, each counted
        from ``recent_from`` on and before it."""
        due = first_instalment_due.subquery()
        lent = Order.status.not_in(("declined", "cancelled", "review", "step_up"))
        is_recent = Order.created_at >= recent_from
        came_due = due.c.order_id.is_not(None)
        defaulted = and_(came_due, ever_delinquent(Order.shopper_id, Order.id))
        rows = self.session.execute(
            select(
                Order.merchant_id,
                func.sum(case((and_(lent, is_recent), 1), else_=0)),
                func.sum(case((and_(lent, is_recent), Order.amount_minor), else_=0)),
                func.sum(case((and_(lent, ~is_recent), 1), else_=0)),
                func.sum(case((and_(lent, ~is_recent), Order.amount_minor), else_=0)),
                func.sum(case((and_(came_due, is_recent), 1), else_=0)),
                func.sum(case((and_(defaulted, is_recent), 1), else_=0)),
                func.sum(case((and_(came_due, ~is_recent), 1), else_=0)),
                func.sum(case((and_(defaulted, ~is_recent), 1), else_=0)),
            )
            .outerjoin(due, and_(due.c.shopper_id == Order.shopper_id, due.c.order_id == Order.id))
            .where(Order.created_at >= since)
            .group_by(Order.merchant_id)
            .order_by(Order.merchant_id)
        ).all()
        return [MerchantBook(row[0], *(int(value or 0) for value in row[1:])) for row in rows]

    def shopper_records(self) -> ShopperRecords:
        """orders' rows about shoppers, for the privacy flow's export and erasure."""
        return ShopperRecords.of(
            self.session, tables_of(models), plaintext_pii={"orders": ("device_id", "ip")}
        )

    def shopper_ids_of_orders(self, order_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        ordered = sorted(set(order_ids))
        for start in range(0, len(ordered), 1_000):
            found.update(
                self.session.scalars(
                    select(Order.shopper_id).where(Order.id.in_(ordered[start : start + 1_000]))
                )
            )
        return found


@dataclass(frozen=True)
class MerchantBook:
    """A merchant's pay-later orders over a period, split at a date (see
    :meth:`OrderRepository.merchant_books`)."""

    merchant_id: str
    recent_orders: int
    recent_minor: int
    earlier_orders: int
    earlier_minor: int
    recent_due: int
    recent_defaulted: int
    earlier_due: int
    earlier_defaulted: int
