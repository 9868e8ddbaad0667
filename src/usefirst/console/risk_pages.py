"""Risk review in the console: the queue of held orders and open cases (oldest and largest
first), and a case page with its evidence, the decision records of its orders, the shopper's and
merchant's history, the ring as a picture, and assigning the case (risk) and resolving it (the case
resolution flow: a cleared held order proceeds, a confirmed one is declined or cancelled)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from usefirst.console import i18n
from usefirst.console.listing import (
    SEARCH_MAX_CHARS,
    ListPage,
    pager,
    search_of,
    whole_days,
    whole_yuan,
)
from usefirst.console.repository import PeopleRepository
from usefirst.console.risk_graph import build_ring_graph
from usefirst.console.risk_repository import (
    UNASSIGNED,
    CaseFilter,
    HeldFilter,
    RiskReviewRepository,
    held_orders_page,
    open_cases_page,
)
from usefirst.console.web import PAGE_ROLES, Page, check_csrf, signed_in
from usefirst.flows import case_resolution
from usefirst.identity import service as identity_service
from usefirst.kit.errors import NotFound, UsefirstError
from usefirst.merchants import service as merchant_service
from usefirst.orders import service as order_service
from usefirst.orders.models import Order
from usefirst.risk import cases as case_service
from usefirst.risk import decision as risk_decision
from usefirst.risk import service as risk_service
from usefirst.risk.repository import RiskRepository

router = APIRouter(prefix="/console", include_in_schema=False)

QUEUE_LENGTH = 200
HELD_PREVIEW_LENGTH = 10
CASE_PAGE_SIZE = 25
HISTORY_LENGTH = 20


def _merchant_names(page: Page, merchant_ids: set[str]) -> dict[str, str]:
    names = {}
    for merchant_id in sorted(merchant_ids):
        try:
            names[merchant_id] = merchant_service.get_merchant(
                page.work.session, merchant_id=merchant_id
            ).name
        except NotFound:
            names[merchant_id] = merchant_id
    return names


SORT_CHOICES = Literal["oldest", "largest"]


def _held_listing(
    page: Page,
    *,
    status: str = "",
    min_amount: str = "",
    min_days: str = "",
    q: str = "",
    sort: str = "oldest",
    after: str = "",
    limit: int,
) -> tuple[ListPage[Order], dict[str, str]]:
    session = page.work.session
    filters = HeldFilter(
        status=status or None,
        min_amount_minor=whole_yuan(min_amount, field="min_amount"),
        min_age_days=whole_days(min_days, field="min_days"),
        search=search_of(session, q, cipher=page.runtime.cipher),
    )
    listing = held_orders_page(
        session, filters=filters, sort=sort, after=after or None, limit=limit, now=page.work.now
    )
    query = {"status": status, "min_amount": min_amount.strip(), "min_days": min_days.strip()}
    return listing, {**query, "q": q, "sort": sort}


def _case_of_order(page: Page, orders: list[Order]) -> dict[str, str]:
    """The unresolved case of each listed order (the oldest, if several), whichever page of
    the case list it is on."""
    ids = {order.id for order in orders}
    unresolved = [
        case
        for state in ("open", "assigned")
        for case in case_service.list_cases(
            page.work.session, status=state, case_type=None, starting_after=None, limit=QUEUE_LENGTH
        )
    ]
    unresolved.sort(key=lambda case: (case.opened_at, -case.amount_at_risk_minor, case.id))
    return {
        order_id: case.id
        for case in reversed(unresolved)
        for order_id in case.evidence.get("order_ids", [])
        if order_id in ids
    }


@router.get("/risk", response_class=HTMLResponse)
def queue(
    request: Request,
    status: Annotated[Literal["", "open", "assigned"], Query()] = "",
    case_type: Annotated[Literal["", "order", "shopper", "merchant", "ring"], Query()] = "",
    mine: Annotated[Literal["", "on"], Query()] = "",
    assignee: Annotated[str, Query(max_length=40)] = "",
    min_amount: Annotated[str, Query(max_length=9)] = "",
    min_days: Annotated[str, Query(max_length=4)] = "",
    q: Annotated[str, Query(max_length=SEARCH_MAX_CHARS)] = "",
    sort: Annotated[SORT_CHOICES, Query()] = "oldest",
    after: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """The held orders waiting longest, then the open cases, filtered by status, type, assignee
    (anyone, nobody, me or a named analyst), amount and age, searched and sorted."""
    minimum = whole_yuan(min_amount, field="min_amount")
    minimum_days = whole_days(min_days, field="min_days")
    with signed_in(request, page="risk") as page:
        session = page.work.session
        held, _ = _held_listing(page, limit=HELD_PREVIEW_LENGTH)
        filters = CaseFilter(
            status=status or None,
            case_type=case_type or None,
            assignee=page.identity.operator_id if mine else (assignee or None),
            min_amount_minor=minimum,
            min_age_days=minimum_days,
            search=search_of(session, q, cipher=page.runtime.cipher),
        )
        listing = open_cases_page(
            session,
            filters=filters,
            sort=sort,
            after=after or None,
            limit=CASE_PAGE_SIZE,
            now=page.work.now,
        )
        query = {
            "status": status,
            "case_type": case_type,
            "mine": mine,
            "assignee": assignee,
            "min_amount": min_amount.strip(),
            "min_days": min_days.strip(),
            "q": q,
            "sort": sort,
        }
        paging = pager("/console/risk", listing, chosen=_without_default_sort(query), after=after)
        return page.render(
            "risk_queue.html",
            held=held.rows,
            held_total=held.total,
            cases=listing.rows,
            case_total=listing.total,
            query=query,
            next_page=paging.next_page,
            first_page=paging.first_page,
            case_of_order=_case_of_order(page, held.rows),
            merchants=_merchant_names(page, {order.merchant_id for order in held.rows}),
            analysts=PeopleRepository(session).operators_in_roles(PAGE_ROLES["risk"]),
            unassigned=UNASSIGNED,
        )


def _without_default_sort(query: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in query.items() if value and value != "oldest"}


@router.get("/risk/held", response_class=HTMLResponse)
def held_orders(
    request: Request,
    status: Annotated[Literal["", "review", "step_up"], Query()] = "",
    min_amount: Annotated[str, Query(max_length=9)] = "",
    min_days: Annotated[str, Query(max_length=4)] = "",
    q: Annotated[str, Query(max_length=SEARCH_MAX_CHARS)] = "",
    sort: Annotated[SORT_CHOICES, Query()] = "oldest",
    after: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """Every order waiting on risk, paged, filtered, searched and sorted like the case list."""
    whole_yuan(min_amount, field="min_amount")
    whole_days(min_days, field="min_days")
    with signed_in(request, page="risk") as page:
        listing, query = _held_listing(
            page,
            status=status,
            min_amount=min_amount,
            min_days=min_days,
            q=q,
            sort=sort,
            after=after,
            limit=CASE_PAGE_SIZE,
        )
        paging = pager(
            "/console/risk/held", listing, chosen=_without_default_sort(query), after=after
        )
        return page.render(
            "risk_held.html",
            held=listing.rows,
            query=query,
            paging=paging,
            case_of_order=_case_of_order(page, listing.rows),
            merchants=_merchant_names(page, {order.merchant_id for order in listing.rows}),
        )


def _case_page(
    page: Page,
    *,
    case_id: str,
    error: str | None = None,
    status_code: int = 200,
    typed: dict[str, str] | None = None,
) -> HTMLResponse:
    session = page.work.session
    case = case_service.get_case(session, case_id=case_id)
    view = case_service.case_view(case, with_evidence=True)
    order_ids = list(case.evidence.get("order_ids", []))
    orders: list[dict[str, Any]] = []
    for order_id in order_ids:
        order = order_service.find_order(session, order_id=order_id)
        try:
            decision: dict[str, Any] | None = risk_decision.decision_view(
                risk_service.get_decision(session, order_id=order_id)
            )
        except NotFound:
            decision = None
        orders.append({"order": order, "decision": decision})
    shopper_ids = list(
        dict.fromkeys(
            [subject for subject in case.subject_ids if subject.startswith("shp_")]
            + [entry["order"].shopper_id for entry in orders]
        )
    )
    merchant_ids = list(
        dict.fromkeys(
            [subject for subject in case.subject_ids if subject.startswith("mer_")]
            + [entry["order"].merchant_id for entry in orders]
            + [
                str(signal["evidence"]["merchant_id"])
                for signal in case.evidence.get("signals", [])
                if (signal.get("evidence") or {}).get("merchant_id")
            ]
        )
    )
    risk_repository = RiskRepository(session)
    review_repository = RiskReviewRepository(session)
    shoppers: list[dict[str, Any]] = [
        {
            "shopper": identity_service.get_shopper(session, shopper_id=shopper_id),
            "orders": sorted(
                order_service.orders_of_shopper(session, shopper_id=shopper_id),
                key=lambda order: (order.decided_at, order.id),
                reverse=True,
            )[:HISTORY_LENGTH],
            "actions": risk_repository.actions_of(shopper_id)[-HISTORY_LENGTH:],
        }
        for shopper_id in shopper_ids
    ]
    names = _merchant_names(page, set(merchant_ids))
    merchants = []
    for merchant_id in merchant_ids:
        try:
            merchant = merchant_service.get_merchant(session, merchant_id=merchant_id)
        except NotFound:
            continue
        merchants.append(
            {
                "merchant": merchant,
                "orders": review_repository.recent_orders_of_merchant(
                    merchant_id, limit=HISTORY_LENGTH
                ),
                "actions": risk_repository.actions_of(merchant_id)[-HISTORY_LENGTH:],
            }
        )
    ring_members = {
        str(member)
        for signal in case.evidence.get("signals", [])
        for member in (signal.get("evidence") or {}).get("members", [])
    }
    graph = build_ring_graph(
        subject_ids=case.subject_ids,
        evidence=case.evidence,
        observations=review_repository.observations_of(sorted(ring_members)),
        labels={
            **names,
            **{entry["shopper"].id: entry["shopper"].name_masked for entry in shoppers},
        },
    )
    return page.render(
        "risk_case.html",
        status_code=status_code,
        case=view,
        signals=[
            {
                "reason": signal.get("reason", ""),
                "observed_at": _instant(signal.get("observed_at")),
                "evidence": signal.get("evidence") or {},
            }
            for signal in case.evidence.get("signals", [])
        ],
        orders=orders,
        shoppers=shoppers,
        merchants=merchants,
        merchant_names=names,
        graph=graph,
        outcomes=case_service.OUTCOMES,
        is_mine=case.assignee == page.identity.operator_id,
        error=error,
        typed=typed or {},
        reason_text=lambda reason: _reason_text(reason, orders, page.language),
        hit_reason=lambda hit: _hit_reason(hit, page.language),
        evidence_table=lambda evidence: _evidence_table(
            evidence, page.language, page.runtime.settings.time_zone
        ),
    )


_ISO_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)")


def _instant(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _hit_reason(hit: dict[str, Any], language: str) -> str:
    """A rule's own words: rules carry an English reason and, optionally, a Chinese one."""
    if language == "zh" and hit.get("reason_zh"):
        return str(hit["reason_zh"])
    msgid = f"decision_reason.{hit.get('id')}"
    if language == "zh" and i18n.has_entry(msgid, language):
        return i18n.translate(msgid, language)
    return str(hit.get("reason", ""))


