"""Privacy over HTTP: data export and erasure (compliance), complaints (platform and operators)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from usefirst.api import responses as r
from usefirst.api.deps import (
    IdempotentCallDep,
    PrincipalDep,
    RuntimeDep,
    page,
    require,
)
from usefirst.api.schemas import Strict
from usefirst.api.text_rules import ObjectId
from usefirst.flows import privacy_requests
from usefirst.identity.service import Principal
from usefirst.privacy import complaints as complaint_service
from usefirst.runtime import Work

router = APIRouter(tags=["privacy"])

COMPLIANCE = ("compliance",)
COMPLAINT_HANDLERS = ("support", "compliance", "admin")
# Who may see the audit trail of reads attached to a privacy complaint.
ACCESS_TRAIL_ROLES = ("compliance", "admin")


class ComplaintIn(Strict):
    shopper_id: ObjectId
    category: Literal["privacy", "collection_conduct", "billing", "other"]
    description: str = Field(min_length=1, max_length=5_000)


class ComplaintResponseIn(Strict):
    message: str = Field(min_length=1, max_length=5_000)
    closes: bool = Field(default=False, strict=True)


def actor_of(principal: Principal) -> str:
    if principal.kind == "operator" and principal.operator_id is not None:
        return principal.operator_id
    return f"{principal.kind}:{principal.key_id}"


@router.get(
    "/v1/shoppers/{shopper_id}/export",
    response_model=r.ShopperExportOut,
    response_model_exclude_unset=True,
)
def export_shopper(shopper_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, roles=COMPLIANCE)
    # A write transaction: the export is recorded in the audit chain before it is returned.
    with runtime.work() as work:
        return privacy_requests.export_shopper(
            work.session,
            shopper_id=shopper_id,
            cipher=runtime.cipher,
            actor=actor_of(principal),
            now=work.now,
        )


@router.post("/v1/shoppers/{shopper_id}/erasure", response_model=r.ErasureOut)
def erase_shopper(
    shopper_id: str,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    call: IdempotentCallDep,
) -> JSONResponse:
    require(principal, roles=COMPLIANCE)

    def respond(work: Work) -> tuple[int, Any]:
        result = privacy_requests.erase_shopper(
            work.session,
            shopper_id=shopper_id,
            cipher=runtime.cipher,
            actor=actor_of(principal),
            now=work.now,
        )
        return 200, result.as_dict()

    return call.run(None, respond)


@router.post("/v1/complaints", status_code=201, response_model=r.NewComplaintOut)
def file_complaint(
    body: ComplaintIn,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    call: IdempotentCallDep,
) -> JSONResponse:
    require(principal, platform=True)

    def respond(work: Work) -> tuple[int, Any]:
        complaint = complaint_service.file_complaint(
            work.session,
            shopper_id=body.shopper_id,
            category=body.category,
            description=body.description,
            cipher=runtime.cipher,
            response_days=runtime.settings.complaint_response_days,
            now=work.now,
        )
        return 201, {
            "id": complaint.id,
            "shopper_id": complaint.shopper_id,
            "category": complaint.category,
            "status": complaint.status,
            "respond_by": complaint.respond_by,
            "created_at": complaint.created_at,
        }

    return call.run(body, respond)


@router.get("/v1/complaints", response_model=r.ComplaintPage, response_model_exclude_unset=True)
def list_complaints(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    overdue: bool = False,
    status: Annotated[Literal["open", "answered", "closed"] | None, Query()] = None,
    starting_after: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    require(principal, roles=COMPLAINT_HANDLERS)
    with runtime.work(read_only=True) as work:
        rows = complaint_service.list_complaints(
            work.session,
            overdue_only=overdue,
            status=status,
            starting_after=starting_after,
            limit=limit + 1,
            now=work.now,
        )
        return page(
            rows,
            limit,
            lambda row: complaint_service.complaint_view(
                work.session,
                row,
                cipher=runtime.cipher,
                now=work.now,
                include_access_trail=False,
            ),
        )


@router.get(
    "/v1/complaints/{complaint_id}",
    response_model=r.ComplaintOut,
    response_model_exclude_unset=True,
)
def get_complaint(
    complaint_id: str, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, platform=True, roles=COMPLAINT_HANDLERS)
    with runtime.work(read_only=True) as work:
        complaint = complaint_service.get_complaint(work.session, complaint_id=complaint_id)
        return complaint_service.complaint_view(
            work.session,
            complaint,
            cipher=runtime.cipher,
            now=work.now,
            include_access_trail=principal.role in ACCESS_TRAIL_ROLES,
        )


@router.post(
    "/v1/complaints/{complaint_id}/responses",
    status_code=201,
    response_model=r.ComplaintOut,
    response_model_exclude_unset=True,
)
def respond_to_complaint(
    complaint_id: str, body: ComplaintResponseIn, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, roles=COMPLAINT_HANDLERS)
    assert principal.operator_id is not None
    with runtime.work() as work:
        complaint = complaint_service.respond(
            work.session,
            complaint_id=complaint_id,
            operator_id=principal.operator_id,
            message=body.message,
            closes=body.closes,
            cipher=runtime.cipher,
            now=work.now,
        )
        return complaint_service.complaint_view(
            work.session,
            complaint,
            cipher=runtime.cipher,
            now=work.now,
            include_access_trail=principal.role in ACCESS_TRAIL_ROLES,
        )
