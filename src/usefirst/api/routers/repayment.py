"""Payments from shoppers (platform)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from usefirst.api import responses as r
from usefirst.api.deps import IdempotentCallDep, PrincipalDep, RuntimeDep, require
from usefirst.api.schemas import PaymentIn
from usefirst.flows import payments
from usefirst.runtime import Work

router = APIRouter(tags=["payments"])


@router.post("/v1/payments", status_code=201, response_model=r.PaymentOut)
def create_payment(
    body: PaymentIn,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    call: IdempotentCallDep,
) -> JSONResponse:
    require(principal, platform=True)

    def respond(work: Work) -> tuple[int, Any]:
        outcome = payments.pay(
            work.session,
            shopper_id=body.shopper_id,
            amount_minor=body.amount_minor,
            currency=body.currency,
            order_id=body.order_id,
            method=body.method,
            external_ref=body.external_ref,
            today=work.today,
            settings=runtime.settings,
            now=work.now,
            is_reported=True,
        )
        payment = outcome.payment
        return 201, {
            "id": payment.id,
            "shopper_id": payment.shopper_id,
            "amount_minor": payment.amount_minor,
            "currency": payment.currency,
            "order_id": payment.order_id,
            "method": payment.method,
            "external_ref": payment.external_ref,
            "allocations": [
                {
                    "order_id": allocation.order_id,
                    "seq": allocation.seq,
                    "fees_minor": allocation.fees_minor,
                    "principal_minor": allocation.principal_minor,
                }
                for allocation in outcome.allocations
            ],
            "unapplied_minor": payment.unapplied_minor,
            "created_at": payment.created_at,
        }

    return call.run(body, respond)
