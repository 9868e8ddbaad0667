"""All SQL of repayment: instalments, payments, allocations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    Select,
    Table,
    and_,
    bindparam,
    func,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.sql.dml import UpdateBase

from usefirst.collections.models import HARDSHIP_HOLDS
from usefirst.disputes.repository import DISPUTE_PAUSES
from usefirst.kit.db import (
    AnySelect,
    Part,
    in_chunks,
    in_list,
    insert_rows,
    on_citus,
    pairs_in,
    row_values,
    rows_part,
)
from usefirst.kit.personal_data import ShopperRecords, tables_of
from usefirst.repayment import models
from usefirst.repayment.models import Allocation, Instalment, InstalmentChange, Payment

OPEN_STATUSES = ("pending", "overdue")
# Bound lists stay well below the drivers' parameter limits.
CHUNK = 1000
# Charged-off debt is still owed: payments reach it too, and post as recoveries.
COLLECTABLE_STATUSES = ("pending", "overdue", "charged_off")


def _open_of(order_id: str | None) -> list[ColumnElement[bool]]:
    """What makes a shopper's instalment open (the caller filters by the shopper, in the
    statement itself, where the layout test sees that a lock stays on one shard)."""
    conditions = [
        Instalment.status.in_(COLLECTABLE_STATUSES),
        (
            Instalment.principal_minor
            + Instalment.fees_minor
            + Instalment.late_fees_minor
            - Instalment.paid_principal_minor
            - Instalment.paid_fees_minor
        )
        > 0,
    ]
    if order_id is not None:
        conditions.append(Instalment.order_id == order_id)
    return conditions


# Oldest due first: the order the waterfall pays in.
_OLDEST = (Instalment.due_on, Instalment.order_id, Instalment.seq)


class RepaymentRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: Instalment | Payment | Allocation | InstalmentChange) -> None:
        self.session.add(row)

    def add_all(self, rows: Sequence[Instalment | Payment | Allocation | InstalmentChange]) -> None:
        self.session.add_all(rows)

    def instalment_changes(self, shopper_id: str, order_id: str) -> list[InstalmentChange]:
        return list(
            self.session.scalars(
                select(InstalmentChange)
                .where(
                    InstalmentChange.shopper_id == shopper_id,
                    InstalmentChange.order_id == order_id,
                )
                .order_by(InstalmentChange.changed_at, InstalmentChange.id)
            )
        )

    @staticmethod
    def insert_part(instalments: Sequence[Instalment]) -> Part:
        return rows_part(
            cast(Table, Instalment.__table__), [row_values(row) for row in instalments]
        )

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

    def instalments_of_keys(self, keys: Sequence[tuple[str, str]]) -> list[Instalment]:
        """The instalments of the (shopper_id, order_id) keys, by order and seq."""
        rows: list[Instalment] = []
        for chunk in in_chunks(self.session, keys, size=CHUNK):
            rows.extend(
                self.session.scalars(
                    select(Instalment)
                    .where(
                        pairs_in(self.session, Instalment.shopper_id, Instalment.order_id, chunk)
                    )
                    .order_by(Instalment.shopper_id, Instalment.order_id, Instalment.seq)
                    .execution_options(populate_existing=True)
                )
            )
        return rows

    def due_instalments(self, shopper_ids: list[str], on: date) -> list[Instalment]:
        """Live unpaid instalments of these shoppers due on or before ``on`` (auto-debit)."""
        if not shopper_ids:
            return []
        return list(
            self.session.scalars(
                select(Instalment)
                .where(
                    Instalment.shopper_id.in_(shopper_ids),
                    Instalment.status.in_(("pending", "overdue")),
                    Instalment.due_on <= on,
                    (
                        Instalment.principal_minor
                        + Instalment.fees_minor
                        + Instalment.late_fees_minor
                        - Instalment.paid_principal_minor
                        - Instalment.paid_fees_minor
                    )
                    > 0,
                )
                .order_by(Instalment.shopper_id, Instalment.due_on, Instalment.order_id)
            )
        )

    def open_instalments(
        self, shopper_id: str, *, order_id: str | None = None, for_update: bool = False
    ) -> list[Instalment]:
        """Unpaid instalments of delivered orders (charged-off ones too), oldest due first."""
        statement = (
            select(Instalment)
            .where(Instalment.shopper_id == shopper_id, *_open_of(order_id))
            .order_by(*_OLDEST)
        )
        if for_update:
            statement = statement.with_for_update()
        return list(self.session.scalars(statement))

    @staticmethod
    def open_instalments_statement(shopper_id: str, order_id: str | None) -> AnySelect:
        """``open_instalments`` locked, every column, as a statement to send with other reads
        (``kit.db.rows_together``)."""
        return (
            select(*Instalment.__table__.columns)
            .where(Instalment.shopper_id == shopper_id, *_open_of(order_id))
            .order_by(*_OLDEST)
            .with_for_update()
        )

    @staticmethod
    def order_instalments_statement(
        shopper_id: str, order_id: str, *, for_update: bool = False
    ) -> AnySelect:
        """``instalments_of_order``, every column, as a statement to send with other reads."""
        statement = (
            select(*Instalment.__table__.columns)
            .where(Instalment.shopper_id == shopper_id, Instalment.order_id == order_id)
            .order_by(Instalment.seq)
        )
        return statement.with_for_update() if for_update else statement

    @staticmethod
    def order_standings_statement(shopper_id: str, closed: Sequence[str]) -> AnySelect:
        """Per order of the shopper: whether an instalment is overdue, whether all are in
        ``closed`` statuses."""
        return (
            select(
                Instalment.order_id,
                func.bool_or(Instalment.status == "overdue").label("is_overdue"),
                func.bool_and(Instalment.status.in_(closed)).label("is_closed"),
            )
            .where(Instalment.shopper_id == shopper_id)
            .group_by(Instalment.order_id)
        )

    @staticmethod
    def activation_writes(rows: Sequence[Instalment]) -> list[UpdateBase]:
        """Activated instalments (locked rows, their due dates and statuses set) as parts of
        one statement."""
        return [
            update(Instalment)
            .where(
                Instalment.shopper_id == row.shopper_id,
                Instalment.order_id == row.order_id,
                Instalment.seq == row.seq,
            )
            .values(status=row.status, due_on=row.due_on)
            for row in rows
        ]

    @staticmethod
    def left_elsewhere_statement(shopper_id: str, order_id: str) -> AnySelect:
        """What the order's instalments other than its open ones (``open_instalments``) still
        owe (remaining principal and fees), as a statement to send with other reads."""
        return select(
            func.coalesce(
                func.sum(
                    Instalment.principal_minor
                    + Instalment.fees_minor
                    + Instalment.late_fees_minor
                    - Instalment.paid_principal_minor
                    - Instalment.paid_fees_minor
                ),
                0,
            ).label("left_minor")
        ).where(
            Instalment.shopper_id == shopper_id,
            Instalment.order_id == order_id,
            ~and_(*_open_of(order_id)),
        )

    def adopt(self, rows: Sequence[Instalment]) -> None:
        """Instalments built from rows read with other statements, known to the session as if
        it had read them (their changes are flushed as updates)."""
        for row in rows:
            make_transient_to_detached(row)
            self.session.add(row)

    @staticmethod
    def payment_writes(
        payment: Payment, allocations: Sequence[Allocation], changed: Sequence[Instalment]
    ) -> list[UpdateBase]:
        """A payment, its allocations and the instalments they paid (locked rows, written with
        their new values) as parts of one statement (``kit.db.write_as_one``)."""
        parts: list[UpdateBase] = [
            insert_rows(cast(Table, Payment.__table__), [row_values(payment)]),
        ]
        if allocations:
            parts.append(
                insert_rows(
                    cast(Table, Allocation.__table__), [row_values(row) for row in allocations]
                )
            )
        for row in changed:
            parts.append(
                update(Instalment)
                .where(
                    Instalment.shopper_id == row.shopper_id,
                    Instalment.order_id == row.order_id,
                    Instalment.seq == row.seq,
                )
                .values(
                    status=row.status,
                    paid_principal_minor=row.paid_principal_minor,
                    paid_fees_minor=row.paid_fees_minor,
                    settled_on=row.settled_on,
                )
            )
        return parts

    # --- the daily sweep's late fees, set-based ---------------------------------------------

    def compute_late_fees(
        self,
        *,
        before_on: date,
        business_on: date,
        fee_bps_per_day: int,
        cap_bps_of_principal: int,
        apr_cap_bps: int,
    ) -> None:
        """Fill the temporary table ``late_fee_run`` with the day's late fee of every overdue
        instalment due before ``before_on`` (shopper_id, order_id, seq, currency, fee).

        Per order the room is the lesser of the late-fee cap (``cap_bps_of_principal`` of the
        principal net of refunds, less late fees ever charged, waived ones included) and the APR
        allowance over the days since delivery (less plan fees and late fees so far). Each
        instalment, lowest seq first, takes ``fee_bps_per_day`` of its unpaid principal while
        room is left: the running sum of the wanted fees before it is what the earlier ones took.
        Undelivered and disputed orders, and orders a hardship request holds, get nothing.
        ``basis_points_of`` rounds half up: ``(x · bps · 2 + 10000) / 20000`` in integers."""
        is_postgresql = self.session.get_bind().dialect.name == "postgresql"
        least, greatest = ("LEAST", "GREATEST") if is_postgresql else ("min", "max")
        if is_postgresql:
            days_on_book = "CAST(:today AS date) - CAST(o.delivered_at AT TIME ZONE 'UTC' AS date)"
        else:
            days_on_book = "CAST(julianday(:today) - julianday(date(o.delivered_at)) AS INTEGER)"
        on_commit = " ON COMMIT DROP" if is_postgresql else ""
        # Each order's sums through its primary key: far less than aggregating the table. A
        # Citus cluster does not plan the lateral join over the CTE's rows: there the orders'
        # rows are joined and grouped (by the shard key, so each shard groups its own).
        if is_postgresql and not on_citus(self.session.connection()):
            totals = """
    SELECT d.shopper_id, d.order_id, t.late_so_far, t.plan_fees
    FROM (SELECT DISTINCT shopper_id, order_id FROM overdue) d
    CROSS JOIN LATERAL (
        SELECT sum(a.late_fees_minor + a.late_fees_waived_minor) AS late_so_far,
               sum(a.fees_minor) AS plan_fees
        FROM instalments a
        WHERE a.shopper_id = d.shopper_id AND a.order_id = d.order_id
    ) t"""
        else:
            totals = """
    SELECT a.shopper_id, a.order_id,
           sum(a.late_fees_minor + a.late_fees_waived_minor) AS late_so_far,
           sum(a.fees_minor) AS plan_fees
    FROM instalments a
    JOIN (SELECT DISTINCT shopper_id, order_id FROM overdue) d
      ON a.shopper_id = d.shopper_id AND a.order_id = d.order_id
    GROUP BY a.shopper_id, a.order_id"""
        statement = text(
            f"""
