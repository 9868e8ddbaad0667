"""All SQL of the online signals' upkeep (``risk/signal_upkeep.py``): pruning the two counters of
what no checkout reads any more, and the rows written by their backfill (which reads the orders
through the orders' repository)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from usefirst.risk.models import HourCounter, ShopperMerchantHourCounter, SignalEvent

_EVENTS = cast(Table, SignalEvent.__table__)
_HOURS = cast(Table, HourCounter.__table__)
_SHOPPER_HOURS = cast(Table, ShopperMerchantHourCounter.__table__)
_HOUR_KEY = ["scope", "key", "hour", "stripe"]
# Rows per INSERT of the backfill (bounded multi-row statements; 8 columns each).
BATCH_ROWS = 500


class SignalUpkeepRepository:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    def prune_events(self, before_by_kind: Mapping[str, datetime]) -> int:
        """Delete each kind's events older than its cut-off: one statement per kind, a range of
        the primary key's second column within each key (``kind, key_hash, created_at``)."""
        deleted = 0
        for kind, before in sorted(before_by_kind.items()):
            result = self.session.execute(
                delete(_EVENTS).where(_EVENTS.c.kind == kind, _EVENTS.c.created_at < before)
            )
            deleted += int(getattr(result, "rowcount", 0) or 0)
        return deleted

    def prune_hours(self, before: datetime) -> int:
        result = self.session.execute(delete(_HOURS).where(_HOURS.c.hour < before))
        return int(getattr(result, "rowcount", 0) or 0)

    def prune_shopper_hours(self, before: datetime) -> int:
        result = self.session.execute(delete(_SHOPPER_HOURS).where(_SHOPPER_HOURS.c.hour < before))
        return int(getattr(result, "rowcount", 0) or 0)

    def add_events(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert events not there yet (a checkout's own rows, or an earlier backfill's, stay)."""
        added = 0
        for start in range(0, len(rows), BATCH_ROWS):
            insert = self._insert(_EVENTS).values(list(rows[start : start + BATCH_ROWS]))
            # The rows written, counted by RETURNING (psycopg's rowcount of a multi-row insert
            # that skipped some is not reliable).
            added += len(
                self.session.execute(
                    insert.on_conflict_do_nothing().returning(_EVENTS.c.order_id)
                ).all()
            )
        return added

    def set_hours(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Write each hour row's counts as given (not added: the counts are of every order of
        the hour, so running again writes the same)."""
        for start in range(0, len(rows), BATCH_ROWS):
            insert = self._insert(_HOURS).values(list(rows[start : start + BATCH_ROWS]))
            self.session.execute(
                insert.on_conflict_do_update(
                    index_elements=_HOUR_KEY,
                    set_={
                        "orders": insert.excluded.orders,
                        "amount_minor": insert.excluded.amount_minor,
                    },
                )
            )
        return len(rows)

    def _insert(self, table: Table) -> Any:
        return (postgresql if self.dialect == "postgresql" else sqlite).insert(table)
