"""Hardship in the console (collector, support, admin, as the API allows): the queue of requests
with their answer deadlines, a request with what the order owes now, and the operator's answer —
a plan over some months, a settlement for less, or a refusal — given through the same flow as
``POST /v1/hardship-requests/{id}/decision`` (``flows.hardship.decide``), so the console checks
nothing the flow does not and a refusal changes nothing."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from usefirst.collections import service as collections_service
from usefirst.console.codes import CODE_FAMILIES
from usefirst.console.listing import PAGE_SIZE, SEARCH_MAX_CHARS, pager, search_of, yuan_to_minor
from usefirst.console.support_repository import HardshipFilter, hardship_page
from usefirst.console.web import FormPage, Page, check_csrf, signed_in
from usefirst.flows import hardship
from usefirst.identity import service as identity_service
from usefirst.kit.errors import ValidationFailed
from usefirst.repayment import service as repayment_service

router = APIRouter(prefix="/console/hardship", include_in_schema=False)

HARDSHIP_STATUSES = CODE_FAMILIES["hardship_status"]

DECISIONS = ("plan", "settlement", "declined")


@router.get("", response_class=HTMLResponse)
def queue(
    request: Request,
    status: Annotated[str, Query(max_length=12)] = "",
    overdue: Annotated[Literal["", "on"], Query()] = "",
    q: Annotated[str, Query(max_length=SEARCH_MAX_CHARS)] = "",
    sort: Annotated[Literal["deadline", "newest"], Query()] = "deadline",
    after: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """Requests awaiting an answer by deadline (the late ones first, each marked), then the
    answered ones; filtered by status, lateness and the search box."""
    if status and status not in HARDSHIP_STATUSES:
        raise ValidationFailed(
            f"status must be one of {', '.join(HARDSHIP_STATUSES)}.", field="status"
        )
    with signed_in(request, page="hardship") as page:
        session, today = page.work.session, page.work.today
        listing = hardship_page(
            session,
            filters=HardshipFilter(
                status=status or None,
                overdue_only=bool(overdue),
                search=search_of(session, q, cipher=page.runtime.cipher),
            ),
            sort=sort,
            after=after or None,
            limit=PAGE_SIZE,
            today=today,
        )
        query = {"status": status, "overdue": overdue, "q": q, "sort": sort}
        kept = {name: value for name, value in query.items() if value != "deadline"}
        return page.render(
            "hardship_queue.html",
            requests=listing.rows,
            late={row.id for row in listing.rows if _is_late(row.status, row.answer_due_on, page)},
            shoppers={
                row.shopper_id: identity_service.get_shopper(session, shopper_id=row.shopper_id)
                for row in listing.rows
            },
            query=query,
            statuses=HARDSHIP_STATUSES,
            today=today,
            paging=pager("/console/hardship", listing, chosen=kept, after=after),
        )


def _is_late(status: str, answer_due_on: date, page: Page) -> bool:
    """Awaiting an answer past its deadline (``hardship.answer_overdue`` flags it at night)."""
    return status == "open" and answer_due_on < page.work.today


def _request_page(
    page: Page,
    *,
    request_id: str,
    error: str | None = None,
    error_field: str | None = None,
    status_code: int = 200,
    typed: dict[str, str] | None = None,
) -> HTMLResponse:
    session = page.work.session
    found = collections_service.find_hardship(session, request_id=request_id)
    view = collections_service.hardship_view(found)
    shopper = identity_service.get_shopper(session, shopper_id=found.shopper_id)
    owed = repayment_service.owed_on_order(
        session, shopper_id=found.shopper_id, order_id=found.order_id
    ).total_minor
    instalments = repayment_service.instalments_of(
        session, shopper_id=found.shopper_id, order_id=found.order_id
    )
    return page.render(
        "hardship_request.html",
        status_code=status_code,
        hardship=view,
        shopper=shopper,
        owed_minor=owed,
        instalments=instalments,
        is_late=_is_late(found.status, found.answer_due_on, page),
        plan_max_months=page.runtime.settings.hardship_plan_max_months,
        settlement_valid_days=page.runtime.settings.hardship_settlement_valid_days,
        decisions=DECISIONS,
        error=error,
        error_field=error_field,
        typed=typed or {},
    )


@router.get("/{request_id}", response_class=HTMLResponse)
def hardship_request(request: Request, request_id: str) -> Response:
    with signed_in(request, page="hardship") as page:
        return _request_page(page, request_id=request_id)


@router.post("/{request_id}/decision", response_class=HTMLResponse)
def decide(
    request: Request,
    request_id: str,
    decision: Annotated[Literal["plan", "settlement", "declined"], Form()],
    plan_months: Annotated[str, Form(max_length=4)] = "",
    settlement_amount: Annotated[str, Form(max_length=20)] = "",
    note: Annotated[str, Form(max_length=500)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    form_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    with signed_in(request, page="hardship") as page:
        check_csrf(page.session_row.csrf_token, csrf_token, language=page.language)
        form = FormPage(
            page,
            show=lambda **failed: _request_page(page, request_id=request_id, **failed),
            typed={
                "decision": decision,
                "plan_months": plan_months,
                "settlement_amount": settlement_amount,
                "note": note,
            },
        )
        months: int | None = None
        settlement_minor: int | None = None
        error_field: str | None = None
        try:
            if decision == "plan":
                error_field = "plan_months"
                months = int(plan_months.strip())
            elif decision == "settlement":
                error_field = "settlement_minor"
                settlement_minor = yuan_to_minor(settlement_amount)
                if settlement_minor is None:
                    raise ValueError(settlement_amount)
        except ValueError:
            key = "hs_bad_months" if decision == "plan" else "hs_bad_amount"
            return form.invalid(key, field=error_field)

        def answer() -> str:
            hardship.decide(
                page.work.session,
                request_id=request_id,
                decision=decision,
                plan_months=months,
                settlement_minor=settlement_minor,
                note=note.strip() or None,
                operator_id=page.identity.operator_id,
                settings=page.runtime.settings,
                today=page.work.today,
                now=page.work.now,
            )
            return f"/console/hardship/{request_id}?decided=1"

        return form.run(form_token=form_token, work=answer, field=error_field)
