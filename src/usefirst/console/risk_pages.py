"""Risk review in the console: the queue of held orders and open cases (oldest and largest
first), and a case page with its evidence, the decision records of its orders, the shopper's and
merchant's history, the ring as a picture, and assigning the case (risk) and resolving it (the case
resolution flow: a cleared held order proceeds, a confirmed one is declined or cancelled)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from usefirst.console import i18n
from usefirst.console.risk_graph import build_ring_graph
from usefirst.console.risk_repository import RiskReviewRepository
from usefirst.console.web import Page, check_csrf, signed_in
from usefirst.flows import case_resolution
from usefirst.identity import service as identity_service
from usefirst.kit.errors import NotFound, UsefirstError
from usefirst.merchants import service as merchant_service
from usefirst.orders import service as order_service
from usefirst.risk import cases as case_service
from usefirst.risk import decision as risk_decision
from usefirst.risk import service as risk_service
from usefirst.risk.repository import RiskRepository

router = APIRouter(prefix="/console", include_in_schema=False)

QUEUE_LENGTH = 200
HISTORY_LENGTH = 20

i18n.register(
    {
        "risk_review": {"zh": "风险审核", "en": "Risk review"},
        "risk_held_orders": {"zh": "待审核订单", "en": "Held orders"},
        "risk_open_cases": {"zh": "未结案件", "en": "Open cases"},
        "risk_case": {"zh": "案件", "en": "Case"},
        "risk_case_type": {"zh": "类型", "en": "Type"},
        "risk_amount_at_risk": {"zh": "风险金额", "en": "Amount at risk"},
        "risk_amount": {"zh": "金额", "en": "Amount"},
        "risk_case_not_found": {"zh": "没有这个案件。", "en": "There is no such case."},
        "risk_opened": {"zh": "开立时间", "en": "Opened"},
        "risk_held_since": {"zh": "挂起时间", "en": "Held since"},
        "risk_assignee": {"zh": "处理人", "en": "Assignee"},
        "risk_merchant": {"zh": "商户", "en": "Merchant"},
        "risk_reason": {"zh": "原因", "en": "Reason"},
        "risk_nothing_held": {"zh": "没有待审核的订单或案件。", "en": "Nothing is waiting."},
        "risk_evidence": {"zh": "证据", "en": "Evidence"},
        "risk_decision_record": {"zh": "决策记录", "en": "Decision record"},
        "risk_score": {"zh": "风险分", "en": "Risk score"},
        "risk_model_version": {"zh": "模型版本", "en": "Model version"},
        "risk_model_score": {"zh": "模型分", "en": "Model score"},
        "risk_rule_set": {"zh": "规则版本", "en": "Rule set"},
        "risk_reasons": {"zh": "理由", "en": "Reasons"},
        "risk_rule_hits": {"zh": "命中规则", "en": "Rule hits"},
        "risk_features": {"zh": "特征", "en": "Features"},
        "risk_no_decision": {"zh": "无决策记录。", "en": "No decision record."},
        "risk_shopper_history": {"zh": "买家历史", "en": "Shopper's history"},
        "risk_merchant_history": {"zh": "商户历史", "en": "Merchant's history"},
        "risk_actions": {"zh": "风控操作", "en": "Risk actions"},
        "risk_ring": {"zh": "关联图", "en": "Ring"},
        "risk_ring_caption": {
            "zh": "本案证据中的买家、设备、IP、电话、地址与商户之间的关联。",
            "en": "Shoppers, devices, IPs, phones, addresses and the merchant linked in this "
            "case's evidence.",
        },
        "risk_ring_truncated": {
            "zh": "节点过多，仅显示部分。",
            "en": "Too many nodes: some are left out.",
        },
        "risk_assign_to_me": {"zh": "分配给我", "en": "Assign to me"},
        "risk_resolve": {"zh": "结案", "en": "Resolve"},
        "risk_outcome_legitimate": {"zh": "正常（放行）", "en": "Legitimate (clear)"},
        "risk_outcome_confirmed_fraud": {"zh": "确认欺诈", "en": "Confirmed fraud"},
        "risk_resolution": {"zh": "结论", "en": "Resolution"},
        "risk_resolved_note": {"zh": "已结案。", "en": "The case is resolved."},
        "risk_assigned_note": {"zh": "已分配给你。", "en": "The case is assigned to you."},
        "risk_kind_merchant": {"zh": "商户", "en": "merchant"},
        "risk_kind_shopper": {"zh": "买家", "en": "shopper"},
        "risk_kind_device": {"zh": "设备", "en": "device"},
        "risk_kind_ip": {"zh": "IP", "en": "IP"},
        "risk_kind_phone": {"zh": "电话", "en": "phone"},
        "risk_kind_address": {"zh": "地址", "en": "address"},
    }
)


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


@router.get("/risk", response_class=HTMLResponse)
def queue(request: Request) -> Response:
    with signed_in(request, page="risk") as page:
        session = page.work.session
        held = RiskReviewRepository(session).held_orders(limit=QUEUE_LENGTH)
        cases = [
            case
            for status in ("open", "assigned")
            for case in case_service.list_cases(
                session, status=status, case_type=None, starting_after=None, limit=QUEUE_LENGTH
            )
        ]
        cases.sort(key=lambda case: (case.opened_at, -case.amount_at_risk_minor, case.id))
        case_of_order = {
            order_id: case.id
            for case in reversed(cases)
            for order_id in case.evidence.get("order_ids", [])
        }
        return page.render(
            "risk_queue.html",
            held=held,
            cases=cases,
            case_of_order=case_of_order,
            merchants=_merchant_names(page, {order.merchant_id for order in held}),
        )


def _case_page(
    page: Page, *, case_id: str, error: str | None = None, status_code: int = 200
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
                "observed_at": signal.get("observed_at", ""),
                "reason": signal.get("reason", ""),
                "evidence": json.dumps(
                    signal.get("evidence") or {}, ensure_ascii=False, sort_keys=True
                ),
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
    )


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
            error = refused.message
        else:
            savepoint.commit()
        if error is not None:
            return _case_page(page, case_id=case_id, error=error, status_code=409)
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
