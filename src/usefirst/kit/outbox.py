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

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from usefirst.kit.clock import Clock
from usefirst.kit.db import Database
from usefirst.kit.ids import new_id
from usefirst.kit.job_metrics import JobMetrics
from usefirst.kit.logs import current_request_id, get_logger, request_scope
from usefirst.kit.models import OutboxMessage

log = get_logger(__name__)

LEASE = timedelta(seconds=120)
Handler = Callable[[dict[str, Any]], None]


def queued_message(
    *, topic: str, payload: dict[str, Any], now: datetime, available_at: datetime | None = None
) -> dict[str, Any]:
    """The outbox row ``enqueue`` would add, as column values (for a repository that writes it
    together with what it delivers)."""
    return {
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
) -> str:
    message_id = new_id("outbox")
    session.add(
        OutboxMessage(
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
    with database.transaction() as session:
        now = clock.now(session)
        statement = (
            select(OutboxMessage)
            .where(
                OutboxMessage.delivered_at.is_(None),
                OutboxMessage.failed_at.is_(None),
                OutboxMessage.available_at <= now,
                OutboxMessage.topic.in_(list(handlers)),
            )
            .order_by(OutboxMessage.available_at, OutboxMessage.id)
            .limit(batch_size)
        )
        if database.is_postgresql:
            statement = statement.with_for_update(skip_locked=True)
        claimed = list(session.scalars(statement))
        for message in claimed:
            message.attempts += 1
            message.available_at = now + LEASE
        work = [(m.id, m.topic, dict(m.payload), m.attempts, m.request_id) for m in claimed]
    for message_id, topic, payload, attempts, request_id in work:
        with request_scope(request_id):
            _deliver_one(
                database,
                clock,
                handlers[topic],
                result,
                max_attempts=max_attempts,
                message_id=message_id,
                topic=topic,
                payload=payload,
                attempts=attempts,
                metrics=metrics,
            )
    return result


def _deliver_one(
    database: Database,
    clock: Clock,
    handler: Handler,
    result: DrainResult,
    *,
    max_attempts: int,
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
            update(OutboxMessage).where(OutboxMessage.id == message_id).values(**values)
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
