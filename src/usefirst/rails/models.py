"""Payment rails' tables: the shoppers' mandates, every charge attempt made against them, and
every callback a provider sent (believed or not)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from usefirst.kit.db import Base, UTCDateTime


class PaymentMandate(Base):
    """A shopper's authorisation for the engine to charge them through a provider."""

    __tablename__ = "payment_mandates"
    __table_args__ = (
        ForeignKeyConstraint(["shopper_id"], ["shoppers.id"], name="fk_payment_mandates_shopper"),
    )

    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    provider_mandate_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))  # active | revoked
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RailCharge(Base):
    """One attempt to charge one instalment. Attempt n of an instalment exists at most once, and
    its idempotency key (``order:seq:attempt``) is what the provider charges once by."""

    __tablename__ = "rail_charges"
    __table_args__ = (
        ForeignKeyConstraint(["shopper_id"], ["shoppers.id"], name="fk_rail_charges_shopper"),
        UniqueConstraint("shopper_id", "order_id", "seq", "attempt", name="uq_rail_charges_try"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("attempt >= 1", name="attempt_positive"),
        Index("ix_rail_charges_provider_charge", "provider", "provider_charge_id"),
        Index("ix_rail_charges_status_next", "status", "next_attempt_on"),
    )

    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    provider: Mapped[str] = mapped_column(String(16))
    mandate_id: Mapped[str] = mapped_column(String(40))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # scheduled | submitted | succeeded | failed | cancelled
    status: Mapped[str] = mapped_column(String(16))
    charge_on: Mapped[date] = mapped_column(Date)
    submit_at: Mapped[datetime] = mapped_column(UTCDateTime())
    provider_charge_id: Mapped[str | None] = mapped_column(String(128))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    next_attempt_on: Mapped[date | None] = mapped_column(Date)
    stop_reason: Mapped[str | None] = mapped_column(String(32))
    confirmed_by: Mapped[str | None] = mapped_column(String(16))  # callback | query | statement
    payment_id: Mapped[str | None] = mapped_column(String(40))
    reversed_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RailCallback(Base):
    """A callback as received: refused ones too (bad signature, replay, unknown charge, amount
    mismatch), so an operator can see what a provider or an attacker sent."""

    __tablename__ = "rail_callbacks"
    __table_args__ = (
        Index("ix_rail_callbacks_event", "provider", "event_id"),
        Index("ix_rail_callbacks_charge", "shopper_id", "charge_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str | None] = mapped_column(String(128))
    event_type: Mapped[str | None] = mapped_column(String(32))
    shopper_id: Mapped[str | None] = mapped_column(String(40))
    charge_id: Mapped[str | None] = mapped_column(String(40))
    provider_charge_id: Mapped[str | None] = mapped_column(String(128))
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    # posted | recorded (a decline) | duplicate | rejected
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # callback | query | statement
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReconciliationBreak(Base):
    """A difference between a provider's daily statement and our books that reconciliation did
    not settle by itself: a payment we posted that the provider never settled, an amount that
    differs, a line for a charge we do not know, a reversal that needs an operator. Found once per
    statement date, kept until an operator resolves it; its age is what the report shows."""

    __tablename__ = "reconciliation_breaks"
    __table_args__ = (
        UniqueConstraint(
            "provider", "statement_on", "kind", "line_key", name="uq_reconciliation_breaks_line"
        ),
        Index("ix_reconciliation_breaks_open", "resolved_at", "statement_on"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    statement_on: Mapped[date] = mapped_column(Date)
    # missing_on_provider | amount_mismatch | unknown_charge | reversal_needs_review
    kind: Mapped[str] = mapped_column(String(24))
    line_key: Mapped[str] = mapped_column(String(160))
    shopper_id: Mapped[str | None] = mapped_column(String(40))
    charge_id: Mapped[str | None] = mapped_column(String(40))
    provider_charge_id: Mapped[str | None] = mapped_column(String(128))
    our_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    their_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    found_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
