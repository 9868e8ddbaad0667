"""Risk actions, each logged with who or what decided it: decline, review, step-up, holding a
merchant's settlement for an order, putting a merchant on watch, closing a shopper's credit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from usefirst.risk.models import RiskAction
from usefirst.risk.repository import RiskRepository


def log_action(
    session: Session,
    *,
    action: str,
    subject_id: str,
    decided_by: str,
    reason: str,
    now: datetime,
    order_id: str | None = None,
    case_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    RiskRepository(session).add(
        RiskAction(
            action=action,
            subject_id=subject_id,
            order_id=order_id,
            case_id=case_id,
            decided_by=decided_by,
            reason=reason[:500],
            details=details or {},
            created_at=now,
        )
    )


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
    from usefirst.merchants import settlement

    settlement.hold_order_settlement(
        session,
        merchant_id=merchant_id,
        order_id=order_id,
        source=f"risk:{case_id}",
        reason=reason,
        now=now,
    )
    log_action(
        session,
        action="hold_settlement",
        subject_id=merchant_id,
        order_id=order_id,
        case_id=case_id,
        decided_by=decided_by,
        reason=reason,
        now=now,
    )


def release_settlement(
    session: Session,
    *,
    merchant_id: str,
    order_id: str,
    case_id: str,
    decided_by: str,
    now: datetime,
) -> None:
    from usefirst.merchants import settlement

    settlement.release_order_settlement_hold(
        session, merchant_id=merchant_id, order_id=order_id, source=f"risk:{case_id}", now=now
    )
    log_action(
        session,
        action="release_settlement",
        subject_id=merchant_id,
        order_id=order_id,
        case_id=case_id,
        decided_by=decided_by,
        reason="the case was cleared",
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
    from usefirst.merchants import service as merchant_service
    from usefirst.merchants import standing

    merchant = merchant_service.get_merchant(session, merchant_id=merchant_id)
    if merchant.status != "active":
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
    log_action(
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
