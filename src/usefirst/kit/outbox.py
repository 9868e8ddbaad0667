"""The outbox: side effects written in the same transaction as the change that causes them, and
delivered afterwards by ``usefirst worker`` (at-least-once, bounded retries with backoff).

Delivery claims messages with a short lease in one transaction, performs them outside any
transaction (an HTTP call must never hold database locks), then records the outcome. A worker that
dies mid-delivery leaves the lease to expire, so the message is delivered again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from usefirst.kit.clock import Clock
from usefirst.kit.db import Database, on_citus, shard_batches
from usefirst.kit.ids import new_id
from usefirst.kit.job_metrics import JobMetrics
from usefirst.kit.logs import current_request_id, get_logger, request_scope
from usefirst.kit.models import OutboxMessage, payload_shard_key

log = get_logger(__name__)

LEASE = timedelta(seconds=120)
Handler = Callable[[dict[str, Any]], None]


def queued_message(
    *,
    topic: str,
    payload: dict[str, Any],
    now: datetime,
    available_at: datetime | None = None,
    shard_key: str | None = None,
) -> dict[str, Any]:
    """The outbox row ``enqueue`` would add, as column values (for a repository that writes it
    together with what it delivers)."""
    return {
        "shard_key": shard_key or payload_shard_key(payload),
        "id": new_id("outbox"),
        "topic": topic,
        "payload": payload,
        "available_at": available_at or now,
        "attempts": 0,
        "created_at": now,
        "request_id": current_request_id(),
    }


def enqueue(
    session: Session,
    *,
    topic: str,
    payload: dict[str, Any],
    now: datetime,
    available_at: datetime | None = None,
    shard_key: str | None = None,
) -> str:
    """Queue a message in the caller's transaction. ``shard_key``: the subject it is about (by
    default the shopper its payload names, else the merchant, else the platform)."""
    message_id = new_id("outbox")
    session.add(
        OutboxMessage(
            shard_key=shard_key or payload_shard_key(payload),
            id=message_id,
            topic=topic,
            payload=payload,
            available_at=available_at or now,
            attempts=0,
            created_at=now,
            request_id=current_request_id(),
        )
    )
    return message_id


def next_available_at(session: Session, *, topic: str, after: datetime) -> datetime | None:
    """When the next undelivered message of ``topic`` falls due, if later than ``after``."""
    moment = session.scalar(
        select(func.min(OutboxMessage.available_at)).where(
            OutboxMessage.topic == topic,
            OutboxMessage.delivered_at.is_(None),
            OutboxMessage.failed_at.is_(None),
            OutboxMessage.available_at > after,
        )
    )
    return moment


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min … capped at 6 h."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 6 * 3600))


@dataclass
class DrainResult:
    delivered: int = 0
    retried: int = 0
    failed: int = 0


def drain(
    database: Database,
    *,
    clock: Clock,
    handlers: Mapping[str, Handler],
    max_attempts: int,
    batch_size: int = 100,
    metrics: JobMetrics | None = None,
) -> DrainResult:
    result = DrainResult()
    work = _claim(database, clock=clock, topics=list(handlers), batch_size=batch_size)
    for shard_key, message_id, topic, payload, attempts, request_id in work:
        with request_scope(request_id):
            _deliver_one(
                database,
                clock,
                handlers[topic],
                result,
                max_attempts=max_attempts,
                shard_key=shard_key,
                message_id=message_id,
                topic=topic,
                payload=payload,
                attempts=attempts,
                metrics=metrics,
            )
    return result


Claimed = tuple[str, str, str, dict[str, Any], int, str | None]


def _claim(
    database: Database, *, clock: Clock, topics: list[str], batch_size: int
) -> list[Claimed]:
    """Up to ``batch_size`` due messages, oldest first, leased to this worker. On PostgreSQL
    ``FOR UPDATE SKIP LOCKED`` (a message another worker is claiming is passed over). On a Citus
    cluster, where a lock runs on one shard only, the due messages are read first and then claimed
    shard by shard, a transaction per shard: each claim names its shard's keys and re-checks that
    the message is still due, so two workers never lease one message."""

    def due(now: datetime) -> list[ColumnElement[bool]]:
        return [
            OutboxMessage.delivered_at.is_(None),
            OutboxMessage.failed_at.is_(None),
            OutboxMessage.available_at <= now,
            OutboxMessage.topic.in_(topics),
        ]

    oldest_first = (OutboxMessage.available_at, OutboxMessage.id)
    with database.transaction() as session:
        connection = session.connection()
        now = clock.now(session)
        if not on_citus(connection):
            statement = select(OutboxMessage).where(*due(now)).order_by(*oldest_first)
            statement = statement.limit(batch_size)
            if database.is_postgresql:
                statement = statement.with_for_update(skip_locked=True)
            return _lease(list(session.scalars(statement)), now)
        candidates = session.execute(
            select(OutboxMessage.shard_key, OutboxMessage.id)
            .where(*due(now))
            .order_by(*oldest_first)
            .limit(batch_size)
        ).all()
        ids_of: dict[str, list[str]] = {}
        for shard_key, message_id in candidates:
            ids_of.setdefault(shard_key, []).append(message_id)
        batches = shard_batches(connection, "outbox_messages", list(ids_of))
    work: list[Claimed] = []
    for batch in batches:
        with database.transaction() as session:
            now = clock.now(session)
            claimed = session.scalars(
                select(OutboxMessage)
                .where(
                    OutboxMessage.shard_key.in_(batch),
                    OutboxMessage.id.in_([i for key in batch for i in ids_of[key]]),
                    *due(now),
                )
                .order_by(*oldest_first)
                .with_for_update(skip_locked=True)
            )
            work.extend(_lease(list(claimed), now))
    place = {message_id: index for index, (_, message_id) in enumerate(candidates)}
    return sorted(work, key=lambda message: place[message[1]])


def _lease(claimed: list[OutboxMessage], now: datetime) -> list[Claimed]:
    for message in claimed:
        message.attempts += 1
        message.available_at = now + LEASE
    return [
        (m.shard_key, m.id, m.topic, dict(m.payload), m.attempts, m.request_id) for m in claimed
    ]


def _deliver_one(
    database: Database,
    clock: Clock,
    handler: Handler,
    result: DrainResult,
    *,
    max_attempts: int,
    shard_key: str,
    message_id: str,
    topic: str,
    payload: dict[str, Any],
    attempts: int,
    metrics: JobMetrics | None,
) -> None:
    """Run one message's handler (under the request id that wrote it) and record the outcome."""
    error: str | None = None
    error_type: str | None = None
    started = time.perf_counter()
    try:
        handler(payload)
    except Exception as exception:  # delivery failures are recorded, never raised
        error = f"{type(exception).__name__}: {exception}"[:1000]
        error_type = type(exception).__name__
    with database.transaction() as session:
        now = clock.now(session)
        values: dict[str, Any]
        if error is None:
            values = {"delivered_at": now, "last_error": None}
            result.delivered += 1
            outcome = "delivered"
        elif attempts >= max_attempts:
            values = {"failed_at": now, "last_error": error}
            result.failed += 1
            outcome = "failed"
        else:
            values = {"available_at": now + backoff(attempts), "last_error": error}
            result.retried += 1
            outcome = "retry"
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.shard_key == shard_key, OutboxMessage.id == message_id)
            .values(**values)
        )
    # The error text stays in the row (an exception's message may quote an address or a
    # phone number); the log line names its type only.
    elapsed = time.perf_counter() - started
    if metrics is not None:
        metrics.record_delivery(topic, outcome, elapsed)
    report = log.info if error is None else log.warning
    report(
        "outbox_delivery",
        message_id=message_id,
        topic=topic,
        attempt=attempts,
        outcome=outcome,
        error_type=error_type,
        duration_ms=round(elapsed * 1000, 1),
    )
