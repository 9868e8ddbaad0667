"""All SQL of risk: decision records, link observations, cases, labels, known-fraud subjects,
step-up challenges, the action log, and the link graph's runs and rings."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    Table,
    UpdateBase,
    delete,
    exists,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from usefirst.kit.db import (
    SQLITE_LIST_SIZE,
    AnySelect,
    Part,
    in_chunks,
    in_list,
    insert_rows,
    row_values,
    rows_part,
)
from usefirst.kit.personal_data import ShopperRecords, tables_of
from usefirst.risk import models
from usefirst.risk.models import (
    GraphMember,
    GraphRun,
    KnownFraudSubject,
    LinkObservation,
    LinkValue,
    Ring,
    RiskAction,
    RiskCase,
    RiskDecision,
    RiskLabel,
    SignalEvent,
    StepUpChallenge,
)

# The online signals' kind of event whose key is the address cluster (``risk/signals.py``).
CLUSTER = "cluster"


class RiskRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: Any) -> None:
        self.session.add(row)

    @staticmethod
    def insert_parts(rows: Sequence[LinkObservation | RiskDecision]) -> list[Part]:
        """One INSERT per table of ``rows`` (in the order their tables first come), as parts of
        a larger write (``kit.db.write_prepared``)."""
        by_table: dict[Table, list[dict[str, Any]]] = {}
        for row in rows:
            by_table.setdefault(cast(Table, type(row).__table__), []).append(row_values(row))
        return [rows_part(table, values) for table, values in by_table.items()]

    # decisions
    def decision_of_order(self, order_id: str) -> RiskDecision | None:
        return self.session.scalars(
            select(RiskDecision).where(RiskDecision.order_id == order_id)
        ).first()

    def decisions(
        self, *, since: datetime | None = None, batch_size: int = 1000
    ) -> Iterator[RiskDecision]:
        """Every stored decision (made at or after ``since``), oldest first, read in batches
        (backtests replay them all)."""
        after: tuple[Any, str] | None = None
        while True:
            statement = select(RiskDecision).order_by(
                RiskDecision.decided_at, RiskDecision.order_id
            )
            if since is not None:
                statement = statement.where(RiskDecision.decided_at >= since)
            if after is not None:
                statement = statement.where(
                    (RiskDecision.decided_at > after[0])
                    | ((RiskDecision.decided_at == after[0]) & (RiskDecision.order_id > after[1]))
                )
            rows = list(self.session.scalars(statement.limit(batch_size)))
            yield from rows
            if len(rows) < batch_size:
                return
            after = (rows[-1].decided_at, rows[-1].order_id)

    # links
    def add_observations(self, rows: list[LinkObservation]) -> None:
        self.session.add_all(rows)

    def record_link_values(self, rows: Sequence[LinkObservation]) -> None:
        """Each observation's (kind, value, shopper) in ``risk_link_values``, its latest day
        moved on (any database; ``link_value_parts`` is the same as part of a larger write)."""
        if rows:
            dialect = self.session.get_bind().dialect.name
            module = postgresql if dialect == "postgresql" else sqlite
            self.session.execute(
                _latest_observation(module.insert(_LINK_VALUES).values(_link_values(rows)))
            )

    def rebuild_link_values(self) -> int:
        """``risk_link_values`` afresh from the observations (as migration 0042 filled it):
        each (kind, value, shopper) with the day of its latest observation, but values erasure
        replaced (erasure deletes their rows here); the number of rows."""
        self.session.execute(delete(LinkValue))
        day = (
            "CAST(max(observed_at) AT TIME ZONE 'UTC' AS date)"
            if self.session.get_bind().dialect.name == "postgresql"
            else "date(max(observed_at))"
        )
        result = self.session.execute(
            text(
                "INSERT INTO risk_link_values (kind, value_hash, shopper_id, last_observed_on)"
                f" SELECT kind, value_hash, shopper_id, {day}"
                " FROM risk_link_observations WHERE value_hash <> :erased || shopper_id"
                " GROUP BY kind, value_hash, shopper_id"
            ),
            {"erased": f"{ERASED_PREFIX}:"},
        )
        return int(getattr(result, "rowcount", 0) or 0)

    @staticmethod
    def link_value_parts(rows: Sequence[LinkObservation]) -> list[Part]:
        """``record_link_values`` as a part of the checkout's one write
        (``kit.db.write_prepared``)."""
        return (
            [rows_part(_LINK_VALUES, _link_values(rows), finish=_latest_observation)]
            if rows
            else []
        )

    def link_values_since(self, since: datetime) -> Sequence[Row[str, str, str]]:
        """(shopper id, kind, value hash) of every identifier observed since ``since``, once."""
        return self.session.execute(
            select(LinkObservation.shopper_id, LinkObservation.kind, LinkObservation.value_hash)
            .where(LinkObservation.observed_at >= since)
            .distinct()
        ).all()

    def shoppers_observed_since(self, since: datetime) -> Select[Any]:
        """The shoppers with identifiers observed since ``since`` (a subquery of their ids)."""
        return (
            select(LinkObservation.shopper_id)
            .where(LinkObservation.observed_at >= since)
            .distinct()
        )

    # what the incremental graph reads (by lists the caller splits as ``kit.db.list_size`` says)
    def link_values_of(
        self, shopper_ids: Sequence[str], *, since: datetime
    ) -> Sequence[Row[str, str, str]]:
        """(shopper id, kind, value hash) of the shoppers' identifiers observed since ``since``."""
        return self.session.execute(
            select(LinkObservation.shopper_id, LinkObservation.kind, LinkObservation.value_hash)
            .where(
                in_list(self.session, LinkObservation.shopper_id, shopper_ids),
                LinkObservation.observed_at >= since,
            )
            .distinct()
        ).all()

    def link_holders(
        self, kind: str, value_hashes: Sequence[str], *, since: datetime
    ) -> Sequence[Row[str, str]]:
        """(shopper id, value hash) of the shoppers observed with an identifier of ``kind`` among
        ``value_hashes`` since ``since``: one ``kind = … AND value_hash IN (…)`` through the
        observations' value index (a list of (kind, value) pairs would not use it on
        PostgreSQL: thousands of OR-ed index scans and a recheck of each row against them)."""
        return self.session.execute(
            select(LinkObservation.shopper_id, LinkObservation.value_hash)
            .where(
                LinkObservation.kind == kind,
                in_list(self.session, LinkObservation.value_hash, value_hashes),
                LinkObservation.observed_at >= since,
            )
            .distinct()
        ).all()

    def observed_among(self, shopper_ids: Sequence[str], *, since: datetime) -> set[str]:
        """Those of the shoppers with an identifier observed since ``since``."""
        return set(
            self.session.scalars(
                select(LinkObservation.shopper_id)
                .where(
                    in_list(self.session, LinkObservation.shopper_id, shopper_ids),
                    LinkObservation.observed_at >= since,
                )
                .distinct()
            )
        )

    def observations_between(
        self, start: datetime, end: datetime | None
    ) -> Sequence[Row[str, str, str]]:
        """(shopper id, kind, value hash) observed at or after ``start`` (and before ``end``),
        once: through the index on ``observed_at``."""
        statement = select(
            LinkObservation.shopper_id, LinkObservation.kind, LinkObservation.value_hash
        ).where(LinkObservation.observed_at >= start)
        if end is not None:
            statement = statement.where(LinkObservation.observed_at < end)
        return self.session.execute(statement.distinct()).all()

    # the address clusters of the online signals' events, as links of the graph
    def cluster_links_since(self, since: datetime) -> Sequence[Row[str, str]]:
        """(shopper id, cluster key) of every address cluster seen at a checkout since
        ``since``, once."""
        return self.session.execute(
            select(SignalEvent.shopper_id, SignalEvent.key_hash)
            .where(SignalEvent.kind == CLUSTER, SignalEvent.created_at >= since)
            .distinct()
        ).all()

    def cluster_links_of(
        self,
        shopper_ids: Sequence[str],
        *,
        since: datetime,
        before: datetime | None = None,
    ) -> Sequence[Row[str, str]]:
        """(shopper id, cluster key) of the shoppers' address clusters seen since ``since`` (and
        before ``before``): through ``ix_risk_signal_events_shopper``."""
        statement = select(SignalEvent.shopper_id, SignalEvent.key_hash).where(
            in_list(self.session, SignalEvent.shopper_id, shopper_ids),
            SignalEvent.kind == CLUSTER,
            SignalEvent.created_at >= since,
        )
        if before is not None:
            statement = statement.where(SignalEvent.created_at < before)
        return self.session.execute(statement.distinct()).all()

    def cluster_holders(
        self, key_hashes: Sequence[str], *, since: datetime
    ) -> Sequence[Row[str, str]]:
        """(shopper id, cluster key) of the shoppers seen under the clusters since ``since``:
        ranges of the primary key (kind, key)."""
        return self.session.execute(
            select(SignalEvent.shopper_id, SignalEvent.key_hash)
            .where(
                SignalEvent.kind == CLUSTER,
                in_list(self.session, SignalEvent.key_hash, key_hashes),
                SignalEvent.created_at >= since,
            )
            .distinct()
        ).all()

    def graph_members(self) -> list[str]:
        return list(self.session.scalars(select(GraphMember.shopper_id)))

    def replace_graph_members(self, shopper_ids: Sequence[str], *, run_id: str) -> None:
        self.session.execute(delete(GraphMember))
        if not shopper_ids:
            return
        if self.session.get_bind().dialect.name == "postgresql":
            # One statement over one array (tens of thousands of members on a large book: an
            # executemany sends a row at a time, the ORM's bulk insert adds bookkeeping per row).
            self.session.execute(
                text(
                    "INSERT INTO risk_graph_members (shopper_id, run_id)"
                    " SELECT s, :run_id FROM unnest(CAST(:shopper_ids AS varchar[])) AS s"
                ),
                {"shopper_ids": list(shopper_ids), "run_id": run_id},
            )
            return
        self.session.execute(
            insert(cast(Table, GraphMember.__table__)),
            [{"shopper_id": shopper_id, "run_id": run_id} for shopper_id in shopper_ids],
        )

    def last_graph_run(self) -> GraphRun | None:
        return self.session.scalars(
            select(GraphRun).order_by(GraphRun.started_at.desc(), GraphRun.id.desc()).limit(1)
        ).first()

    # the link graph's runs and rings
    def nightly_graph_run(self, business_on: date) -> str | None:
        return self.session.scalar(
            select(GraphRun.id).where(
                GraphRun.trigger == "nightly", GraphRun.business_on == business_on
            )
        )

    def rings(self) -> list[Ring]:
        return list(self.session.scalars(select(Ring).order_by(Ring.first_seen_at, Ring.id)))

    # cases
    def get_case(self, case_id: str, *, for_update: bool = False) -> RiskCase | None:
        statement = select(RiskCase).where(RiskCase.id == case_id)
        if for_update:
            statement = statement.with_for_update().execution_options(populate_existing=True)
        return self.session.scalars(statement).one_or_none()

    def open_cases_for(self, subject_keys: Sequence[str]) -> dict[str, RiskCase]:
        """The open case of each subject key that has one (the oldest when there are more),
        locked."""
        found: dict[str, RiskCase] = {}
        for start in range(0, len(subject_keys), 5000):
            for case in self.session.scalars(
                select(RiskCase)
                .where(_open_of(subject_keys[start : start + 5000]))
                .order_by(RiskCase.id)
                .with_for_update()
            ):
                found.setdefault(case.subject_key, case)
        return found

    @staticmethod
    def open_cases_statement(subject_keys: Sequence[str]) -> AnySelect:
        """The ids of the open cases of the subject keys (a few), not locked, as a statement
        to send with other reads."""
        return select(RiskCase.id).where(_open_of(subject_keys)).order_by(RiskCase.id)

    @staticmethod
    def case_writes(case: RiskCase, action_rows: Sequence[dict[str, Any]]) -> list[UpdateBase]:
        """A new case (not added to a session) and its actions as parts of one statement."""
        return [
            insert_rows(cast(Table, RiskCase.__table__), [row_values(case)]),
            insert_rows(cast(Table, RiskAction.__table__), list(action_rows)),
        ]

    def cases(
        self,
        *,
        status: str | None,
        case_type: str | None,
        starting_after: str | None,
        limit: int,
    ) -> list[RiskCase]:
        statement = select(RiskCase).order_by(RiskCase.id)
        if status is not None:
            statement = statement.where(RiskCase.status == status)
        if case_type is not None:
            statement = statement.where(RiskCase.case_type == case_type)
        if starting_after is not None:
            statement = statement.where(RiskCase.id > starting_after)
        return list(self.session.scalars(statement.limit(limit)))

    def cases_about_merchant(self, merchant_id: str) -> list[RiskCase]:
        """The merchant's own cases and those of rings around it."""
        return list(
            self.session.scalars(
                select(RiskCase)
                .where(RiskCase.subject_key.in_((f"merchant:{merchant_id}", f"ring:{merchant_id}")))
                .order_by(RiskCase.id)
            )
        )

    # labels and known fraud
    def upsert_label(self, row: RiskLabel) -> None:
        existing = self.session.get(RiskLabel, (row.shopper_id, row.order_id))
        if existing is None:
            self.session.add(row)
            return
        existing.label = row.label
        existing.case_id = row.case_id
        existing.decided_by = row.decided_by
        existing.decided_at = row.decided_at

    def labels(self) -> list[RiskLabel]:
        return list(self.session.scalars(select(RiskLabel).order_by(RiskLabel.decided_at)))

    def is_known_fraud(self, subject_id: str) -> bool:
        return self.session.get(KnownFraudSubject, subject_id) is not None

    def mark_known_fraud(self, row: KnownFraudSubject) -> None:
        if self.session.get(KnownFraudSubject, row.subject_id) is None:
            self.session.add(row)

    # step-up
    def challenge(
        self, shopper_id: str, order_id: str, *, for_update: bool = False
    ) -> StepUpChallenge | None:
        statement = select(StepUpChallenge).where(
            StepUpChallenge.shopper_id == shopper_id, StepUpChallenge.order_id == order_id
        )
        if for_update:
            statement = statement.with_for_update().execution_options(populate_existing=True)
        return self.session.scalars(statement).one_or_none()

    def expired_pending_challenges(self, now: datetime) -> list[tuple[str, str]]:
        """(shopper id, order id) of the pending challenges expired by ``now``."""
        rows = self.session.execute(
            select(StepUpChallenge.shopper_id, StepUpChallenge.order_id)
            .where(StepUpChallenge.status == "pending", StepUpChallenge.expires_at <= now)
            .order_by(StepUpChallenge.shopper_id, StepUpChallenge.order_id)
        ).all()
        return [(row[0], row[1]) for row in rows]

    # actions
    def actions_of(self, subject_id: str) -> list[RiskAction]:
        return list(
            self.session.scalars(
                select(RiskAction)
                .where(RiskAction.subject_id == subject_id)
                .order_by(RiskAction.id)
            )
        )

    def actions_of_case(self, case_id: str) -> list[RiskAction]:
        return list(
            self.session.scalars(
                select(RiskAction).where(RiskAction.case_id == case_id).order_by(RiskAction.id)
            )
        )

    def subjects_of_actions(self, case_id: str, *, action: str) -> list[str]:
        return list(
            self.session.scalars(
                select(RiskAction.subject_id)
                .where(RiskAction.case_id == case_id, RiskAction.action == action)
                .distinct()
                .order_by(RiskAction.subject_id)
            )
        )

    def open_cases_with_action(self, subject_id: str, *, action: str, other_than: str) -> bool:
        """Whether a case other than ``other_than`` that is still open took ``action`` on the
        subject."""
        return bool(
            self.session.scalar(
                select(
                    exists().where(
                        RiskAction.subject_id == subject_id,
                        RiskAction.action == action,
                        RiskAction.case_id != other_than,
                        RiskCase.id == RiskAction.case_id,
                        RiskCase.status != "resolved",
                    )
                )
            )
        )

    def insert_actions(self, rows: Sequence[dict[str, Any]]) -> None:
        """Log many actions (``RiskAction`` columns but the id) in one insert: a multi-row insert
        or one ``executemany``, where adding them to the session would insert them one by one on
        SQLite (it cannot hand back many generated ids at once)."""
        if rows:
            self.session.execute(insert(RiskAction), list(rows))

    def case_orders_with_action(
        self, pairs: Sequence[tuple[str, str]], *, action: str
    ) -> set[tuple[str, str]]:
        """Those of the (case id, order id) pairs in which the case took ``action`` on the
        order."""
        found: set[tuple[str, str]] = set()
        case_ids = sorted({case_id for case_id, _ in pairs})
        for start in range(0, len(case_ids), 5000):
            rows = self.session.execute(
                select(RiskAction.case_id, RiskAction.order_id).where(
                    RiskAction.action == action,
                    RiskAction.case_id.in_(case_ids[start : start + 5000]),
                )
            )
            found.update((str(case_id), str(order_id)) for case_id, order_id in rows)
        return found & set(pairs)

    def orders_with_action(self, order_ids: Sequence[str], *, action: str) -> set[str]:
        """Those of the orders ``action`` was taken on (one query on PostgreSQL, one per
        ``SQLITE_LIST_SIZE`` orders elsewhere)."""
        found: set[str] = set()
        for chunk in in_chunks(self.session, order_ids, size=SQLITE_LIST_SIZE):
            found.update(
                order_id
                for order_id in self.session.scalars(
                    select(RiskAction.order_id).where(
                        RiskAction.action == action,
                        in_list(self.session, RiskAction.order_id, chunk),
                    )
                )
                if order_id is not None
            )
        return found

    def first_actions_by_case(
        self, *, action: str, decided_by: str
    ) -> dict[str, dict[str, datetime]]:
        """For each case, when it first took ``action`` (decided by ``decided_by``) on each
        subject, in one grouped query: ``{case id: {subject id: first time}}``."""
        found: dict[str, dict[str, datetime]] = {}
        for case_id, subject_id, first_at in self.session.execute(
            select(RiskAction.case_id, RiskAction.subject_id, func.min(RiskAction.created_at))
            .where(
                RiskAction.action == action,
                RiskAction.decided_by == decided_by,
                RiskAction.case_id.is_not(None),
            )
            .group_by(RiskAction.case_id, RiskAction.subject_id)
        ):
            found.setdefault(str(case_id), {})[subject_id] = first_at
        return found

    def subjects_with_action_since(self, since: datetime, *, action: str) -> set[str]:
        """The subjects ``action`` was taken on since ``since``."""
        return set(
            self.session.scalars(
                select(RiskAction.subject_id).where(
                    RiskAction.action == action, RiskAction.created_at >= since
                )
            )
        )

    def shopper_records(self) -> ShopperRecords:
        """risk's rows about shoppers, for the privacy flow's export and erasure."""
        return ShopperRecords.of(
            self.session,
            tables_of(models),
            plaintext_pii={
                "risk_link_observations": ("value_hash",),
                "risk_order_facts": ("device_id",),
                "risk_signal_events": ("key_hash",),
            },
            # Only the link observations' values, once per shopper: nothing to keep once the
            # hashes are erased (and one tombstone per kind would collide in the primary key).
            index_only=("risk_link_values",),
        )


