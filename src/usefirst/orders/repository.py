"""All SQL of orders and refunds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from usefirst.orders.models import Order, Refund


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
        rows = self.session.execute(
            select(Order.shopper_id, Order.id)
            .where(Order.status == "shipped", Order.shipped_at < moment)
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

    def in_call_queue(self) -> list[Order]:
        return list(
            self.session.scalars(
                select(Order)
                .where(Order.status == "overdue", Order.call_queue_since_on.is_not(None))
                .order_by(Order.id)
            )
        )

    def reported_to_bureau(self, reported_by: date) -> list[Order]:
        return list(
            self.session.scalars(
                select(Order)
                .where(
                    Order.bureau_reported_on.is_not(None), Order.bureau_reported_on <= reported_by
                )
                .order_by(Order.id)
            )
        )

    def delivered(self) -> list[Order]:
        return list(
            self.session.scalars(
                select(Order).where(Order.delivered_at.is_not(None)).order_by(Order.id)
            )
        )
