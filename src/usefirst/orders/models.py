"""Orders bought on credit and refunds against them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from usefirst.kit.db import Base, JSONDocument, UTCDateTime


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("refunded_minor >= 0 AND refunded_minor <= amount_minor", name="refunds"),
        Index("ix_orders_id", "id"),
        Index("ix_orders_merchant_id", "merchant_id", "id"),
        # Covers the checkout decision's merchant book (risk.features): no table reads; the order's
        # key finds whether it ever fell behind (collections' delinquent_orders).
        Index(
            "ix_orders_merchant_book",
            "merchant_id",
            "created_at",
            "status",
            "shopper_id",
            "id",
            "amount_minor",
            "refunded_minor",
        ),
        Index("ix_orders_status", "status", "shipped_at"),
        # With the shipping time: the link graph groups the window's numbers from the index alone.
        Index("ix_orders_tracking_number", "tracking_number", "shipped_at"),
    )

    shopper_id: Mapped[str] = mapped_column(String(40), ForeignKey("shoppers.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    plan: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    items: Mapped[Any] = mapped_column(JSONDocument)
    shipping_address_encrypted: Mapped[str | None] = mapped_column(String(2048))
    # Keyed hash of the normalised address: links orders shipped to one place (risk).
    shipping_address_hash: Mapped[str | None] = mapped_column(String(64))
    device_id: Mapped[str | None] = mapped_column(String(128))
    ip: Mapped[str | None] = mapped_column(String(64))
    decision_outcome: Mapped[str] = mapped_column(String(16))
    decision_reasons: Mapped[Any] = mapped_column(JSONDocument)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())
    carrier: Mapped[str | None] = mapped_column(String(64))
    tracking_number: Mapped[str | None] = mapped_column(String(64))
    shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivery_confirmation: Mapped[str | None] = mapped_column(String(16))  # shopper | automatic
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    repaid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (CheckConstraint("amount_minor > 0", name="amount_positive"),)

    shopper_id: Mapped[str] = mapped_column(String(40), ForeignKey("shoppers.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40))
    merchant_id: Mapped[str] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    reduced_debt_minor: Mapped[int] = mapped_column(BigInteger)
    waived_fees_minor: Mapped[int] = mapped_column(BigInteger)
    returned_to_shopper_minor: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
