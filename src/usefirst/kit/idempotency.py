"""Idempotency keys for money-moving calls.

Same principal + key + request → the first response is replayed, status included; same key with
another request → 409 ``idempotency_key_reused``. The record is written once, with the response,
in the same transaction as the work it guards, so a failed request leaves no record and can be
retried. The common case (a new key) costs one insert and no look-up: the work runs first and the
record is inserted at its end. When the key turns out to be recorded already (a retry, or a
concurrent request with the same key, whose uncommitted insert PostgreSQL makes this one wait
for), :class:`KeyAlreadyRecorded` is raised, the caller rolls the work back and answers with
:func:`stored_response` from a fresh transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Insert, Table, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from usefirst.kit.db import Part, rows_part, rows_where
from usefirst.kit.errors import Conflict, IdempotencyKeyReused, ValidationFailed
from usefirst.kit.models import IdempotencyRecord

MAX_KEY_LENGTH = 255


class IdempotencyKeyInUse(Conflict):
    code = "idempotency_key_in_use"
    default_message = "A request with this Idempotency-Key is still being processed; retry."


def fingerprint(method: str, path: str, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


class KeyAlreadyRecorded(Exception):
    """The key has a recorded response: roll this request's work back and replay that."""


def check_key(key: str | None) -> None:
    if key is not None and not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise ValidationFailed(
            f"Idempotency-Key must have 1 to {MAX_KEY_LENGTH} characters.", field="Idempotency-Key"
        )


@dataclass(frozen=True)
class ResponseRecord:
    """The idempotency record a keyed call writes with its work, once its response is known."""

    principal_id: str
    key: str
    request_fingerprint: str
    created_at: datetime

    def _row(self, status: int, body: Any) -> dict[str, Any]:
        return {
            "principal_id": self.principal_id,
            "key": self.key,
            "request_fingerprint": self.request_fingerprint,
            "status_code": status,
            "response_body": body,
            "created_at": self.created_at,
        }

    def insert(
        self, session: Session, status: int, body: Any, *, when: ColumnElement[bool] | None = None
    ) -> Insert:
        """The statement that records (status, body) unless the key is recorded already; it
        returns the key when it wrote the record. ``when``: see ``kit.db.insert_rows``."""
        row = self._row(status, body)
        table = cast(Table, IdempotencyRecord.__table__)
        builder = (
            postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        )
        statement = (
            builder(table).values(row)
            if when is None
            else builder(table).from_select(list(row), rows_where(table, [row], when))
        )
        return statement.on_conflict_do_nothing().returning(table.c.key)

    def part(self, status: int, body: Any) -> Part:
        """``insert`` as a part of a larger PostgreSQL write (``kit.db.write_prepared``, whose
        claim it is)."""
        return rows_part(
            cast(Table, IdempotencyRecord.__table__),
            [self._row(status, body)],
            finish=_unless_recorded,
            name="recorded",
        )

    def write(self, session: Session, status: int, body: Any) -> None:
        """Record the response; :class:`KeyAlreadyRecorded` when the key has one already."""
        if session.execute(self.insert(session, status, body)).first() is None:
            raise KeyAlreadyRecorded()


def run_idempotent(
    session: Session,
    *,
    principal_id: str,
    key: str | None,
    request_fingerprint: str,
    now: datetime,
    handler: Callable[[], tuple[int, Any]],
) -> tuple[int, Any]:
    """Run ``handler`` and record its response under the key in the same transaction. Returns
    (status, JSON body); raises :class:`KeyAlreadyRecorded` when the key has a response already
    (the transaction must then be rolled back and :func:`stored_response` answered)."""
    check_key(key)
    status, body = handler()
    if key is not None:
        ResponseRecord(principal_id, key, request_fingerprint, now).write(session, status, body)
    return status, body


def stored_response(
    session: Session, *, principal_id: str, key: str, request_fingerprint: str
) -> tuple[int, Any] | None:
    """The recorded (status, JSON body) for the key, None when it has none; 409
    ``idempotency_key_reused`` when it was recorded for another request."""
    record = session.scalars(
        select(IdempotencyRecord).where(
            IdempotencyRecord.principal_id == principal_id, IdempotencyRecord.key == key
        )
    ).one_or_none()
    if record is None:
        return None
    if record.request_fingerprint != request_fingerprint:
        raise IdempotencyKeyReused(field="Idempotency-Key")
    if record.status_code is None:
        # Written by an engine before records were written once, with their response.
        raise IdempotencyKeyInUse(field="Idempotency-Key")
    return record.status_code, record.response_body


def _unless_recorded(statement: Any) -> Any:
    """An idempotency record's INSERT that writes nothing when the key is recorded already, and
    returns the key when it wrote."""
    return statement.on_conflict_do_nothing().returning(
        cast(Table, IdempotencyRecord.__table__).c.key
    )
