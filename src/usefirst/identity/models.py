"""Shoppers (PII encrypted field by field), their consents, lookups for global uniqueness, API keys,
operators, and the console's sign-in: people (operators and merchants' staff) with a password and
TOTP, and their browser sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from usefirst.kit.db import Base, UTCDateTime

# Shoppers whose enrolment device or IP the link graph has not hashed yet (rows made before
# migration 0037): the graph run fills them, finding them through this partial index.
ENROLMENT_UNHASHED_SQL = (
    "(enrolment_device_id IS NOT NULL AND enrolment_device_hash IS NULL)"
    " OR (enrolment_ip IS NOT NULL AND enrolment_ip_hash IS NULL)"
)


class Shopper(Base):
    __tablename__ = "shoppers"
    __table_args__ = (
        Index(
            "ix_shoppers_enrolment_unhashed",
            "id",
            postgresql_where=text(ENROLMENT_UNHASHED_SQL),
            sqlite_where=text(ENROLMENT_UNHASHED_SQL),
        ),
        # The link graph's fresh accounts: shoppers enrolled in the last days (migration 0052).
        Index("ix_shoppers_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    name_encrypted: Mapped[str] = mapped_column(String(512))
    national_id_encrypted: Mapped[str] = mapped_column(String(512))
    phone_encrypted: Mapped[str] = mapped_column(String(512))
    email_encrypted: Mapped[str | None] = mapped_column(String(1024))
    name_masked: Mapped[str] = mapped_column(String(200))
    national_id_masked: Mapped[str] = mapped_column(String(18))
    phone_masked: Mapped[str] = mapped_column(String(32))
    email_masked: Mapped[str | None] = mapped_column(String(320))
    phone_hash: Mapped[str] = mapped_column(String(64), index=True)
    enrolment_device_id: Mapped[str | None] = mapped_column(String(128))
    enrolment_ip: Mapped[str | None] = mapped_column(String(64))
    # The link graph's keyed hashes of the two (``risk.features.identifier_hash``; "" when blank),
    # so that the shoppers holding one can be found in SQL (migration 0037).
    enrolment_device_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    enrolment_ip_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    # How reminders reach the shopper: their language ("zh-CN" | "en") and the IANA time zone whose
    # clock decides quiet hours and the daily contact cap. Enrolment sets both (the time zone
    # defaults to the operator's); the server defaults are for rows made before migration 0017.
    language: Mapped[str] = mapped_column(String(16), server_default=text("'zh-CN'"))
    time_zone: Mapped[str] = mapped_column(String(64), server_default=text("'Asia/Shanghai'"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class NationalIdLookup(Base):
    """One shopper per national ID, keyed by the ID's blind index (Citus: a lookup table)."""

    __tablename__ = "shopper_national_id_lookup"

    national_id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    shopper_id: Mapped[str] = mapped_column(String(40))


class ExternalIdLookup(Base):
    """One shopper per marketplace user id."""

    __tablename__ = "shopper_external_id_lookup"

    external_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    shopper_id: Mapped[str] = mapped_column(String(40))


class Consent(Base):
    __tablename__ = "consents"

    shopper_id: Mapped[str] = mapped_column(String(40), ForeignKey("shoppers.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    privacy_policy_version: Mapped[str] = mapped_column(String(32))
    credit_report_authorized: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiKey(Base):
    """A platform key, a merchant key or an operator's personal API token (only its hash kept)."""

    __tablename__ = "api_keys"
    __table_args__ = (
        Index("ix_api_keys_merchant_id", "merchant_id"),
        Index("ix_api_keys_operator_id", "operator_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # platform | merchant | operator
    merchant_id: Mapped[str | None] = mapped_column(String(40))
    operator_id: Mapped[str | None] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Wall time, like TOTP: a sandbox test clock moving business time never expires a key.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Written at most once a minute, so authenticating stays a read on the hot path.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # An operator token acts with this role (its operator's, or a narrower one an admin chose).
    role: Mapped[str | None] = mapped_column(String(32))
    revoked_reason: Mapped[str | None] = mapped_column(String(500))
    replaced_by_key_id: Mapped[str | None] = mapped_column(String(40))


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