def _open_of(subject_keys: Sequence[str]) -> ColumnElement[bool]:
    return RiskCase.subject_key.in_(subject_keys) & (RiskCase.status != "resolved")


# --- the distinct link values -----------------------------------------------------------------

_LINK_VALUES = cast(Table, LinkValue.__table__)
# What erasure writes over a link observation's value: ``<prefix>:<shopper id>`` (privacy's
# tombstone; risk cannot import privacy).
ERASED_PREFIX = "erased"


def _link_values(rows: Sequence[LinkObservation]) -> list[dict[str, Any]]:
    return [
        {
            "kind": row.kind,
            "value_hash": row.value_hash,
            "shopper_id": row.shopper_id,
            "last_observed_on": row.observed_at.astimezone(UTC).date(),
        }
        for row in rows
    ]


def _latest_observation(statement: Any) -> Any:
    """A value seen again on a later day: its row's day moved on (never back: checkouts commit
    out of order). Seen again the same day, the row is only locked (no new row version: a full
    update per checkout cost some 200 buffers and 16 WAL records for four rows, measured); only
    the shopper's own checkouts share it."""
    table = _LINK_VALUES
    return statement.on_conflict_do_update(
        index_elements=["kind", "value_hash", "shopper_id"],
        set_={"last_observed_on": statement.excluded.last_observed_on},
        where=table.c.last_observed_on < statement.excluded.last_observed_on,
    )