def _reason_text(reason: dict[str, Any], orders: list[dict[str, Any]], language: str) -> str:
    """A decision reason: the catalog's words for the engine's own codes, the rule's words for
    a rule's id (from the same decision's rule hits)."""
    code = str(reason.get("code", ""))
    msgid = f"decision_reason.{code}"
    if i18n.has_entry(msgid, language):
        return i18n.translate(msgid, language)
    for entry in orders:
        for hit in (entry["decision"] or {}).get("rule_hits", []):
            if hit.get("id") == code:
                return _hit_reason(hit, language)
    return str(reason.get("message", code))


def _evidence_value(value: object, time_zone: str = "Asia/Shanghai", language: str = "zh") -> str:
    """A field of evidence as a person reads it: times in the business time zone, numbers
    rounded, lists and records spelled out."""
    if isinstance(value, str) and _ISO_INSTANT.fullmatch(value):
        moment = _instant(value)
        if moment is not None:
            return i18n.local_time(moment, time_zone, language)
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, list | tuple):
        return ", ".join(_evidence_value(item, time_zone, language) for item in value)
    if isinstance(value, dict):
        return "; ".join(
            f"{key}: {_evidence_value(item, time_zone, language)}" for key, item in value.items()
        )
    return str(value)


def _evidence_table(evidence: dict[str, Any], language: str, time_zone: str) -> Markup:
    """A signal's evidence as a two-column table, each field named in the operator's language."""
    rows = Markup("").join(
        Markup('<tr><th scope="row">{}</th><td>{}</td></tr>').format(
            i18n.translate(f"evidence.{key}", language)
            if i18n.has_entry(f"evidence.{key}", language)
            else key.replace("_", " "),
            _evidence_value(value, time_zone, language),
        )
        for key, value in sorted(evidence.items())
    )
    return Markup('<table class="evidence-fields"><tbody>{}</tbody></table>').format(rows)


