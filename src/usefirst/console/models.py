"""Console sign-in: people (operators and merchants' staff) with a password and TOTP, and their
browser sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from usefirst.kit.db import Base, UTCDateTime


class ConsoleAccount(Base):
    __tablename__ = "console_accounts"
    __table_args__ = (Index("ix_console_accounts_merchant_id", "merchant_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # operator | merchant
    operator_id: Mapped[str | None] = mapped_column(String(40))
    merchant_id: Mapped[str | None] = mapped_column(String(40))
    password_hash: Mapped[str] = mapped_column(String(256))
    # Set when TOTP enrolment starts; it counts only once totp_enrolled_at is set.
    totp_secret_encrypted: Mapped[str | None] = mapped_column(String(512))
    totp_enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The last 30-second TOTP step accepted: a code of that step or older is a replay.
    last_totp_step: Mapped[int] = mapped_column(BigInteger, default=0)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ConsoleSession(Base):
    __tablename__ = "console_sessions"
    __table_args__ = (Index("ix_console_sessions_account_id", "account_id"),)

    # SHA-256 of the cookie's secret: a leaked table cannot be replayed as cookies.
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40))
    stage: Mapped[str] = mapped_column(String(16))  # second_factor | active
    csrf_token: Mapped[str] = mapped_column(String(64))
    second_factor_failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