CREATE TEMPORARY TABLE late_fee_run{on_commit} AS
WITH overdue AS (
    SELECT shopper_id, order_id, seq,
           ((principal_minor - paid_principal_minor) * CAST(:fee_bps AS BIGINT) * 2 + 10000)
               / 20000 AS wanted
    FROM instalments
    WHERE status = 'overdue' AND due_on < :before
),
totals AS ({totals}),
rooms AS (
    SELECT o.shopper_id, o.id AS order_id, o.currency,
           {least}(
               ((o.amount_minor - o.refunded_minor) * CAST(:cap_bps AS BIGINT) * 2 + 10000) / 20000
                   - t.late_so_far,
               (o.amount_minor - o.refunded_minor) * CAST(:apr_bps AS BIGINT)
                   * {greatest}({days_on_book}, 0) / 3650000 - t.plan_fees - t.late_so_far
           ) AS room
    FROM totals t
    JOIN orders o ON o.shopper_id = t.shopper_id AND o.id = t.order_id
    LEFT JOIN {DISPUTE_PAUSES} d ON d.shopper_id = o.shopper_id AND d.order_id = o.id
    LEFT JOIN {HARDSHIP_HOLDS} h ON h.shopper_id = o.shopper_id AND h.order_id = o.id
    WHERE d.is_disputed IS NOT TRUE AND h.order_id IS NULL AND o.delivered_at IS NOT NULL
)
SELECT v.shopper_id, v.order_id, v.seq, r.currency,
       {greatest}(0, {least}(v.wanted, r.room - (
           sum(v.wanted) OVER (PARTITION BY v.shopper_id, v.order_id ORDER BY v.seq) - v.wanted
       ))) AS fee
