"""Compliance in the console: the PII-access audit log with chain verification, complaints with
their deadlines and responses, and a shopper's data export and erasure.

Everything goes through the privacy domain's services, so the console is audited exactly as the
API is: an export records itself in the audit chain, an erasure is refused while a debt is open.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from usefirst.console import i18n
from usefirst.console.compliance_repository import ComplaintFilter, audit_page, complaints_page
from usefirst.console.listing import PAGE_SIZE, SEARCH_MAX_CHARS, pager, search_of
from usefirst.console.web import Page, check_csrf, once, repeated, signed_in
from usefirst.flows import privacy_requests
from usefirst.identity import service as identity_service
from usefirst.kit.errors import UsefirstError, ValidationFailed
from usefirst.privacy import audit
from usefirst.privacy import complaints as complaint_service

router = APIRouter(prefix="/console/compliance", include_in_schema=False)

AUDIT_PAGE_SIZE = 50


def _shopper_filter(text: str | None) -> str | None:
    cleaned = (text or "").strip()
    return cleaned or None


@router.get("/audit", response_class=HTMLResponse)
def audit_log(
    request: Request,
    shopper_id: Annotated[str | None, Query(max_length=40)] = None,
    q: Annotated[str, Query(max_length=SEARCH_MAX_CHARS)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """The chain, newest first; narrowed to one shopper by id or by phone (blind index)."""
    with signed_in(request, page="compliance") as page:
        session = page.work.session
        report = audit.verify_chain(session)
        subject = _shopper_filter(shopper_id)
        search = search_of(session, q, cipher=page.runtime.cipher)
        shopper_ids: tuple[str, ...] | None = None
        if subject is not None:
            shopper_ids = (subject,)
        elif search is not None:
            shopper_ids = (search.text, *search.shopper_ids)
        listing = audit_page(
            session,
            shopper_ids=shopper_ids,
            action=action.strip() or None,
            before_seq=before,
            limit=AUDIT_PAGE_SIZE,
        )
        chosen = {"shopper_id": subject or "", "q": q, "action": action.strip()}
        paging = pager(
            "/console/compliance/audit",
            listing,
            chosen=chosen,
            after=before,
            cursor_name="before",
        )
        return page.render(
            "compliance_audit.html",
            report=report,
            entries=[audit.entry_view(row) for row in listing.rows],
            # An API key's kind acts for the platform or a merchant: shown in words.
            key_kinds=identity_service.API_KEY_KINDS,
            shopper_id=subject or "",
            query=chosen,
            paging=paging,
        )


@router.get("/complaints", response_class=HTMLResponse)
def complaints(
    request: Request,
    status: Annotated[Literal["", "open", "answered", "closed"], Query()] = "",
    category: Annotated[str, Query(max_length=24)] = "",
    overdue: Annotated[Literal["", "on"], Query()] = "",
    q: Annotated[str, Query(max_length=SEARCH_MAX_CHARS)] = "",
    sort: Annotated[Literal["deadline", "newest"], Query()] = "deadline",
    after: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    if category and category not in complaint_service.CATEGORIES:
        raise ValidationFailed(
            f"category must be one of {', '.join(complaint_service.CATEGORIES)}.",
            field="category",
        )
    with signed_in(request, page="compliance") as page:
        session, now = page.work.session, page.work.now
        listing = complaints_page(
            session,
            filters=ComplaintFilter(
                status=status or None,
                category=category or None,
                overdue_only=bool(overdue),
                search=search_of(session, q, cipher=page.runtime.cipher),
            ),
            sort=sort,
            after=after or None,
            limit=PAGE_SIZE,
            now=now,
        )
        query = {
            "status": status,
            "category": category,
            "overdue": overdue,
            "q": q,
            "sort": sort,
        }
        kept = {name: value for name, value in query.items() if value != "deadline"}
        overdue_ids = {row.id for row in listing.rows if complaint_service.is_overdue(row, now=now)}
        return page.render(
            "compliance_complaints.html",
            complaints=listing.rows,
            overdue=overdue_ids,
            query=query,
            categories=complaint_service.CATEGORIES,
            paging=pager("/console/compliance/complaints", listing, chosen=kept, after=after),
        )


def _complaint_page(
    page: Page,
    *,
    complaint_id: str,
    error: str | None = None,
    status_code: int = 200,
    typed: dict[str, str] | None = None,
) -> HTMLResponse:
    session = page.work.session
    complaint = complaint_service.get_complaint(session, complaint_id=complaint_id)
    view = complaint_service.complaint_view(
        session,
        complaint,
        cipher=page.runtime.cipher,
        now=page.work.now,
        include_access_trail=True,
    )
    return page.render(
        "compliance_complaint.html",
        status_code=status_code,
        complaint=view,
        error=error,
        typed=typed or {},
    )


@router.get("/complaints/{complaint_id}", response_class=HTMLResponse)
def complaint(request: Request, complaint_id: str) -> Response:
    with signed_in(request, page="compliance") as page:
        return _complaint_page(page, complaint_id=complaint_id)


@router.post("/complaints/{complaint_id}/responses", response_class=HTMLResponse)
def respond(
    request: Request,
    complaint_id: str,
    message: Annotated[str, Form(max_length=complaint_service.MAX_TEXT_LENGTH)] = "",
    closes: Annotated[str, Form(max_length=10)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    form_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    with signed_in(request, page="compliance") as page:
        check_csrf(page.session_row.csrf_token, csrf_token, language=page.language)
        assert page.identity.operator_id is not None
        operator_id = page.identity.operator_id
        savepoint = page.work.session.begin_nested()

        def reply() -> str:
            complaint_service.respond(
                page.work.session,
                complaint_id=complaint_id,
                operator_id=operator_id,
                message=message,
                closes=closes == "on",
                cipher=page.runtime.cipher,
                now=page.work.now,
            )
            return f"/console/compliance/complaints/{complaint_id}?responded=1"

        try:
            location, replayed = once(
                page,
                form_token=form_token,
                fields={"message": message, "closes": closes},
                work=reply,
            )
        except UsefirstError as refused:
            savepoint.rollback()
            return _complaint_page(
                page,
                complaint_id=complaint_id,
                error=i18n.refusal(refused.code, refused.message, page.language),
                status_code=409,
                typed={"message": message, "closes": closes},
            )
        savepoint.commit()
    return RedirectResponse(repeated(location) if replayed else location, status_code=303)


def _shopper_page(
    page: Page,
    *,
    shopper_id: str,
    error: str | None = None,
    error_field: str | None = None,
    erasure: dict[str, object] | None = None,
    status_code: int = 200,
    typed: dict[str, str] | None = None,
) -> HTMLResponse:
    shopper = identity_service.get_shopper(page.work.session, shopper_id=shopper_id)
    return page.render(
        "compliance_shopper.html",
        status_code=status_code,
        shopper=shopper,
        error=error,
        error_field=error_field,
        erasure=erasure,
        typed=typed or {},
        retention_reason=lambda item: _retention_reason(item, page.language),
    )


def _retention_reason(item: dict[str, object], language: str) -> str:
    """Why erasure kept a record, in the operator's language (the catalog's sentence for the
    record, the privacy domain's own words in English)."""
    msgid = f"retention.{item.get('record')}"
    if language != "en" and i18n.has_entry(msgid, language):
        return i18n.translate(msgid, language)
    return i18n.free_text(str(item.get("reason", "")), language)


