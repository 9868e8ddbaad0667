"""Merchants selling through the marketplace with usefirst as a payment option."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from usefirst.kit.db import Base, UTCDateTime


class Merchant(Base):
    __tablename__ = "merchants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # active | on_watch | suspended | banned
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    webhook_secret_encrypted: Mapped[str] = mapped_column(String(512))
    settlement_days: Mapped[int] = mapped_column(Integer)
    fee_rate_bps: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
