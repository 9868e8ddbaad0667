"""Disputes, the evidence files behind them, every step of their history, and how a shopper's
disputes paused the dunning of each order.

Disputes belong to an order and so to its shopper: every key starts with ``shopper_id`` (the
distribution column); ``merchant_id`` is carried for the merchant's own look-ups.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from usefirst.kit.db import Base, UTCDateTime


class Dispute(Base):
    __tablename__ = "disputes"
    __table_args__ = (
        # ``open_order_id`` is the order id while the dispute is unresolved and NULL after: the
        # database itself allows one unresolved dispute per order (NULLs never collide).
        UniqueConstraint("shopper_id", "open_order_id", name="uq_disputes_one_open_per_order"),
        ForeignKeyConstraint(["shopper_id", "order_id"], ["orders.shopper_id", "orders.id"]),
        CheckConstraint("disputed_minor >= 0", name="disputed_not_negative"),
        CheckConstraint("shopper_refund_minor >= 0", name="refund_not_negative"),
        Index("ix_disputes_id", "id"),
        Index("ix_disputes_merchant_id", "merchant_id", "id"),
        Index("ix_disputes_status", "status", "respond_by"),
    )

    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40))
    open_order_id: Mapped[str | None] = mapped_column(String(40))
    merchant_id: Mapped[str] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    opened_by: Mapped[str] = mapped_column(String(16))  # merchant | shopper
    reason: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text)
    # open → awaiting_evidence → under_review → resolved
    status: Mapped[str] = mapped_column(String(24))
    # A shopper's dispute pauses dunning on the order; a merchant's does not.
    is_pausing_collections: Mapped[bool] = mapped_column(Boolean)
    # What was left of the order (amount less refunds) when the dispute was filed.
    disputed_minor: Mapped[int] = mapped_column(BigInteger)
    respond_by: Mapped[datetime] = mapped_column(UTCDateTime())
    decide_by: Mapped[datetime] = mapped_column(UTCDateTime())
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(String(16))  # for_shopper | for_merchant | split
    # decision | respondent_missed_deadline | decision_deadline_missed
    resolution_basis: Mapped[str | None] = mapped_column(String(32))
    resolved_by: Mapped[str | None] = mapped_column(String(40))  # operator id, or "system"
    resolution_note: Mapped[str | None] = mapped_column(Text)
    shopper_refund_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refund_id: Mapped[str | None] = mapped_column(String(40))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DisputeEvidence(Base):
    """One file submitted to a dispute. The bytes live in the evidence store under their
    SHA-256; the caller's filename is kept only as sanitised metadata."""

    __tablename__ = "dispute_evidence"
    __table_args__ = (
        UniqueConstraint("shopper_id", "dispute_id", "sha256", name="uq_dispute_evidence_content"),
        ForeignKeyConstraint(["shopper_id", "dispute_id"], ["disputes.shopper_id", "disputes.id"]),
        CheckConstraint("size_bytes > 0", name="size_positive"),
        Index("ix_dispute_evidence_dispute", "shopper_id", "dispute_id", "id"),
    )

    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    dispute_id: Mapped[str] = mapped_column(String(40))
    submitted_by: Mapped[str] = mapped_column(String(16))  # merchant | shopper | operator
    submitter_id: Mapped[str] = mapped_column(String(40))  # api key or operator id
    content_type: Mapped[str] = mapped_column(String(64))  # as detected from the bytes
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DisputeAction(Base):
    """The dispute's history, one row per step, never updated."""

    __tablename__ = "dispute_actions"
    __table_args__ = (
        ForeignKeyConstraint(["shopper_id", "dispute_id"], ["disputes.shopper_id", "disputes.id"]),
    )

    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    dispute_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(40))  # merchant | shopper | operator | system
    actor_id: Mapped[str | None] = mapped_column(String(40))
    status_after: Mapped[str] = mapped_column(String(24))
    detail: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DisputedOrder(Base):
    """How a shopper's disputes paused the dunning of an order: whether one is open (it pauses
    reminders, late fees and escalation, and the bureau file flags it), since which business
    date, the days past due the closed ones paused, and when the last one closed. Made when the
    order's first shopper dispute opens."""

    __tablename__ = "disputed_orders"

    shopper_id: Mapped[str] = mapped_column(String(40), ForeignKey("shoppers.id"), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    is_disputed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    disputed_since_on: Mapped[date | None] = mapped_column(Date)
    # Days past due = days since due - paused days (see ``disputes.pauses``).
    dispute_paused_days: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    dispute_resolved_on: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DisputePauseClosure(Base):
    """An order's pause as it stood just before a shopper dispute on it closed (the dispute open
    since ``disputed_since_on_before``, the paused days and last closing of the ones closed
    before it), and when: a bureau file made later for a month that ended before the closing
    reports the pause as it was then. Closings before migration 0064 have no row."""

    __tablename__ = "dispute_pause_closures"
    __table_args__ = (Index("ix_dispute_pause_closures_order", "shopper_id", "order_id"),)

    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40))
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disputed_since_on_before: Mapped[date | None] = mapped_column(Date)
    dispute_paused_days_before: Mapped[int] = mapped_column(Integer)
    dispute_resolved_on_before: Mapped[date | None] = mapped_column(Date)