@router.get("/shoppers/{shopper_id}", response_class=HTMLResponse)
def shopper(request: Request, shopper_id: str) -> Response:
    with signed_in(request, page="compliance_shopper") as page:
        return _shopper_page(page, shopper_id=shopper_id)


@router.post("/shoppers/{shopper_id}/export")
def export(
    request: Request, shopper_id: str, csrf_token: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    with signed_in(request, page="compliance_shopper") as page:
        check_csrf(page.session_row.csrf_token, csrf_token, language=page.language)
        assert page.identity.operator_id is not None
        document = privacy_requests.export_shopper(
            page.work.session,
            shopper_id=shopper_id,
            cipher=page.runtime.cipher,
            actor=page.identity.operator_id,
            now=page.work.now,
        )
    return Response(
        json.dumps(jsonable_encoder(document), ensure_ascii=False, indent=2),
        media_type="application/json",
        headers={
            "Content-Disposition": (f'attachment; filename="export-{document["export_id"]}.json"')
        },
    )


@router.post("/shoppers/{shopper_id}/erasure", response_class=HTMLResponse)
def erase(
    request: Request,
    shopper_id: str,
    confirm: Annotated[str, Form(max_length=100)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    form_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    with signed_in(request, page="compliance_shopper") as page:
        check_csrf(page.session_row.csrf_token, csrf_token, language=page.language)
        assert page.identity.operator_id is not None
        actor = page.identity.operator_id
        if confirm.strip() != shopper_id:
            return _shopper_page(
                page,
                shopper_id=shopper_id,
                error=i18n.translate("cmp_erase_confirm_mismatch", page.language),
                error_field="confirm",
                status_code=409,
                typed={"confirm": confirm},
            )
        # A refusal must leave nothing behind, not even the partial work before it was refused;
        # the form's one-time token makes a second post (a double click) change nothing.
        savepoint = page.work.session.begin_nested()
        done: dict[str, dict[str, object]] = {}

        def erasure() -> str:
            result = privacy_requests.erase_shopper(
                page.work.session,
                shopper_id=shopper_id,
                cipher=page.runtime.cipher,
                actor=actor,
                now=page.work.now,
            )
            done["result"] = result.as_dict()
            return f"/console/compliance/shoppers/{shopper_id}?erased=1"

        try:
            location, replayed = once(
                page, form_token=form_token, fields={"confirm": confirm}, work=erasure
            )
        except UsefirstError as refused:
            savepoint.rollback()
            return _shopper_page(
                page,
                shopper_id=shopper_id,
                error=i18n.refusal(refused.code, refused.message, page.language),
                error_field="confirm",
                status_code=409,
                typed={"confirm": confirm},
            )
        savepoint.commit()
        if replayed:
            return RedirectResponse(repeated(location), status_code=303)
        return _shopper_page(page, shopper_id=shopper_id, erasure=done["result"])
