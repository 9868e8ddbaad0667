"""Collections in the console: the call queue, an account's contact history and promises, and
recording a call's outcome (refused, with the reason, when the contact policy forbids the call)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from usefirst.collections import service as collections_service
from usefirst.collections.portfolio import BUCKET_ORDER
from usefirst.console import i18n
from usefirst.console.listing import (
    PAGE_SIZE,
    SEARCH_MAX_CHARS,
    pager,
    search_of,
    sorted_page,
    whole_days,
    whole_yuan,
    yuan_to_minor,
)
from usefirst.console.repository import CollectionsReadRepository
from usefirst.console.web import Page, check_csrf, once, repeated, signed_in
from usefirst.flows import collector_calls
from usefirst.identity import service as identity_service
from usefirst.kit.errors import UsefirstError, ValidationFailed
from usefirst.orders import service as order_service

router = APIRouter(prefix="/console", include_in_schema=False)

QUEUE_LENGTH = 200


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


QUEUE_SORTS: dict[str, Callable[[dict[str, Any]], tuple[Any, ...]]] = {
    # Most owed for longest first (the API's order), or most owed, or longest overdue.
    "priority": lambda entry: (-entry["priority"], entry["order_id"]),
    "largest": lambda entry: (-entry["overdue_minor"], entry["order_id"]),
    "oldest": lambda entry: (-entry["days_past_due"], entry["order_id"]),
}


@router.get("/collections", response_class=HTMLResponse)
def queue(
    request: Request,
    bucket: Annotated[str, Query(max_length=8)] = "",
    promise: Annotated[Literal["", "with", "without"], Query()] = "",
    min_amount: Annotated[str, Query(max_length=9)] = "",
    min_days: Annotated[str, Query(max_length=4)] = "",
    q: Annotated[str, Query(max_length=SEARCH_MAX_CHARS)] = "",
    sort: Annotated[Literal["priority", "largest", "oldest"], Query()] = "priority",
    after: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """The call queue, computed for today (what each account owes decides its place), then
    filtered, searched, sorted and paged like every other console list."""
    if bucket and bucket not in BUCKET_ORDER:
        raise ValidationFailed(f"bucket must be one of {', '.join(BUCKET_ORDER)}.", field="bucket")
    minimum = whole_yuan(min_amount, field="min_amount")
    minimum_days = whole_days(min_days, field="min_days")
    with signed_in(request, page="collections") as page:
        session = page.work.session
        entries = collections_service.collection_queue(
            session, today=page.work.today, limit=QUEUE_LENGTH
        )
        search = search_of(session, q, cipher=page.runtime.cipher)
        merchant_of = CollectionsReadRepository(session).merchants_of_orders(
            [entry["order_id"] for entry in entries]
        )
        chosen = [
            entry
            for entry in entries
            if (not bucket or entry["bucket"] == bucket)
            and (not promise or ("promise" in entry) == (promise == "with"))
            and (minimum is None or entry["overdue_minor"] >= minimum)
            and (minimum_days is None or entry["days_past_due"] >= minimum_days)
            and (
                search is None
                or search.matches(
                    ids=(entry["order_id"],),
                    shopper_id=entry["shopper_id"],
                    merchant_id=merchant_of.get(entry["order_id"], ""),
                )
            )
        ]
        chosen.sort(key=QUEUE_SORTS[sort])
        listing = sorted_page(
            chosen, id_of=lambda entry: str(entry["order_id"]), after=after or None, limit=PAGE_SIZE
        )
        query = {
            "bucket": bucket,
            "promise": promise,
            "min_amount": min_amount.strip(),
            "min_days": min_days.strip(),
            "q": q,
            "sort": sort,
        }
        kept = {name: value for name, value in query.items() if value != "priority"}
        shoppers = {
            entry["shopper_id"]: identity_service.get_shopper(
                session, shopper_id=entry["shopper_id"]
            )
            for entry in listing.rows
        }
        return page.render(
            "collections_queue.html",
            entries=listing.rows,
            shoppers=shoppers,
            merchants=CollectionsReadRepository(session).merchant_names(
                {merchant_of.get(entry["order_id"], "") for entry in listing.rows}
            ),
            merchant_of=merchant_of,
            query=query,
            buckets=BUCKET_ORDER,
            paging=pager("/console/collections", listing, chosen=kept, after=after),
        )


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
            promise_minor = yuan_to_minor(promise_amount)
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
