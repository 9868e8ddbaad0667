"""Collections over HTTP: contact log, collector queue and calls, bureau files, legal cases,
hardship requests and their answers."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import Field

from usefirst.api import responses as r
from usefirst.api.deps import (
    IdempotentCallDep,
    PrincipalDep,
    RuntimeDep,
    page,
    require,
)
from usefirst.api.schemas import MAX_MINOR, Strict
from usefirst.collections import bureau
from usefirst.collections import service as collections_service
from usefirst.flows import bureau_reporting, collector_calls, hardship, late_fee_waivers
from usefirst.flows.legal_evidence import evidence_pdf
from usefirst.flows.privacy_requests import read_bureau_file
from usefirst.orders import service as order_service
from usefirst.privacy.audit import record_access
from usefirst.runtime import Work

router = APIRouter(tags=["collections"])

COLLECTORS = ("collector", "admin")
# Who answers hardship requests (and may open one for a shopper, from the console or the API).
HARDSHIP_OPERATORS = ("collector", "support", "admin")


class CallOutcomeIn(Strict):
    outcome: Literal["reached", "no_answer", "wrong_number", "promise_to_pay", "refused"]
    promise_on: date | None = None
    promise_minor: int | None = Field(default=None, strict=True, gt=0)
    note: str | None = Field(default=None, max_length=2000)


class BureauFileIn(Strict):
    period: str = Field(pattern=r"^\d{4}-\d{2}$")
    format: Literal["metro2", "jsonl"] = "metro2"


class LegalStatusIn(Strict):
    status: Literal["filed", "judgment", "closed"]


class WaiveLateFeesIn(Strict):
    amount_minor: int | None = Field(default=None, strict=True, gt=0, le=MAX_MINOR)
    reason: str = Field(min_length=1, max_length=500)


class HardshipRequestIn(Strict):
    reason: str = Field(min_length=1, max_length=500)


class HardshipDecisionIn(Strict):
    decision: Literal["plan", "settlement", "declined"]
    plan_months: int | None = Field(default=None, strict=True, ge=1, le=60)
    settlement_minor: int | None = Field(default=None, strict=True, gt=0, le=MAX_MINOR)
    note: str | None = Field(default=None, max_length=500)


class SettlementPaymentIn(Strict):
    amount_minor: int = Field(strict=True, gt=0, le=MAX_MINOR)
    method: Literal["alipay", "wechat", "bank_card", "other"]
    external_ref: str | None = Field(default=None, max_length=128)


@router.post("/v1/orders/{order_id}/hardship", status_code=201, response_model=r.HardshipRequestOut)
def open_hardship_request(
    order_id: str,
    body: HardshipRequestIn,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    call: IdempotentCallDep,
) -> JSONResponse:
    """A shopper asks for hardship relief (through the platform's key), or an operator opens the
    request for them: the order's late fees, dunning and auto-debit hold at once."""
    require(principal, platform=True, roles=HARDSHIP_OPERATORS)

    def respond(work: Work) -> tuple[int, Any]:
        return 201, hardship.request_hardship(
            work.session,
            order_id=order_id,
            opened_by="operator" if principal.kind == "operator" else "shopper",
            reason=body.reason,
            operator_id=principal.operator_id,
            settings=runtime.settings,
            today=work.today,
            now=work.now,
        )

    return call.run(body, respond)


@router.get("/v1/orders/{order_id}/hardship", response_model=r.HardshipRequestList)
def order_hardship_requests(
    order_id: str, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, platform=True, roles=HARDSHIP_OPERATORS)
    with runtime.work(read_only=True) as work:
        return {"data": hardship.hardships_of_order(work.session, order_id=order_id)}


@router.get("/v1/hardship-requests", response_model=r.HardshipRequestPage)
def list_hardship_requests(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    status: Annotated[
        Literal["open", "offered", "plan", "completed", "broken", "settled", "lapsed", "declined"]
        | None,
        Query(),
    ] = None,
    starting_after: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> dict[str, Any]:
    require(principal, roles=HARDSHIP_OPERATORS)
    with runtime.work(read_only=True) as work:
        rows = collections_service.list_hardships(
            work.session, status=status, starting_after=starting_after, limit=limit + 1
        )
        return page(rows, limit, collections_service.hardship_view)


@router.post("/v1/hardship-requests/{request_id}/decision", response_model=r.HardshipDecisionOut)
def decide_hardship_request(
    request_id: str,
    body: HardshipDecisionIn,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    call: IdempotentCallDep,
) -> JSONResponse:
    """An operator's answer: a plan over ``plan_months``, a settlement for ``settlement_minor``,
    or a refusal."""
    require(principal, roles=HARDSHIP_OPERATORS)

    def respond(work: Work) -> tuple[int, Any]:
        return 200, hardship.decide(
            work.session,
            request_id=request_id,
            decision=body.decision,
            plan_months=body.plan_months,
            settlement_minor=body.settlement_minor,
            note=body.note,
            operator_id=principal.operator_id,
            settings=runtime.settings,
            today=work.today,
            now=work.now,
        )

    return call.run(body, respond)


@router.post(
    "/v1/hardship-requests/{request_id}/settlement-payment",
    response_model=r.HardshipSettlementOut,
)
def pay_hardship_settlement(
    request_id: str,
    body: SettlementPaymentIn,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    call: IdempotentCallDep,
) -> JSONResponse:
    """The shopper pays the settlement offered; the rest of the order is written off."""
    require(principal, platform=True)

    def respond(work: Work) -> tuple[int, Any]:
        return 200, hardship.pay_settlement(
            work.session,
            request_id=request_id,
            amount_minor=body.amount_minor,
            method=body.method,
            external_ref=body.external_ref,
            settings=runtime.settings,
            today=work.today,
            now=work.now,
        )

    return call.run(body, respond)


@router.get(
    "/v1/shoppers/{shopper_id}/contacts",
    response_model=r.ContactAttemptPage,
    response_model_exclude_unset=True,
)
def shopper_contacts(
    shopper_id: str,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    starting_after: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    require(principal, roles=("collector", "admin", "compliance"))
    with runtime.work(read_only=True) as work:
        attempts = collections_service.contacts_of(
            work.session, shopper_id=shopper_id, starting_after=starting_after, limit=limit + 1
        )
        return page(attempts, limit, collections_service.contact_view)


@router.get("/v1/collections/queue", response_model=r.QueuePage, response_model_exclude_unset=True)
def collections_queue(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    require(principal, roles=COLLECTORS)
    with runtime.work(read_only=True) as work:
        entries = collections_service.collection_queue(
            work.session, today=work.today, limit=limit + 1
        )
        return page(entries, limit, lambda entry: entry)


@router.post(
    "/v1/collections/{order_id}/contacts",
    status_code=201,
    response_model=r.ContactAttemptOut,
    response_model_exclude_unset=True,
)
def record_call(
    order_id: str, body: CallOutcomeIn, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, roles=COLLECTORS)
    with runtime.work() as work:
        attempt = collector_calls.record_call(
            work.session,
            order_id=order_id,
            outcome=body.outcome,
            promise_on=body.promise_on,
            promise_minor=body.promise_minor,
            note=body.note,
            operator_id=principal.operator_id,
            settings=runtime.settings,
            cipher=runtime.cipher,
            today=work.today,
            now=work.now,
        )
        return collections_service.contact_view(attempt)


@router.post("/v1/orders/{order_id}/late-fees/waive", response_model=r.WaivedLateFeesOut)
def waive_late_fees(
    order_id: str,
    body: WaiveLateFeesIn,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    call: IdempotentCallDep,
) -> JSONResponse:
    require(principal, roles=COLLECTORS)

    def respond(work: Work) -> tuple[int, Any]:
        waiver = late_fee_waivers.waive_late_fees(
            work.session,
            order_id=order_id,
            amount_minor=body.amount_minor,
            reason=body.reason,
            operator_id=principal.operator_id,
            settings=runtime.settings,
            now=work.now,
        )
        order = order_service.find_order(work.session, order_id=order_id)
        return 200, {
            "waived_minor": waiver.amount_minor,
            "waiver": collections_service.late_fee_waiver_view(waiver),
            "order": order_service.order_view(work.session, order),
        }

    return call.run(body, respond)


@router.post(
    "/v1/bureau/files",
    status_code=201,
    response_model=r.BureauFileOut,
    response_model_exclude_unset=True,
)
def create_bureau_file(
    body: BureauFileIn, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, roles=COLLECTORS)
    with runtime.work() as work:
        row = bureau_reporting.create_bureau_file(
            work.session,
            period=body.period,
            file_format=body.format,
            cipher=runtime.cipher,
            settings=runtime.settings,
            today=work.today,
            now=work.now,
        )
        return bureau.bureau_file_view(row)


@router.get("/v1/bureau/files", response_model=r.BureauFilePage, response_model_exclude_unset=True)
def list_bureau_files(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    starting_after: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    require(principal, roles=COLLECTORS)
    with runtime.work(read_only=True) as work:
        rows = bureau.list_bureau_files(
            work.session, starting_after=starting_after, limit=limit + 1
        )
        return page(rows, limit, bureau.bureau_file_view)


@router.get(
    "/v1/bureau/files/{file_id}/content",
    response_class=Response,
    responses=r.binary_response(
        "text/plain", "application/x-ndjson", description="The file as submitted to the bureau."
    ),
)
def bureau_file_content(
    file_id: str, runtime: RuntimeDep, principal: PrincipalDep
) -> PlainTextResponse:
    require(principal, roles=COLLECTORS)
    # A write transaction: the download is recorded in the PII audit chain.
    with runtime.work() as work:
        row = bureau.get_bureau_file(work.session, file_id=file_id)
        content = read_bureau_file(
            work.session,
            bureau_file=row,
            cipher=runtime.cipher,
            actor=principal.operator_id or principal.key_id,
            purpose=f"download of credit-bureau file {row.id} ({row.period}, {row.format})",
            now=work.now,
        )
        media_type = "application/x-ndjson" if row.format == "jsonl" else "text/plain"
        return PlainTextResponse(content, media_type=media_type)


@router.get("/v1/legal/cases", response_model=r.LegalCasePage, response_model_exclude_unset=True)
def legal_cases(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    starting_after: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    require(principal, roles=COLLECTORS)
    with runtime.work(read_only=True) as work:
        rows = collections_service.list_legal_cases(
            work.session, starting_after=starting_after, limit=limit + 1
        )
        return page(rows, limit, collections_service.legal_case_view)


@router.get(
    "/v1/legal/cases/{case_id}", response_model=r.LegalCaseOut, response_model_exclude_unset=True
)
def legal_case(case_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, roles=COLLECTORS)
    with runtime.work(read_only=True) as work:
        case = collections_service.get_legal_case(work.session, case_id=case_id)
        return collections_service.legal_case_view(case)


@router.post(
    "/v1/legal/cases/{case_id}/status",
    response_model=r.LegalCaseOut,
    response_model_exclude_unset=True,
)
def move_legal_case(
    case_id: str, body: LegalStatusIn, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, roles=("admin",))
    with runtime.work() as work:
        case = collections_service.move_legal_case(
            work.session, case_id=case_id, status=body.status, now=work.now
        )
        return collections_service.legal_case_view(case)


@router.get(
    "/v1/legal/cases/{case_id}/evidence.pdf",
    response_class=Response,
    responses=r.binary_response("application/pdf", description="The evidence pack (PDF)."),
)
def legal_evidence(case_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> Response:
    require(principal, roles=COLLECTORS)
    # A write transaction: the pack shows the shopper's full name, so the read is audited.
    with runtime.work() as work:
        pdf = evidence_pdf(
            work.session,
            case_id=case_id,
            cipher=runtime.cipher,
            settings=runtime.settings,
            now=work.now,
        )
        case = collections_service.get_legal_case(work.session, case_id=case_id)
        record_access(
            work.session,
            actor=principal.operator_id or principal.key_id,
            action="legal_evidence.read",
            subject_shopper_id=case.shopper_id,
            fields=["name"],
            purpose=f"legal evidence pack of case {case.id}",
            now=work.now,
            reference_id=case.id,
        )
    return Response(content=pdf, media_type="application/pdf")
