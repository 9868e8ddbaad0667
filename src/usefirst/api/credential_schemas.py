"""Request bodies of the credential endpoints: API keys, operator tokens, webhook endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from usefirst.api.schemas import Strict


class CreateApiKeyIn(Strict):
    kind: Literal["platform", "merchant"]
    merchant_id: str | None = Field(default=None, min_length=1, max_length=40)
    label: str = Field(default="", max_length=120)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class RotateApiKeyIn(Strict):
    # How long the replaced key keeps working: 0 (at once) to 30 days.
    overlap_hours: int = Field(default=24, ge=0, le=720)


class RevokeApiKeyIn(Strict):
    reason: str = Field(min_length=1, max_length=500)


class CreateOperatorTokenIn(Strict):
    # A fresh code from the operator's authenticator app: a token is never issued on the
    # strength of another token alone.
    totp_code: str = Field(min_length=6, max_length=10)
    role: Literal["admin", "risk_analyst", "collector", "compliance", "support"] | None = None
    expires_in_days: int | None = Field(default=None, ge=1, le=90)
    label: str = Field(default="", max_length=120)


class WebhookEndpointIn(Strict):
    webhook_url: str | None = Field(max_length=2048)


class RotateWebhookSecretIn(Strict):
    # How long the previous secret keeps signing beside the new one: 0 to 30 days.
    overlap_hours: int = Field(default=24, ge=0, le=720)


class RedeliverEventIn(Strict):
    destinations: list[Literal["merchant", "platform"]] | None = Field(
        default=None, min_length=1, max_length=2
    )
