"""Shoppers (PII encrypted field by field), their consents, lookups for global uniqueness, API keys
and operators."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from usefirst.kit.db import Base, UTCDateTime


class Shopper(Base):
    __tablename__ = "shoppers"

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
    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_merchant_id", "merchant_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # platform | merchant | operator
    merchant_id: Mapped[str | None] = mapped_column(String(40))
    operator_id: Mapped[str | None] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
