"""Repayment schedules (instalments), payments and how each payment was allocated."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from usefirst.kit.db import Base, UTCDateTime


class Instalment(Base):
    __tablename__ = "instalments"
    __table_args__ = (
        ForeignKeyConstraint(
            ["shopper_id", "order_id"],
            ["orders.shopper_id", "orders.id"],
            name="fk_instalments_order",
        ),
        CheckConstraint(
            "paid_principal_minor >= 0 AND paid_principal_minor <= principal_minor",
            name="principal_paid_within",
        ),
        CheckConstraint(
            "paid_fees_minor >= 0 AND paid_fees_minor <= fees_minor + late_fees_minor",
            name="fees_paid_within",
        ),
        CheckConstraint("late_fees_minor >= 0", name="late_fees_not_negative"),
        Index("ix_instalments_status_due_on", "status", "due_on"),
        # The shopper's instalments that were ever late (few: most are never), counted by the
        # checkout's risk read without visiting the shopper's other instalments.
        Index(
            "ix_instalments_late_shopper",
            "shopper_id",
            postgresql_where=text("was_overdue"),
            sqlite_where=text("was_overdue"),
        ),
    )

    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    # scheduled (before delivery) | pending | overdue | paid | cancelled | charged_off
    status: Mapped[str] = mapped_column(String(16))
    due_on: Mapped[date | None] = mapped_column(Date)
    principal_minor: Mapped[int] = mapped_column(BigInteger)
    fees_minor: Mapped[int] = mapped_column(BigInteger)  # the plan fee
    late_fees_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    late_fees_waived_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    paid_principal_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_fees_minor: Mapped[int] = mapped_column(BigInteger, default=0)  # plan and late fees
    was_overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    settled_on: Mapped[date | None] = mapped_column(Date)
    # Days the shopper moved this instalment's due date by (at most once per order).
    extended_days: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The late fees a hardship plan moved onto this instalment when it made it, less what a
    # waiver, refund or settlement took off its late fees since (never more than its late fees):
    # until its due date they are all its late fees, which a bureau file made later for a month
    # before then needs apart from the ones the night charged since. None on an instalment a plan
    # did not make (and on a plan's made before migration 0064).
    late_fees_carried_minor: Mapped[int | None] = mapped_column(BigInteger, default=None)

    @property
    def all_fees_minor(self) -> int:
        return self.fees_minor + self.late_fees_minor

    @property
    def unpaid_fees_minor(self) -> int:
        return self.fees_minor + self.late_fees_minor - self.paid_fees_minor

    @property
    def unpaid_principal_minor(self) -> int:
        return self.principal_minor - self.paid_principal_minor

    @property
    def remaining_minor(self) -> int:
        return self.unpaid_principal_minor + self.unpaid_fees_minor


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (CheckConstraint("amount_minor > 0", name="amount_positive"),)

    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    order_id: Mapped[str | None] = mapped_column(String(40))
    method: Mapped[str] = mapped_column(String(16))
    external_ref: Mapped[str | None] = mapped_column(String(128))
    unapplied_minor: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Allocation(Base):
    """Money applied to one instalment, from a payment or from held (unapplied) credit."""

    __tablename__ = "allocations"
    __table_args__ = (Index("ix_allocations_payment", "shopper_id", "payment_id"),)

    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    source: Mapped[str] = mapped_column(String(24))  # payment | unapplied_credit
    payment_id: Mapped[str | None] = mapped_column(String(40))
    order_id: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(Integer)
    fees_minor: Mapped[int] = mapped_column(BigInteger)
    principal_minor: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class InstalmentChange(Base):
    """An instalment as it stood just before something other than a payment or the nightly run
    changed it (``cause``: ``refund`` cut it, a hardship plan ``rescheduled`` it, a settlement
    for less ``forgiven`` the rest, a ``late_fee_waiver`` took late fees off it, a payment
    ``reversal`` reopened it), so that a bureau file made later for a month that ended before the
    change reports the instalment as it was then."""

    __tablename__ = "instalment_changes"
    __table_args__ = (Index("ix_instalment_changes_order", "shopper_id", "order_id"),)

    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(Integer)
    cause: Mapped[str] = mapped_column(String(16))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status_before: Mapped[str] = mapped_column(String(16))
    principal_minor_before: Mapped[int] = mapped_column(BigInteger)
    fees_minor_before: Mapped[int] = mapped_column(BigInteger)
    settled_on_before: Mapped[date | None] = mapped_column(Date)
    # ``Instalment.late_fees_carried_minor`` just before (None where it had none, and on rows
    # made before migration 0064).
    late_fees_carried_minor_before: Mapped[int | None] = mapped_column(BigInteger, default=None)
