"""The tamper-evident audit log of unmasked PII reads and privacy actions.

Each row carries a sequence number and ``row_hash = SHA-256(canonical(row) )`` where the canonical
encoding includes the previous row's hash, so rows form a chain: changing, inserting or removing a
row anywhere breaks every later link. The database refuses UPDATE and DELETE on the log (triggers
in migration 0006); ``verify_chain`` recomputes the chain to catch what bypassed the database.

Appends lock the single chain-head row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite write
transactions are serialised already), so concurrent transactions extend the chain one after the
other and a rolled-back transaction leaves no gap.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from usefirst.kit.errors import InvariantViolated, ValidationFailed
from usefirst.kit.ids import new_id
from usefirst.privacy.models import AuditChainHead, AuditEntry

GENESIS_HASH = "0" * 64
CHAIN_HEAD_ID = 1
_ENCODING_VERSION = "usefirst-audit-v1"
_VERIFY_BATCH = 2_000


@dataclass(frozen=True)
class AccessRecord:
    """One access to record; ``subject_shopper_id`` is None for actions on no one shopper."""

    actor: str
    action: str
    subject_shopper_id: str | None
    fields: Sequence[str]
    purpose: str
    reference_id: str | None = None


def canonical_encoding(
    *,
    seq: int,
    entry_id: str,
    occurred_at: datetime,
    actor: str,
    action: str,
    subject_shopper_id: str | None,
    fields: Sequence[str],
    purpose: str,
    reference_id: str | None,
    previous_hash: str,
) -> bytes:
    # A JSON array fixes the order of the parts; the time is UTC with microseconds, as stored.
    document = [
        _ENCODING_VERSION,
        seq,
        entry_id,
        occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        actor,
        action,
        subject_shopper_id,
        list(fields),
        purpose,
        reference_id,
        previous_hash,
    ]
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def hash_of(entry: AuditEntry) -> str:
    return hashlib.sha256(
        canonical_encoding(
            seq=entry.seq,
            entry_id=entry.id,
            occurred_at=entry.occurred_at,
            actor=entry.actor,
            action=entry.action,
            subject_shopper_id=entry.subject_shopper_id,
            fields=entry.fields,
            purpose=entry.purpose,
            reference_id=entry.reference_id,
            previous_hash=entry.previous_hash,
        )
    ).hexdigest()


def record_access(
    session: Session,
    *,
    actor: str,
    action: str,
    subject_shopper_id: str,
    fields: list[str],
    purpose: str,
    now: datetime,
    reference_id: str | None = None,
) -> None:
    """Record that ``actor`` saw ``fields`` of a shopper unmasked, and why. Call it in the same
    transaction as the read, so a read that is served is a read that is recorded."""
    append_entries(
        session,
        records=[
            AccessRecord(
                actor=actor,
                action=action,
                subject_shopper_id=subject_shopper_id,
                fields=fields,
                purpose=purpose,
                reference_id=reference_id,
            )
        ],
        now=now,
    )


def record_action(
    session: Session,
    *,
    actor: str,
    action: str,
    purpose: str,
    now: datetime,
    subject_shopper_id: str | None = None,
    fields: Sequence[str] = (),
    reference_id: str | None = None,
) -> None:
    """Record a privacy action (export, erasure, key rotation) in the same chain."""
    append_entries(
        session,
        records=[
            AccessRecord(
                actor=actor,
                action=action,
                subject_shopper_id=subject_shopper_id,
                fields=fields,
                purpose=purpose,
                reference_id=reference_id,
            )
        ],
        now=now,
    )


def append_entries(session: Session, *, records: Iterable[AccessRecord], now: datetime) -> int:
    """Append records to the chain under one lock of the head; returns how many were appended."""
    pending = list(records)
    if not pending:
        return 0
    for record in pending:
        _validate(record)
    head = _lock_head(session)
    seq, previous_hash = head.last_seq, head.last_hash
    for record in pending:
        seq += 1
        entry = AuditEntry(
            seq=seq,
            id=new_id("audit_entry"),
            occurred_at=now,
            actor=record.actor,
            action=record.action,
            subject_shopper_id=record.subject_shopper_id,
            fields=list(record.fields),
            purpose=record.purpose,
            reference_id=record.reference_id,
            previous_hash=previous_hash,
            row_hash="",
        )
        entry.row_hash = hash_of(entry)
        session.add(entry)
        previous_hash = entry.row_hash
    head.last_seq, head.last_hash = seq, previous_hash
    session.flush()
    return len(pending)


def _validate(record: AccessRecord) -> None:
    if not record.actor.strip() or len(record.actor) > 120:
        raise ValidationFailed("An audit record needs an actor (up to 120 characters).")
    if not record.action.strip() or len(record.action) > 64:
        raise ValidationFailed("An audit record needs an action (up to 64 characters).")
    if not record.purpose.strip() or len(record.purpose) > 500:
        raise ValidationFailed("An audit record needs a purpose (up to 500 characters).")


def _lock_head(session: Session) -> AuditChainHead:
    # The head row is created with the schema; recreate the genesis link if the tables were
    # emptied (TRUNCATE). ON CONFLICT DO NOTHING makes racing creators harmless.
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(AuditChainHead)
        .values(id=CHAIN_HEAD_ID, last_seq=0, last_hash=GENESIS_HASH)
        .on_conflict_do_nothing(index_elements=["id"])
    )
    head = session.scalars(
        select(AuditChainHead)
        .where(AuditChainHead.id == CHAIN_HEAD_ID)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if head is None:
        raise InvariantViolated("The audit chain head is missing.")
    return head


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    entry_id: str | None
    reason: str


@dataclass(frozen=True)
class ChainReport:
    rows_checked: int
    head_seq: int | None
    first_break: ChainBreak | None

    @property
    def is_intact(self) -> bool:
        return self.first_break is None


def verify_chain(session: Session) -> ChainReport:
    """Recompute every link from the first row; report the first row that does not fit."""
    expected_seq, previous_hash, checked = 1, GENESIS_HASH, 0
    last_seq = 0
    while True:
        batch = list(
            session.scalars(
                select(AuditEntry)
                .where(AuditEntry.seq >= expected_seq)
                .order_by(AuditEntry.seq)
                .limit(_VERIFY_BATCH)
                .execution_options(populate_existing=True)
            )
        )
        for entry in batch:
            problem = None
            if entry.seq != expected_seq:
                problem = f"row {expected_seq} is missing (next row is {entry.seq})"
            elif entry.previous_hash != previous_hash:
                problem = "previous_hash does not match the hash of the row before it"
            elif hash_of(entry) != entry.row_hash:
                problem = "row content does not match its hash (the row was altered)"
            if problem is not None:
                return ChainReport(
                    rows_checked=checked,
                    head_seq=_head_seq(session),
                    first_break=ChainBreak(seq=entry.seq, entry_id=entry.id, reason=problem),
                )
            checked += 1
            last_seq, previous_hash = entry.seq, entry.row_hash
            expected_seq += 1
        if len(batch) < _VERIFY_BATCH:
            break
    head = session.get(AuditChainHead, CHAIN_HEAD_ID)
    head_seq = head.last_seq if head is not None else None
    if head is not None and (head.last_seq != last_seq or head.last_hash != previous_hash):
        return ChainReport(
            rows_checked=checked,
            head_seq=head_seq,
            first_break=ChainBreak(
                seq=last_seq + 1,
                entry_id=None,
                reason=(
                    f"the chain head names row {head.last_seq} but the log ends at row "
                    f"{last_seq} (rows were removed from the end)"
                ),
            ),
        )
    return ChainReport(rows_checked=checked, head_seq=head_seq, first_break=None)


def _head_seq(session: Session) -> int | None:
    head = session.get(AuditChainHead, CHAIN_HEAD_ID)
    return head.last_seq if head is not None else None


def entries_about(
    session: Session, *, shopper_id: str, limit: int | None = None
) -> list[AuditEntry]:
    query = (
        select(AuditEntry)
        .where(AuditEntry.subject_shopper_id == shopper_id)
        .order_by(AuditEntry.seq)
    )
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def entries_about_action(session: Session, *, action: str) -> list[AuditEntry]:
    return list(
        session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
        )
    )


def entry_view(entry: AuditEntry) -> dict[str, object]:
    return {
        "seq": entry.seq,
        "id": entry.id,
        "occurred_at": entry.occurred_at,
        "actor": entry.actor,
        "action": entry.action,
        "subject_shopper_id": entry.subject_shopper_id,
        "fields": list(entry.fields),
        "purpose": entry.purpose,
        "reference_id": entry.reference_id,
        "row_hash": entry.row_hash,
    }


def record_accesses(
    session: Session,
    *,
    actor: str,
    action: str,
    subject_shopper_ids: Iterable[str],
    fields: list[str],
    purpose: str,
    now: datetime,
    reference_id: str | None = None,
) -> int:
    """Record one read of many shoppers' data (a bureau file, a report): one row per shopper, so
    each shopper's trail is complete, appended under one lock of the chain head."""
    return append_entries(
        session,
        records=[
            AccessRecord(
                actor=actor,
                action=action,
                subject_shopper_id=shopper_id,
                fields=fields,
                purpose=purpose,
                reference_id=reference_id,
            )
            for shopper_id in sorted(set(subject_shopper_ids))
        ],
        now=now,
    )
