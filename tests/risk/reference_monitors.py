"""The risk monitors as they were before issue 21 made them set-based (one order or merchant at a
time: a case look-up, an insert or update and an action each): kept as the oracle the set-based
monitors are compared with, row for row (tests/risk/test_monitors_set_based.py). Not used by the
engine."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from usefirst.kit.business_day import DailyContext
from usefirst.merchants.repository import MerchantRepository
from usefirst.orders.models import Order
from usefirst.orders.repository import OrderRepository
from usefirst.repayment.repository import RepaymentRepository
from usefirst.risk import actions, cases
from usefirst.risk.effects import RiskEffects
from usefirst.risk.models import RiskCase
from usefirst.risk.monitors import (
    BASELINE,
    DEFAULT_RATE_FLOOR,
    DEFAULT_RATE_JUMP,
    MIN_BASELINE_ORDERS,
    MIN_DUE_FOR_DEFAULT_RATE,
    MIN_RECENT_ORDERS,
    MIN_TRANSIT,
    RECENT,
    SHOPPER_IMPLICATING_MONITORS,
    VOLUME_JUMP,
    Hit,
)
from usefirst.risk.repository import RiskRepository


def open_or_update_case(
    session: Session,
    *,
    case_type: str,
    subject_ids: list[str],
    amount_at_risk_minor: int,
    evidence: dict[str, Any],
    reason: str,
    now: datetime,
) -> RiskCase:
    opening = cases.new_case(
        case_type=case_type,
        subject_ids=subject_ids,
        amount_at_risk_minor=amount_at_risk_minor,
        evidence=evidence,
        reason=reason,
        now=now,
    )
    repository = RiskRepository(session)
    case = repository.open_cases_for([opening.subject_key]).get(opening.subject_key)
    if case is None:
        repository.add(opening)
        session.flush()
        return opening
    subjects = opening.subject_ids
    signal = opening.evidence["signals"][0]
    order_ids = opening.evidence["order_ids"]
    merged_subjects = list(dict.fromkeys([*case.subject_ids, *subjects]))
    merged_orders = list(dict.fromkeys([*case.evidence.get("order_ids", []), *order_ids]))
    signals = list(case.evidence.get("signals", []))
    known = [(item["reason"], item["evidence"]) for item in signals]
    if (signal["reason"], signal["evidence"]) not in known and len(signals) < cases.MAX_SIGNALS:
        signals.append(signal)
    case.subject_ids = merged_subjects
    case.evidence = {**case.evidence, "order_ids": merged_orders, "signals": signals}
    flag_modified(case, "subject_ids")
    flag_modified(case, "evidence")
    case.amount_at_risk_minor = max(case.amount_at_risk_minor, amount_at_risk_minor)
    case.updated_at = now
    session.flush()
    return case


def _act(
    session: Session, *, order: Order, hits: list[Hit], now: datetime, effects: RiskEffects
) -> RiskCase | None:
    if not hits:
        return None
    risk_case: RiskCase | None = None
    for hit in hits:
        risk_case = open_or_update_case(
            session,
            case_type="order",
            subject_ids=[order.id, order.shopper_id],
            amount_at_risk_minor=order.amount_minor - order.refunded_minor,
            evidence={"monitor": hit.monitor, "merchant_id": order.merchant_id, **hit.evidence},
            reason=hit.reason,
            now=now,
        )
        actions.log_action(
            session,
            action=f"monitor:{hit.monitor}",
            subject_id=order.shopper_id,
            order_id=order.id,
            case_id=risk_case.id,
            decided_by=f"monitor:{hit.monitor}",
            reason=hit.reason,
            details=hit.evidence,
            now=now,
        )
    assert risk_case is not None
    signals = len(risk_case.evidence.get("signals", []))
    is_strong = any(hit.holds for hit in hits) or signals >= 2
    if is_strong and not RiskRepository(session).case_orders_with_action(
        [(risk_case.id, order.id)], action=actions.HOLD_SETTLEMENT
    ):
        effects.hold_settlement(
            session,
            merchant_id=order.merchant_id,
            order_id=order.id,
            case_id=risk_case.id,
            reason="; ".join(hit.reason for hit in hits),
            decided_by=f"monitor:{hits[0].monitor}",
            now=now,
        )
    implicating = [hit for hit in hits if hit.monitor in SHOPPER_IMPLICATING_MONITORS]
    if implicating:
        effects.freeze_shopper_limit(
            session,
            shopper_id=order.shopper_id,
            case_id=risk_case.id,
            reason="; ".join(hit.reason for hit in implicating),
            decided_by=f"monitor:{implicating[0].monitor}",
            now=now,
        )
    return risk_case


def after_delivery(
    session: Session, *, order: Order, now: datetime, effects: RiskEffects
) -> list[Hit]:
    hits: list[Hit] = []
    if order.shipped_at is not None and order.delivered_at is not None:
        transit = order.delivered_at - order.shipped_at
        if order.delivery_confirmation != "automatic" and transit < MIN_TRANSIT:
            hits.append(Hit(
                "delivered_too_fast",
                "Receipt was confirmed faster than a parcel can travel.",
                {"shipped_at": order.shipped_at.isoformat(),
                 "delivered_at": order.delivered_at.isoformat(),
                 "transit_seconds": int(transit.total_seconds())},
                holds=False,
            ))  # fmt: skip
    merchant = MerchantRepository(session).get(order.merchant_id)
    if (
        merchant is not None
        and merchant.address_hash is not None
        and order.shipping_address_hash == merchant.address_hash
    ):
        hits.append(Hit(
            "delivered_to_merchant",
            "The order was delivered to the merchant's own address.",
            {"merchant_id": merchant.id},
            holds=True,
        ))  # fmt: skip
    _act(session, order=order, hits=hits, now=now, effects=effects)
    return hits


def first_instalment_missed(
    session: Session, context: DailyContext, *, effects: RiskEffects
) -> dict[str, int]:
    missed = RepaymentRepository(session).orders_with_first_instalment_missed()
    rows = OrderRepository(session).many(missed)
    flagged_before = RiskRepository(session).orders_with_action(
        [order.id for order in rows], action="monitor:first_payment_default"
    )
    opened = 0
    for order in rows:
        if order.id in flagged_before:
            continue
        _act(
            session,
            order=order,
            hits=[
                Hit(
                    "first_payment_default",
                    "The first instalment was missed with nothing paid.",
                    {"business_on": context.business_on.isoformat()},
                    holds=False,
                )
            ],
            now=context.now,
            effects=effects,
        )
        opened += 1
    return {"first_payment_defaults": opened}


def merchant_drift(
    session: Session, context: DailyContext, *, effects: RiskEffects
) -> dict[str, int]:
    now = context.now
    recent_from, baseline_from = now - RECENT, now - RECENT - BASELINE
    books = OrderRepository(session).merchant_books(
        since=baseline_from,
        recent_from=recent_from,
        first_instalment_due=RepaymentRepository(session).first_instalments_due_before(
            context.business_on
        ),
    )
    merchant_since = {
        merchant.id: merchant.created_at
        for merchant in MerchantRepository(session).many([book.merchant_id for book in books])
    }
    flagged_recently = RiskRepository(session).subjects_with_action_since(
        recent_from, action="monitor:merchant_drift"
    )
    flagged = 0
    for book in books:
        merchant_id = book.merchant_id
        if merchant_id in flagged_recently or merchant_id not in merchant_since:
            continue
        findings: list[str] = []
        has_volume_baseline = (
            merchant_since[merchant_id] <= baseline_from
            and book.earlier_orders >= MIN_BASELINE_ORDERS
        )
        baseline_monthly = book.earlier_minor * RECENT.days / BASELINE.days
        if (
            has_volume_baseline
            and book.recent_orders >= MIN_RECENT_ORDERS
            and book.recent_minor >= VOLUME_JUMP * baseline_monthly
        ):
            findings.append(
                f"pay-later volume {book.recent_minor} in 30 days vs "
                f"{round(baseline_monthly)} a month before"
            )
        if book.recent_due >= MIN_DUE_FOR_DEFAULT_RATE:
            recent_rate = book.recent_defaulted / book.recent_due
            base_rate = (
                book.earlier_defaulted / book.earlier_due
                if book.earlier_due >= MIN_DUE_FOR_DEFAULT_RATE
                else 0.0
            )
            if recent_rate >= DEFAULT_RATE_FLOOR and recent_rate >= DEFAULT_RATE_JUMP * base_rate:
                findings.append(
                    f"buyers' default rate {recent_rate:.0%} in 30 days vs {base_rate:.0%} before"
                )
        if not findings:
            continue
        reason = "Merchant's book changed abruptly: " + "; ".join(findings)
        risk_case = open_or_update_case(
            session,
            case_type="merchant",
            subject_ids=[merchant_id],
            amount_at_risk_minor=book.recent_minor,
            evidence={"monitor": "merchant_drift", "findings": findings},
            reason=reason,
            now=now,
        )
        actions.log_action(
            session,
            action="monitor:merchant_drift",
            subject_id=merchant_id,
            case_id=risk_case.id,
            decided_by="monitor:merchant_drift",
            reason=reason,
            now=now,
        )
        effects.put_merchant_on_watch(
            session,
            merchant_id=merchant_id,
            reason=reason,
            evidence=[risk_case.id],
            decided_by="monitor:merchant_drift",
            case_id=risk_case.id,
            now=now,
        )
        flagged += 1
    return {"merchants_flagged": flagged}
