"""Tables of the shared plumbing: sandbox clock, idempotency records, outbox, events, the
versions of operator-edited configuration (risk rules, dunning ladder), and the failed
authentications the throttle counts on PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Double,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import Mapped, mapped_column

from usefirst.kit.db import Base, JSONDocument, UTCDateTime

# The distribution key of rows about a subject (events, journal entries and their postings): the
# shopper when there is one, else the merchant, else the platform itself (usefirst.distribution).
PLATFORM_SHARD_KEY = "platform"


def subject_shard_key(shopper_id: object, merchant_id: object) -> str:
    for subject in (shopper_id, merchant_id):
        if isinstance(subject, str) and subject:
            return subject
    return PLATFORM_SHARD_KEY


def subject_shard_key_column() -> Mapped[str]:
    """``shard_key``, in the primary key (first, unless the table says otherwise), filled from the
    row's shopper or merchant."""

    def from_subject(context: DefaultExecutionContext) -> str:
        values = context.get_current_parameters()  # type: ignore[no-untyped-call]
        return subject_shard_key(values.get("shopper_id"), values.get("merchant_id"))

    return mapped_column(String(40), primary_key=True, default=from_subject)


def payload_shard_key(payload: object) -> str:
    """The shard key of an outbox message about what its payload names: the shopper, else the
    merchant, else the platform."""
    if not isinstance(payload, dict):
        return PLATFORM_SHARD_KEY
    return subject_shard_key(payload.get("shopper_id"), payload.get("merchant_id"))


def outbox_shard_key_column() -> Mapped[str]:
    """An outbox message's ``shard_key``, in its primary key (``payload_shard_key`` when
    not given)."""

    def from_payload(context: DefaultExecutionContext) -> str:
        values = context.get_current_parameters()  # type: ignore[no-untyped-call]
        return payload_shard_key(values.get("payload"))

    return mapped_column(String(40), primary_key=True, default=from_payload)


class SandboxClock(Base):
    __tablename__ = "sandbox_clock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    now_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_records"

    principal_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OutboxMessage(Base):
    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index("ix_outbox_messages_pending", "delivered_at", "available_at"),
        # The id first, as the journal's (migration 0060): the night's ~57,000 messages land at
        # the key's right edge.
        PrimaryKeyConstraint("id", "shard_key"),
    )

    # The subject's shard (the shopper, else the merchant, else "platform"): on a Citus cluster
    # a message lives and is claimed on the shard of what it is about (usefirst.distribution).
    shard_key: Mapped[str] = outbox_shard_key_column()
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    topic: Mapped[str] = mapped_column(String(64))
    payload: Mapped[Any] = mapped_column(JSONDocument)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The request (or job) that wrote the message: its delivery logs and webhook carry it.
    request_id: Mapped[str | None] = mapped_column(String(128))


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_id", "id"),
        Index("ix_events_type_id", "type", "id"),
        Index("ix_events_merchant_id", "merchant_id", "id"),
    )

    shard_key: Mapped[str] = subject_shard_key_column()
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    merchant_id: Mapped[str | None] = mapped_column(String(40))
    shopper_id: Mapped[str | None] = mapped_column(String(40))
    data: Mapped[Any] = mapped_column(JSONDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConfigVersion(Base):
    """One saved version of an operator-edited configuration document. Append-only: a change is
    a new version with the next number; the highest number is in force."""

    __tablename__ = "config_versions"
    __table_args__ = (UniqueConstraint("kind", "number"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # risk_rules | dunning_ladder | fraud_model
    number: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(120))  # e.g. the rule file's own version string
    note: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(40))  # operator id, or "cli"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuthThrottleHit(Base):
    """One failed authentication counted by a throttle (kit.throttle.DatabaseThrottleStorage):
    every API process on one PostgreSQL database counts in this table, so a limit is one limit
    however many processes serve. Times are the database's clock in epoch seconds, as PyPI
    ``limits`` counts; a row is deleted once it has left every window (``expires_at``)."""

    __tablename__ = "auth_throttle_hits"
    __table_args__ = (
        Index("ix_auth_throttle_hits_key_hit_at", "throttle_key", "hit_at"),
        Index("ix_auth_throttle_hits_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    # limits' key: the limit's namespace, the identifiers (address, email key) and the limit.
    throttle_key: Mapped[str] = mapped_column(String(512))
    hit_at: Mapped[float] = mapped_column(Double())
    expires_at: Mapped[float] = mapped_column(Double())
