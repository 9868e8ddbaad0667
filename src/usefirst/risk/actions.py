"""The log of risk actions, each with who or what decided it: decline, review, step-up, holding a
merchant's settlement for an order, clawing back a paid order, putting a merchant on watch and
lifting that watch, freezing a shopper's credit while a case is open, closing it.

Actions that change another domain (a settlement hold, a merchant's standing, a credit line) are
carried out by the flows (``usefirst.flows.risk_effects``, ``usefirst.flows.case_resolution``),
which record them here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from usefirst.risk.models import RiskAction
from usefirst.risk.repository import RiskRepository

FREEZE_LIMIT = "freeze_limit"
HOLD_SETTLEMENT = "hold_settlement"


def action_row(
    *,
    action: str,
    subject_id: str,
    decided_by: str,
    reason: str,
    now: datetime,
    order_id: str | None = None,
    case_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The row :func:`log_action` logs, for many actions logged in one insert
    (``RiskRepository.insert_actions``)."""
    return {
        "action": action,
        "subject_id": subject_id,
        "order_id": order_id,
        "case_id": case_id,
        "decided_by": decided_by,
        "reason": reason[:500],
        "details": details or {},
        "created_at": now,
    }


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
            **action_row(
                action=action,
                subject_id=subject_id,
                decided_by=decided_by,
                reason=reason,
                now=now,
                order_id=order_id,
                case_id=case_id,
                details=details,
            )
        )
    )


def settlement_hold_source(case_id: str) -> str:
    """Whose hold a case's settlement hold is, as the merchants' settlement records it."""
    return f"risk:{case_id}"


def settlement_holds_of_case(session: Session, *, case_id: str) -> set[tuple[str, str]]:
    """The (merchant id, order id) of the settlement holds the case placed."""
    return {
        (action.subject_id, action.order_id)
        for action in RiskRepository(session).actions_of_case(case_id)
        if action.action == HOLD_SETTLEMENT and action.order_id is not None
    }


def has_frozen_limit(session: Session, *, shopper_id: str, case_id: str) -> bool:
    """Whether the case already holds the shopper's credit."""
    return shopper_id in RiskRepository(session).subjects_of_actions(case_id, action=FREEZE_LIMIT)


def freezes_to_lift(session: Session, *, case_id: str) -> list[str]:
    """The shoppers whose credit the case holds and no other open case holds too."""
    repository = RiskRepository(session)
    return [
        shopper_id
        for shopper_id in repository.subjects_of_actions(case_id, action=FREEZE_LIMIT)
        if not repository.open_cases_with_action(
            shopper_id, action=FREEZE_LIMIT, other_than=case_id
        )
    ]
