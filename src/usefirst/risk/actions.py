"""Risk actions, each logged with who or what decided it: decline, review, step-up, holding a
merchant's settlement for an order, clawing back a paid order, putting a merchant on watch and
lifting that watch, freezing a shopper's credit while a case is open, closing it."""

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
    reason: str = "the case was cleared",
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


def claw_back_paid_order(
    session: Session,
    *,
    merchant_id: str,
    order_id: str,
    currency: str,
    case_id: str,
    decided_by: str,
    now: datetime,
) -> int:
    """Take back what a colluding merchant kept of an order it was already paid for; the amount
    clawed back (0 when the order was not paid out or was clawed back before)."""
    from usefirst.flows import merchant_clawbacks

    reason = f"confirmed fraud in case {case_id}"
    clawed = merchant_clawbacks.claw_back_paid_order(
        session,
        merchant_id=merchant_id,
        order_id=order_id,
        currency=currency,
        reason=reason,
        now=now,
    )
    if clawed is None:
        return 0
    entry_id, amount_minor = clawed
    log_action(
        session,
        action="claw_back_settlement",
        subject_id=merchant_id,
        order_id=order_id,
        case_id=case_id,
        decided_by=decided_by,
        reason=reason,
        details={"amount_minor": amount_minor, "currency": currency, "entry_id": entry_id},
        now=now,
    )
    return amount_minor


def lift_merchant_watch(
    session: Session,
    *,
    merchant_id: str,
    case_ids: list[str],
    reason: str,
    decided_by: str,
    now: datetime,
) -> bool:
    """Return a merchant to active standing when the watch it is under was placed for one of
    ``case_ids`` (cleared cases, the one being resolved first). True when the standing changed."""
    from usefirst.merchants import standing

    change = standing.lift_watch(
        session,
        merchant_id=merchant_id,
        placed_for=case_ids,
        reason=reason,
        decided_by=decided_by,
        now=now,
    )
    if change is None:
        return False
    log_action(
        session,
        action="unwatch_merchant",
        subject_id=merchant_id,
        case_id=case_ids[0],
        decided_by=decided_by,
        reason=reason,
        details={"evidence": list(change.evidence)},
        now=now,
    )
    return True


FREEZE_LIMIT = "freeze_limit"


def freeze_shopper_limit(
    session: Session, *, shopper_id: str, case_id: str, reason: str, decided_by: str, now: datetime
) -> bool:
    """No new pay-later orders for the shopper while the case is open. Logged once per case
    (another open case may already hold the shopper: each case's hold counts until it is
    cleared). True when this case placed its hold now."""
    from usefirst.credit import service as credit_service

    repository = RiskRepository(session)
    if shopper_id in repository.subjects_of_actions(case_id, action=FREEZE_LIMIT):
        return False
    if credit_service.get_credit_line(session, shopper_id=shopper_id).status == "closed":
        return False
    credit_service.freeze_for_review(session, shopper_id=shopper_id, now=now)
    log_action(
        session,
        action=FREEZE_LIMIT,
        subject_id=shopper_id,
        case_id=case_id,
        decided_by=decided_by,
        reason=reason,
        now=now,
    )
    return True


def lift_shopper_freezes(
    session: Session, *, case_id: str, decided_by: str, now: datetime
) -> list[str]:
    """Lift the credit holds this case placed, except where another open case holds the shopper
    too. The shoppers whose hold ended."""
    from usefirst.credit import service as credit_service
    from usefirst.repayment import service as repayment_service

    repository = RiskRepository(session)
    lifted = []
    for shopper_id in repository.subjects_of_actions(case_id, action=FREEZE_LIMIT):
        if repository.open_cases_with_action(shopper_id, action=FREEZE_LIMIT, other_than=case_id):
            continue
        if credit_service.lift_review_freeze(
            session,
            shopper_id=shopper_id,
            still_overdue=repayment_service.has_overdue(session, shopper_id=shopper_id),
            now=now,
        ):
            log_action(
                session,
                action="unfreeze_limit",
                subject_id=shopper_id,
                case_id=case_id,
                decided_by=decided_by,
                reason=f"case {case_id} was cleared as legitimate",
                now=now,
            )
            lifted.append(shopper_id)
    return lifted
