"""All SQL of collections: orders in collections, contact attempts, legal cases, bureau files,
late-fee waivers and the sweep's record of swept dates; and how other domains read whether an
order ever fell behind or was charged off (``ever_delinquent``, ``ever_delinquent_sql``,
``charged_off``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    ColumnExpressionArgument,
    Date,
    Integer,
    String,
    bindparam,
    exists,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from usefirst.collections import models
from usefirst.collections.models import (
    HARDSHIP_HOLDS,
    BureauFile,
    ContactAttempt,
    DelinquentOrder,
    HardshipRequest,
    LateFeeWaiver,
    LegalCase,
    SweepRun,
    SweepStep,
)
from usefirst.disputes.repository import DISPUTE_PAUSES
from usefirst.identity.models import Shopper
from usefirst.kit.db import UTCDateTime
from usefirst.kit.ids import new_id
from usefirst.kit.personal_data import ShopperRecords, tables_of
from usefirst.repayment.models import Instalment

# work_mem of the daily sweep's transaction on PostgreSQL (see ``raise_work_mem_for_sweep``).
SWEEP_WORK_MEM = "64MB"


def ever_delinquent(
    shopper_id: ColumnExpressionArgument[str], order_id: ColumnExpressionArgument[str]
) -> ColumnElement[bool]:
    """Whether the order of these columns ever fell behind (it has a date of first delinquency),
    as a clause for other domains' queries."""
    return exists().where(
        DelinquentOrder.shopper_id == shopper_id,
        DelinquentOrder.order_id == order_id,
        DelinquentOrder.first_delinquent_on.is_not(None),
    )


def ever_delinquent_sql(order_alias: str) -> str:
    """``ever_delinquent`` for other domains' set-based SQL, on the order row ``order_alias``
    (its ``shopper_id`` and ``id``)."""
    return (
        "EXISTS (SELECT 1 FROM delinquent_orders c"
        f" WHERE c.shopper_id = {order_alias}.shopper_id AND c.order_id = {order_alias}.id"
        " AND c.first_delinquent_on IS NOT NULL)"
    )


def charged_off(
    shopper_id: ColumnExpressionArgument[str], order_id: ColumnExpressionArgument[str]
) -> ColumnElement[bool]:
    """Whether the order of these columns was ever charged off, as a clause for other domains'
    queries."""
    return exists().where(
        DelinquentOrder.shopper_id == shopper_id,
        DelinquentOrder.order_id == order_id,
        DelinquentOrder.charged_off_on.is_not(None),
    )


@dataclass(frozen=True)
class ReminderStep:
    """One (ladder step, channel) whose reminders fall on the business date: instalments due on
    ``due_on`` (for a step after the due date: ``due_on`` less the order's paused days) of
    shoppers in ``time_zone``, whose clock ``scheduled_at`` was worked out on."""

    step_index: int
    channel_index: int
    step_day: int
    step: str
    due_on: date
    channel: str
    template: str | None
    scheduled_at: datetime
    status: str  # scheduled | deferred (the contact policy's quiet hours)
    status_reason: str | None
    time_zone: str


def _steps_as_values(
    steps: Sequence[ReminderStep], *, is_postgresql: bool
) -> tuple[str, list[BindParameter[object]], dict[str, object]]:
    """The steps as the rows of a SQL ``VALUES`` list: its text, bound parameters and values."""
    parameters: dict[str, object] = {}
    bound: list[BindParameter[object]] = []
    value_rows = []
    for index, step in enumerate(steps):
        values: dict[str, tuple[object, TypeEngine[Any], str]] = {
            "step_index": (step.step_index, Integer(), "INTEGER"),
            "channel_index": (step.channel_index, Integer(), "INTEGER"),
            "step_day": (step.step_day, Integer(), "INTEGER"),
            "step": (step.step, String(), "VARCHAR"),
            "due_on": (step.due_on, Date(), "DATE"),
            "channel": (step.channel, String(), "VARCHAR"),
            "template": (step.template, String(), "VARCHAR"),
            "scheduled_at": (step.scheduled_at, UTCDateTime(), "TIMESTAMP WITH TIME ZONE"),
            "status": (step.status, String(), "VARCHAR"),
            "status_reason": (step.status_reason, String(), "VARCHAR"),
            "time_zone": (step.time_zone, String(), "VARCHAR"),
        }
        cells = []
        for name, (value, type_, postgresql_type) in values.items():
            key = f"{name}_{index}"
            parameters[key] = value
            bound.append(bindparam(key, type_=type_))
            # SQLite must not CAST: a date or timestamp CAST there turns into a number.
            cells.append(f"CAST(:{key} AS {postgresql_type})" if is_postgresql else f":{key}")
        value_rows.append(f"({', '.join(cells)})")
    return ", ".join(value_rows), bound, parameters


class CollectionsRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(
        self,
        row: ContactAttempt
        | LegalCase
        | BureauFile
        | LateFeeWaiver
        | DelinquentOrder
        | HardshipRequest,
    ) -> None:
        self.session.add(row)

    def attempt(self, shopper_id: str, attempt_id: str) -> ContactAttempt | None:
        return self.session.get(ContactAttempt, (attempt_id, shopper_id))

    def attempts_of_shopper(
        self,
        shopper_id: str,
        *,
        after: ContactAttempt | None = None,
        limit: int | None = None,
    ) -> list[ContactAttempt]:
        """The shopper's attempts by time planned (then id); those after ``after`` if given."""
        statement = (
            select(ContactAttempt)
            .where(ContactAttempt.shopper_id == shopper_id)
            .order_by(ContactAttempt.scheduled_at, ContactAttempt.id)
        )
        if after is not None:
            statement = statement.where(
                (ContactAttempt.scheduled_at > after.scheduled_at)
                | (
                    (ContactAttempt.scheduled_at == after.scheduled_at)
                    & (ContactAttempt.id > after.id)
                )
            )
        if limit is not None:
            statement = statement.limit(limit)
        return list(self.session.scalars(statement))

    def contacts_between(
        self, shopper_id: str, start: datetime, end: datetime, *, channel: str | None = None
    ) -> int:
        """Attempts that reached (or tried to reach) the shopper in [start, end), and those a
        worker claimed for sending (``sent_at`` set before the outcome is known)."""
        statement = (
            select(func.count())
            .select_from(ContactAttempt)
            .where(
                ContactAttempt.shopper_id == shopper_id,
                ContactAttempt.status.in_(("sent", "failed", "scheduled", "deferred")),
                ContactAttempt.sent_at >= start,
                ContactAttempt.sent_at < end,
            )
        )
        if channel is not None:
            statement = statement.where(ContactAttempt.channel == channel)
        return int(self.session.scalar(statement) or 0)

    def phone_reported_wrong(self, shopper_id: str, phone_masked: str) -> bool:
        """Whether a collector's call to the phone masked as ``phone_masked`` hit a wrong number."""
        return (
            self.session.scalar(
                select(ContactAttempt.id)
                .where(
                    ContactAttempt.shopper_id == shopper_id,
                    ContactAttempt.channel == "call",
                    ContactAttempt.outcome == "wrong_number",
                    ContactAttempt.destination_masked == phone_masked,
                )
                .limit(1)
            )
            is not None
        )

    def latest_promise(self, shopper_id: str, order_id: str) -> ContactAttempt | None:
        return self.session.scalars(
            select(ContactAttempt)
            .where(
                ContactAttempt.shopper_id == shopper_id,
                ContactAttempt.order_id == order_id,
                ContactAttempt.outcome == "promise_to_pay",
            )
            .order_by(ContactAttempt.created_at.desc(), ContactAttempt.id.desc())
            .limit(1)
        ).first()

    def legal_case(self, case_id: str) -> LegalCase | None:
        return self.session.scalars(select(LegalCase).where(LegalCase.id == case_id)).first()

    def legal_cases(self, *, starting_after: str | None, limit: int) -> list[LegalCase]:
        statement = select(LegalCase).order_by(LegalCase.id).limit(limit)
        if starting_after is not None:
            statement = statement.where(LegalCase.id > starting_after)
        return list(self.session.scalars(statement))

    def bureau_file(self, file_id: str) -> BureauFile | None:
        return self.session.get(BureauFile, file_id)

    def bureau_files(
        self,
        *,
        period: str | None = None,
        file_format: str | None = None,
        starting_after: str | None = None,
        limit: int | None = None,
    ) -> Sequence[BureauFile]:
        statement = select(BureauFile).order_by(BureauFile.id)
        if starting_after is not None:
            statement = statement.where(BureauFile.id > starting_after)
        if limit is not None:
            statement = statement.limit(limit)
        if period is not None:
            statement = statement.where(BureauFile.period == period)
        if file_format is not None:
            statement = statement.where(BureauFile.format == file_format)
        return list(self.session.scalars(statement))

    def claim_sweep_date(self, business_on: date, *, now: datetime) -> bool:
        """Record that the sweep of ``business_on`` runs; False when it already has. A concurrent
        claim of the same date waits on this row (PostgreSQL) and then finds it taken."""
        is_postgresql = self.session.get_bind().dialect.name == "postgresql"
        builder = postgresql_insert if is_postgresql else sqlite_insert
        claimed = self.session.execute(
            builder(SweepRun)
            .values(business_on=business_on, completed_at=now, summary={})
            .on_conflict_do_nothing()
            .returning(SweepRun.business_on)
        ).first()
        return claimed is not None

    def raise_work_mem_for_sweep(self) -> None:
        """PostgreSQL: give the sweep's set-based statements ``SWEEP_WORK_MEM`` for their sorts
        and hashes, for the rest of this transaction only (``SET LOCAL``). With the stock 4 MB,
        the late-fee table, the escalation and the reminder selection spill to disk on a large
        book (~100,000 overdue instalments on ~80,000 orders)."""
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(
                text("SELECT set_config('work_mem', :work_mem, true)"),
                {"work_mem": SWEEP_WORK_MEM},
            )

    def record_sweep_summary(self, business_on: date, summary: dict[str, object]) -> None:
        self.session.execute(
            update(SweepRun).where(SweepRun.business_on == business_on).values(summary=summary)
        )

    def is_swept(self, business_on: date) -> bool:
        return self.session.get(SweepRun, business_on) is not None

    def claim_sweep_step(self, business_on: date, step: str, *, now: datetime) -> bool:
        """Record that a step of the sweep of ``business_on`` runs in this transaction; False
        when it is already done. A concurrent claim of the same step waits on this row."""
        is_postgresql = self.session.get_bind().dialect.name == "postgresql"
        builder = postgresql_insert if is_postgresql else sqlite_insert
        claimed = self.session.execute(
            builder(SweepStep)
            .values(business_on=business_on, step=step, completed_at=now, counts={})
            .on_conflict_do_nothing()
            .returning(SweepStep.step)
        ).first()
        return claimed is not None

    def record_sweep_step_counts(
        self, business_on: date, step: str, counts: dict[str, int]
    ) -> None:
        self.session.execute(
            update(SweepStep)
            .where(SweepStep.business_on == business_on, SweepStep.step == step)
            .values(counts=counts)
        )

    def sweep_steps_done(self, business_on: date) -> dict[str, dict[str, int]]:
        rows = self.session.execute(
            select(SweepStep.step, SweepStep.counts).where(SweepStep.business_on == business_on)
        ).all()
        return {step: dict(counts) for step, counts in rows}

    def last_swept_on(self) -> date | None:
        return self.session.scalar(select(func.max(SweepRun.business_on)))

    # --- the daily sweep's escalation, set-based -----------------------------------------------

    def escalate_overdue(
        self,
        *,
        business_on: date,
        call_queue_day: int | None,
        bureau_report_day: int | None,
        now: datetime,
    ) -> tuple[int, int]:
        """One upsert of ``delinquent_orders`` for the order-level steps every overdue order may
        reach today: the date of first delinquency (the day after the oldest overdue instalment
        fell due), the call queue and the bureau report, each by the order's days past due
        (since its oldest overdue instalment fell due, less the days a dispute paused). Disputed
        orders reach no step. Only orders where something changes are written. Returns (entered
        the call queue, reported to the bureau)."""
        is_postgresql = self.session.get_bind().dialect.name == "postgresql"
        if is_postgresql:
            days_since_due = "CAST(:today AS date) - x.due_on"
            day_after_due = "r.due_on + 1"
        else:
            days_since_due = "CAST(julianday(:today) - julianday(x.due_on) AS INTEGER)"
            day_after_due = "date(r.due_on, '+1 day')"

        def reached(step: str, day: int | None) -> str:
            if day is None:
                return "1 = 0"
            return (
                f"d.is_disputed IS NOT TRUE AND h.order_id IS NULL AND c.{step} IS NULL"
                f" AND {days_since_due} - COALESCE(d.dispute_paused_days, 0) >= {int(day)}"
            )

        statement = text(
            f"""
WITH oldest AS (
    SELECT shopper_id, order_id, min(due_on) AS due_on
    FROM instalments
    WHERE status = 'overdue' AND due_on IS NOT NULL
    GROUP BY shopper_id, order_id
),
r AS (
    SELECT x.shopper_id, x.order_id, x.due_on, c.first_delinquent_on,
           {reached("call_queue_since_on", call_queue_day)} AS reaches_call_queue,
           {reached("bureau_reported_on", bureau_report_day)} AS reaches_bureau
    FROM oldest x
    LEFT JOIN delinquent_orders c ON c.shopper_id = x.shopper_id AND c.order_id = x.order_id
    LEFT JOIN {DISPUTE_PAUSES} d ON d.shopper_id = x.shopper_id AND d.order_id = x.order_id
    LEFT JOIN {HARDSHIP_HOLDS} h ON h.shopper_id = x.shopper_id AND h.order_id = x.order_id
)
INSERT INTO delinquent_orders (shopper_id, order_id, first_delinquent_on, call_queue_since_on,
                               bureau_reported_on, charged_off_minor, updated_at)
SELECT r.shopper_id, r.order_id, {day_after_due},
       CASE WHEN r.reaches_call_queue THEN :today END,
       CASE WHEN r.reaches_bureau THEN :today END,
       0, :now
FROM r
WHERE r.first_delinquent_on IS NULL OR r.reaches_call_queue OR r.reaches_bureau
ON CONFLICT (shopper_id, order_id) DO UPDATE SET
    first_delinquent_on = COALESCE(delinquent_orders.first_delinquent_on,
                                   excluded.first_delinquent_on),
    call_queue_since_on = COALESCE(delinquent_orders.call_queue_since_on,
                                   excluded.call_queue_since_on),
    bureau_reported_on = COALESCE(delinquent_orders.bureau_reported_on,
                                  excluded.bureau_reported_on),
    updated_at = excluded.updated_at
RETURNING call_queue_since_on, bureau_reported_on
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
        days_past_due = f"{days_since_due} - COALESCE(d.dispute_paused_days, 0)"
        statement = text(
            f"""
SELECT i.shopper_id, i.order_id, {days_past_due} AS days_past_due
FROM instalments i
LEFT JOIN {DISPUTE_PAUSES} d ON d.shopper_id = i.shopper_id AND d.order_id = i.order_id
LEFT JOIN {HARDSHIP_HOLDS} h ON h.shopper_id = i.shopper_id AND h.order_id = i.order_id
WHERE i.status = 'overdue' AND i.due_on <= :latest_due_on AND d.is_disputed IS NOT TRUE
  AND h.order_id IS NULL
GROUP BY i.shopper_id, i.order_id, d.dispute_paused_days
HAVING {days_past_due} >= :days
ORDER BY i.shopper_id, i.order_id
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

    # --- orders in collections ------------------------------------------------------------------

    def delinquency(self, shopper_id: str, order_id: str) -> DelinquentOrder | None:
        return self.session.get(DelinquentOrder, (shopper_id, order_id))

    def in_call_queue(self) -> list[tuple[str, str]]:
        """(shopper_id, order_id) of the orders that entered the call queue."""
        rows = self.session.execute(
            select(DelinquentOrder.shopper_id, DelinquentOrder.order_id).where(
                DelinquentOrder.call_queue_since_on.is_not(None)
            )
        ).all()
        return [(row[0], row[1]) for row in rows]

    def reported_to_bureau(self, reported_by: date) -> list[DelinquentOrder]:
        """The orders reported to the bureau on or before ``reported_by``."""
        return list(
            self.session.scalars(
                select(DelinquentOrder).where(
                    DelinquentOrder.bureau_reported_on.is_not(None),
                    DelinquentOrder.bureau_reported_on <= reported_by,
                )
            )
        )

    # --- the daily sweep's reminders, set-based -----------------------------------------------

    def shopper_time_zones(self) -> list[str]:
        """The time zones shoppers live in (one for most books)."""
        return sorted(self.session.scalars(select(Shopper.time_zone).distinct()))

    def plan_reminders(
        self,
        *,
        steps: Sequence[ReminderStep],
        topic: str,
        now: datetime,
    ) -> tuple[int, int]:
        """Plan every reminder of ``steps`` not planned before, in a few statements: select the
        unpaid instalments each step reaches (of shoppers in the step's time zone) into a
        temporary table, then insert the contact
        attempts and, for those to send, their outbox messages. A step after the due date skips
        an order whose dispute is open (its days past due are paused: the step comes once they
        run again); a step before or on the due date is logged as suppressed (``dispute_open``).
        Every step of an order a hardship request holds is logged as suppressed (``hardship``).
        Email without an address on file is suppressed (``no_verified_email``). Returns
        (attempts logged, reminders to send)."""
        if not steps:
            return 0, 0
        is_postgresql = self.session.get_bind().dialect.name == "postgresql"
        self._select_reminders(steps, is_postgresql=is_postgresql)
        attempts, to_send = self._count_reminders()
        if attempts:
            self._insert_reminders(
                attempts=attempts,
                to_send=to_send,
                topic=topic,
                now=now,
                is_postgresql=is_postgresql,
            )
        self.session.execute(text("DROP TABLE reminder_run"))
        return attempts, to_send

    def _select_reminders(self, steps: Sequence[ReminderStep], *, is_postgresql: bool) -> None:
        """The reminders of ``steps`` still to plan, into the temporary table ``reminder_run``:
        the unpaid instalments each step reaches, one row per channel, numbered."""
        value_rows, bound, parameters = _steps_as_values(steps, is_postgresql=is_postgresql)
        if is_postgresql:
            on_commit = " ON COMMIT DROP"
            paused_due_on = "p.due_on - d.dispute_paused_days"
        else:
            on_commit = ""
            paused_due_on = "date(p.due_on, '-' || d.dispute_paused_days || ' days')"
        remaining = (
            "i.principal_minor + i.fees_minor + i.late_fees_minor"
            " - i.paid_principal_minor - i.paid_fees_minor"
        )
        candidate_columns = (
            f"i.shopper_id, i.order_id, i.seq, {remaining} AS remaining_minor,"
            " d.is_disputed IS TRUE AS is_disputed, h.order_id IS NOT NULL AS is_held,"
            " p.step_index, p.channel_index, p.step_day, p.step, p.channel, p.template,"
            " p.scheduled_at, p.status, p.status_reason, p.time_zone"
        )
        no_email = "c.channel = 'email' AND COALESCE(s.email_encrypted, '') = ''"
        self.session.execute(
            text(
                f"""
CREATE TEMPORARY TABLE reminder_run{on_commit} AS
WITH p (step_index, channel_index, step_day, step, due_on, channel, template, scheduled_at,
        status, status_reason, time_zone) AS (
    VALUES {value_rows}
),
candidates AS (
    SELECT {candidate_columns}
    FROM p
    JOIN instalments i ON i.due_on = p.due_on AND i.status IN ('pending', 'overdue')
    LEFT JOIN {DISPUTE_PAUSES} d ON d.shopper_id = i.shopper_id AND d.order_id = i.order_id
    LEFT JOIN {HARDSHIP_HOLDS} h ON h.shopper_id = i.shopper_id AND h.order_id = i.order_id
    WHERE p.step_day <= 0
       OR (COALESCE(d.dispute_paused_days, 0) = 0 AND d.is_disputed IS NOT TRUE)
    UNION ALL
    SELECT {candidate_columns}
    FROM {DISPUTE_PAUSES} d
    JOIN instalments i ON i.shopper_id = d.shopper_id AND i.order_id = d.order_id
                      AND i.status IN ('pending', 'overdue')
    JOIN p ON p.step_day > 0 AND i.due_on = {paused_due_on}
    LEFT JOIN {HARDSHIP_HOLDS} h ON h.shopper_id = i.shopper_id AND h.order_id = i.order_id
    WHERE d.dispute_paused_days > 0 AND d.is_disputed IS NOT TRUE
)
SELECT c.shopper_id, c.order_id, c.seq, c.step_day, c.step, c.channel, c.template,
       c.scheduled_at,
       CASE WHEN c.is_disputed OR c.is_held OR {no_email} THEN 'suppressed'
            ELSE c.status END AS status,
       CASE WHEN c.is_disputed THEN 'dispute_open'
            WHEN c.is_held THEN 'hardship'
            WHEN {no_email} THEN 'no_verified_email'
            ELSE c.status_reason END AS status_reason,
       row_number() OVER (
           ORDER BY c.step_index, c.shopper_id, c.order_id, c.seq, c.channel_index
       ) AS n
FROM candidates c
JOIN shoppers s ON s.id = c.shopper_id AND s.time_zone = c.time_zone
WHERE c.remaining_minor <> 0
  AND NOT EXISTS (
      SELECT 1 FROM contact_attempts a
      WHERE a.shopper_id = c.shopper_id AND a.order_id = c.order_id AND a.seq = c.seq
        AND a.step_day = c.step_day AND a.channel = c.channel
  )
"""
            ).bindparams(*bound),
            parameters,
        )

    def _count_reminders(self) -> tuple[int, int]:
        """(attempts to log, reminders to send) in ``reminder_run``."""
        attempts, to_send = self.session.execute(
            text(
                "SELECT count(*), coalesce(sum(CASE WHEN status IN ('scheduled', 'deferred')"
                " THEN 1 ELSE 0 END), 0) FROM reminder_run"
            )
        ).one()
        return int(attempts), int(to_send)

    def _insert_reminders(
        self, *, attempts: int, to_send: int, topic: str, now: datetime, is_postgresql: bool
    ) -> None:
        """The contact attempts of ``reminder_run`` and, for those to send, their outbox
        messages, with new ids matched to the rows by number."""
        attempt_ids = [new_id("contact") for _ in range(attempts)]
        outbox_ids = [new_id("outbox") for _ in range(to_send)]
        if is_postgresql:
            payload = "jsonb_build_object('shopper_id', r.shopper_id, 'attempt_id', a.id)"
            # One comma-separated string per list (ids have no commas), split by the server:
            # far quicker for the driver than an array of ~100,000 elements.
            id_lists = {"ids": ",".join(attempt_ids), "outbox_ids": ",".join(outbox_ids)}

            def ids_of(name: str, alias: str) -> str:
                return (
                    f"unnest(string_to_array(CAST(:{name} AS text), ','))"
                    f" WITH ORDINALITY AS {alias}(id, n)"
                )
        else:
            payload = "json_object('shopper_id', r.shopper_id, 'attempt_id', a.id)"
            id_lists = {}
            # Keyed tables: joining json_each directly would rescan the list for every row.
            for name, ids in (("ids", attempt_ids), ("outbox_ids", outbox_ids)):
                self.session.execute(
                    text(f"CREATE TEMPORARY TABLE reminder_{name} (n INTEGER PRIMARY KEY, id)")
                )
                self.session.execute(
                    text(
                        f"INSERT INTO reminder_{name} (n, id)"
                        " SELECT key + 1, value FROM json_each(:ids)"
                    ),
                    {"ids": json.dumps(ids)},
                )

            def ids_of(name: str, alias: str) -> str:
                return f"reminder_{name} AS {alias}"

        stamp = bindparam("now", type_=UTCDateTime())
        self.session.execute(
            text(
                f"""
INSERT INTO contact_attempts (shopper_id, id, order_id, seq, channel, step_day, step, template,
                              scheduled_at, status, status_reason, created_at)
SELECT r.shopper_id, a.id, r.order_id, r.seq, r.channel, r.step_day, r.step, r.template,
       r.scheduled_at, r.status, r.status_reason, :now
FROM reminder_run r
JOIN {ids_of("ids", "a")} ON a.n = r.n
"""
            ).bindparams(stamp),
            {"now": now, **{k: v for k, v in id_lists.items() if k == "ids"}},
        )
        if to_send:
            self.session.execute(
                text(
                    f"""
INSERT INTO outbox_messages (shard_key, id, topic, payload, available_at, attempts, created_at)
SELECT r.shopper_id, m.id, :topic, {payload}, r.scheduled_at, 0, :now
FROM (
    SELECT shopper_id, scheduled_at, n, row_number() OVER (ORDER BY n) AS m
    FROM reminder_run WHERE status IN ('scheduled', 'deferred')
) r
JOIN {ids_of("ids", "a")} ON a.n = r.n
JOIN {ids_of("outbox_ids", "m")} ON m.n = r.m
"""
                ).bindparams(stamp),
                {"topic": topic, "now": now, **id_lists},
            )
        if not is_postgresql:
            self.session.execute(text("DROP TABLE reminder_ids"))
            self.session.execute(text("DROP TABLE reminder_outbox_ids"))

    def owed_instalments_by_due_and_settled(
        self, *, statuses: Sequence[str], due_from: date, due_to: date
    ) -> list[tuple[date, date | None, int]]:
        """How many instalments of ``statuses`` fell due on each day of the range and were
        settled on each later day (None: not yet): what a ladder backtest replays."""
        statement = (
            select(Instalment.due_on, Instalment.settled_on, func.count())
            .where(
                Instalment.status.in_(statuses),
                Instalment.due_on >= due_from,
                Instalment.due_on <= due_to,
            )
            .group_by(Instalment.due_on, Instalment.settled_on)
        )
        return [
            (due_on, settled_on, count)
            for due_on, settled_on, count in self.session.execute(statement)
            if due_on is not None
        ]

    # --- hardship requests ---------------------------------------------------------------

    def hardship(
        self, shopper_id: str, request_id: str, *, for_update: bool = False
    ) -> HardshipRequest | None:
        statement = select(HardshipRequest).where(
            HardshipRequest.shopper_id == shopper_id, HardshipRequest.id == request_id
        )
        if for_update:
            statement = statement.with_for_update()
        return self.session.scalars(statement).one_or_none()

    def hardship_by_id(self, request_id: str) -> HardshipRequest | None:
        """A request found by its id alone (the API's path; ids are unique by construction)."""
        return self.session.scalars(
            select(HardshipRequest).where(HardshipRequest.id == request_id)
        ).one_or_none()

    def hardships_of_order(self, shopper_id: str, order_id: str) -> list[HardshipRequest]:
        return list(
            self.session.scalars(
                select(HardshipRequest)
                .where(
                    HardshipRequest.shopper_id == shopper_id,
                    HardshipRequest.order_id == order_id,
                )
                .order_by(HardshipRequest.created_at, HardshipRequest.id)
            )
        )

    def holding_hardship(self, shopper_id: str, order_id: str) -> HardshipRequest | None:
        """The order's request that holds its dunning (open, offered or plan), if any."""
        return self.session.scalars(
            select(HardshipRequest).where(
                HardshipRequest.shopper_id == shopper_id,
                HardshipRequest.order_id == order_id,
                HardshipRequest.status.in_(models.HARDSHIP_HOLDING_STATUSES),
            )
        ).one_or_none()

    def has_holding_hardship(self, shopper_id: str) -> bool:
        return (
            self.session.scalar(
                select(HardshipRequest.id)
                .where(
                    HardshipRequest.shopper_id == shopper_id,
                    HardshipRequest.status.in_(models.HARDSHIP_HOLDING_STATUSES),
                )
                .limit(1)
            )
            is not None
        )

    def held_orders(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (shopper_id, order_id) a hardship request holds."""
        shopper_ids = sorted({shopper_id for shopper_id, _ in keys})
        if not shopper_ids:
            return set()
        rows = self.session.execute(
            select(HardshipRequest.shopper_id, HardshipRequest.order_id).where(
                HardshipRequest.shopper_id.in_(shopper_ids),
                HardshipRequest.status.in_(models.HARDSHIP_HOLDING_STATUSES),
            )
        ).all()
        return {(row[0], row[1]) for row in rows} & set(keys)

    def holding_hardships(self) -> list[HardshipRequest]:
        """Every request that holds an order (the sweep's hardship step reads them: few)."""
        return list(
            self.session.scalars(
                select(HardshipRequest)
                .where(HardshipRequest.status.in_(models.HARDSHIP_HOLDING_STATUSES))
                .order_by(HardshipRequest.shopper_id, HardshipRequest.id)
            )
        )

    def hardships(
        self, *, status: str | None, starting_after: str | None, limit: int
    ) -> list[HardshipRequest]:
        statement = select(HardshipRequest).order_by(HardshipRequest.id).limit(limit)
        if status is not None:
            statement = statement.where(HardshipRequest.status == status)
        if starting_after is not None:
            statement = statement.where(HardshipRequest.id > starting_after)
        return list(self.session.scalars(statement))

    def shopper_records(self) -> ShopperRecords:
        """collections' rows about shoppers, for the privacy flow's export and erasure."""
        return ShopperRecords.of(
            self.session,
            tables_of(models),
            plaintext_pii={
                "contact_attempts": ("destination_masked", "note", "provider_reference"),
                "late_fee_waivers": ("reason",),
                "hardship_requests": ("reason", "decision_note"),
            },
        )
