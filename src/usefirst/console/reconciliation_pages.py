"""Reconciliation breaks in the console (admin, as ``GET /v1/rails/reconciliation/breaks``):
every difference between a provider's daily statement and our books that reconciliation did not
settle by itself, oldest statement first with its age in days, and marking one resolved once it
was settled outside the engine (``flows.rail_reconciliation.resolve_break``, the API's call)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from usefirst.console.listing import PAGE_SIZE, pager, sorted_page
from usefirst.console.web import check_csrf, error_page, refusal_text, run_form, signed_in
from usefirst.flows import rail_reconciliation

router = APIRouter(prefix="/console/reconciliation", include_in_schema=False)


@router.get("", response_class=HTMLResponse)
def breaks(
    request: Request,
    provider: Annotated[str, Query(max_length=16)] = "",
    resolved: Annotated[Literal["", "on"], Query()] = "",
    after: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    with signed_in(request, page="reconciliation") as page:
        report = rail_reconciliation.break_report(
            page.work.session,
            provider=provider.strip() or None,
            today=page.work.today,
            include_resolved=bool(resolved),
        )
        listing = sorted_page(
            report, id_of=lambda row: str(row["id"]), after=after or None, limit=PAGE_SIZE
        )
        query = {"provider": provider.strip(), "resolved": resolved}
        return page.render(
            "reconciliation_breaks.html",
            breaks=listing.rows,
            open_count=sum(1 for row in report if row["resolved_at"] is None),
            query=query,
            paging=pager("/console/reconciliation", listing, chosen=query, after=after),
        )


@router.post("/{break_id}/resolve", response_class=HTMLResponse)
def resolve(
    request: Request,
    break_id: str,
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    form_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    with signed_in(request, page="reconciliation") as page:
        check_csrf(page.session_row.csrf_token, csrf_token, language=page.language)

        def settle() -> str:
            rail_reconciliation.resolve_break(
                page.work.session, break_id=break_id, today=page.work.today, now=page.work.now
            )
            return "/console/reconciliation?resolved_one=1"

        return run_form(
            page,
            form_token=form_token,
            fields={"break_id": break_id},
            work=settle,
            on_refusal=lambda refused: error_page(
                request, status_code=refused.status_code, message=refusal_text(page, refused)
            ),
        )
