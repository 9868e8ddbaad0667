"""The shopper's options in the console, for support (and collectors and admins as the API
allows each): the order lookup; an order with its schedule, its payoff quote, the due-date
extension, its hardship requests (and opening one for the shopper) and every auto-debit attempt
with what the provider said about it; a shopper with their credit line, the overpayment the
platform holds and its refund.

Every action calls the flow its API endpoint calls (``flows.shopper_options``,
``flows.hardship``), in a savepoint, once per form token: a refusal is shown on the page with
nothing changed. The pages show the shopper's name and phone masked only, so no unmasked PII is
read and nothing is added to the audit chain."""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from usefirst.console import i18n
from usefirst.console.codes import CODE_FAMILIES
from usefirst.console.listing import PAGE_SIZE, SEARCH_MAX_CHARS, pager, search_of
from usefirst.console.repository import CollectionsReadRepository
from usefirst.console.support_repository import orders_page
from usefirst.console.web import PAGE_ROLES, FormPage, Page, check_csrf, signed_in
from usefirst.credit import service as credit_service
from usefirst.flows import auto_debit, hardship, payments, shopper_options
from usefirst.identity import service as identity_service
from usefirst.kit.errors import ValidationFailed
from usefirst.orders import service as order_service
from usefirst.repayment import service as repayment_service

router = APIRouter(prefix="/console", include_in_schema=False)

REASON_MAX_CHARS = 500


