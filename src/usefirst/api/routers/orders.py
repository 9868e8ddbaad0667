"""Checkout and order actions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from usefirst.api import responses as r
from usefirst.api.deps import (
    FastJSONResponse,
    IdempotentCallDep,
    PrincipalDep,
    RuntimeDep,
    json_response,
    jsonable,
    require,
)
from usefirst.api.keyed_route import keyed_post
from usefirst.api.schemas import CheckoutIn, EmptyIn, RefundIn, ShipIn
from usefirst.flows import cancellation, checkout, fulfilment, refunds
from usefirst.kit.idempotency import ResponseRecord
from usefirst.orders import service as order_service
from usefirst.runtime import Work

router = APIRouter(tags=["orders"])


@keyed_post(router, "/v1/checkouts", status_code=201, response_model=r.CheckoutOut)
def create_checkout(
    body: CheckoutIn,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    call: IdempotentCallDep,
) -> JSONResponse:
    require(principal, platform=True)

    def respond(work: Work, record: ResponseRecord | None) -> tuple[int, Any]:
        return checkout.checkout_answered(
            work.session,
            request=order_service.CheckoutRequest(
                shopper_id=body.shopper_id,
                merchant_id=body.merchant_id,
                currency=body.currency,
                items=[
                    order_service.Item(
                        sku=item.sku,
                        name=item.name,
                        category=item.category,
                        quantity=item.quantity,
                        unit_price_minor=item.unit_price_minor,
                    )
                    for item in body.items
                ],
                plan=body.plan,
                shipping_address=body.shipping_address,
                device_id=body.device_id,
                ip=body.ip,
            ),
            cipher=runtime.cipher,
            settings=runtime.settings,
            now=work.now,
            answer=lambda view, decision: (
                201,
                jsonable({"order": view, "decision": decision.as_dict()}),
            ),
            record=record,
        )

    return call.run_recorded(body, respond)


@router.get("/v1/orders/{order_id}", response_model=r.OrderOut, response_model_exclude_unset=True)
def get_order(order_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, platform=True, merchant=True, roles=("admin", "support", "risk_analyst"))
    with runtime.work(read_only=True) as work:
        order = order_service.find_order(
            work.session, order_id=order_id, merchant_id=principal.merchant_id
        )
        return order_service.order_view(work.session, order)


@router.post("/v1/orders/{order_id}/ship", response_model=r.OrderOut)
def ship_order(
    order_id: str, body: ShipIn, runtime: RuntimeDep, principal: PrincipalDep
) -> FastJSONResponse:
    require(principal, merchant=True)
    assert principal.merchant_id is not None
    with runtime.work() as work:
        _order, view = fulfilment.ship_with_view(
            work.session,
            order_id=order_id,
            merchant_id=principal.merchant_id,
            carrier=body.carrier,
            tracking_number=body.tracking_number,
            settings=runtime.settings,
            now=work.now,
        )
    return json_response(view)


@router.post("/v1/orders/{order_id}/confirm-receipt", response_model=r.OrderOut)
def confirm_receipt(
    order_id: str, runtime: RuntimeDep, principal: PrincipalDep, body: EmptyIn | None = None
) -> FastJSONResponse:
    require(principal, platform=True)
    with runtime.work() as work:
        _order, view = fulfilment.confirm_receipt_with_view(
            work.session,
            order_id=order_id,
            delivered_on=work.today,
            settings=runtime.settings,
            now=work.now,
        )
    return json_response(view)


@router.post(
    "/v1/orders/{order_id}/cancel", response_model=r.OrderOut, response_model_exclude_unset=True
)
def cancel_order(
    order_id: str, runtime: RuntimeDep, principal: PrincipalDep, body: EmptyIn | None = None
) -> dict[str, Any]:
    require(principal, platform=True, merchant=True)
    with runtime.work() as work:
        order = cancellation.cancel(
            work.session,
            order_id=order_id,
            merchant_id=principal.merchant_id,
            settings=runtime.settings,
            now=work.now,
        )
        return order_service.order_view(work.session, order)


@router.post("/v1/orders/{order_id}/refunds", status_code=201, response_model=r.RefundOut)
def refund_order(
    order_id: str,
    body: RefundIn,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    call: IdempotentCallDep,
) -> JSONResponse:
    require(principal, merchant=True)
    assert principal.merchant_id is not None
    merchant_id = principal.merchant_id

    def respond(work: Work) -> tuple[int, Any]:
        order, refund = refunds.refund(
            work.session,
            order_id=order_id,
            merchant_id=merchant_id,
            amount_minor=body.amount_minor,
            reason=body.reason,
            today=work.today,
            settings=runtime.settings,
            now=work.now,
        )
        view = order_service.refund_view(refund)
        view["order"] = order_service.order_view(work.session, order)
        return 201, view

    return call.run(body, respond)
