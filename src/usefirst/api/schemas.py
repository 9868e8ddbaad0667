"""Request bodies of the v1 API. Unknown fields are rejected (422), never silently stored."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=4096)


class ConsentIn(Strict):
    privacy_policy_version: str = Field(min_length=1, max_length=32)
    credit_report_authorized: bool


class ApplicationIn(Strict):
    """Facts the marketplace knows about its own shopper; each may be left out (unknown)."""

    marketplace_account_age_days: int | None = Field(default=None, ge=0, le=36_500)
    orders_12m: int | None = Field(default=None, ge=0, le=100_000)
    spend_12m_minor: int | None = Field(default=None, ge=0, le=10_000_000_000_00)
    returns_12m: int | None = Field(default=None, ge=0, le=100_000)
    failed_payments_12m: int | None = Field(default=None, ge=0, le=100_000)
    has_verified_bank_card: bool | None = None


class EnrolShopperIn(Strict):
    external_id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=64)
    national_id: str = Field(min_length=1, max_length=32)
    phone: str = Field(min_length=1, max_length=32)
    email: str | None = Field(default=None, max_length=254)
    consent: ConsentIn
    device_id: str | None = Field(default=None, max_length=128)
    ip: str | None = Field(default=None, max_length=64)
    # Optional: with it the scorecard sets the starting limit; without it, the cold-start limit.
    application: ApplicationIn | None = None
    # Reminders: "zh-CN" (default) or "en"; an IANA time zone (default: the operator's). Checked
    # by the service, so a bad value is a 422 with its own code.
    language: str | None = Field(default=None, max_length=64)
    time_zone: str | None = Field(default=None, max_length=64)


class ContactPreferencesIn(Strict):
    language: str | None = Field(default=None, max_length=64)
    time_zone: str | None = Field(default=None, max_length=64)


class CreateMerchantIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    category: str = Field(min_length=1, max_length=64)
    webhook_url: str | None = Field(default=None, max_length=2048)
    settlement_days: int | None = Field(default=None, ge=0, le=90)
    fee_rate_bps: int | None = Field(default=None, ge=0, le=5_000)
    # The merchant's own phone (E.164) and address, optional: risk flags orders sent to them.
    phone: str | None = Field(default=None, min_length=1, max_length=32)
    address: str | None = Field(default=None, min_length=1, max_length=500)


class ItemIn(Strict):
    sku: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=200)
    category: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=10_000)
    unit_price_minor: int = Field(ge=0, le=10_000_000_00)


class CheckoutIn(Strict):
    shopper_id: str = Field(min_length=1, max_length=40)
    merchant_id: str = Field(min_length=1, max_length=40)
    currency: str = Field(default="CNY", min_length=3, max_length=3)
    items: list[ItemIn] = Field(min_length=1, max_length=200)
    plan: Literal["pay_after_delivery", "instalments_3", "instalments_6"]
    shipping_address: str = Field(min_length=1, max_length=500)
    device_id: str | None = Field(default=None, max_length=128)
    ip: str | None = Field(default=None, max_length=64)


class ShipIn(Strict):
    carrier: str = Field(min_length=1, max_length=64)
    tracking_number: str = Field(min_length=1, max_length=64)


class RefundIn(Strict):
    amount_minor: int = Field(gt=0)
    reason: str = Field(min_length=1, max_length=500)


class PaymentIn(Strict):
    shopper_id: str = Field(min_length=1, max_length=40)
    amount_minor: int = Field(gt=0, le=10_000_000_00)
    currency: str = Field(default="CNY", min_length=3, max_length=3)
    order_id: str | None = Field(default=None, max_length=40)
    method: Literal["alipay", "wechat", "bank_card", "other"]
    external_ref: str | None = Field(default=None, max_length=128)


class AdvanceClockIn(Strict):
    days: int = Field(default=0, ge=0, le=3650)
    seconds: int = Field(default=0, ge=0, le=86_400 * 3650)


class EmptyIn(Strict):
    pass
