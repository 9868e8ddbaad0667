"""Compliance in the console: the PII-access audit log with chain verification, complaints with
their deadlines and responses, and a shopper's data export and erasure.

Everything goes through the privacy domain's services, so the console is audited exactly as the
API is: an export records itself in the audit chain, an erasure is refused while a debt is open.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from usefirst.console import i18n
from usefirst.console.compliance_repository import ComplianceRepository
from usefirst.console.web import Page, check_csrf, signed_in
from usefirst.flows import privacy_requests
from usefirst.identity import service as identity_service
from usefirst.kit.errors import UsefirstError
from usefirst.privacy import audit
from usefirst.privacy import complaints as complaint_service

router = APIRouter(prefix="/console/compliance", include_in_schema=False)

AUDIT_PAGE_SIZE = 50
COMPLAINT_LIST_LIMIT = 200

i18n.register(
    {
        "cmp_compliance": {"zh": "合规", "en": "Compliance"},
        "cmp_audit_log": {"zh": "个人信息访问审计日志", "en": "PII access audit log"},
        "cmp_chain_ok": {
            "zh": "审计链完整。已校验行数：{rows}。",
            "en": "Audit chain intact. Rows checked: {rows}.",
        },
        "cmp_chain_broken": {
            "zh": "审计链已损坏。已校验行数：{rows}。第一处损坏：第 {seq} 行 — {reason}。",
            "en": "Audit chain broken. Rows checked: {rows}. First broken row: {seq} — {reason}.",
        },
        "cmp_audit_seq": {"zh": "序号", "en": "Seq"},
        "cmp_audit_actor": {"zh": "操作人", "en": "Actor"},
        "cmp_audit_action": {"zh": "动作", "en": "Action"},
        "cmp_audit_subject": {"zh": "顾客", "en": "Shopper"},
        "cmp_audit_fields": {"zh": "字段", "en": "Fields"},
        "cmp_audit_purpose": {"zh": "目的", "en": "Purpose"},
        "cmp_filter_shopper": {"zh": "按顾客编号筛选", "en": "Filter by shopper id"},
        "cmp_apply_filter": {"zh": "筛选", "en": "Filter"},
        "cmp_older_entries": {"zh": "更早的记录 →", "en": "Older entries →"},
        "cmp_complaints": {"zh": "投诉", "en": "Complaints"},
        "cmp_complaint": {"zh": "投诉", "en": "Complaint"},
        "cmp_respond_by": {"zh": "答复期限", "en": "Respond by"},
        "cmp_category": {"zh": "类别", "en": "Category"},
        "cmp_is_overdue": {"zh": "已逾期", "en": "Overdue"},
        "cmp_description": {"zh": "内容", "en": "Description"},
        "cmp_response": {"zh": "答复内容", "en": "Response"},
        "cmp_responses": {"zh": "答复", "en": "Responses"},
        "cmp_write_response": {"zh": "撰写答复", "en": "Write a response"},
        "cmp_close_complaint": {"zh": "答复并结案", "en": "Close the complaint with this response"},
        "cmp_send_response": {"zh": "发送答复", "en": "Send response"},
        "cmp_response_recorded": {"zh": "答复已记录。", "en": "Response recorded."},
        "cmp_access_trail": {
            "zh": "谁读取过该顾客的数据",
            "en": "Who read this shopper's data",
        },
        "cmp_no_complaints": {"zh": "暂无投诉。", "en": "No complaints."},
        "cmp_shopper_privacy": {
            "zh": "顾客数据：导出与删除",
            "en": "Shopper data: export and erasure",
        },
        "cmp_export_data": {"zh": "下载数据导出（JSON）", "en": "Download data export (JSON)"},
        "cmp_export_note": {
            "zh": "导出包含未脱敏的个人信息，并记入审计日志。",
            "en": "The export holds unmasked personal data and is recorded in the audit log.",
        },
        "cmp_erase_data": {"zh": "删除个人信息", "en": "Erase personal data"},
        "cmp_erase_confirm": {
            "zh": "请输入顾客编号 {shopper_id} 以确认删除",
            "en": "Type the shopper id {shopper_id} to confirm erasure",
        },
        "cmp_erase_confirm_mismatch": {
            "zh": "确认内容与顾客编号不符，未做任何更改。",
            "en": "The confirmation does not match the shopper id; nothing was changed.",
        },
        "cmp_erased_title": {"zh": "已删除个人信息", "en": "Personal data erased"},
        "cmp_erased_records": {"zh": "已删除", "en": "Erased"},
        "cmp_retained_records": {"zh": "保留及原因", "en": "Kept, and why"},
        "cmp_record": {"zh": "记录", "en": "Record"},
        "cmp_count": {"zh": "数量", "en": "Count"},
        "cmp_reason": {"zh": "原因", "en": "Reason"},
    }
)


def _shopper_filter(text: str | None) -> str | None:
    cleaned = (text or "").strip()
    return cleaned or None


@router.get("/audit", response_class=HTMLResponse)
def audit_log(
    request: Request,
    shopper_id: Annotated[str | None, Query(max_length=40)] = None,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    with signed_in(request, page="compliance") as page:
        report = audit.verify_chain(page.work.session)
        subject = _shopper_filter(shopper_id)
        rows = ComplianceRepository(page.work.session).audit_entries(
            shopper_id=subject, before_seq=before, limit=AUDIT_PAGE_SIZE + 1
        )
        has_more = len(rows) > AUDIT_PAGE_SIZE
        entries = [audit.entry_view(row) for row in rows[:AUDIT_PAGE_SIZE]]
        return page.render(
            "compliance_audit.html",
            report=report,
            entries=entries,
            shopper_id=subject or "",
            next_before=entries[-1]["seq"] if has_more and entries else None,
        )


@router.get("/complaints", response_class=HTMLResponse)
def complaints(request: Request) -> Response:
    with signed_in(request, page="compliance") as page:
        session, now = page.work.session, page.work.now
        rows = complaint_service.list_complaints(
            session,
            overdue_only=False,
            status=None,
            starting_after=None,
            limit=COMPLAINT_LIST_LIMIT,
            now=now,
        )
        overdue = {row.id for row in rows if complaint_service.is_overdue(row, now=now)}
        # Overdue first (the longest overdue on top), then open ones by deadline, closed last.
        ordered = sorted(
            rows,
            key=lambda row: (
                row.id not in overdue,
                row.status == "closed",
                row.respond_by,
                row.id,
            ),
        )
        return page.render("compliance_complaints.html", complaints=ordered, overdue=overdue)


def _complaint_page(
    page: Page, *, complaint_id: str, error: str | None = None, status_code: int = 200
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
        "compliance_complaint.html", status_code=status_code, complaint=view, error=error
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
) -> Response:
    with signed_in(request, page="compliance") as page:
        check_csrf(page.session_row.csrf_token, csrf_token, language=page.language)
        assert page.identity.operator_id is not None
        savepoint = page.work.session.begin_nested()
        try:
            complaint_service.respond(
                page.work.session,
                complaint_id=complaint_id,
                operator_id=page.identity.operator_id,
                message=message,
                closes=closes == "on",
                cipher=page.runtime.cipher,
                now=page.work.now,
            )
        except UsefirstError as refused:
            savepoint.rollback()
            return _complaint_page(
                page, complaint_id=complaint_id, error=refused.message, status_code=409
            )
        savepoint.commit()
    return RedirectResponse(
        f"/console/compliance/complaints/{complaint_id}?responded=1", status_code=303
    )


def _shopper_page(
    page: Page,
    *,
    shopper_id: str,
    error: str | None = None,
    erasure: dict[str, object] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    shopper = identity_service.get_shopper(page.work.session, shopper_id=shopper_id)
    return page.render(
        "compliance_shopper.html",
        status_code=status_code,
        shopper=shopper,
        error=error,
        erasure=erasure,
    )


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
) -> Response:
    with signed_in(request, page="compliance_shopper") as page:
        check_csrf(page.session_row.csrf_token, csrf_token, language=page.language)
        assert page.identity.operator_id is not None
        if confirm.strip() != shopper_id:
            return _shopper_page(
                page,
                shopper_id=shopper_id,
                error=i18n.translate("cmp_erase_confirm_mismatch", page.language),
                status_code=409,
            )
        # A refusal must leave nothing behind, not even the partial work before it was refused.
        savepoint = page.work.session.begin_nested()
        try:
            result = privacy_requests.erase_shopper(
                page.work.session,
                shopper_id=shopper_id,
                cipher=page.runtime.cipher,
                actor=page.identity.operator_id,
                now=page.work.now,
            )
        except UsefirstError as refused:
            savepoint.rollback()
            return _shopper_page(
                page, shopper_id=shopper_id, error=refused.message, status_code=409
            )
        savepoint.commit()
        return _shopper_page(page, shopper_id=shopper_id, erasure=result.as_dict())