FROM overdue v
JOIN rooms r ON r.shopper_id = v.shopper_id AND r.order_id = v.order_id
"""
        ).bindparams(
            bindparam("before", type_=Date()),
            bindparam("today", type_=Date()),
            bindparam("fee_bps", type_=BigInteger()),
            bindparam("cap_bps", type_=BigInteger()),
            bindparam("apr_bps", type_=BigInteger()),
        )
        self.session.execute(
            statement,
            {
                "before": before_on,
                "today": business_on,
                "fee_bps": fee_bps_per_day,
                "cap_bps": cap_bps_of_principal,
                "apr_bps": apr_cap_bps,
            },
        )
        if is_postgresql:  # planner statistics for the joins that follow
            self.session.execute(text("ANALYZE late_fee_run"))

    # The day's fee of each charged order, as ``ledger.service.post_receivable_charges`` reads it.
    LATE_FEE_CHARGES = (
        "SELECT shopper_id, order_id, currency, sum(fee) AS amount_minor"
        " FROM late_fee_run WHERE fee > 0 GROUP BY shopper_id, order_id, currency"
    )

    def apply_late_fees(self) -> tuple[int, int, int]:
        """Add the fees of ``late_fee_run`` to the instalments; return (instalments charged,
        orders charged, total fee)."""
        self.session.execute(
            text(
                """
