"""Credit lines: opening, atomic reservation, release, freezing and growth, with reason codes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Select, Update
from sqlalchemy.orm import Session

from usefirst.credit.models import CreditLine, CreditLineChange
from usefirst.credit.policy import (
    DEFAULT_SCORE_BANDS,
    Applicant,
    Assessment,
    ColdStartCreditPolicy,
    CreditPolicy,
    Reason,
    ScorecardCreditPolicy,
    parse_score_bands,
)
from usefirst.credit.repository import CreditRepository
from usefirst.credit.scorecard import load_default_scorecard, load_scorecard
from usefirst.kit.db import Lookup
from usefirst.kit.errors import InvariantViolated, NotFound
from usefirst.kit.ids import new_id
from usefirst.kit.settings import Settings

FROZEN_OVERDUE = Reason(
    "frozen_overdue", "Credit is frozen while a payment is overdue; paying it unfreezes it."
)
FROZEN_FOR_REVIEW = Reason(
    "frozen_for_review",
    "Credit is on hold while a risk review of the shopper's orders is open.",
)


def policy_from_settings(settings: Settings) -> CreditPolicy:
    cold_start = ColdStartCreditPolicy(
        starting_limit_minor=settings.starting_limit_minor,
        limit_cap_minor=settings.limit_cap_minor,
        growth_bps=settings.limit_growth_bps,
    )
    if settings.credit_policy == "cold_start":
        return cold_start
    return _scorecard_policy(
        cold_start, settings.credit_scorecard_file, settings.credit_score_bands
    )


@lru_cache(maxsize=8)
def _scorecard_policy(
    cold_start: ColdStartCreditPolicy, scorecard_file: Path | None, score_bands: str | None
) -> ScorecardCreditPolicy:
    scorecard = (
        load_default_scorecard() if scorecard_file is None else load_scorecard(scorecard_file)
    )
    bands = parse_score_bands(score_bands) if score_bands else DEFAULT_SCORE_BANDS
    return ScorecardCreditPolicy(scorecard=scorecard, fallback=cold_start, bands=bands)


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
        scorecard_version=assessment.scorecard_version,
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
            score=assessment.score,
            band=assessment.band,
            scorecard_version=assessment.scorecard_version,
            scorecard_inputs=assessment.scorecard_inputs,
            created_at=now,
        )
    )
    return line, assessment


@dataclass(frozen=True)
class LineStanding:
    """What a checkout reads of the shopper's credit line."""

    shopper_id: str
    currency: str
    limit_minor: int
    used_minor: int
    status: str
    score: int | None
    reasons: Any


def line_standing(shopper_id: str) -> Lookup[LineStanding]:
    """The credit line as a checkout reads it, with other look-ups (404 when there is none)."""
    return Lookup(CreditRepository.line_statement(shopper_id), _standing)


def locked_line_standing(shopper_id: str) -> Lookup[LineStanding]:
    """``line_standing`` locked: the first lock of every money movement of the shopper
    (``lock_credit_line``), taken with other look-ups."""
    return Lookup(CreditRepository.line_statement(shopper_id).with_for_update(), _standing)


def _standing(row: dict[str, Any] | None) -> LineStanding:
    if row is None:
        raise NotFound("No credit line for this shopper.")
    return LineStanding(**row)


def is_unfrozen_by_paying(line: LineStanding) -> bool:
    """Whether paying what is overdue may unfreeze the line (``unfreeze_after_overdue_cleared``
    changes nothing otherwise)."""
    return line.status == "frozen" and not _frozen_for_review(line)


def reservation(*, shopper_id: str, amount_minor: int) -> Update:
    """The conditional update that reserves ``amount_minor`` (``try_reserve``), to be sent as
    one part of a larger statement; it returns a row when it reserved."""
    if amount_minor <= 0:
        raise InvariantViolated("a reservation must be positive")
    return CreditRepository.reservation(shopper_id, amount_minor)


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


def release_writes(*, shopper_id: str, amount_minor: int) -> list[Update]:
    """``release`` as a part of a larger statement (none for nothing to release)."""
    if amount_minor < 0:
        raise InvariantViolated("a release must not be negative")
    return [CreditRepository.release_statement(shopper_id, amount_minor)] if amount_minor else []


def take_back_after_reversal(session: Session, *, shopper_id: str, amount_minor: int) -> int:
    """A reversed payment owes its principal again: the credit it freed is used again, as far as
    the limit allows (the shopper may have spent it since; the line never goes over its limit).
    Returns how much was taken back."""
    if amount_minor < 0:
        raise InvariantViolated("a take-back must not be negative")
    line = CreditRepository(session).get(shopper_id, for_update=True)
    if line is None or amount_minor == 0:
        return 0
    taken = min(amount_minor, line.limit_minor - line.used_minor)
    if taken > 0:
        line.used_minor += taken
    return max(taken, 0)


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


