"""The only place that reads the system clock.

Services never call ``datetime.now``: they take ``now`` from a :class:`Clock`. In sandbox mode the
clock is a test clock persisted in the database, so every process (API, worker, CLI) sees the same
moved time.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session


def system_now() -> datetime:
    return datetime.now(UTC)


def monotonic_ns() -> int:
    return time.monotonic_ns()


def wall_time_ns() -> int:
    """Wall time for id generation only (ids sort by creation, not by business time)."""
    return time.time_ns()


class Clock(Protocol):
    def now(self, session: Session) -> datetime: ...


class SystemClock:
    def now(self, session: Session) -> datetime:
        return system_now()


class TestClock:
    """A sandbox clock stored in the ``sandbox_clock`` table (one row)."""

    __test__ = False  # not a pytest test class

    def now(self, session: Session) -> datetime:
        row = session.execute(text("SELECT now_at FROM sandbox_clock WHERE id = 1")).first()
        if row is None:
            started = system_now().replace(microsecond=0)
            # Concurrent first requests race to create the row; the losers wait for the winner
            # (PostgreSQL) and then read its time instead of failing on the key.
            inserted = session.execute(
                text(
                    "INSERT INTO sandbox_clock (id, now_at) VALUES (1, :now_at) "
                    "ON CONFLICT (id) DO NOTHING"
                ),
                {"now_at": started},
            )
            if getattr(inserted, "rowcount", 1) == 1:
                return started
            row = session.execute(text("SELECT now_at FROM sandbox_clock WHERE id = 1")).one()
        return as_utc(row[0])

    def set(self, session: Session, now: datetime) -> None:
        self.now(session)
        session.execute(
            text("UPDATE sandbox_clock SET now_at = :now_at WHERE id = 1"), {"now_at": now}
        )

    def advance(self, session: Session, delta: timedelta) -> datetime:
        moved = self.now(session) + delta
        self.set(session, moved)
        return moved


def as_utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def business_date(moment: datetime, time_zone: str) -> date:
    return as_utc(moment).astimezone(ZoneInfo(time_zone)).date()


def business_day_start(day: date, time_zone: str) -> datetime:
    """The UTC instant at which business day ``day`` starts in ``time_zone``."""
    local = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(time_zone))
    return local.astimezone(UTC)
