"""Credit lines (one per shopper) and the history of every change to them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from usefirst.kit.db import Base, JSONDocument, UTCDateTime


class CreditLine(Base):
    __tablename__ = "credit_lines"
    __table_args__ = (
        CheckConstraint("used_minor >= 0", name="used_not_negative"),
        CheckConstraint("used_minor <= limit_minor", name="used_within_limit"),
    )

    shopper_id: Mapped[str] = mapped_column(String(40), ForeignKey("shoppers.id"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    limit_minor: Mapped[int] = mapped_column(BigInteger)
    used_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16))  # active | frozen | closed
    score: Mapped[int | None] = mapped_column(Integer)
    band: Mapped[str | None] = mapped_column(String(8))
    scorecard_version: Mapped[str | None] = mapped_column(String(64))
    reasons: Mapped[Any] = mapped_column(JSONDocument)
    on_time_orders: Mapped[int] = mapped_column(Integer, default=0)
    reviewed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CreditLineChange(Base):
    __tablename__ = "credit_line_changes"

    shopper_id: Mapped[str] = mapped_column(String(40), ForeignKey("shoppers.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    previous_limit_minor: Mapped[int] = mapped_column(BigInteger)
    new_limit_minor: Mapped[int] = mapped_column(BigInteger)
    previous_status: Mapped[str | None] = mapped_column(String(16))
    new_status: Mapped[str] = mapped_column(String(16))
    reason_code: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(String(300))
    order_id: Mapped[str | None] = mapped_column(String(40))
    # Set when a scorecard decided the change: the score, its band, the scorecard version and the
    # features and points it was computed from.
    score: Mapped[int | None] = mapped_column(Integer)
    band: Mapped[str | None] = mapped_column(String(8))
    scorecard_version: Mapped[str | None] = mapped_column(String(64))
    scorecard_inputs: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