UPDATE instalments SET late_fees_minor = instalments.late_fees_minor + f.fee
FROM late_fee_run f
WHERE f.fee > 0 AND instalments.shopper_id = f.shopper_id
  AND instalments.order_id = f.order_id AND instalments.seq = f.seq
"""
            )
        )
        instalments, orders, total = self.session.execute(
            text(
                "SELECT count(*), count(DISTINCT shopper_id || ' ' || order_id),"
                " coalesce(sum(fee), 0) FROM late_fee_run WHERE fee > 0"
            )
        ).one()
        return int(instalments), int(orders), int(total)

    def drop_late_fee_run(self) -> None:
        self.session.execute(text("DROP TABLE late_fee_run"))

    def has_overdue_before(self, before_on: date) -> bool:
        return (
            self.session.scalar(
                select(Instalment.shopper_id)
                .where(Instalment.status == "overdue", Instalment.due_on < before_on)
                .limit(1)
            )
            is not None
        )

    def overdue_shoppers_query(self, before_on: date) -> Select[Any]:
        """The shoppers with an overdue instalment due before ``before_on`` (a subquery)."""
        return select(Instalment.shopper_id).where(
            Instalment.status == "overdue", Instalment.due_on < before_on
        )

    def due_on(self, due_on: date) -> list[Instalment]:
        return list(
            self.session.scalars(
                select(Instalment)
                .where(Instalment.status.in_(OPEN_STATUSES), Instalment.due_on == due_on)
                .order_by(Instalment.shopper_id, Instalment.order_id, Instalment.seq)
            )
        )

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
                .order_by(Allocation.created_at, Allocation.id)
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

    # --- reads for risk's monitors and link graph --------------------------------------------

    def orders_with_first_instalment_missed(self) -> list[tuple[str, str]]:
        """(shopper id, order id) of the orders whose first instalment is overdue with nothing
        paid, by shopper and order."""
        rows = self.session.execute(
            select(Instalment.shopper_id, Instalment.order_id)
            .where(
                Instalment.seq == 1,
                Instalment.status == "overdue",
                Instalment.paid_principal_minor == 0,
                Instalment.paid_fees_minor == 0,
            )
            .order_by(Instalment.shopper_id, Instalment.order_id)
        ).all()
        return [(row[0], row[1]) for row in rows]

    def first_instalments_due_before(self, before_on: date) -> Select[str, str]:
        """(shopper id, order id) of the orders whose first instalment came due before
        ``before_on`` and was not cancelled (a subquery)."""
        return select(Instalment.shopper_id, Instalment.order_id).where(
            Instalment.seq == 1,
            Instalment.due_on.is_not(None),
            Instalment.due_on < before_on,
            Instalment.status != "cancelled",
        )

    def paid_principal_by_order(self, shopper_ids: Sequence[str]) -> dict[str, int]:
        """The principal paid on each of the shoppers' orders (by order id)."""
        rows = self.session.execute(
            select(Instalment.order_id, func.sum(Instalment.paid_principal_minor))
            .where(in_list(self.session, Instalment.shopper_id, shopper_ids))
            .group_by(Instalment.order_id)
        ).all()
        return {row[0]: int(row[1] or 0) for row in rows}

    def shopper_records(self) -> ShopperRecords:
        """repayment's rows about shoppers, for the privacy flow's export and erasure."""
        return ShopperRecords.of(self.session, tables_of(models))
