"""Merchant onboarding (platform) and look-up (platform or the merchant itself)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from usefirst.api.deps import PrincipalDep, RuntimeDep, require
from usefirst.api.schemas import CreateMerchantIn
from usefirst.kit.errors import NotFound
from usefirst.merchants import service as merchant_service
from usefirst.merchants.models import Merchant

router = APIRouter(prefix="/v1/merchants", tags=["merchants"])


def merchant_view(merchant: Merchant) -> dict[str, Any]:
    return {
        "id": merchant.id,
        "name": merchant.name,
        "category": merchant.category,
        "status": merchant.status,
        "webhook_url": merchant.webhook_url,
        "settlement_days": merchant.settlement_days,
        "fee_rate_bps": merchant.fee_rate_bps,
        "created_at": merchant.created_at,
    }


@router.post("", status_code=201)
def create_merchant(
    body: CreateMerchantIn, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    # Not replayable by Idempotency-Key on purpose: the response carries secrets shown once,
    # which must never be stored.
    require(principal, platform=True, roles=("admin",))
    with runtime.work() as work:
        created = merchant_service.create_merchant(
            work.session,
            name=body.name,
            category=body.category,
            webhook_url=body.webhook_url,
            settlement_days=body.settlement_days,
            fee_rate_bps=body.fee_rate_bps,
            cipher=runtime.cipher,
            now=work.now,
        )
        view = merchant_view(created.merchant)
    view["api_key"] = created.api_key
    view["webhook_secret"] = created.webhook_secret
    return view


@router.get("/{merchant_id}")
def get_merchant(merchant_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, platform=True, merchant=True, roles=("admin", "support", "risk_analyst"))
    if principal.kind == "merchant" and principal.merchant_id != merchant_id:
        raise NotFound("No such merchant.")
    with runtime.work(read_only=True) as work:
        return merchant_view(merchant_service.get_merchant(work.session, merchant_id=merchant_id))
