"""Idempotency keys for money-moving calls.

Same principal + key + request → the first response is replayed, status included; same key with
another request → 409 ``idempotency_key_reused``. The record is written in the same transaction as
the work it guards, so a failed request leaves no record and can be retried. On PostgreSQL a
concurrent request with the same key waits on the first one's uncommitted insert, then replays it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from usefirst.kit.errors import Conflict, IdempotencyKeyReused, ValidationFailed
from usefirst.kit.models import IdempotencyRecord

MAX_KEY_LENGTH = 255


class IdempotencyKeyInUse(Conflict):
    code = "idempotency_key_in_use"
    default_message = "A request with this Idempotency-Key is still being processed; retry."


def fingerprint(method: str, path: str, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def run_idempotent(
    session: Session,
    *,
    principal_id: str,
    key: str | None,
    request_fingerprint: str,
    now: datetime,
    handler: Callable[[], tuple[int, Any]],
) -> tuple[int, Any, bool]:
    """Run ``handler`` once per key. Returns (status, JSON body, replayed)."""
    if key is None:
        status, body = handler()
        return status, body, False
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise ValidationFailed(
            f"Idempotency-Key must have 1 to {MAX_KEY_LENGTH} characters.", field="Idempotency-Key"
        )
    builder = (
        postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    )
    inserted = session.execute(
        builder(IdempotencyRecord)
        .values(
            principal_id=principal_id,
            key=key,
            request_fingerprint=request_fingerprint,
            status_code=None,
            response_body=None,
            created_at=now,
        )
        .on_conflict_do_nothing()
        .returning(IdempotencyRecord.key)
    ).first()
    if inserted is None:
        record = session.scalars(
            select(IdempotencyRecord)
            .where(IdempotencyRecord.principal_id == principal_id, IdempotencyRecord.key == key)
            .execution_options(populate_existing=True)
        ).one()
        if record.request_fingerprint != request_fingerprint:
            raise IdempotencyKeyReused(field="Idempotency-Key")
        if record.status_code is None:
            raise IdempotencyKeyInUse(field="Idempotency-Key")
        return record.status_code, record.response_body, True
    status, body = handler()
    session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.principal_id == principal_id, IdempotencyRecord.key == key)
        .values(status_code=status, response_body=body)
    )
    return status, body, False
