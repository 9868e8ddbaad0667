"""All SQL of orders and refunds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, tuple_, update
from sqlalchemy.orm import Session

from usefirst.disputes.repository import open_dispute_on
from usefirst.orders.models import Order, Refund

# Bound lists stay well below the drivers' parameter limits.
CHUNK = 1000


class OrderRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: Order | Refund) -> None:
        self.session.add(row)

    def find(self, order_id: str) -> Order | None:
        return self.session.scalars(select(Order).where(Order.id == order_id)).first()

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

    def refunds_of(self, shopper_id: str, order_id: str) -> list[Refund]:
        return list(
            self.session.scalars(
                select(Refund)
                .where(Refund.shopper_id == shopper_id, Refund.order_id == order_id)
                .order_by(Refund.id)
            )
        )

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
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            for order in self.session.scalars(
                select(Order)
                .where(tuple_(Order.shopper_id, Order.id).in_(chunk))
                .execution_options(populate_existing=True)
            ):
                found[(order.shopper_id, order.id)] = order
        return [found[key] for key in keys if key in found]

    def shipped_to_delivered(
        self, keys: Sequence[tuple[str, str]], *, confirmation: str, now: datetime
    ) -> list[tuple[str, str]]:
        """Mark those of the orders still shipped delivered now; the keys of those marked."""
        delivered: list[tuple[str, str]] = []
        for start in range(0, len(keys), CHUNK):
            rows = self.session.execute(
                update(Order)
                .where(
                    tuple_(Order.shopper_id, Order.id).in_(keys[start : start + CHUNK]),
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
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            rows = self.session.execute(
                update(Order)
                .where(tuple_(Order.shopper_id, Order.id).in_(chunk), Order.status == "delivered")
                .values(status="overdue", updated_at=now)
                .returning(Order.shopper_id, Order.id)
                .execution_options(synchronize_session=False)
            ).all()
            turned.extend((row[0], row[1]) for row in rows)
        return sorted(turned)
