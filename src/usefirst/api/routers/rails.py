"""Payment rails: shoppers' mandates (platform), the auto-debit attempts on an order, and the
providers' callbacks (unauthenticated: each is verified by the provider's signature)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from usefirst.api import responses as r
from usefirst.api.deps import IdempotentCallDep, PrincipalDep, RuntimeDep, require
from usefirst.flows import auto_debit, rail_reconciliation, shopper_options, shopper_statement
from usefirst.kit.errors import NotFound, ValidationFailed
from usefirst.runtime import Work

router = APIRouter(tags=["payment rails"])
# A callback whose sender is not proven (answered 401); other refusals are 400.
UNAUTHENTIC = (
    "signature_missing",
    "signature_invalid",
    "timestamp_invalid",
    "timestamp_stale",
    "unknown_certificate",
)


class MandateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A contract the shopper signed in the provider's own app (WeChat Pay 委托代扣).
    provider_mandate_id: str | None = Field(default=None, min_length=1, max_length=128)


@router.post("/v1/shoppers/{shopper_id}/mandates", status_code=201, response_model=r.MandateOut)
def create_mandate(
    shopper_id: str,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    call: IdempotentCallDep,
    body: MandateIn | None = None,
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
            provider_mandate_id=body.provider_mandate_id if body is not None else None,
        )

    return call.run(body, respond)


@router.post(
    "/v1/shoppers/{shopper_id}/mandates/{mandate_id}/revoke",
    response_model=r.MandateOut,
    response_model_exclude_unset=True,
)
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


@router.get(
    "/v1/shoppers/{shopper_id}/mandates",
    response_model=r.MandateList,
    response_model_exclude_unset=True,
)
def list_mandates(shopper_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, platform=True, roles=("admin", "support"))
    with runtime.work(read_only=True) as work:
        return {"data": auto_debit.mandates_of(work.session, shopper_id=shopper_id)}


@router.get(
    "/v1/orders/{order_id}/charges",
    response_model=r.OrderChargesOut,
    response_model_exclude_unset=True,
)
def list_order_charges(
    order_id: str, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, platform=True, roles=("admin", "support", "collector"))
    with runtime.work(read_only=True) as work:
        return auto_debit.order_charges(work.session, order_id=order_id)


@router.post("/v1/rails/{provider_name}/callbacks", response_model=r.CallbackOutcomeOut)
async def receive_callback(
    provider_name: str, request: Request, runtime: RuntimeDep
) -> JSONResponse | PlainTextResponse:
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
        status = 401 if outcome.reason in UNAUTHENTIC else 400
    if status == 200 and provider.callback_acknowledgement is not None:
        return PlainTextResponse(provider.callback_acknowledgement)
    return JSONResponse(
        status_code=status, content={"outcome": outcome.outcome, "reason": outcome.reason}
    )


@router.get(
    "/v1/rails/reconciliation/breaks",
    response_model=r.ReconciliationBreakList,
    response_model_exclude_unset=True,
)
def list_reconciliation_breaks(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    provider: str | None = None,
    include_resolved: bool = False,
) -> dict[str, Any]:
    require(principal, roles=("admin",))
    with runtime.work(read_only=True) as work:
        return {
            "data": rail_reconciliation.break_report(
                work.session,
                provider=provider,
                today=work.today,
                include_resolved=include_resolved,
            )
        }


@router.post(
    "/v1/rails/reconciliation/breaks/{break_id}/resolve",
    response_model=r.ReconciliationBreakOut,
    response_model_exclude_unset=True,
)
def resolve_reconciliation_break(
    break_id: str, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, roles=("admin",))
    with runtime.work() as work:
        return rail_reconciliation.resolve_break(
            work.session, break_id=break_id, today=work.today, now=work.now
        )


# --- the shopper's options (platform) -----------------------------------------------------------


class PayoffIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_minor: int = Field(gt=0)
    method: Literal["alipay", "wechat", "bank_card", "other"]
    external_ref: str | None = Field(default=None, max_length=128)


class ExtensionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int = Field(ge=1, le=120)
    days: int = Field(ge=1, le=365)


class CreditRefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    via: Literal["provider", "platform"]
    external_ref: str | None = Field(default=None, max_length=128)


@router.get(
    "/v1/orders/{order_id}/payoff-quote",
    response_model=r.PayoffQuoteOut,
    response_model_exclude_unset=True,
)
def get_payoff_quote(order_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, platform=True, roles=("admin", "support"))
    with runtime.work(read_only=True) as work:
        return shopper_options.payoff_quote(work.session, order_id=order_id, today=work.today)


@router.post("/v1/orders/{order_id}/payoff", response_model=r.PayoffOut)
def pay_off_order(
    order_id: str,
    body: PayoffIn,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    call: IdempotentCallDep,
) -> JSONResponse:
    require(principal, platform=True)

    def respond(work: Work) -> tuple[int, Any]:
        return 200, shopper_options.pay_off(
            work.session,
            order_id=order_id,
            amount_minor=body.amount_minor,
            method=body.method,
            external_ref=body.external_ref,
            settings=runtime.settings,
            today=work.today,
            now=work.now,
        )

    return call.run(body, respond)


@router.post("/v1/orders/{order_id}/extension", response_model=r.ExtensionOut)
def extend_order(
    order_id: str,
    body: ExtensionIn,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    call: IdempotentCallDep,
) -> JSONResponse:
    require(principal, platform=True, roles=("admin", "support"))

    def respond(work: Work) -> tuple[int, Any]:
        return 200, shopper_options.extend_due_date(
            work.session,
            order_id=order_id,
            seq=body.seq,
            days=body.days,
            settings=runtime.settings,
            today=work.today,
            now=work.now,
        )

    return call.run(body, respond)


@router.post(
    "/v1/shoppers/{shopper_id}/credit-balance/refund", response_model=r.CreditBalanceRefundOut
)
def refund_credit_balance(
    shopper_id: str,
    body: CreditRefundIn,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    call: IdempotentCallDep,
) -> JSONResponse:
    require(principal, platform=True, roles=("admin", "support"))
    if not call.idempotency_key:
        raise ValidationFailed(
            "An Idempotency-Key header is required to refund money.", field="Idempotency-Key"
        )
    key = call.idempotency_key

    def respond(work: Work) -> tuple[int, Any]:
        return 200, shopper_options.refund_credit_balance(
            work.session,
            shopper_id=shopper_id,
            via=body.via,
            external_ref=body.external_ref,
            idempotency_key=key,
            provider=runtime.payment_provider,
            settings=runtime.settings,
            now=work.now,
        )

    return call.run(body, respond)


@router.get(
    "/v1/shoppers/{shopper_id}/statements/{period}.pdf",
    response_class=Response,
    responses=r.binary_response("application/pdf", description="The monthly statement (PDF)."),
)
def monthly_statement(
    shopper_id: str, period: str, runtime: RuntimeDep, principal: PrincipalDep
) -> Response:
    require(principal, platform=True, roles=("admin", "support"))
    with runtime.work(read_only=True) as work:
        pdf = shopper_statement.monthly_statement_pdf(
            work.session,
            shopper_id=shopper_id,
            period=period,
            settings=runtime.settings,
            today=work.today,
        )
    return Response(
        content=pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="statement-{period}.pdf"'},
    )
