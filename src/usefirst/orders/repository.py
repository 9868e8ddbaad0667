"""All SQL of orders and refunds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import Date, bindparam, select, text, tuple_, update
from sqlalchemy.orm import Session

from usefirst.kit.db import UTCDateTime
from usefirst.kit.personal_data import ShopperRecords, tables_of
from usefirst.orders import models
from usefirst.orders.models import LateFeeWaiver, Order, Refund

# Bound lists stay well below the drivers' parameter limits.
CHUNK = 1000


class OrderRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: Order | Refund | LateFeeWaiver) -> None:
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
                Order.status == "shipped", Order.shipped_at < moment, Order.is_disputed.is_(False)
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

    def escalate_overdue(
        self,
        *,
        business_on: date,
        call_queue_day: int | None,
        bureau_report_day: int | None,
        now: datetime,
    ) -> tuple[int, int]:
        """One UPDATE for the order-level steps every overdue order may reach today: the date of
        first delinquency (the day after the oldest overdue instalment fell due), the call queue
        and the bureau report, each by the order's days past due (since its oldest overdue
        instalment fell due, less the days a dispute paused). Disputed orders reach no step.
        Only orders where something changes are written. Returns (entered the call queue,
        reported to the bureau)."""
        is_postgresql = self.session.get_bind().dialect.name == "postgresql"
        if is_postgresql:
            days_since_due = "CAST(:today AS date) - x.due_on"
            day_after_due = "s.due_on + 1"
        else:
            days_since_due = "CAST(julianday(:today) - julianday(x.due_on) AS INTEGER)"
            day_after_due = "date(s.due_on, '+1 day')"

        def reached(flag: str, day: int | None) -> str:
            if day is None:
                return "1 = 0"
            return (
                f"NOT o.is_disputed AND o.{flag} IS NULL"
                f" AND {days_since_due} - o.dispute_paused_days >= {int(day)}"
            )

        statement = text(
            f"""
WITH oldest AS (
    SELECT shopper_id, order_id, min(due_on) AS due_on
    FROM instalments
    WHERE status = 'overdue' AND due_on IS NOT NULL
    GROUP BY shopper_id, order_id
)
UPDATE orders SET
    first_delinquent_on = COALESCE(orders.first_delinquent_on, {day_after_due}),
    call_queue_since_on = CASE WHEN s.reaches_call_queue THEN :today
                               ELSE orders.call_queue_since_on END,
    bureau_reported_on = CASE WHEN s.reaches_bureau THEN :today
                              ELSE orders.bureau_reported_on END,
    updated_at = CASE WHEN s.reaches_call_queue OR s.reaches_bureau THEN :now
                      ELSE orders.updated_at END
FROM (
    SELECT o.shopper_id, o.id, x.due_on,
           {reached("call_queue_since_on", call_queue_day)} AS reaches_call_queue,
           {reached("bureau_reported_on", bureau_report_day)} AS reaches_bureau
    FROM oldest x
    JOIN orders o ON o.shopper_id = x.shopper_id AND o.id = x.order_id
) s
WHERE orders.shopper_id = s.shopper_id AND orders.id = s.id
  AND (orders.first_delinquent_on IS NULL OR s.reaches_call_queue OR s.reaches_bureau)
RETURNING orders.call_queue_since_on, orders.bureau_reported_on
"""
        ).bindparams(bindparam("today", type_=Date()), bindparam("now", type_=UTCDateTime()))
        rows = self.session.execute(statement, {"today": business_on, "now": now}).all()
        today = business_on.isoformat()  # SQLite returns the dates of a text() as text
        return (
            sum(1 for row in rows if str(row[0]) == today),
            sum(1 for row in rows if str(row[1]) == today),
        )

    def past_due_at_least(self, *, business_on: date, days: int) -> list[tuple[str, str, int]]:
        """(shopper_id, order_id, days past due) of the undisputed overdue orders at least
        ``days`` past due (since the oldest overdue instalment, less the paused days).

        Paused days only lower the count, so such an order has an overdue instalment due on or
        before ``business_on - days``: reading only those (an index range) keeps the many
        recently overdue orders out, and the order's oldest instalment is always among them."""
        is_postgresql = self.session.get_bind().dialect.name == "postgresql"
        if is_postgresql:
            days_since_due = "CAST(:today AS date) - min(i.due_on)"
        else:
            days_since_due = "CAST(julianday(:today) - julianday(min(i.due_on)) AS INTEGER)"
        statement = text(
            f"""
SELECT o.shopper_id, o.id, {days_since_due} - o.dispute_paused_days AS days_past_due
FROM instalments i
JOIN orders o ON o.shopper_id = i.shopper_id AND o.id = i.order_id
WHERE i.status = 'overdue' AND i.due_on <= :latest_due_on AND NOT o.is_disputed
GROUP BY o.shopper_id, o.id, o.dispute_paused_days
HAVING {days_since_due} - o.dispute_paused_days >= :days
ORDER BY o.shopper_id, o.id
"""
        ).bindparams(bindparam("today", type_=Date()), bindparam("latest_due_on", type_=Date()))
        rows = self.session.execute(
            statement,
            {
                "today": business_on,
                "days": days,
                "latest_due_on": business_on - timedelta(days=days),
            },
        ).all()
        return [(row[0], row[1], int(row[2])) for row in rows]

    def shopper_records(self) -> ShopperRecords:
        """orders' rows about shoppers, for the privacy flow's export and erasure."""
        return ShopperRecords.of(
            self.session,
            tables_of(models),
            plaintext_pii={"orders": ("device_id", "ip"), "late_fee_waivers": ("reason",)},
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
