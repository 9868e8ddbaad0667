"""Collections: the orders that fell behind, every contact attempt, legal cases, credit-bureau
files, operators' waivers of late fees, shoppers' hardship requests and the plans that answer
them, and the record of the business dates the daily sweep ran."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column

from usefirst.kit.db import Base, JSONDocument, UTCDateTime


class ContactAttempt(Base):
    """One reminder or call, planned by the dunning ladder or logged by a collector."""

    __tablename__ = "contact_attempts"
    __table_args__ = (
        # A ladder step reaches an instalment on a channel at most once.
        UniqueConstraint("shopper_id", "order_id", "seq", "step_day", "channel", name="uq_step"),
        # The id first: the daily sweep inserts ~50,000 attempts a day, and ids grow with time, so
        # they land at the key's right edge instead of on a page of every shopper (migration
        # 0060). No index on (shopper_id, scheduled_at): a shopper's attempts (a few dozen at
        # most) are found by uq_step's shopper_id prefix and sorted in memory (migration 0014).
        PrimaryKeyConstraint("id", "shopper_id"),
    )

    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # None for a notice about the shopper's account (a credit limit changed), not an order.
    order_id: Mapped[str | None] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(Integer)  # instalment; 0 for order-level contacts
    channel: Mapped[str] = mapped_column(String(8))  # push | sms | email | call
    step_day: Mapped[int | None] = mapped_column(Integer)  # ladder day; None for manual calls
    step: Mapped[str] = mapped_column(String(40))
    template: Mapped[str | None] = mapped_column(String(64))
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(12))  # scheduled|deferred|sent|suppressed|failed
    status_reason: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str | None] = mapped_column(String(24))
    promise_on: Mapped[date | None] = mapped_column(Date)
    promise_minor: Mapped[int | None] = mapped_column(BigInteger)
    note: Mapped[str | None] = mapped_column(Text)
    operator_id: Mapped[str | None] = mapped_column(String(40))
    destination_masked: Mapped[str | None] = mapped_column(String(320))
    provider_reference: Mapped[str | None] = mapped_column(String(128))
    # A notice's facts, fixed when its event happened (amounts as minor units, dates ISO); None
    # for dunning reminders, which are written as true when they go out.
    facts: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DelinquentOrder(Base):
    """Collections' record of an order that fell behind: the day it first became delinquent and
    the day it reached each one-time step of the ladder (call queue, credit-bureau report, legal
    referral, charge-off, with the amount written off). Made the first time the daily sweep finds
    the order overdue; each step is set once."""

    __tablename__ = "delinquent_orders"

    shopper_id: Mapped[str] = mapped_column(String(40), ForeignKey("shoppers.id"), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    first_delinquent_on: Mapped[date | None] = mapped_column(Date)
    call_queue_since_on: Mapped[date | None] = mapped_column(Date)
    bureau_reported_on: Mapped[date | None] = mapped_column(Date)
    legal_referred_on: Mapped[date | None] = mapped_column(Date)
    charged_off_on: Mapped[date | None] = mapped_column(Date)
    charged_off_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LegalCase(Base):
    __tablename__ = "legal_cases"
    __table_args__ = (UniqueConstraint("shopper_id", "order_id", name="uq_legal_case_order"),)

    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(12))  # referred | filed | judgment | closed
    claimed_principal_minor: Mapped[int] = mapped_column(BigInteger)
    claimed_fees_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BureauFile(Base):
    __tablename__ = "bureau_files"
    __table_args__ = (Index("ix_bureau_files_period", "period", "format"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    format: Mapped[str] = mapped_column(String(8))  # metro2 | jsonl
    records: Mapped[int] = mapped_column(Integer)
    # The file as sent to the bureau (names, national IDs, phones), encrypted at rest under the
    # field name "content"; files made before migration 0016 hold their text until key rotation.
    content_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LateFeeWaiver(Base):
    """An operator's waiver of an order's late fees with its reason in full: the journal entry's
    memo has room for 200 characters, and the ledger is never erased."""

    __tablename__ = "late_fee_waivers"
    __table_args__ = (CheckConstraint("amount_minor > 0", name="amount_positive"),)

    shopper_id: Mapped[str] = mapped_column(String(40), ForeignKey("shoppers.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40))
    entry_id: Mapped[str] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(500))
    operator_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SweepRun(Base):
    """A business date the daily sweep ran, and its summary."""

    __tablename__ = "sweep_runs"

    business_on: Mapped[date] = mapped_column(Date, primary_key=True)
    completed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    summary: Mapped[Any] = mapped_column(JSONDocument)


class SweepStep(Base):
    """A step of a business date's sweep that is done (committed with the step's own work), and
    what it did. The sweep resumes after a crash at the first step without a row."""

    __tablename__ = "sweep_steps"

    business_on: Mapped[date] = mapped_column(Date, primary_key=True)
    step: Mapped[str] = mapped_column(String(100), primary_key=True)
    completed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    counts: Mapped[Any] = mapped_column(JSONDocument)


# A hardship request holds the order's late fees, dunning, escalation and auto-debit while it is
# open (awaiting the operator's answer), while a settlement for less is on offer, and while a
# plan runs; a plan that ends (kept or broken), a settlement paid or lapsed, a refusal, lift it.
HARDSHIP_HOLDING_STATUSES = ("open", "offered", "plan")
HARDSHIP_HOLDING_SQL = "status IN ('open', 'offered', 'plan')"
# The held orders, as a derived table for other domains' set-based SQL (as DISPUTE_PAUSES).
HARDSHIP_HOLDS = (
    f"(SELECT shopper_id, order_id FROM hardship_requests WHERE {HARDSHIP_HOLDING_SQL})"
)


class HardshipRequest(Base):
    """A shopper's request for relief on one order, and the operator's answer: a plan that
    re-spreads what is owed over some months, fee-free; a settlement for less (the rest written
    off as a loss); or a refusal. At most one holding request per order.

    status: open (awaiting an answer, due by ``answer_due_on``) → plan | offered | declined;
    plan → completed (every plan payment made) | broken (a plan payment missed past its notice);
    offered → settled (paid) | lapsed (not paid by ``settlement_valid_until_on``)."""

    __tablename__ = "hardship_requests"
    __table_args__ = (
        ForeignKeyConstraint(["shopper_id"], ["shoppers.id"], name="fk_hardship_requests_shopper"),
        Index(
            "uq_hardship_requests_holding",
            "shopper_id",
            "order_id",
            unique=True,
            postgresql_where=sql_text(HARDSHIP_HOLDING_SQL),
            sqlite_where=sql_text(HARDSHIP_HOLDING_SQL),
        ),
        CheckConstraint("plan_months IS NULL OR plan_months >= 1", name="plan_months_positive"),
        CheckConstraint(
            "settlement_minor IS NULL OR settlement_minor > 0", name="settlement_positive"
        ),
    )

    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(12))
    opened_by: Mapped[str] = mapped_column(String(12))  # shopper | operator
    reason: Mapped[str] = mapped_column(String(500))
    currency: Mapped[str] = mapped_column(String(3))
    owed_minor: Mapped[int] = mapped_column(BigInteger)  # what the order owed when it opened
    opened_on: Mapped[date] = mapped_column(Date)
    answer_due_on: Mapped[date] = mapped_column(Date)
    decided_on: Mapped[date | None] = mapped_column(Date)
    decision: Mapped[str | None] = mapped_column(String(12))  # plan | settlement | declined
    decision_note: Mapped[str | None] = mapped_column(String(500))
    operator_id: Mapped[str | None] = mapped_column(String(40))
    plan_months: Mapped[int | None] = mapped_column(Integer)
    # The plan's monthly payment as agreed (its first, largest instalment): what the bureau file
    # reports as the scheduled payment, whatever late fees a broken plan accrues later.
    plan_instalment_minor: Mapped[int | None] = mapped_column(BigInteger)
    settlement_minor: Mapped[int | None] = mapped_column(BigInteger)
    settlement_valid_until_on: Mapped[date | None] = mapped_column(Date)
    written_off_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    missed_notice_on: Mapped[date | None] = mapped_column(Date)
    answer_overdue_on: Mapped[date | None] = mapped_column(Date)
    ended_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
