"""Collections in the console: the call queue, an account's contact history and promises, and
recording a call's outcome (refused, with the reason, when the contact policy forbids the call)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from usefirst.collections import service as collections_service
from usefirst.console import i18n
from usefirst.console.web import Page, check_csrf, once, repeated, signed_in
from usefirst.flows import collector_calls
from usefirst.identity import service as identity_service
from usefirst.kit.errors import UsefirstError
from usefirst.orders import service as order_service

router = APIRouter(prefix="/console", include_in_schema=False)

QUEUE_LENGTH = 200


def _yuan_to_minor(text: str) -> int | None:
    """'1,234.5' → 123450; None for an empty field; ValueError for anything not an amount."""
    cleaned = text.replace(",", "").replace("¥", "").strip()
    if not cleaned:
        return None
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(cleaned) from None
    if amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        raise ValueError(cleaned)
    return int(amount * 100)


def _account_page(
    page: Page,
    *,
    order_id: str,
    error: str | None = None,
    status_code: int = 200,
    typed: dict[str, str] | None = None,
) -> HTMLResponse:
    session = page.work.session
    order = order_service.find_order(session, order_id=order_id)
    shopper = identity_service.get_shopper(session, shopper_id=order.shopper_id)
    overdue_minor, days_past_due = collections_service.overdue_facts(
        session, order, page.work.today
    )
    contacts = [
        collections_service.contact_view(attempt)
        for attempt in collections_service.contacts_of(session, shopper_id=shopper.id)
    ]
    return page.render(
        "collections_account.html",
        status_code=status_code,
        order=order,
        shopper=shopper,
        overdue_minor=overdue_minor,
        days_past_due=days_past_due,
        contacts=sorted(contacts, key=lambda view: view["scheduled_at"], reverse=True),
        outcomes=collections_service.CALL_OUTCOMES,
        error=error,
        today=page.work.today,
        typed=typed or {},
    )


@router.get("/collections", response_class=HTMLResponse)
def queue(request: Request) -> Response:
    with signed_in(request, page="collections") as page:
        entries = collections_service.collection_queue(
            page.work.session, today=page.work.today, limit=QUEUE_LENGTH
        )
        shoppers = {
            entry["shopper_id"]: identity_service.get_shopper(
                page.work.session, shopper_id=entry["shopper_id"]
            )
            for entry in entries
        }
        return page.render("collections_queue.html", entries=entries, shoppers=shoppers)


@router.get("/collections/{order_id}", response_class=HTMLResponse)
def account(request: Request, order_id: str) -> Response:
    with signed_in(request, page="collections") as page:
        return _account_page(page, order_id=order_id)


@router.post("/collections/{order_id}/calls", response_class=HTMLResponse)
def record_call(
    request: Request,
    order_id: str,
    outcome: Annotated[str, Form(max_length=32)],
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    promise_on: Annotated[str, Form(max_length=10)] = "",
    promise_amount: Annotated[str, Form(max_length=20)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
    form_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    error: str | None = None
    typed_fields = {
        "outcome": outcome,
        "promise_on": promise_on,
        "promise_amount": promise_amount,
        "note": note,
    }
    with signed_in(request, page="collections") as page:
        check_csrf(page.session_row.csrf_token, csrf_token, language=page.language)
        try:
            promise_date = date.fromisoformat(promise_on) if promise_on.strip() else None
            promise_minor = _yuan_to_minor(promise_amount)
        except ValueError:
            error = i18n.translate("bad_promise", page.language)
        if error is None:
            # The call is checked and recorded in a savepoint: a refusal leaves nothing behind.
            savepoint = page.work.session.begin_nested()

            def call() -> str:
                collector_calls.record_call(
                    page.work.session,
                    order_id=order_id,
                    outcome=outcome,
                    promise_on=promise_date,
                    promise_minor=promise_minor,
                    note=note or None,
                    operator_id=page.identity.operator_id,
                    settings=page.runtime.settings,
                    cipher=page.runtime.cipher,
                    today=page.work.today,
                    now=page.work.now,
                )
                return f"/console/collections/{order_id}?recorded=1"

            try:
                location, replayed = once(
                    page, form_token=form_token, fields=typed_fields, work=call
                )
            except UsefirstError as refused:
                savepoint.rollback()
                error = i18n.refusal(refused.code, refused.message, page.language)
            else:
                savepoint.commit()
        if error is not None:
            return _account_page(
                page, order_id=order_id, error=error, status_code=409, typed=typed_fields
            )
    return RedirectResponse(repeated(location) if replayed else location, status_code=303)
