"""The merchant portal: a merchant's staff see their own orders (with risk's early warnings on
held ones), their balance and payouts, and their disputes, where they upload evidence.

Everything is looked up with the signed-in merchant's id, so another merchant's order, dispute or
payout id in the URL is simply not found (404, the same answer as an id that does not exist).
Evidence goes through the disputes service exactly as POST /v1/disputes/{id}/evidence does:
the same size limit, type detection, SHA-256 and content-addressed storage."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from usefirst.api.routers.disputes import MULTIPART_OVERHEAD_BYTES, evidence_store
from usefirst.console import i18n
from usefirst.console.listing import PAGE_SIZE, SEARCH_MAX_CHARS, pager, search_of, whole_yuan
from usefirst.console.merchant_repository import MerchantPortalRepository, PortalFilter
from usefirst.console.web import Page, check_csrf, once, repeated, signed_in, templates
from usefirst.disputes import service as dispute_service
from usefirst.disputes.errors import EvidenceTooLarge
from usefirst.disputes.storage import CheckedFile, check_upload
from usefirst.flows import dispute_resolution
from usefirst.kit.errors import NotFound, UsefirstError, ValidationFailed
from usefirst.merchants import settlement
from usefirst.orders import service as order_service

router = APIRouter(prefix="/console/merchant", include_in_schema=False)

PAGE = "merchant"
LIST_LENGTH = 200
RECENT_LENGTH = 20


def _not_found(page: Page) -> HTMLResponse:
    return page.render(
        "merchant_message.html",
        status_code=404,
        message=i18n.translate("merchant_not_found", page.language),
    )


def _merchant_id(page: Page) -> str:
    merchant_id = page.identity.merchant_id
    assert merchant_id is not None  # PAGE_ROLES lets only merchants' staff in
    return merchant_id


def _balance(page: Page) -> settlement.MerchantBalance:
    return settlement.merchant_balance(
        page.work.session,
        merchant_id=_merchant_id(page),
        currency=page.runtime.settings.currency,
    )


@router.get("", response_class=HTMLResponse)
def overview(request: Request) -> Response:
    with signed_in(request, page=PAGE) as page:
        repository = MerchantPortalRepository(page.work.session, merchant_id=_merchant_id(page))
        held = repository.orders(status="review", limit=LIST_LENGTH)
        disputes = dispute_service.list_disputes(
            page.work.session,
            merchant_id=_merchant_id(page),
            status=None,
            starting_after=None,
            limit=RECENT_LENGTH,
        )
        return page.render(
            "merchant_home.html",
            balance=_balance(page),
            held=held,
            warnings=repository.warnings([order.id for order in held]),
            counts=repository.order_counts(),
            recent=repository.orders(status=None, limit=RECENT_LENGTH),
            disputes=[row for row in disputes if row.status != "resolved"],
        )


@router.get("/orders", response_class=HTMLResponse)
def orders(
    request: Request,
    status: Annotated[str, Query(max_length=16)] = "",
    min_amount: Annotated[str, Query(max_length=9)] = "",
    q: Annotated[str, Query(max_length=SEARCH_MAX_CHARS)] = "",
    sort: Annotated[Literal["newest", "largest"], Query()] = "newest",
    after: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    if status and status not in order_service.ALL_STATUSES:
        raise ValidationFailed("status is not an order status.", field="status")
    minimum = whole_yuan(min_amount, field="min_amount")
    with signed_in(request, page=PAGE) as page:
        session = page.work.session
        repository = MerchantPortalRepository(session, merchant_id=_merchant_id(page))
        listing = repository.orders_page(
            filters=PortalFilter(
                status=status or None,
                min_amount_minor=minimum,
                search=search_of(session, q, cipher=page.runtime.cipher),
            ),
            sort=sort,
            after=after or None,
            limit=PAGE_SIZE,
        )
        query = {"status": status, "min_amount": min_amount.strip(), "q": q, "sort": sort}
        kept = {name: value for name, value in query.items() if value != "newest"}
        return page.render(
            "merchant_orders.html",
            orders=listing.rows,
            warnings=repository.warnings(
                [row.id for row in listing.rows if row.status == "review"]
            ),
            query=query,
            statuses=order_service.ALL_STATUSES,
            paging=pager("/console/merchant/orders", listing, chosen=kept, after=after),
        )


@router.get("/orders/{order_id}", response_class=HTMLResponse)
def order(request: Request, order_id: str) -> Response:
    with signed_in(request, page=PAGE) as page:
        try:
            found = order_service.find_order(
                page.work.session, order_id=order_id, merchant_id=_merchant_id(page)
            )
        except NotFound:
            return _not_found(page)
        repository = MerchantPortalRepository(page.work.session, merchant_id=_merchant_id(page))
        warnings = repository.warnings([found.id]).get(found.id, [])
        return page.render(
            "merchant_order.html",
            order=order_service.order_view(page.work.session, found),
            held=found.status == "review",
            warnings=warnings,
        )


@router.get("/settlements", response_class=HTMLResponse)
def settlements(request: Request, after: Annotated[str, Query(max_length=40)] = "") -> Response:
    with signed_in(request, page=PAGE) as page:
        repository = MerchantPortalRepository(page.work.session, merchant_id=_merchant_id(page))
        listing = repository.settlements_page(after=after or None, limit=PAGE_SIZE)
        return page.render(
            "merchant_settlements.html",
            balance=_balance(page),
            settlements=[settlement.settlement_view(row) for row in listing.rows],
            paging=pager("/console/merchant/settlements", listing, chosen={}, after=after),
        )


@router.get("/settlements/{settlement_id}", response_class=HTMLResponse)
def payout(request: Request, settlement_id: str) -> Response:
    with signed_in(request, page=PAGE) as page:
        try:
            row = settlement.get_settlement(
                page.work.session, merchant_id=_merchant_id(page), settlement_id=settlement_id
            )
        except NotFound:
            return _not_found(page)
        return page.render(
            "merchant_payout.html",
            payout=settlement.settlement_view(row),
            lines=settlement.settlement_lines(page.work.session, settlement=row),
        )


@router.get("/disputes", response_class=HTMLResponse)
def disputes(
    request: Request,
    status: Annotated[
        Literal["", "open", "awaiting_evidence", "under_review", "resolved"], Query()
    ] = "",
    min_amount: Annotated[str, Query(max_length=9)] = "",
    q: Annotated[str, Query(max_length=SEARCH_MAX_CHARS)] = "",
    sort: Annotated[Literal["deadline", "newest"], Query()] = "deadline",
    after: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    minimum = whole_yuan(min_amount, field="min_amount")
    with signed_in(request, page=PAGE) as page:
        session = page.work.session
        repository = MerchantPortalRepository(session, merchant_id=_merchant_id(page))
        listing = repository.disputes_page(
            filters=PortalFilter(
                status=status or None,
                min_amount_minor=minimum,
                search=search_of(session, q, cipher=page.runtime.cipher),
            ),
            sort=sort,
            after=after or None,
            limit=PAGE_SIZE,
        )
        query = {"status": status, "min_amount": min_amount.strip(), "q": q, "sort": sort}
        kept = {name: value for name, value in query.items() if value != "deadline"}
        return page.render(
            "merchant_disputes.html",
            disputes=listing.rows,
            query=query,
            paging=pager("/console/merchant/disputes", listing, chosen=kept, after=after),
        )


def _dispute_page(
    page: Page, *, dispute_id: str, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    try:
        dispute = dispute_service.find_dispute(
            page.work.session, dispute_id=dispute_id, merchant_id=_merchant_id(page)
        )
    except NotFound:
        return _not_found(page)
    max_bytes = page.runtime.settings.dispute_evidence_max_bytes
    return page.render(
        "merchant_dispute.html",
        status_code=status_code,
        dispute=dispute_service.dispute_view(page.work.session, dispute),
        error=error,
        max_size=f"{max_bytes / (1024 * 1024):.0f} MB"
        if max_bytes >= 1024 * 1024
        else f"{max_bytes} B",
    )


@router.get("/disputes/{dispute_id}", response_class=HTMLResponse)
def dispute(request: Request, dispute_id: str) -> Response:
    with signed_in(request, page=PAGE) as page:
        return _dispute_page(page, dispute_id=dispute_id)


def _upload_error_key(error: UsefirstError) -> str:
    if error.status_code == 413:
        return "merchant_upload_too_large"
    if error.status_code == 415:
        return "merchant_upload_bad_type"
    return ""


@router.post("/disputes/{dispute_id}/evidence", response_class=HTMLResponse)
async def upload_evidence(request: Request, dispute_id: str) -> Response:
    """One file (multipart field ``file``) and the CSRF token; checked and stored as the API
    does. A refused file leaves nothing behind: no row, no bytes on disk."""
    max_bytes = request.app.state.runtime.settings.dispute_evidence_max_bytes
    csrf_token = ""
    form_token = ""
    checked: CheckedFile | None = None
    refused: UsefirstError | None = None
    declared_length = request.headers.get("content-length", "")
    if declared_length.isdigit() and int(declared_length) > max_bytes + MULTIPART_OVERHEAD_BYTES:
        # Refused before the body is read, let alone spooled to disk.
        refused = EvidenceTooLarge(f"Evidence files may be at most {max_bytes} bytes.")
    else:
        form = await request.form(max_files=1, max_fields=2)
        try:
            token = form.get("csrf_token")
            csrf_token = token if isinstance(token, str) else ""
            once_token = form.get("form_token")
            form_token = once_token if isinstance(once_token, str) else ""
            upload = form.get("file")
            if not isinstance(upload, UploadFile) or not upload.filename:
                refused = ValidationFailed("Choose a file.", field="file")
            else:
                content = await upload.read(max_bytes + 1)
                try:
                    checked = check_upload(
                        content=content,
                        declared_content_type=upload.content_type,
                        filename=upload.filename,
                        max_bytes=max_bytes,
                    )
                except UsefirstError as error:
                    refused = error
        finally:
            await form.close()

    def store() -> Response:
        with signed_in(request, page=PAGE) as page:
            if refused is None:
                check_csrf(page.session_row.csrf_token, csrf_token, language=page.language)
            error: UsefirstError | None = refused
            if error is None:
                assert checked is not None
                upload = checked
                savepoint = page.work.session.begin_nested()

                def add() -> str:
                    dispute_resolution.add_evidence(
                        page.work.session,
                        dispute_id=dispute_id,
                        checked=upload,
                        caller=dispute_service.Caller(
                            side="merchant",
                            actor_id=page.identity.account_id,
                            merchant_id=_merchant_id(page),
                        ),
                        store=evidence_store(page.runtime),
                        settings=page.runtime.settings,
                        now=page.work.now,
                    )
                    return f"/console/merchant/disputes/{dispute_id}?uploaded=1"

                try:
                    # The same file sent twice with one form (a double click, a reload) is
                    # stored once; the second post is told so.
                    location, replayed = once(
                        page,
                        form_token=form_token,
                        fields={"sha256": upload.sha256, "filename": upload.filename or ""},
                        work=add,
                    )
                except NotFound:
                    savepoint.rollback()
                    return _not_found(page)
                except UsefirstError as caught:
                    savepoint.rollback()
                    error = caught
                else:
                    savepoint.commit()
            if error is not None:
                key = _upload_error_key(error)
                text = (
                    i18n.translate(key, page.language)
                    if key
                    else i18n.refusal(error.code, error.message, page.language)
                )
                return _dispute_page(
                    page, dispute_id=dispute_id, error=text, status_code=error.status_code
                )
        return RedirectResponse(repeated(location) if replayed else location, status_code=303)

    return await run_in_threadpool(store)


def money(minor: int | None) -> str:
    """¥1,234.56 from minor units (negative amounts as -¥1,234.56)."""
    value = minor or 0
    sign = "-" if value < 0 else ""
    units, cents = divmod(abs(value), 100)
    return f"{sign}¥{units:,}.{cents:02d}"


templates.env.filters.setdefault("merchant_money", money)
