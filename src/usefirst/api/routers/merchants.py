"""Merchant onboarding and look-up, settlement (balance, payouts) and standing (watch,
suspension, ban, fines, appeals)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from usefirst.api import responses as r
from usefirst.api.credential_schemas import RotateWebhookSecretIn, WebhookEndpointIn
from usefirst.api.deps import (
    IdempotentCallDep,
    PrincipalDep,
    RuntimeDep,
    page,
    require,
)
from usefirst.api.merchant_schemas import AppealDecisionIn, AppealIn, FineIn, StandingChangeIn
from usefirst.api.schemas import CreateMerchantIn
from usefirst.flows import credentials, merchant_onboarding, merchant_standing
from usefirst.identity.service import Principal
from usefirst.kit.clock import system_now
from usefirst.kit.errors import NotFound
from usefirst.kit.money import check_currency
from usefirst.merchants import service as merchant_service
from usefirst.merchants import settlement, standing
from usefirst.merchants.models import Merchant
from usefirst.runtime import Work

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


@router.post(
    "", status_code=201, response_model=r.NewMerchantOut, response_model_exclude_unset=True
)
def create_merchant(
    body: CreateMerchantIn, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    # Not replayable by Idempotency-Key on purpose: the response carries secrets shown once,
    # which must never be stored.
    require(principal, platform=True, roles=("admin",))
    with runtime.work() as work:
        created = merchant_onboarding.create_merchant(
            work.session,
            name=body.name,
            category=body.category,
            webhook_url=body.webhook_url,
            settlement_days=body.settlement_days,
            fee_rate_bps=body.fee_rate_bps,
            cipher=runtime.cipher,
            actor=_actor(principal),
            now=work.now,
            phone=body.phone,
            address=body.address,
            allow_private_destinations=runtime.settings.webhook_allow_private_destinations,
        )
        view = merchant_view(created.merchant)
    view["api_key"] = created.api_key
    view["webhook_secret"] = created.webhook_secret
    return view


@router.get("/{merchant_id}", response_model=r.MerchantOut, response_model_exclude_unset=True)
def get_merchant(merchant_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, platform=True, merchant=True, roles=("admin", "support", "risk_analyst"))
    if principal.kind == "merchant" and principal.merchant_id != merchant_id:
        raise NotFound("No such merchant.")
    with runtime.work(read_only=True) as work:
        return merchant_view(merchant_service.get_merchant(work.session, merchant_id=merchant_id))


# The webhook endpoint: its URL and its signing secret (platform, admins, the merchant itself).


@router.put(
    "/{merchant_id}/webhook-endpoint",
    response_model=r.MerchantOut,
    response_model_exclude_unset=True,
)
def change_webhook_endpoint(
    merchant_id: str, body: WebhookEndpointIn, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Send the merchant's webhooks to another URL (null stops them); events not delivered yet
    go to the new one. Loopback, link-local, private and metadata addresses are refused (422
    ``webhook_destination_refused``) unless the operator allows them for local development."""
    _require_own_or_staff(principal, merchant_id, ("admin",))
    with runtime.work() as work:
        merchant = credentials.change_webhook_url(
            work.session,
            merchant_id=merchant_id,
            webhook_url=body.webhook_url,
            actor=_actor(principal),
            allow_private_destinations=runtime.settings.webhook_allow_private_destinations,
            now=system_now(),
        )
        return merchant_view(merchant)


