"""Risk API: decision records and cases (risk analysts and admins), and the shopper's step-up
code confirmation (platform)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from usefirst.api import responses as r
from usefirst.api.deps import PrincipalDep, RuntimeDep, page, require
from usefirst.api.schemas import Strict
from usefirst.api.text_rules import ObjectId
from usefirst.flows import case_resolution, step_up
from usefirst.orders import service as order_service
from usefirst.risk import cases as case_service
from usefirst.risk import decision as risk_decision
from usefirst.risk import service as risk_service

router = APIRouter(tags=["risk"])
RISK_ROLES = ("risk_analyst", "admin")


class AssignCaseIn(Strict):
    operator_id: ObjectId | None = None


class ResolveCaseIn(Strict):
    outcome: Literal["confirmed_fraud", "legitimate"]
    note: str = Field(min_length=1, max_length=2000)


class StepUpVerifyIn(Strict):
    code: str = Field(min_length=4, max_length=12, pattern=r"^[0-9]+$")


@router.get(
    "/v1/risk/decisions/{order_id}",
    response_model=r.RiskDecisionOut,
    response_model_exclude_unset=True,
)
def get_decision(order_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, roles=RISK_ROLES)
    with runtime.work(read_only=True) as work:
        row = risk_service.get_decision(work.session, order_id=order_id)
        return risk_decision.decision_view(row)


@router.get("/v1/risk/cases", response_model=r.RiskCasePage, response_model_exclude_unset=True)
def list_cases(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    status: str | None = None,
    case_type: Annotated[str | None, Query(alias="type")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    starting_after: str | None = None,
) -> dict[str, Any]:
    require(principal, roles=RISK_ROLES)
    with runtime.work(read_only=True) as work:
        rows = case_service.list_cases(
            work.session,
            status=status,
            case_type=case_type,
            starting_after=starting_after,
            limit=limit + 1,
        )
        return page(rows, limit, case_service.case_view)


@router.get(
    "/v1/risk/cases/{case_id}", response_model=r.RiskCaseOut, response_model_exclude_unset=True
)
def get_case(case_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, roles=RISK_ROLES)
    with runtime.work(read_only=True) as work:
        case = case_service.get_case(work.session, case_id=case_id)
        return case_service.case_view(case, with_evidence=True)


@router.post(
    "/v1/risk/cases/{case_id}/assign",
    response_model=r.RiskCaseOut,
    response_model_exclude_unset=True,
)
def assign_case(
    case_id: str, runtime: RuntimeDep, principal: PrincipalDep, body: AssignCaseIn | None = None
) -> dict[str, Any]:
    require(principal, roles=RISK_ROLES)
    assert principal.operator_id is not None
    with runtime.work() as work:
        case = case_service.assign_case(
            work.session,
            case_id=case_id,
            operator_id=(body.operator_id if body else None) or principal.operator_id,
            assigned_by=principal.operator_id,
            now=work.now,
        )
        return case_service.case_view(case, with_evidence=True)


@router.post(
    "/v1/risk/cases/{case_id}/resolve",
    response_model=r.RiskCaseOut,
    response_model_exclude_unset=True,
)
def resolve_case(
    case_id: str, body: ResolveCaseIn, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, roles=RISK_ROLES)
    assert principal.operator_id is not None
    with runtime.work() as work:
        case = case_resolution.resolve_case(
            work.session,
            case_id=case_id,
            outcome=body.outcome,
            note=body.note,
            resolved_by=principal.operator_id,
            settings=runtime.settings,
            now=work.now,
        )
        return case_service.case_view(case, with_evidence=True)


@router.post(
    "/v1/orders/{order_id}/step-up/verify",
    response_model=r.StepUpVerifiedOut,
    response_model_exclude_unset=True,
)
def verify_step_up(
    order_id: str, body: StepUpVerifyIn, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, platform=True)
    with runtime.work() as work:
        result = step_up.verify_step_up(
            work.session,
            order_id=order_id,
            code=body.code,
            cipher=runtime.cipher,
            settings=runtime.settings,
            now=work.now,
        )
        view = order_service.order_view(work.session, result.order)
    # Raised only now, after the transaction committed: a wrong attempt must count.
    if result.error is not None:
        raise result.error
    return {"verified": True, "order": view}