def _frozen_for_review(line: CreditLine | LineStanding) -> bool:
    return any(reason.get("code") == FROZEN_FOR_REVIEW.code for reason in line.reasons or [])


def frozen_reason(line: CreditLine | LineStanding) -> Reason:
    """Why a frozen line takes no new orders, in the checkout's words."""
    return FROZEN_FOR_REVIEW if _frozen_for_review(line) else FROZEN_OVERDUE


def unfreeze_after_overdue_cleared(session: Session, *, shopper_id: str, now: datetime) -> bool:
    line = CreditRepository(session).get(shopper_id, for_update=True)
    if line is None or _frozen_for_review(line):
        return False  # a risk review's hold outlasts the overdue; the review lifts it
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
        "scorecard_version": line.scorecard_version,
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


def lock_credit_lines_selected(session: Session, *, shopper_ids: Select[Any]) -> None:
    """Lock the lines of the shoppers a query selects, in shopper id order (set-based jobs)."""
    CreditRepository(session).lock_selected(shopper_ids)


def freeze_many_for_overdue(session: Session, *, shopper_ids: list[str], now: datetime) -> int:
    """``freeze_for_overdue`` for many shoppers in two statements; the caller holds their locks.
    Returns how many lines froze."""
    repository = CreditRepository(session)
    frozen = sorted(
        repository.change_status_many(
            sorted(set(shopper_ids)),
            from_status="active",
            to_status="frozen",
            reasons=[FROZEN_OVERDUE.as_dict()],
        )
    )
    repository.add_changes(
        [
            {
                "shopper_id": shopper_id,
                "id": new_id("credit_change"),
                "previous_limit_minor": limit_minor,
                "new_limit_minor": limit_minor,
                "previous_status": "active",
                "new_status": "frozen",
                "reason_code": FROZEN_OVERDUE.code,
                "message": FROZEN_OVERDUE.message,
                "order_id": None,
                "created_at": now,
            }
            for shopper_id, limit_minor in frozen
        ]
    )
    return len(frozen)


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


def freeze_for_review(session: Session, *, shopper_id: str, now: datetime) -> bool:
    """Hold the shopper's credit while a risk case about them is open: no new pay-later orders,
    and paying an overdue does not lift it. True when the hold started now."""
    line = CreditRepository(session).get(shopper_id, for_update=True)
    if line is None or line.status == "closed" or _frozen_for_review(line):
        return False
    return _change_status(
        session,
        shopper_id=shopper_id,
        to_status="frozen",
        from_status=line.status,
        reasons=[FROZEN_FOR_REVIEW],
        now=now,
    )


def lift_review_freeze(
    session: Session, *, shopper_id: str, still_overdue: bool, now: datetime
) -> bool:
    """End a risk review's hold: credit is available again, or stays frozen for the overdue
    payment if one is still open. True when the hold ended now."""
    line = CreditRepository(session).get(shopper_id, for_update=True)
    if line is None or line.status != "frozen" or not _frozen_for_review(line):
        return False
    if still_overdue:
        return _change_status(
            session,
            shopper_id=shopper_id,
            to_status="frozen",
            from_status="frozen",
            reasons=[FROZEN_OVERDUE],
            now=now,
        )
    return _change_status(
        session,
        shopper_id=shopper_id,
        to_status="active",
        from_status="frozen",
        reasons=[Reason("review_cleared", "The risk review was cleared; credit is available.")],
        now=now,
    )


def close_for_fraud(session: Session, *, shopper_id: str, now: datetime) -> bool:
    """Close the line of a shopper an analyst confirmed as a fraudster (closed, not frozen: an
    overdue being paid must not reopen it). True when the line closed now."""
    line = CreditRepository(session).get(shopper_id, for_update=True)
    if line is None or line.status == "closed":
        return False
    return _change_status(
        session,
        shopper_id=shopper_id,
        to_status="closed",
        from_status=line.status,
        reasons=[Reason("closed_fraud", "Closed after a confirmed fraud investigation.")],
        now=now,
    )


def close_for_erasure(session: Session, *, shopper_id: str, now: datetime) -> bool:
    """Close the line of a shopper whose personal data is erased: no one can be lent to who can
    no longer be identified. True when the line closed now."""
    line = CreditRepository(session).get(shopper_id, for_update=True)
    if line is None or line.status == "closed":
        return False
    return _change_status(
        session,
        shopper_id=shopper_id,
        to_status="closed",
        from_status=line.status,
        reasons=[Reason("closed_erasure", "Closed when the shopper's personal data was erased.")],
        now=now,
    )
