"""The outbox keyed by its subject's shard (migration 0039) and drained shard by shard on a Citus
cluster: every due message is leased once, oldest first, a message another transaction holds is
passed over, and what was queued is what is delivered, on SQLite, PostgreSQL and a coordinator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from usefirst.kit.clock import TestClock
from usefirst.kit.db import Database
from usefirst.kit.models import OutboxMessage
from usefirst.kit.outbox import LEASE, drain, enqueue

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SUBJECTS: list[dict[str, Any]] = [
    *({"shopper_id": f"shp_outbox_{number:02d}"} for number in range(8)),
    {"merchant_id": "mer_outbox_1"},
    {},
]


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    with database.transaction() as session:
        TestClock().set(session, START)
        for minute, subject in enumerate(SUBJECTS):
            enqueue(
                session,
                topic="test",
                payload={**subject, "n": minute},
                now=START,
                available_at=START - timedelta(minutes=len(SUBJECTS) - minute),
            )
        enqueue(session, topic="test", payload={"n": 99}, now=START, available_at=START + LEASE)
    yield database
    database.dispose()


def test_messages_are_keyed_by_their_subject(database: Database) -> None:
    with database.transaction() as session:
        keys = {m.payload["n"]: m.shard_key for m in session.scalars(select(OutboxMessage))}
    assert keys == {
        **{n: f"shp_outbox_{n:02d}" for n in range(8)},
        8: "mer_outbox_1",
        9: "platform",
        99: "platform",
    }


def test_a_drain_delivers_every_due_message_once_oldest_first(database: Database) -> None:
    delivered: list[int] = []

    def handler(payload: dict[str, Any]) -> None:
        delivered.append(payload["n"])

    first = drain(database, clock=TestClock(), handlers={"test": handler}, max_attempts=3)
    again = drain(database, clock=TestClock(), handlers={"test": handler}, max_attempts=3)
    assert (first.delivered, first.retried, first.failed) == (10, 0, 0)
    assert again.delivered == 0
    assert delivered == list(range(10))
    with database.transaction() as session:
        rows = {m.payload["n"]: m for m in session.scalars(select(OutboxMessage))}
    assert {n for n, m in rows.items() if m.delivered_at == START} == set(range(10))
    assert all(rows[n].attempts == 1 for n in range(10))
    assert (rows[99].delivered_at, rows[99].attempts) == (None, 0)


def test_a_small_batch_takes_the_oldest(database: Database) -> None:
    delivered: list[int] = []
    result = drain(
        database,
        clock=TestClock(),
        handlers={"test": lambda payload: delivered.append(payload["n"])},
        max_attempts=3,
        batch_size=3,
    )
    assert result.delivered == 3
    assert delivered == [0, 1, 2]


@pytest.mark.postgresql
def test_a_message_being_claimed_elsewhere_is_passed_over(postgres_url: str) -> None:
    database = Database(postgres_url)
    try:
        with database.transaction() as session:
            TestClock().set(session, START)
            for subject in SUBJECTS:
                enqueue(session, topic="test", payload=subject, now=START)
        delivered: list[dict[str, Any]] = []
        with database.engine.connect() as holder:
            holder.execute(
                text("SELECT id FROM outbox_messages WHERE shard_key = 'shp_outbox_03' FOR UPDATE")
            ).all()
            result = drain(
                database, clock=TestClock(), handlers={"test": delivered.append}, max_attempts=3
            )
            holder.rollback()
        assert result.delivered == len(SUBJECTS) - 1
        assert {"shopper_id": "shp_outbox_03"} not in delivered
        later = drain(
            database, clock=TestClock(), handlers={"test": delivered.append}, max_attempts=3
        )
        assert later.delivered == 1
        assert delivered[-1] == {"shopper_id": "shp_outbox_03"}
    finally:
        database.dispose()
