"""Payment rails: shoppers' mandates (platform), the auto-debit attempts on an order, and the
providers' callbacks (unauthenticated: each is verified by the provider's signature)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from usefirst.api.deps import IdempotentCallDep, PrincipalDep, RuntimeDep, require
from usefirst.flows import auto_debit
from usefirst.kit.errors import NotFound, ValidationFailed
from usefirst.runtime import Work

router = APIRouter(tags=["payment rails"])


@router.post("/v1/shoppers/{shopper_id}/mandates", status_code=201)
def create_mandate(
    shopper_id: str, runtime: RuntimeDep, principal: PrincipalDep, call: IdempotentCallDep
) -> JSONResponse:
    require(principal, platform=True)
    if not call.idempotency_key:
        raise ValidationFailed(
            "An Idempotency-Key header is required to authorise a mandate.",
            field="Idempotency-Key",
        )
    key = call.idempotency_key

    def respond(work: Work) -> tuple[int, Any]:
        return 201, auto_debit.authorise_mandate(
            work.session,
            provider=runtime.payment_provider,
            shopper_id=shopper_id,
            idempotency_key=key,
            now=work.now,
        )

    return call.run(None, respond)


@router.post("/v1/shoppers/{shopper_id}/mandates/{mandate_id}/revoke")
def revoke_mandate(
    shopper_id: str, mandate_id: str, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, platform=True)
    with runtime.work() as work:
        return auto_debit.revoke_mandate(
            work.session,
            provider=runtime.payment_provider,
            shopper_id=shopper_id,
            mandate_id=mandate_id,
            now=work.now,
        )


@router.get("/v1/shoppers/{shopper_id}/mandates")
def list_mandates(shopper_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, platform=True, roles=("admin", "support"))
    with runtime.work(read_only=True) as work:
        return {"data": auto_debit.mandates_of(work.session, shopper_id=shopper_id)}


@router.get("/v1/orders/{order_id}/charges")
def list_order_charges(
    order_id: str, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, platform=True, roles=("admin", "support", "collector"))
    with runtime.work(read_only=True) as work:
        return auto_debit.order_charges(work.session, order_id=order_id)


@router.post("/v1/rails/{provider_name}/callbacks")
async def receive_callback(
    provider_name: str, request: Request, runtime: RuntimeDep
) -> JSONResponse:
    provider = runtime.payment_provider
    if provider is None or provider.name != provider_name:
        raise NotFound("No such payment provider.")
    body = await request.body()
    headers = dict(request.headers)

    def handle() -> auto_debit.Outcome:
        with runtime.work() as work:
            return auto_debit.receive_callback(
                work.session,
                provider=provider,
                headers=headers,
                body=body,
                settings=runtime.settings,
                now=work.now,
            )

    outcome = await run_in_threadpool(handle)
    # A refused callback is recorded (the transaction commits) and answered with an error the
    # provider sees; a replay of an event already applied is acknowledged, since the provider
    # sends one again only when it missed our first answer.
    status = 200
    if outcome.outcome == "rejected" and outcome.reason != "replayed":
        status = 401 if (outcome.reason or "").startswith(("signature", "timestamp")) else 400
    return JSONResponse(
        status_code=status, content={"outcome": outcome.outcome, "reason": outcome.reason}
    )
