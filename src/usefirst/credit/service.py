"""Credit lines: opening, atomic reservation, release, freezing and growth, with reason codes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from usefirst.credit.models import CreditLine, CreditLineChange
from usefirst.credit.policy import (
    Applicant,
    Assessment,
    ColdStartCreditPolicy,
    CreditPolicy,
    Reason,
)
from usefirst.credit.repository import CreditRepository
from usefirst.kit.errors import InvariantViolated, NotFound
from usefirst.kit.ids import new_id
from usefirst.kit.settings import Settings

FROZEN_OVERDUE = Reason(
    "frozen_overdue", "Credit is frozen while a payment is overdue; paying it unfreezes it."
)


def policy_from_settings(settings: Settings) -> CreditPolicy:
    return ColdStartCreditPolicy(
        starting_limit_minor=settings.starting_limit_minor,
        limit_cap_minor=settings.limit_cap_minor,
        growth_bps=settings.limit_growth_bps,
    )


def open_credit_line(
    session: Session,
    *,
    shopper_id: str,
    applicant: Applicant,
    policy: CreditPolicy,
    currency: str,
    now: datetime,
) -> tuple[CreditLine, Assessment]:
    assessment = policy.assess(applicant)
    status = "active" if assessment.is_approved else "closed"
    line = CreditLine(
        shopper_id=shopper_id,
        currency=currency,
        limit_minor=assessment.limit_minor,
        used_minor=0,
        status=status,
        score=assessment.score,
        band=assessment.band,
        reasons=[reason.as_dict() for reason in assessment.reasons],
        on_time_orders=0,
        reviewed_at=now,
    )
    repository = CreditRepository(session)
    repository.add(line)
    first_reason = assessment.reasons[0] if assessment.reasons else Reason("assessed", "Assessed.")
    repository.add_change(
        CreditLineChange(
            shopper_id=shopper_id,
            id=new_id("credit_change"),
            previous_limit_minor=0,
            new_limit_minor=assessment.limit_minor,
            previous_status=None,
            new_status=status,
            reason_code=first_reason.code,
            message=first_reason.message,
            created_at=now,
        )
    )
    return line, assessment


def get_credit_line(session: Session, *, shopper_id: str) -> CreditLine:
    line = CreditRepository(session).get(shopper_id)
    if line is None:
        raise NotFound("No credit line for this shopper.")
    return line


def try_reserve(session: Session, *, shopper_id: str, amount_minor: int) -> bool:
    if amount_minor <= 0:
        raise InvariantViolated("a reservation must be positive")
    return CreditRepository(session).try_reserve(shopper_id, amount_minor)


def release(session: Session, *, shopper_id: str, amount_minor: int) -> None:
    if amount_minor < 0:
        raise InvariantViolated("a release must not be negative")
    if amount_minor:
        CreditRepository(session).release(shopper_id, amount_minor)


def _change_status(
    session: Session,
    *,
    shopper_id: str,
    to_status: str,
    from_status: str,
    reasons: list[Reason],
    now: datetime,
) -> bool:
    repository = CreditRepository(session)
    line = repository.get(shopper_id, for_update=True)
    if line is None or line.status != from_status:
        return False
    repository.update_line(
        shopper_id,
        status=to_status,
        reasons=[reason.as_dict() for reason in reasons],
    )
    repository.add_change(
        CreditLineChange(
            shopper_id=shopper_id,
            id=new_id("credit_change"),
            previous_limit_minor=line.limit_minor,
            new_limit_minor=line.limit_minor,
            previous_status=from_status,
            new_status=to_status,
            reason_code=reasons[0].code,
            message=reasons[0].message,
            created_at=now,
        )
    )
    session.expire(line)
    return True


def freeze_for_overdue(session: Session, *, shopper_id: str, now: datetime) -> bool:
    return _change_status(
        session,
        shopper_id=shopper_id,
        to_status="frozen",
        from_status="active",
        reasons=[FROZEN_OVERDUE],
        now=now,
    )


def unfreeze_after_overdue_cleared(session: Session, *, shopper_id: str, now: datetime) -> bool:
    return _change_status(
        session,
        shopper_id=shopper_id,
        to_status="active",
        from_status="frozen",
        reasons=[
            Reason("overdue_cleared", "Overdue amounts were paid; credit is available again.")
        ],
        now=now,
    )


def record_on_time_repayment(
    session: Session, *, shopper_id: str, order_id: str, policy: CreditPolicy, now: datetime
) -> None:
    repository = CreditRepository(session)
    line = repository.get(shopper_id, for_update=True)
    if line is None:
        raise InvariantViolated(f"shopper {shopper_id} has no credit line")
    on_time_orders = line.on_time_orders + 1
    change = policy.after_on_time_repayment(
        limit_minor=line.limit_minor, on_time_orders=on_time_orders
    )
    repository.update_line(
        shopper_id,
        on_time_orders=on_time_orders,
        limit_minor=change.new_limit_minor,
        reasons=[change.reason.as_dict()],
        reviewed_at=now,
    )
    if change.new_limit_minor != line.limit_minor:
        repository.add_change(
            CreditLineChange(
                shopper_id=shopper_id,
                id=new_id("credit_change"),
                previous_limit_minor=line.limit_minor,
                new_limit_minor=change.new_limit_minor,
                previous_status=line.status,
                new_status=line.status,
                reason_code=change.reason.code,
                message=change.reason.message,
                order_id=order_id,
                created_at=now,
            )
        )
    session.expire(line)


def credit_view(line: CreditLine) -> dict[str, object]:
    return {
        "limit_minor": line.limit_minor,
        "used_minor": line.used_minor,
        "available_minor": max(line.limit_minor - line.used_minor, 0)
        if line.status == "active"
        else 0,
        "currency": line.currency,
        "status": line.status,
        "score": line.score,
        "band": line.band,
        "reasons": list(line.reasons or []),
        "reviewed_at": line.reviewed_at,
    }


def lock_credit_line(session: Session, *, shopper_id: str) -> CreditLine:
    """Lock the shopper's line: every money movement for a shopper takes this lock first, so
    concurrent payments, refunds and activations for one shopper run one after another."""
    line = CreditRepository(session).get(shopper_id, for_update=True)
    if line is None:
        raise NotFound("No credit line for this shopper.")
    return line


def lock_credit_lines(session: Session, *, shopper_ids: list[str]) -> None:
    CreditRepository(session).lock_many(sorted(shopper_ids))


def close_after_charge_off(session: Session, *, shopper_id: str, now: datetime) -> None:
    repository = CreditRepository(session)
    line = repository.get(shopper_id, for_update=True)
    if line is None or line.status == "closed":
        return
    reason = Reason("charged_off", "An unpaid order was charged off; the credit line is closed.")
    repository.update_line(shopper_id, status="closed", reasons=[reason.as_dict()])
    repository.add_change(
        CreditLineChange(
            shopper_id=shopper_id,
            id=new_id("credit_change"),
            previous_limit_minor=line.limit_minor,
            new_limit_minor=line.limit_minor,
            previous_status=line.status,
            new_status="closed",
            reason_code=reason.code,
            message=reason.message,
            created_at=now,
        )
    )
    session.expire(line)