@router.get("/orders", response_class=HTMLResponse)
def orders(
    request: Request,
    status: Annotated[str, Query(max_length=16)] = "",
    q: Annotated[str, Query(max_length=SEARCH_MAX_CHARS)] = "",
    after: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """Find an order: by its id, the shopper's id or phone, the merchant's id or name."""
    if status and status not in order_service.ALL_STATUSES:
        raise ValidationFailed(
            f"status must be one of {', '.join(order_service.ALL_STATUSES)}.", field="status"
        )
    with signed_in(request, page="orders") as page:
        session = page.work.session
        listing = orders_page(
            session,
            status=status or None,
            search=search_of(session, q, cipher=page.runtime.cipher),
            after=after or None,
            limit=PAGE_SIZE,
        )
        query = {"status": status, "q": q}
        return page.render(
            "support_orders.html",
            orders=listing.rows,
            shoppers={
                row.shopper_id: identity_service.get_shopper(session, shopper_id=row.shopper_id)
                for row in listing.rows
            },
            merchants=CollectionsReadRepository(session).merchant_names(
                {row.merchant_id for row in listing.rows}
            ),
            query=query,
            statuses=CODE_FAMILIES["order_status"],
            paging=pager("/console/orders", listing, chosen=query, after=after),
        )


def _order_page(
    page: Page,
    *,
    order_id: str,
    error: str | None = None,
    error_form: str | None = None,
    error_field: str | None = None,
    status_code: int = 200,
    typed: dict[str, str] | None = None,
) -> HTMLResponse:
    session, today = page.work.session, page.work.today
    order = order_service.find_order(session, order_id=order_id)
    shopper = identity_service.get_shopper(session, shopper_id=order.shopper_id)
    instalments = repayment_service.instalments_of(
        session, shopper_id=order.shopper_id, order_id=order.id
    )
    may_act = page.identity.role in PAGE_ROLES["order_options"]
    quote: dict[str, Any] | None = None
    quote_refusal: str | None = None
    if may_act:
        try:
            quote = shopper_options.payoff_quote(session, order_id=order.id, today=today)
        except shopper_options.OrderNotOpen as refused:
            quote_refusal = i18n.refusal(refused.code, refused.message, page.language)
    requests = hardship.hardships_of_order(session, order_id=order.id)
    holding = [view for view in requests if view["status"] in ("open", "offered", "plan")]
    return page.render(
        "support_order.html",
        status_code=status_code,
        order=order,
        shopper=shopper,
        merchant_name=CollectionsReadRepository(session)
        .merchant_names({order.merchant_id})
        .get(order.merchant_id, order.merchant_id),
        instalments=instalments,
        may_act=may_act,
        may_see_shopper=page.identity.role in PAGE_ROLES["support_shopper"],
        quote=quote,
        quote_refusal=quote_refusal,
        extension_used=any(row.extended_days for row in instalments),
        extendable=[
            row
            for row in instalments
            if row.status == "pending" and row.due_on is not None and row.due_on >= today
        ],
        extension_max_days=page.runtime.settings.extension_max_days,
        hardships=requests,
        holding=holding[0] if holding else None,
        charges=auto_debit.order_charges(session, order_id=order.id)["data"],
        today=today,
        error=error,
        error_form=error_form,
        error_field=error_field,
        typed=typed or {},
    )


@router.get("/orders/{order_id}", response_class=HTMLResponse)
def order(request: Request, order_id: str) -> Response:
    with signed_in(request, page="orders") as page:
        return _order_page(page, order_id=order_id)


@router.post("/orders/{order_id}/extension", response_class=HTMLResponse)
def extend(
    request: Request,
    order_id: str,
    seq: Annotated[str, Form(max_length=4)] = "",
    days: Annotated[str, Form(max_length=4)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    form_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Move one instalment's due date (``POST /v1/orders/{id}/extension``: support, admin)."""
    with signed_in(request, page="order_options") as page:
        check_csrf(page.session_row.csrf_token, csrf_token, language=page.language)
        form = FormPage(
            page,
            show=lambda **failed: _order_page(
                page, order_id=order_id, error_form="extension", **failed
            ),
            typed={"seq": seq, "days": days},
        )
        try:
            seq_number, day_count = int(seq.strip()), int(days.strip())
        except ValueError:
            return form.invalid("sup_bad_extension", field="days")

        def move() -> str:
            shopper_options.extend_due_date(
                page.work.session,
                order_id=order_id,
                seq=seq_number,
                days=day_count,
                settings=page.runtime.settings,
                today=page.work.today,
                now=page.work.now,
            )
            return f"/console/orders/{order_id}?extended=1"

        return form.run(form_token=form_token, work=move, field="days")


@router.post("/orders/{order_id}/hardship", response_class=HTMLResponse)
def open_hardship(
    request: Request,
    order_id: str,
    reason: Annotated[str, Form(max_length=REASON_MAX_CHARS)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    form_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Open a hardship request for the shopper (``POST /v1/orders/{id}/hardship`` by an
    operator): the order's late fees, dunning and auto-debit hold at once."""
    with signed_in(request, page="hardship") as page:
        check_csrf(page.session_row.csrf_token, csrf_token, language=page.language)
        form = FormPage(
            page,
            show=lambda **failed: _order_page(
                page, order_id=order_id, error_form="hardship", **failed
            ),
            typed={"reason": reason},
        )
        if not reason.strip():
            return form.invalid("hs_reason_required", field="reason")

        def open_request() -> str:
            view = hardship.request_hardship(
                page.work.session,
                order_id=order_id,
                opened_by="operator",
                reason=reason.strip(),
                operator_id=page.identity.operator_id,
                settings=page.runtime.settings,
                today=page.work.today,
                now=page.work.now,
            )
            return f"/console/hardship/{view['id']}?opened=1"

        # The flow's refusals name no field (the order is not open, a request already is).
        return form.run(form_token=form_token, work=open_request, field="reason")


def _shopper_page(
    page: Page,
    *,
    shopper_id: str,
    error: str | None = None,
    error_field: str | None = None,
    status_code: int = 200,
    typed: dict[str, str] | None = None,
) -> HTMLResponse:
    # The page has one form, its error shown above it (``error_field`` marks no input).
    del error_field
    session = page.work.session
    shopper = identity_service.get_shopper(session, shopper_id=shopper_id)
    line = credit_service.get_credit_line(session, shopper_id=shopper_id)
    return page.render(
        "support_shopper.html",
        status_code=status_code,
        shopper=shopper,
        credit=credit_service.credit_view(line),
        held_minor=payments.held_credit_of(session, shopper_id=shopper_id, currency=line.currency),
        mandates=auto_debit.mandates_of(session, shopper_id=shopper_id),
        orders=order_service.orders_of_shopper(session, shopper_id=shopper_id),
        has_provider=page.runtime.payment_provider is not None,
        error=error,
        typed=typed or {},
    )


@router.get("/shoppers/{shopper_id}", response_class=HTMLResponse)
def shopper(request: Request, shopper_id: str) -> Response:
    with signed_in(request, page="support_shopper") as page:
        return _shopper_page(page, shopper_id=shopper_id)


@router.post("/shoppers/{shopper_id}/credit-balance/refund", response_class=HTMLResponse)
def refund_credit_balance(
    request: Request,
    shopper_id: str,
    via: Annotated[Literal["provider", "platform"], Form()],
    external_ref: Annotated[str, Form(max_length=128)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    form_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Pay back the overpayment held (``POST /v1/shoppers/{id}/credit-balance/refund``: support,
    admin): through the provider, or recorded as paid out by the platform. The form's one-time
    token is the provider's idempotency key, so a second post never refunds twice."""
    with signed_in(request, page="support_shopper") as page:
        check_csrf(page.session_row.csrf_token, csrf_token, language=page.language)
        key = form_token or secrets.token_urlsafe(18)
        form = FormPage(
            page,
            show=lambda **failed: _shopper_page(page, shopper_id=shopper_id, **failed),
            typed={"via": via, "external_ref": external_ref},
        )

        def refund() -> str:
            shopper_options.refund_credit_balance(
                page.work.session,
                shopper_id=shopper_id,
                via=via,
                external_ref=external_ref.strip() or None,
                idempotency_key=f"console:{key}",
                provider=page.runtime.payment_provider,
                settings=page.runtime.settings,
                now=page.work.now,
            )
            return f"/console/shoppers/{shopper_id}?refunded=1"

        return form.run(form_token=form_token, work=refund, field=None)
