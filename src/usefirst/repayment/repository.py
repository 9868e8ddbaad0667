"""All SQL of repayment: instalments, payments, allocations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from usefirst.repayment.models import Allocation, Instalment, Payment

OPEN_STATUSES = ("pending", "overdue")
# Charged-off debt is still owed: payments reach it too, and post as recoveries.
COLLECTABLE_STATUSES = ("pending", "overdue", "charged_off")


class RepaymentRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: Instalment | Payment | Allocation) -> None:
        self.session.add(row)

    def add_all(self, rows: Sequence[Instalment | Payment | Allocation]) -> None:
        self.session.add_all(rows)

    def instalments_of_order(
        self, shopper_id: str, order_id: str, *, for_update: bool = False
    ) -> list[Instalment]:
        statement = (
            select(Instalment)
            .where(Instalment.shopper_id == shopper_id, Instalment.order_id == order_id)
            .order_by(Instalment.seq)
        )
        if for_update:
            statement = statement.with_for_update()
        return list(self.session.scalars(statement))

    def instalments_of_orders(self, shopper_id: str, order_ids: Sequence[str]) -> list[Instalment]:
        if not order_ids:
            return []
        return list(
            self.session.scalars(
                select(Instalment)
                .where(Instalment.shopper_id == shopper_id, Instalment.order_id.in_(order_ids))
                .order_by(Instalment.order_id, Instalment.seq)
            )
        )

    def open_instalments(
        self, shopper_id: str, *, order_id: str | None = None, for_update: bool = False
    ) -> list[Instalment]:
        """Unpaid instalments of delivered orders (charged-off ones too), oldest due first."""
        statement = (
            select(Instalment)
            .where(
                Instalment.shopper_id == shopper_id,
                Instalment.status.in_(COLLECTABLE_STATUSES),
                (
                    Instalment.principal_minor
                    + Instalment.fees_minor
                    + Instalment.late_fees_minor
                    - Instalment.paid_principal_minor
                    - Instalment.paid_fees_minor
                )
                > 0,
            )
            .order_by(Instalment.due_on, Instalment.order_id, Instalment.seq)
        )
        if order_id is not None:
            statement = statement.where(Instalment.order_id == order_id)
        if for_update:
            statement = statement.with_for_update()
        return list(self.session.scalars(statement))

    def overdue_for_fees(self, before_on: date) -> list[Instalment]:
        """Overdue instalments due before ``before_on``, locked, oldest first."""
        return list(
            self.session.scalars(
                select(Instalment)
                .where(Instalment.status == "overdue", Instalment.due_on < before_on)
                .order_by(Instalment.shopper_id, Instalment.order_id, Instalment.seq)
                .with_for_update()
            )
        )

    def due_on(self, due_on: date) -> list[Instalment]:
        return list(
            self.session.scalars(
                select(Instalment)
                .where(Instalment.status.in_(OPEN_STATUSES), Instalment.due_on == due_on)
                .order_by(Instalment.shopper_id, Instalment.order_id, Instalment.seq)
            )
        )

    def oldest_overdue_due_on(self) -> list[tuple[str, str, date]]:
        rows = self.session.execute(
            select(Instalment.shopper_id, Instalment.order_id, func.min(Instalment.due_on))
            .where(Instalment.status == "overdue")
            .group_by(Instalment.shopper_id, Instalment.order_id)
        ).all()
        return [(r[0], r[1], r[2]) for r in rows if r[2] is not None]

    def has_overdue(self, shopper_id: str) -> bool:
        return (
            self.session.scalar(
                select(func.count())
                .select_from(Instalment)
                .where(Instalment.shopper_id == shopper_id, Instalment.status == "overdue")
            )
            or 0
        ) > 0

    def newly_overdue(self, before_on: date) -> list[tuple[str, str]]:
        rows = self.session.execute(
            select(Instalment.shopper_id, Instalment.order_id)
            .where(Instalment.status == "pending", Instalment.due_on < before_on)
            .distinct()
        ).all()
        return [(r[0], r[1]) for r in rows]

    def mark_overdue(self, before_on: date, shopper_ids: Sequence[str]) -> int:
        result = self.session.execute(
            update(Instalment)
            .where(
                Instalment.shopper_id.in_(shopper_ids),
                Instalment.status == "pending",
                Instalment.due_on < before_on,
            )
            .values(status="overdue", was_overdue=True)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0))

    def outstanding_by_shopper(self) -> dict[str, int]:
        remaining = (
            Instalment.principal_minor
            + Instalment.fees_minor
            + Instalment.late_fees_minor
            - Instalment.paid_principal_minor
            - Instalment.paid_fees_minor
        )
        rows = self.session.execute(
            select(Instalment.shopper_id, func.sum(remaining))
            .where(Instalment.status.in_(OPEN_STATUSES))
            .group_by(Instalment.shopper_id)
        ).all()
        return {r[0]: int(r[1]) for r in rows if int(r[1]) != 0}

    def payments_of(self, shopper_id: str) -> list[Payment]:
        return list(
            self.session.scalars(
                select(Payment).where(Payment.shopper_id == shopper_id).order_by(Payment.id)
            )
        )

    def allocations_of_payment(self, shopper_id: str, payment_id: str) -> list[Allocation]:
        return list(
            self.session.scalars(
                select(Allocation)
                .where(Allocation.shopper_id == shopper_id, Allocation.payment_id == payment_id)
                .order_by(Allocation.id)
            )
        )

    def allocations_of_order(self, shopper_id: str, order_id: str) -> list[Allocation]:
        return list(
            self.session.scalars(
                select(Allocation)
                .where(Allocation.shopper_id == shopper_id, Allocation.order_id == order_id)
                .order_by(Allocation.created_at, Allocation.id)
            )
        )