@router.get("/risk/cases/{case_id}", response_class=HTMLResponse)
def case_page(request: Request, case_id: str) -> Response:
    with signed_in(request, page="risk") as page:
        try:
            return _case_page(page, case_id=case_id)
        except NotFound:
            return page.render(
                "message.html",
                status_code=404,
                message=i18n.translate("risk_case_not_found", page.language),
            )


def _act(request: Request, case_id: str, csrf_token: str, action: str, **values: str) -> Response:
    error: str | None = None
    with signed_in(request, page="risk") as page:
        check_csrf(page.session_row.csrf_token, csrf_token, language=page.language)
        operator_id = page.identity.operator_id
        assert operator_id is not None
        # Done in a savepoint: a refusal leaves nothing behind and the page says why.
        savepoint = page.work.session.begin_nested()
        try:
            if action == "assign":
                case_service.assign_case(
                    page.work.session,
                    case_id=case_id,
                    operator_id=operator_id,
                    assigned_by=operator_id,
                    now=page.work.now,
                )
            else:
                case_resolution.resolve_case(
                    page.work.session,
                    case_id=case_id,
                    outcome=values["outcome"],
                    note=values["note"],
                    resolved_by=operator_id,
                    settings=page.runtime.settings,
                    now=page.work.now,
                )
        except NotFound:
            savepoint.rollback()
            raise
        except UsefirstError as refused:
            savepoint.rollback()
            error = i18n.refusal(refused.code, refused.message, page.language)
        else:
            savepoint.commit()
        if error is not None:
            return _case_page(page, case_id=case_id, error=error, status_code=409, typed=values)
    done = "assigned" if action == "assign" else "resolved"
    return RedirectResponse(f"/console/risk/cases/{case_id}?{done}=1", status_code=303)


@router.post("/risk/cases/{case_id}/assign", response_class=HTMLResponse)
def assign(
    request: Request, case_id: str, csrf_token: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    return _act(request, case_id, csrf_token, "assign")


@router.post("/risk/cases/{case_id}/resolve", response_class=HTMLResponse)
def resolve(
    request: Request,
    case_id: str,
    outcome: Annotated[str, Form(max_length=32)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    return _act(request, case_id, csrf_token, "resolve", outcome=outcome, note=note)
