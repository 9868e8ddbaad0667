"""Risk actions that change other domains, carried out: the module itself is the implementation of
risk's port (``usefirst.risk.effects.RiskEffects``) that flows and entry points pass to risk's
checkout decision, monitors and link graph.

Each function does the other domain's part first (a merchant's settlement or standing, a
shopper's credit, an event to the merchant), then records the action in risk's log.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from usefirst.credit import service as credit_service
from usefirst.kit.settings import Settings
from usefirst.merchants import service as merchant_service
from usefirst.merchants import settlement, standing
from usefirst.notify.service import publish_event
from usefirst.orders.models import Order
from usefirst.risk import actions as risk_actions
from usefirst.risk import service as risk_service


def hold_settlement(
    session: Session,
    *,
    merchant_id: str,
    order_id: str,
    case_id: str,
    reason: str,
    decided_by: str,
    now: datetime,
) -> None:
    """Keep the merchant from being paid for the order while the case is open."""
    settlement.hold_order_settlement(
        session,
        merchant_id=merchant_id,
        order_id=order_id,
        source=risk_actions.settlement_hold_source(case_id),
        reason=reason,
        now=now,
    )
    risk_actions.log_action(
        session,
        action=risk_actions.HOLD_SETTLEMENT,
        subject_id=merchant_id,
        order_id=order_id,
        case_id=case_id,
        decided_by=decided_by,
        reason=reason,
        now=now,
    )


def put_merchant_on_watch(
    session: Session,
    *,
    merchant_id: str,
    reason: str,
    evidence: list[str],
    decided_by: str,
    case_id: str | None,
    now: datetime,
) -> bool:
    """Watch an active merchant (a merchant already watched, suspended or banned is left as it
    is). True when the standing changed."""
    if merchant_service.get_merchant(session, merchant_id=merchant_id).status != "active":
        return False
    standing.change_standing(
        session,
        merchant_id=merchant_id,
        status="on_watch",
        reason=reason,
        evidence=evidence,
        decided_by=decided_by,
        now=now,
    )
    risk_actions.log_action(
        session,
        action="watch_merchant",
        subject_id=merchant_id,
        case_id=case_id,
        decided_by=decided_by,
        reason=reason,
        details={"evidence": evidence},
        now=now,
    )
    return True


def freeze_shopper_limit(
    session: Session, *, shopper_id: str, case_id: str, reason: str, decided_by: str, now: datetime
) -> bool:
    """No new pay-later orders for the shopper while the case is open. Logged once per case
    (another open case may already hold the shopper: each case's hold counts until it is
    cleared). True when this case placed its hold now."""
    if risk_actions.has_frozen_limit(session, shopper_id=shopper_id, case_id=case_id):
        return False
    if credit_service.get_credit_line(session, shopper_id=shopper_id).status == "closed":
        return False
    credit_service.freeze_for_review(session, shopper_id=shopper_id, now=now)
    risk_actions.log_action(
        session,
        action=risk_actions.FREEZE_LIMIT,
        subject_id=shopper_id,
        case_id=case_id,
        decided_by=decided_by,
        reason=reason,
        now=now,
    )
    return True


def warn_merchant(
    session: Session,
    *,
    order: Order,
    case_id: str,
    warnings: list[str],
    settings: Settings,
    now: datetime,
) -> str:
    """Tell the merchant, before it ships, that an order is held and why, in its own terms."""
    event_id = publish_event(
        session,
        event_type=risk_service.MERCHANT_WARNING_EVENT,
        data=risk_service.merchant_warning(order, case_id=case_id, warnings=warnings),
        now=now,
        settings=settings,
        merchant_id=order.merchant_id,
    )
    risk_actions.log_action(
        session,
        action="merchant_warning",
        subject_id=order.merchant_id,
        order_id=order.id,
        case_id=case_id,
        decided_by="risk:merchant_warning",
        reason="; ".join(warnings),
        details={"event_id": event_id},
        now=now,
    )
    return event_id
