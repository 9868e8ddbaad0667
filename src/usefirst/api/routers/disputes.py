"""Disputes API: file, add evidence, read, decide."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic_core import to_jsonable_python
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from usefirst.api import responses as r
from usefirst.api.deps import (
    IdempotentCallDep,
    PrincipalDep,
    RuntimeDep,
    page,
    require,
)
from usefirst.api.dispute_schemas import OpenDisputeIn, ResolveDisputeIn
from usefirst.disputes import service
from usefirst.disputes.errors import EvidenceTooLarge
from usefirst.disputes.storage import ALLOWED_CONTENT_TYPES, JSON, EvidenceStore, check_upload
from usefirst.flows import dispute_resolution
from usefirst.identity.service import Principal
from usefirst.kit.errors import ValidationFailed
from usefirst.runtime import Runtime, Work

# The file as uploaded, of its detected type. A JSON file is any JSON document, so no schema.
EVIDENCE_DOWNLOAD: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The evidence file, as a download.",
        "content": {
            media_type: {"schema": {} if media_type == JSON else r.BINARY}
            for media_type in ALLOWED_CONTENT_TYPES
        },
    }
}

router = APIRouter(tags=["disputes"])

VIEW_ROLES = ("admin", "support", "risk_analyst")
EVIDENCE_ROLES = ("admin", "support")
DECIDE_ROLES = ("admin", "support")
# Room for the multipart boundaries and part headers around the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


def caller_of(principal: Principal) -> service.Caller:
    if principal.kind == "platform":
        return service.Caller(side="shopper", actor_id=principal.key_id)
    if principal.kind == "merchant":
        return service.Caller(
            side="merchant", actor_id=principal.key_id, merchant_id=principal.merchant_id
        )
    assert principal.operator_id is not None
    return service.Caller(side="operator", actor_id=principal.operator_id)


def evidence_store(runtime: Runtime) -> EvidenceStore:
    return EvidenceStore(runtime.settings.dispute_evidence_dir)


@router.post("/v1/disputes", status_code=201, response_model=r.DisputeOut)
def open_dispute(
    body: OpenDisputeIn,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    call: IdempotentCallDep,
) -> JSONResponse:
    require(principal, platform=True, merchant=True)
    caller = caller_of(principal)

    def respond(work: Work) -> tuple[int, Any]:
        dispute = dispute_resolution.open_dispute(
            work.session,
            order_id=body.order_id,
            opened_by=body.opened_by,
            reason=body.reason,
            description=body.description,
            caller=caller,
            settings=runtime.settings,
            now=work.now,
        )
        return 201, service.dispute_view(work.session, dispute)

    return call.run(body, respond)


@router.get("/v1/disputes", response_model=r.DisputePage, response_model_exclude_unset=True)
def list_disputes(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    starting_after: str | None = None,
) -> dict[str, Any]:
    require(principal, platform=True, merchant=True, roles=VIEW_ROLES)
    with runtime.work(read_only=True) as work:
        rows = service.list_disputes(
            work.session,
            merchant_id=principal.merchant_id,
            status=status,
            starting_after=starting_after,
            limit=limit + 1,
        )
        return page(rows, limit, lambda row: service.dispute_view(work.session, row))


@router.get(
    "/v1/disputes/{dispute_id}", response_model=r.DisputeOut, response_model_exclude_unset=True
)
def get_dispute(dispute_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, platform=True, merchant=True, roles=VIEW_ROLES)
    with runtime.work(read_only=True) as work:
        dispute = service.find_dispute(
            work.session, dispute_id=dispute_id, merchant_id=principal.merchant_id
        )
        return service.dispute_view(work.session, dispute)


@router.post(
    "/v1/disputes/{dispute_id}/evidence",
    status_code=201,
    response_model=r.DisputeWithAddedEvidenceOut,
    responses={
        200: {
            "model": r.DisputeWithAddedEvidenceOut,
            "description": "The same bytes were already on this dispute; nothing new stored.",
        }
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                }
            },
        }
    },
)
async def add_evidence(
    dispute_id: str, request: Request, runtime: RuntimeDep, principal: PrincipalDep
) -> JSONResponse:
    """One file per request (multipart field ``file``). 201 with the dispute when stored; 200
    when the same bytes were already on this dispute (nothing new stored)."""
    require(principal, platform=True, merchant=True, roles=EVIDENCE_ROLES)
    max_bytes = runtime.settings.dispute_evidence_max_bytes
    declared_length = request.headers.get("content-length", "")
    if declared_length.isdigit() and int(declared_length) > max_bytes + MULTIPART_OVERHEAD_BYTES:
        # Refused before the body is read, let alone spooled to disk.
        raise EvidenceTooLarge(f"Evidence files may be at most {max_bytes} bytes.", field="file")
    form = await request.form(max_files=1, max_fields=1)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ValidationFailed("Send the evidence as the multipart field 'file'.", field="file")
        content = await upload.read(max_bytes + 1)
        checked = check_upload(
            content=content,
            declared_content_type=upload.content_type,
            filename=upload.filename,
            max_bytes=max_bytes,
        )
    finally:
        await form.close()
    caller = caller_of(principal)

    def store() -> tuple[int, dict[str, Any]]:
        with runtime.work() as work:
            outcome = dispute_resolution.add_evidence(
                work.session,
                dispute_id=dispute_id,
                checked=checked,
                caller=caller,
                store=evidence_store(runtime),
                settings=runtime.settings,
                now=work.now,
            )
            view = service.dispute_view(work.session, outcome.dispute)
            view["added_evidence"] = service.evidence_view(outcome.evidence)
            return (201 if outcome.is_new else 200), to_jsonable_python(view)

    status, payload = await run_in_threadpool(store)
    return JSONResponse(status_code=status, content=payload)


@router.get(
    "/v1/disputes/{dispute_id}/evidence/{evidence_id}/content",
    response_class=Response,
    responses=EVIDENCE_DOWNLOAD,
)
def evidence_content(
    dispute_id: str, evidence_id: str, runtime: RuntimeDep, principal: PrincipalDep
) -> Response:
    """The file's bytes, always as a download of the detected type, never rendered inline."""
    require(principal, platform=True, merchant=True, roles=VIEW_ROLES)
    with runtime.work(read_only=True) as work:
        row, content = service.evidence_file(
            work.session,
            dispute_id=dispute_id,
            evidence_id=evidence_id,
            merchant_id=principal.merchant_id,
            store=evidence_store(runtime),
        )
        download_name = quote(row.filename or row.id, safe="")
        return Response(
            content=content,
            media_type=row.content_type,
            headers={
                "Content-Disposition": f"attachment; filename*=UTF-8''{download_name}",
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox",
                "ETag": f'"{row.sha256}"',
            },
        )


@router.post("/v1/disputes/{dispute_id}/resolve", response_model=r.DisputeOut)
def resolve_dispute(
    dispute_id: str,
    body: ResolveDisputeIn,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    call: IdempotentCallDep,
) -> JSONResponse:
    require(principal, roles=DECIDE_ROLES)
    assert principal.operator_id is not None
    operator_id = principal.operator_id

    def respond(work: Work) -> tuple[int, Any]:
        dispute = dispute_resolution.resolve(
            work.session,
            dispute_id=dispute_id,
            outcome=body.outcome,
            shopper_refund_minor=body.shopper_refund_minor,
            note=body.note,
            operator_id=operator_id,
            today=work.today,
            settings=runtime.settings,
            now=work.now,
        )
        return 200, service.dispute_view(work.session, dispute)

    return call.run(body, respond)
