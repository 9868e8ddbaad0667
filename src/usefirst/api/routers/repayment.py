"""Payments from shoppers (platform)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from usefirst.api import responses as r
from usefirst.api.deps import IdempotentCallDep, PrincipalDep, RuntimeDep, jsonable, require
from usefirst.api.keyed_route import keyed_post
from usefirst.api.schemas import PaymentIn
from usefirst.flows import payments
from usefirst.kit.idempotency import ResponseRecord
from usefirst.repayment import service as repayment_service
from usefirst.runtime import Work

router = APIRouter(tags=["payments"])


@keyed_post(router, "/v1/payments", status_code=201, response_model=r.PaymentOut)
def create_payment(
    body: PaymentIn,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    call: IdempotentCallDep,
) -> JSONResponse:
    require(principal, platform=True)

    def answer(outcome: repayment_service.PaymentOutcome) -> tuple[int, Any]:
        payment = outcome.payment
        return 201, jsonable(
            {
                "id": payment.id,
                "shopper_id": payment.shopper_id,
                "amount_minor": payment.amount_minor,
                "currency": payment.currency,
                "order_id": payment.order_id,
                "method": payment.method,
                "external_ref": payment.external_ref,
                "allocations": payments.allocation_lines(outcome),
                "unapplied_minor": payment.unapplied_minor,
                "created_at": payment.created_at,
            }
        )

    def respond(work: Work, record: ResponseRecord | None) -> tuple[int, Any]:
        return payments.pay_answered(
            work.session,
            request=repayment_service.PaymentRequest(
                shopper_id=body.shopper_id,
                amount_minor=body.amount_minor,
                currency=body.currency,
                order_id=body.order_id,
                method=body.method,
                external_ref=body.external_ref,
            ),
            today=work.today,
            settings=runtime.settings,
            now=work.now,
            answer=answer,
            record=record,
        )

    return call.run_recorded(body, respond)
