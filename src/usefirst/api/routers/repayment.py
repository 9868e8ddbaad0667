"""Payments from shoppers (platform)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from usefirst.api.deps import IdempotencyKey, PrincipalDep, RuntimeDep, idempotent_response, require
from usefirst.api.schemas import PaymentIn
from usefirst.orders import service as order_service

router = APIRouter(tags=["payments"])


@router.post("/v1/payments", status_code=201)
def create_payment(
    body: PaymentIn,
    request: Request,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    require(principal, platform=True)
    with runtime.work() as work:

        def handler() -> tuple[int, Any]:
            outcome = order_service.pay(
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

        return idempotent_response(
            runtime,
            work,
            request=request,
            principal=principal,
            idempotency_key=idempotency_key,
            body=body,
            handler=handler,
        )
