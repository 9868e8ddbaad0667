"""Request bodies of the v1 API. Unknown fields are rejected (422), never silently stored.

Money and counts are JSON integers only (``strict``): ``true``, ``"100"`` and ``100.0`` are
refused, so no client's careless encoding is read as an amount. Text shapes: api.text_rules."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from usefirst.api.text_rules import (
    Category,
    Currency,
    IpAddress,
    Line,
    NationalId,
    ObjectId,
    TrackingNumber,
)

# The largest amount any one request may name (ten thousand million yuan): far above any real
# order, well inside a 64-bit integer.
MAX_MINOR = 10_000_000_000_00


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=4096)


class ConsentIn(Strict):
    privacy_policy_version: Line = Field(min_length=1, max_length=32)
    credit_report_authorized: bool = Field(strict=True)


class ApplicationIn(Strict):
    """Facts the marketplace knows about its own shopper; each may be left out (unknown)."""

    marketplace_account_age_days: int | None = Field(strict=True, default=None, ge=0, le=36_500)
    orders_12m: int | None = Field(strict=True, default=None, ge=0, le=100_000)
    spend_12m_minor: int | None = Field(strict=True, default=None, ge=0, le=10_000_000_000_00)
    returns_12m: int | None = Field(strict=True, default=None, ge=0, le=100_000)
    failed_payments_12m: int | None = Field(strict=True, default=None, ge=0, le=100_000)
    has_verified_bank_card: bool | None = Field(default=None, strict=True)


class EnrolShopperIn(Strict):
    external_id: Line = Field(min_length=1, max_length=128)
    name: Line = Field(min_length=1, max_length=64)
    national_id: NationalId
    phone: Line = Field(min_length=1, max_length=32)
    email: Line | None = Field(default=None, max_length=254)
    consent: ConsentIn
    device_id: Line | None = Field(default=None, max_length=128)
    ip: IpAddress | None = None
    # Optional: with it the scorecard sets the starting limit; without it, the cold-start limit.
    application: ApplicationIn | None = None
    # Reminders: "zh-CN" (default) or "en"; an IANA time zone (default: the operator's). Checked
    # by the service, so a bad value is a 422 with its own code.
    language: Line | None = Field(default=None, max_length=64)
    time_zone: Line | None = Field(default=None, max_length=64)


class ContactPreferencesIn(Strict):
    language: Line | None = Field(default=None, max_length=64)
    time_zone: Line | None = Field(default=None, max_length=64)


class CreateMerchantIn(Strict):
    name: Line = Field(min_length=1, max_length=200)
    category: Category
    webhook_url: Line | None = Field(default=None, max_length=2048)
    settlement_days: int | None = Field(strict=True, default=None, ge=0, le=90)
    fee_rate_bps: int | None = Field(strict=True, default=None, ge=0, le=5_000)
    # The merchant's own phone (E.164) and address, optional: risk flags orders sent to them.
    phone: Line | None = Field(default=None, min_length=1, max_length=32)
    address: str | None = Field(default=None, min_length=1, max_length=500)


class ItemIn(Strict):
    sku: Line = Field(min_length=1, max_length=128)
    name: Line = Field(min_length=1, max_length=200)
    category: Category
    quantity: int = Field(strict=True, ge=1, le=10_000)
    unit_price_minor: int = Field(strict=True, ge=0, le=10_000_000_00)


class CheckoutIn(Strict):
    shopper_id: ObjectId
    merchant_id: ObjectId
    currency: Currency = "CNY"
    items: list[ItemIn] = Field(min_length=1, max_length=200)
    plan: Literal["pay_after_delivery", "instalments_3", "instalments_6"]
    shipping_address: str = Field(min_length=1, max_length=500)
    device_id: Line | None = Field(default=None, max_length=128)
    ip: IpAddress | None = None


class ShipIn(Strict):
    carrier: Line = Field(min_length=1, max_length=64)
    tracking_number: TrackingNumber


class RefundIn(Strict):
    amount_minor: int = Field(strict=True, gt=0, le=MAX_MINOR)
    reason: str = Field(min_length=1, max_length=500)


class PaymentIn(Strict):
    shopper_id: ObjectId
    amount_minor: int = Field(strict=True, gt=0, le=10_000_000_00)
    currency: Currency = "CNY"
    order_id: ObjectId | None = None
    method: Literal["alipay", "wechat", "bank_card", "other"]
    external_ref: Line | None = Field(default=None, max_length=128)


class AdvanceClockIn(Strict):
    days: int = Field(strict=True, default=0, ge=0, le=3650)
    seconds: int = Field(strict=True, default=0, ge=0, le=86_400 * 3650)


class EmptyIn(Strict):
    pass
