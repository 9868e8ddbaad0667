"""All SQL of credit lines."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    Table,
    Update,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import UpdateBase

from usefirst.credit import models
from usefirst.credit.models import CreditLine, CreditLineChange
from usefirst.kit.db import AnySelect, Part, Placeholders, insert_rows, on_citus, shard_batches
from usefirst.kit.models import OutboxMessage, payload_shard_key
from usefirst.kit.personal_data import ShopperRecords, tables_of


class CreditRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, shopper_id: str, *, for_update: bool = False) -> CreditLine | None:
        statement = select(CreditLine).where(CreditLine.shopper_id == shopper_id)
        if for_update:
            statement = statement.with_for_update()
        return self.session.scalars(statement).one_or_none()

    def lock_many(self, shopper_ids: list[str]) -> None:
        """Lock several lines in one fixed order (by shopper id) so lockers never deadlock."""
        connection = self.session.connection()
        if shopper_ids and on_citus(connection):
            # Citus locks rows of one shard per statement: the lines of one shard at a time, in
            # the order ``shard_batches`` gives (shards by id, lines by shopper id).
            for batch in shard_batches(connection, "credit_lines", shopper_ids):
                self.session.execute(
                    select(CreditLine.shopper_id)
                    .where(CreditLine.shopper_id.in_(batch))
                    .order_by(CreditLine.shopper_id)
                    .with_for_update()
                ).all()
        elif shopper_ids:
            self.session.execute(
                select(CreditLine.shopper_id)
                .where(CreditLine.shopper_id.in_(shopper_ids))
                .order_by(CreditLine.shopper_id)
                .with_for_update()
            ).all()

    def lock_selected(self, shopper_ids: Select[Any]) -> None:
        """``lock_many`` for the shoppers a query selects (any number of them)."""
        if on_citus(self.session.connection()):
            self.lock_many(list(self.session.scalars(shopper_ids)))
            return
        self.session.execute(
            select(CreditLine.shopper_id)
            .where(CreditLine.shopper_id.in_(shopper_ids))
            .order_by(CreditLine.shopper_id)
            .with_for_update()
        ).all()

    def change_status_many(
        self, shopper_ids: Sequence[str], *, from_status: str, to_status: str, reasons: Any
    ) -> list[tuple[str, int]]:
        """Move the lines of ``shopper_ids`` that are in ``from_status`` to ``to_status``;
        (shopper id, limit) of each line changed."""
        if not shopper_ids:
            return []
        rows = self.session.execute(
            update(CreditLine)
            .where(CreditLine.shopper_id.in_(shopper_ids), CreditLine.status == from_status)
            .values(status=to_status, reasons=reasons)
            .returning(CreditLine.shopper_id, CreditLine.limit_minor)
            .execution_options(synchronize_session=False)
        ).all()
        return [(row[0], int(row[1])) for row in rows]

    def add_changes(
        self, rows: Sequence[dict[str, Any]], messages: Sequence[dict[str, Any]] = ()
    ) -> None:
        """The changes and the outbox messages that announce them, written now. One change (a
        request's) on PostgreSQL is one statement (the change inserted by a data-modifying CTE
        of the messages' insert), so announcing it costs no round trip of its own; a batch (the
        night's freezes, any number of them) is sent as multi-row inserts in bounded batches."""
        if not rows:
            return
        messages = _sharded(messages)
        if len(rows) == 1 and messages and self.session.get_bind().dialect.name == "postgresql":
            changes = cast(Table, CreditLineChange.__table__)
            outbox = cast(Table, OutboxMessage.__table__)
            written = insert_rows(changes, rows).returning(changes.c.id).cte("written_changes")
            self.session.execute(insert_rows(outbox, messages).add_cte(written))
            return
        self.session.execute(insert(CreditLineChange), list(rows))
        if messages:
            self.session.execute(insert(OutboxMessage), list(messages))

    @staticmethod
    def changes_writes(
        rows: Sequence[dict[str, Any]], messages: Sequence[dict[str, Any]]
    ) -> list[UpdateBase]:
        """``add_changes`` as parts of a larger statement (PostgreSQL): the changes, then the
        messages that announce them (none for no changes)."""
        if not rows:
            return []
        writes: list[UpdateBase] = [insert_rows(cast(Table, CreditLineChange.__table__), rows)]
        if messages:
            writes.append(insert_rows(cast(Table, OutboxMessage.__table__), _sharded(messages)))
        return writes

    @staticmethod
    def growth_statement(shopper_id: str) -> AnySelect:
        """What an on-time repayment reads of the line (the caller holds its lock), as a
        statement to send with other reads."""
        return select(CreditLine.limit_minor, CreditLine.on_time_orders, CreditLine.status).where(
            CreditLine.shopper_id == shopper_id
        )

    @staticmethod
    def line_write(shopper_id: str, *, released_minor: int, values: dict[str, Any]) -> Update:
        """The line's ``values`` written and ``released_minor`` of its used credit released,
        as one update (a part of a larger statement: one statement updates a row once)."""
        released = {"used_minor": CreditLine.used_minor - released_minor} if released_minor else {}
        return (
            update(CreditLine)
            .where(CreditLine.shopper_id == shopper_id)
            .values(**values, **released)
        )

    def add(self, line: CreditLine) -> None:
        self.session.add(line)

    @staticmethod
    def lock_statement(shopper_id: str) -> AnySelect:
        """The line locked (the first lock a shopper's money movement takes), to be sent with
        other look-ups (``kit.db.Lookup``)."""
        return (
            select(CreditLine.shopper_id)
            .where(CreditLine.shopper_id == shopper_id)
            .with_for_update()
        )

    @staticmethod
    @cache
    def line_statement() -> AnySelect:
        """What a checkout reads of the line (with other look-ups, see ``kit.db.Lookup``), for
        the shopper id given as ``shopper_id``; built once."""
        return select(
            CreditLine.shopper_id,
            CreditLine.currency,
            CreditLine.limit_minor,
            CreditLine.used_minor,
            CreditLine.status,
            CreditLine.score,
            CreditLine.reasons,
        ).where(CreditLine.shopper_id == bindparam("shopper_id"))

    @staticmethod
    @cache
    def locked_line_statement() -> AnySelect:
        """``line_statement`` locked (the first lock a shopper's money movement takes)."""
        return CreditRepository.line_statement().with_for_update()

    @staticmethod
    def reservation(shopper_id: str, amount_minor: int) -> Update:
        """Add to ``used_minor`` if the line is active and the amount fits, returning the
        shopper id when it did.

        A single conditional UPDATE: PostgreSQL re-checks the condition against the latest row
        version under the row lock, so concurrent checkouts can never exceed the limit.
        """
        return (
            update(CreditLine)
            .where(
                CreditLine.shopper_id == shopper_id,
                CreditLine.status == "active",
                CreditLine.used_minor + amount_minor <= CreditLine.limit_minor,
            )
            .values(used_minor=CreditLine.used_minor + amount_minor)
            .returning(CreditLine.shopper_id)
        )

    @staticmethod
    def reservation_part(shopper_id: str, amount_minor: int) -> Part:
        """``reservation`` as a part of a prepared write (``kit.db.write_prepared``): the same
        statement, its values bound."""
        return Part(
            shape="credit_lines.reservation",
            values=(shopper_id, "active", amount_minor),
            build=_build_reservation,
            name="reserved",
        )

    def try_reserve(self, shopper_id: str, amount_minor: int) -> bool:
        """``reservation``, run on its own: whether it reserved."""
        reserved = self.session.execute(
            self.reservation(shopper_id, amount_minor).execution_options(synchronize_session=False)
        ).first()
        return reserved is not None

    def release(self, shopper_id: str, amount_minor: int) -> None:
        self.session.execute(
            self.release_statement(shopper_id, amount_minor).execution_options(
                synchronize_session=False
            )
        )

    @staticmethod
    def release_statement(shopper_id: str, amount_minor: int) -> Update:
        return (
            update(CreditLine)
            .where(CreditLine.shopper_id == shopper_id)
            .values(used_minor=CreditLine.used_minor - amount_minor)
        )

    def update_line(self, shopper_id: str, **values: Any) -> None:
        self.session.execute(
            update(CreditLine)
            .where(CreditLine.shopper_id == shopper_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    def changes(self, shopper_id: str) -> list[CreditLineChange]:
        return list(
            self.session.scalars(
                select(CreditLineChange)
                .where(CreditLineChange.shopper_id == shopper_id)
                .order_by(CreditLineChange.id)
            )
        )

    def limits_before_changes_since(self, since: datetime) -> dict[str, int]:
        """Shopper id -> the limit before the first change made at or after ``since``, for the
        shoppers whose line changed since then: one statement."""
        rows = self.session.execute(
            select(
                CreditLineChange.shopper_id,
                CreditLineChange.previous_limit_minor,
            )
            .where(CreditLineChange.created_at >= since)
            .order_by(
                CreditLineChange.shopper_id,
                CreditLineChange.created_at.desc(),
                CreditLineChange.id.desc(),
            )
        ).all()
        # Latest first per shopper, so the first change since ``since`` is written last.
        return {str(shopper_id): int(limit) for shopper_id, limit in rows}

    def shopper_records(self) -> ShopperRecords:
        """credit's rows about shoppers, for the privacy flow's export and erasure."""
        return ShopperRecords.of(self.session, tables_of(models))


def _build_reservation(placeholders: Placeholders, when: ColumnElement[bool] | None) -> Update:
    """``CreditRepository.reservation`` with placeholders (shopper id, status, amount)."""
    columns = cast(Table, CreditLine.__table__).c
    shopper_id = placeholders.take(columns.shopper_id.type)
    status = placeholders.take(columns.status.type)
    amount = placeholders.take(BigInteger())
    statement = (
        update(CreditLine)
        .where(
            CreditLine.shopper_id == shopper_id,
            CreditLine.status == status,
            CreditLine.used_minor + amount <= CreditLine.limit_minor,
        )
        .values(used_minor=CreditLine.used_minor + amount)
        .returning(CreditLine.shopper_id)
    )
    return statement if when is None else statement.where(when)


def _sharded(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each message lives on the shard of the shopper it announces to (a Citus cluster)."""
    return [{**message, "shard_key": payload_shard_key(message["payload"])} for message in messages]
