"""Onboarding a merchant: merchants registers it (with its webhook secret), then identity issues
the API key it calls the engine with, recorded in the audit chain like every other credential
issued (flows.credentials). Both secrets are shown once, in the answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from usefirst.flows import credentials
from usefirst.kit.crypto import FieldCipher
from usefirst.merchants import service as merchant_service
from usefirst.merchants.models import Merchant


@dataclass(frozen=True)
class NewMerchant:
    merchant: Merchant
    api_key: str
    webhook_secret: str


def create_merchant(
    session: Session,
    *,
    name: str,
    category: str,
    webhook_url: str | None,
    settlement_days: int | None,
    fee_rate_bps: int | None,
    cipher: FieldCipher,
    actor: str,
    now: datetime,
    phone: str | None = None,
    address: str | None = None,
    allow_private_destinations: bool = False,
) -> NewMerchant:
    registered = merchant_service.register_merchant(
        session,
        name=name,
        category=category,
        webhook_url=webhook_url,
        settlement_days=settlement_days,
        fee_rate_bps=fee_rate_bps,
        cipher=cipher,
        now=now,
        phone=phone,
        address=address,
        allow_private_destinations=allow_private_destinations,
    )
    merchant = registered.merchant
    issued = credentials.issue_merchant_key(
        session, merchant_id=merchant.id, actor=actor, label=merchant.name, now=now
    )
    return NewMerchant(
        merchant=merchant, api_key=issued.secret, webhook_secret=registered.webhook_secret
    )