@router.post(
    "/{merchant_id}/webhook-secret/rotate",
    status_code=201,
    response_model=r.WebhookSecretOut,
    response_model_exclude_unset=True,
)
def rotate_webhook_secret(
    merchant_id: str, body: RotateWebhookSecretIn, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    """A new signing secret (in this answer only). For ``overlap_hours`` webhooks carry two
    signatures, one with each secret, so the receiver can switch when it likes."""
    _require_own_or_staff(principal, merchant_id, ("admin",))
    # Wall time: receivers and the overlap run on real time, whatever a sandbox clock says.
    now = system_now()
    with runtime.work() as work:
        merchant, secret = credentials.rotate_webhook_secret(
            work.session,
            merchant_id=merchant_id,
            overlap=timedelta(hours=body.overlap_hours),
            actor=_actor(principal),
            cipher=runtime.cipher,
            now=now,
        )
        return {
            "merchant_id": merchant.id,
            "webhook_secret": secret,
            "previous_secret_valid_until": merchant.previous_webhook_secret_expires_at,
        }


# Settlement: balance and payouts (platform, admins, and the merchant itself for its own id).


def _require_own_or_staff(principal: Principal, merchant_id: str, roles: tuple[str, ...]) -> None:
    require(principal, platform=True, merchant=True, roles=roles)
    if principal.kind == "merchant" and principal.merchant_id != merchant_id:
        raise NotFound("No such merchant.")


def _actor(principal: Principal) -> str:
    if principal.kind == "operator":
        return f"operator:{principal.operator_id}"
    if principal.kind == "merchant":
        return f"merchant:{principal.merchant_id}"
    return "platform"


@router.get(
    "/{merchant_id}/balance", response_model=r.BalanceOut, response_model_exclude_unset=True
)
def get_balance(
    merchant_id: str,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    currency: Annotated[str | None, Query(min_length=3, max_length=3)] = None,
) -> dict[str, Any]:
    _require_own_or_staff(principal, merchant_id, ("admin",))
    with runtime.work(read_only=True) as work:
        balance = settlement.merchant_balance(
            work.session,
            merchant_id=merchant_id,
            currency=check_currency(currency or runtime.settings.currency),
        )
        return {
            "merchant_id": merchant_id,
            "payable_minor": balance.payable_minor,
            "held_minor": balance.held_minor,
            "reserve_minor": balance.reserve_minor,
            "currency": balance.currency,
        }


@router.get(
    "/{merchant_id}/settlements", response_model=r.SettlementPage, response_model_exclude_unset=True
)
def list_settlements(
    merchant_id: str,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    starting_after: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    _require_own_or_staff(principal, merchant_id, ("admin",))
    with runtime.work(read_only=True) as work:
        merchant_service.get_merchant(work.session, merchant_id=merchant_id)
        rows = settlement.list_settlements(
            work.session, merchant_id=merchant_id, limit=limit + 1, starting_after=starting_after
        )
        return page(rows, limit, settlement.settlement_view)


@router.get(
    "/{merchant_id}/settlements/{settlement_id}",
    response_model=r.SettlementWithLinesOut,
    response_model_exclude_unset=True,
)
def get_settlement(
    merchant_id: str, settlement_id: str, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    _require_own_or_staff(principal, merchant_id, ("admin",))
    with runtime.work(read_only=True) as work:
        found = settlement.get_settlement(
            work.session, merchant_id=merchant_id, settlement_id=settlement_id
        )
        view = settlement.settlement_view(found)
        view["lines"] = [
            settlement.line_view(line)
            for line in settlement.settlement_lines(work.session, settlement=found)
        ]
        return view


@router.get(
    "/{merchant_id}/statement",
    response_model=r.MerchantStatementOut,
    response_model_exclude_unset=True,
)
def get_statement(
    merchant_id: str,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    currency: Annotated[str | None, Query(min_length=3, max_length=3)] = None,
) -> dict[str, Any]:
    _require_own_or_staff(principal, merchant_id, ("admin",))
    with runtime.work(read_only=True) as work:
        merchant_service.get_merchant(work.session, merchant_id=merchant_id)
        found = settlement.settlement_statement(
            work.session,
            merchant_id=merchant_id,
            currency=check_currency(currency or runtime.settings.currency),
        )
        return {
            "merchant_id": merchant_id,
            "currency": found.currency,
            "ledger_payable_minor": found.ledger_payable_minor,
            "pending_minor": found.pending_minor,
            "settled_minor": found.settled_minor,
            "is_reconciled": found.is_reconciled,
            "problems": found.problems,
            "lines": [
                {
                    "entry_id": line.entry_id,
                    "entry_kind": line.entry_kind,
                    "order_id": line.order_id,
                    "amount_minor": line.amount_minor,
                    "created_at": line.created_at,
                    "settlement_id": line.settlement_id,
                    "is_held": line.is_held,
                }
                for line in found.lines
            ],
        }


# Standing: watch, suspension, ban, fines, appeals.


@router.get(
    "/{merchant_id}/standing", response_model=r.StandingOut, response_model_exclude_unset=True
)
def get_standing(merchant_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    _require_own_or_staff(principal, merchant_id, ("admin", "risk_analyst"))
    with runtime.work(read_only=True) as work:
        return standing.standing_history(work.session, merchant_id=merchant_id)


@router.post(
    "/{merchant_id}/standing",
    response_model=r.StandingChangeResultOut,
    response_model_exclude_unset=True,
    responses={201: {"model": r.StandingChangeResultOut, "description": "The status changed."}},
)
def change_standing(
    merchant_id: str,
    body: StandingChangeIn,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    response: Response,
) -> dict[str, Any]:
    require(principal, roles=("admin", "risk_analyst"))
    with runtime.work() as work:
        change = merchant_standing.change_standing(
            work.session,
            merchant_id=merchant_id,
            status=body.status,
            reason=body.reason,
            evidence=body.evidence,
            decided_by=_actor(principal),
            now=work.now,
            settings=runtime.settings,
        )
        response.status_code = 200 if change is None else 201
        return {
            "merchant_id": merchant_id,
            "status": body.status,
            "change": None if change is None else standing.standing_change_view(change),
        }


@router.post("/{merchant_id}/fines", status_code=201, response_model=r.FineOut)
def impose_fine(
    merchant_id: str,
    body: FineIn,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    call: IdempotentCallDep,
) -> JSONResponse:
    require(principal, roles=("admin",))

    def respond(work: Work) -> tuple[int, Any]:
        fine = merchant_standing.impose_fine(
            work.session,
            merchant_id=merchant_id,
            amount_minor=body.amount_minor,
            currency=check_currency(body.currency),
            reason=body.reason,
            evidence=body.evidence,
            decided_by=_actor(principal),
            settings=runtime.settings,
            now=work.now,
        )
        return 201, standing.fine_view(fine)

    return call.run(body, respond)


@router.post(
    "/{merchant_id}/appeals",
    status_code=201,
    response_model=r.AppealOut,
    response_model_exclude_unset=True,
)
def file_appeal(
    merchant_id: str, body: AppealIn, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, merchant=True)
    if principal.merchant_id != merchant_id:
        raise NotFound("No such merchant.")
    with runtime.work() as work:
        appeal = merchant_standing.file_appeal(
            work.session,
            merchant_id=merchant_id,
            subject_id=body.subject_id,
            grounds=body.grounds,
            evidence=body.evidence,
            filed_by=_actor(principal),
            settings=runtime.settings,
            now=work.now,
        )
        return standing.appeal_view(appeal)


@router.post(
    "/{merchant_id}/appeals/{appeal_id}/decide",
    response_model=r.AppealOut,
    response_model_exclude_unset=True,
)
def decide_appeal(
    merchant_id: str,
    appeal_id: str,
    body: AppealDecisionIn,
    runtime: RuntimeDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    require(principal, roles=("admin",))
    with runtime.work() as work:
        appeal = merchant_standing.decide_appeal(
            work.session,
            merchant_id=merchant_id,
            appeal_id=appeal_id,
            outcome=body.outcome,
            note=body.note,
            decided_by=_actor(principal),
            settings=runtime.settings,
            now=work.now,
        )
        return standing.appeal_view(appeal)
