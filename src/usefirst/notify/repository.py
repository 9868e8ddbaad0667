"""All SQL of events."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from usefirst.kit.models import Event
from usefirst.kit.personal_data import ShopperRecords, table_of


class EventRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, event: Event) -> None:
        self.session.add(event)

    def get(self, event_id: str) -> Event | None:
        return self.session.get(Event, event_id)

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
