"""All SQL of events."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from usefirst.kit.db import Part, rows_part
from usefirst.kit.models import Event, OutboxMessage, subject_shard_key
from usefirst.kit.personal_data import ShopperRecords, table_of


class EventRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, event: Event) -> None:
        self.session.add(event)

    def add_with_deliveries(
        self, event: dict[str, Any], messages: list[dict[str, Any]], *, one_statement: bool
    ) -> None:
        """The event and the outbox messages that deliver it. With ``one_statement`` on
        PostgreSQL one statement (the event inserted by a data-modifying CTE of the messages'
        insert), sent at once; else ORM rows flushed with the rest of the unit of work."""
        postgresql = self.session.get_bind().dialect.name == "postgresql"
        shard_key = subject_shard_key(event.get("shopper_id"), event.get("merchant_id"))
        # The messages live on their event's shard (a Citus cluster writes them together).
        messages = [{**message, "shard_key": shard_key} for message in messages]
        if not (one_statement and messages and postgresql):
            self.session.add(Event(**event))
            self.session.add_all([OutboxMessage(**message) for message in messages])
            return
        events = cast(Table, Event.__table__)
        written = (
            insert(events)
            .values(**event, shard_key=shard_key)
            .returning(events.c.id)
            .cte("written_event")
        )
        outbox = cast(Table, OutboxMessage.__table__)
        self.session.execute(insert(outbox).values(messages).add_cte(written))

    @staticmethod
    def insert_parts(event: dict[str, Any], messages: list[dict[str, Any]]) -> list[Part]:
        """The event's INSERT and its messages', as parts of a larger write
        (``kit.db.write_prepared``)."""
        events = cast(Table, Event.__table__)
        shard_key = subject_shard_key(event.get("shopper_id"), event.get("merchant_id"))
        parts = [rows_part(events, [{**event, "shard_key": shard_key}])]
        if messages:
            outbox = cast(Table, OutboxMessage.__table__)
            messages = [{**message, "shard_key": shard_key} for message in messages]
            parts.append(rows_part(outbox, messages))
        return parts

    def get(self, event_id: str) -> Event | None:
        return self.session.scalars(select(Event).where(Event.id == event_id)).one_or_none()

    def list(
        self,
        *,
        merchant_id: str | None,
        event_type: str | None,
        starting_after: str | None,
        limit: int,
    ) -> list[Event]:
        statement = select(Event).order_by(Event.id).limit(limit)
        if merchant_id is not None:
            statement = statement.where(Event.merchant_id == merchant_id)
        if event_type is not None:
            statement = statement.where(Event.type == event_type)
        if starting_after is not None:
            statement = statement.where(Event.id > starting_after)
        return list(self.session.scalars(statement))

    def shopper_records(self) -> ShopperRecords:
        """Events about shoppers, for the privacy flow's export and erasure."""
        return ShopperRecords.of(self.session, [table_of(Event)])
