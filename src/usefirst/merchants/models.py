"""Merchants selling through the marketplace with usefirst as a payment option."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from usefirst.kit.db import Base, JSONDocument, UTCDateTime


class Merchant(Base):
    __tablename__ = "merchants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # active | on_watch | suspended | banned
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    webhook_secret_encrypted: Mapped[str] = mapped_column(String(512))
    # After a rotation the previous secret signs too, until it expires (Standard Webhooks allows
    # several signatures), so the receiver can switch secrets without dropping a delivery.
    previous_webhook_secret_encrypted: Mapped[str | None] = mapped_column(String(512))
    previous_webhook_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    settlement_days: Mapped[int] = mapped_column(Integer)
    fee_rate_bps: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The merchant's own phone and address (optional), encrypted with keyed hashes: an order
    # shipped to the merchant itself is a cash-out signal.
    phone_encrypted: Mapped[str | None] = mapped_column(String(512))
    phone_hash: Mapped[str | None] = mapped_column(String(64))
    address_encrypted: Mapped[str | None] = mapped_column(String(2048))
    address_hash: Mapped[str | None] = mapped_column(String(64))


class SettlementHold(Base):
    """A reason not to pay out one order yet (a risk case, an open dispute). An order with any
    active hold stays out of payouts; releasing the last one lets the next payout include it."""

    __tablename__ = "settlement_holds"
    __table_args__ = (Index("ix_settlement_holds_merchant_order", "merchant_id", "order_id"),)

    merchant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(80))  # "risk:cas_…", "dispute:dsp_…"
    reason: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Settlement(Base):
    """One payout run of one merchant, currency and business date (at most one: idempotent).

    Amounts are what the platform owes the merchant (positive) and add up exactly:
    net = gross - refunded - fee - reserve + reserve_released - clawback - fines.
    """

    __tablename__ = "settlements"
    __table_args__ = (
        UniqueConstraint("merchant_id", "currency", "settled_on", name="uq_settlements_day"),
    )

    merchant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    settled_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))  # paid
    order_count: Mapped[int] = mapped_column(Integer)
    gross_minor: Mapped[int] = mapped_column(BigInteger)
    refunded_minor: Mapped[int] = mapped_column(BigInteger)
    fee_minor: Mapped[int] = mapped_column(BigInteger)
    reserve_minor: Mapped[int] = mapped_column(BigInteger)
    reserve_released_minor: Mapped[int] = mapped_column(BigInteger)
    clawback_minor: Mapped[int] = mapped_column(BigInteger)
    fines_minor: Mapped[int] = mapped_column(BigInteger)
    net_minor: Mapped[int] = mapped_column(BigInteger)
    payout_rail: Mapped[str] = mapped_column(String(40))
    payout_reference: Mapped[str] = mapped_column(String(120))
    payout_entry_id: Mapped[str | None] = mapped_column(String(40))
    reserve_entry_id: Mapped[str | None] = mapped_column(String(40))
    reserve_release_on: Mapped[date | None] = mapped_column(Date)
    reserve_release_entry_id: Mapped[str | None] = mapped_column(String(40))
    reserve_released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SettlementLine(Base):
    """One journal entry on the merchant's payable, and the payout that settled it. Every posting
    to a merchant payable ends up in exactly one settlement, which is why statements reconcile."""

    __tablename__ = "settlement_lines"
    __table_args__ = (
        Index("ix_settlement_lines_settlement", "merchant_id", "settlement_id"),
        Index("ix_settlement_lines_order", "merchant_id", "order_id"),
    )

    merchant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    entry_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    settlement_id: Mapped[str] = mapped_column(String(40))
    order_id: Mapped[str | None] = mapped_column(String(40))
    entry_kind: Mapped[str] = mapped_column(String(40))
    # sale | refund | fee | clawback | fine | reserve | reserve_release | payout
    component: Mapped[str] = mapped_column(String(20))
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # owed to the merchant: + credit, - debit


class StandingChange(Base):
    """Every change of a merchant's standing, with who decided, why, and the evidence."""

    __tablename__ = "merchant_standing_changes"

    merchant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(1000))
    evidence: Mapped[list[str]] = mapped_column(JSONDocument)
    decided_by: Mapped[str] = mapped_column(String(80))
    appeal_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MerchantFine(Base):
    __tablename__ = "merchant_fines"

    merchant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(1000))
    evidence: Mapped[list[str]] = mapped_column(JSONDocument)
    decided_by: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(16))  # posted | reversed
    entry_id: Mapped[str] = mapped_column(String(40))
    reversal_entry_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reversed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MerchantAppeal(Base):
    """A merchant contests a standing change or a fine; an admin grants or denies it."""

    __tablename__ = "merchant_appeals"

    merchant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject_type: Mapped[str] = mapped_column(String(16))  # standing_change | fine
    subject_id: Mapped[str] = mapped_column(String(40))
    grounds: Mapped[str] = mapped_column(String(4000))
    evidence: Mapped[list[str]] = mapped_column(JSONDocument)
    status: Mapped[str] = mapped_column(String(16))  # open | granted | denied
    filed_by: Mapped[str] = mapped_column(String(80))
    filed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(80))
    decision_note: Mapped[str | None] = mapped_column(String(2000))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
