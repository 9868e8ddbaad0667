"""Credit lines: opening, atomic reservation, release, freezing and growth, with reason codes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Select, Update, UpdateBase
from sqlalchemy.orm import Session

from usefirst.credit.models import CreditLine
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
from usefirst.kit.db import AnySelect, Lookup, Part
from usefirst.kit.errors import InvariantViolated, NotFound
from usefirst.kit.ids import new_id
from usefirst.kit.outbox import queued_message
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
    _record_changes(
        session,
        [
            _change(
                shopper_id=shopper_id,
                previous_limit_minor=0,
                new_limit_minor=assessment.limit_minor,
                previous_status=None,
                new_status=status,
                reason=first_reason,
                now=now,
                score=assessment.score,
                band=assessment.band,
                scorecard_version=assessment.scorecard_version,
                scorecard_inputs=assessment.scorecard_inputs,
            )
        ],
        now=now,
    )
    return line, assessment


# --- Every change of a line, recorded and announced in one place ---------------------------

# The worker turns each announced change into a ``credit.limit_changed`` event and a notice to
# the shopper (flows/shopper_notices.py).
CREDIT_CHANGE_TOPIC = "credit_line_changed"


def change_kind(
    *, previous_limit_minor: int, new_limit_minor: int, previous_status: str | None, new_status: str
) -> str | None:
    """What a change did to the shopper's credit, as they would say it: ``raised``, ``lowered``,
    ``frozen``, ``unfrozen`` or ``closed``; None when it changed neither the limit nor whether
    it can be used (a line opened, a hold whose reason changed)."""
    if previous_status is None:
        return None
    if new_status != previous_status:
        if new_status == "closed":
            return "closed"
        return "frozen" if new_status == "frozen" else "unfrozen"
    if new_limit_minor > previous_limit_minor:
        return "raised"
    if new_limit_minor < previous_limit_minor:
        return "lowered"
    return None


# A line closed because its shopper's personal data is erased is not announced: there is no one
# left to tell.
_UNANNOUNCED_REASONS = ("closed_erasure",)


def _change(
    *,
    shopper_id: str,
    previous_limit_minor: int,
    new_limit_minor: int,
    previous_status: str | None,
    new_status: str,
    reason: Reason,
    now: datetime,
    order_id: str | None = None,
    score: int | None = None,
    band: str | None = None,
    scorecard_version: str | None = None,
    scorecard_inputs: Any = None,
) -> dict[str, Any]:
    return {
        "shopper_id": shopper_id,
        "id": new_id("credit_change"),
        "previous_limit_minor": previous_limit_minor,
        "new_limit_minor": new_limit_minor,
        "previous_status": previous_status,
        "new_status": new_status,
        "reason_code": reason.code,
        "message": reason.message,
        "order_id": order_id,
        "score": score,
        "band": band,
        "scorecard_version": scorecard_version,
        "scorecard_inputs": scorecard_inputs,
        "created_at": now,
    }


def _record_changes(session: Session, changes: list[dict[str, Any]], *, now: datetime) -> None:
    """Record changes of credit lines (``credit_line_changes``) and announce, in the same
    statement, each that raised, lowered, froze, unfroze or closed a line. Every change of a
    limit or a line's status comes through here, so nothing else announces one and a change
    that moves nothing (a checkout's reservation, a payment that does not grow the limit) is
    never announced."""
    if not changes:
        return
    messages = _change_messages(changes, now=now)
    # The lines (and, at enrolment, their shoppers) are written first: a change refers to them.
    session.flush()
    CreditRepository(session).add_changes(changes, messages)


def _change_messages(changes: list[dict[str, Any]], *, now: datetime) -> list[dict[str, Any]]:
    """The outbox messages that announce ``changes`` (see ``_record_changes``)."""
    messages = []
    for change in changes:
        kind = change_kind(
            previous_limit_minor=change["previous_limit_minor"],
            new_limit_minor=change["new_limit_minor"],
            previous_status=change["previous_status"],
            new_status=change["new_status"],
        )
        if kind is None or change["reason_code"] in _UNANNOUNCED_REASONS:
            continue
        messages.append(
            queued_message(
                topic=CREDIT_CHANGE_TOPIC,
                payload={
                    "shopper_id": change["shopper_id"],
                    "change_id": change["id"],
                    "kind": kind,
                    "previous_limit_minor": change["previous_limit_minor"],
                    "new_limit_minor": change["new_limit_minor"],
                    "previous_status": change["previous_status"],
                    "new_status": change["new_status"],
                    "reason_code": change["reason_code"],
                    "reason": change["message"],
                    "order_id": change["order_id"],
                    "changed_at": now.isoformat(),
                },
                now=now,
            )
        )
    return messages


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
    return Lookup(
        CreditRepository.line_statement(), _standing, parameters={"shopper_id": shopper_id}
    )


def locked_line_standing(shopper_id: str) -> Lookup[LineStanding]:
    """``line_standing`` locked: the first lock of every money movement of the shopper
    (``lock_credit_line``), taken with other look-ups."""
    return Lookup(
        CreditRepository.locked_line_statement(), _standing, parameters={"shopper_id": shopper_id}
    )


def _standing(row: dict[str, Any] | None) -> LineStanding:
    if row is None:
        raise NotFound("No credit line for this shopper.")
    return LineStanding(**row)


def is_unfrozen_by_paying(line: LineStanding) -> bool:
    """Whether paying what is overdue may unfreeze the line (``unfreeze_after_overdue_cleared``
    changes nothing otherwise)."""
    return line.status == "frozen" and not _frozen_for_review(line)


def reservation(*, shopper_id: str, amount_minor: int) -> Part:
    """The conditional update that reserves ``amount_minor`` (``try_reserve``), as a part of a
    larger statement (``kit.db.write_prepared``); it returns a row when it reserved."""
    if amount_minor <= 0:
        raise InvariantViolated("a reservation must be positive")
    return CreditRepository.reservation_part(shopper_id, amount_minor)


def get_credit_line(session: Session, *, shopper_id: str) -> CreditLine:
    line = CreditRepository(session).get(shopper_id)
    if line is None:
        raise NotFound("No credit line for this shopper.")
    return line


def limits_changed_since(session: Session, *, since: datetime) -> dict[str, int]:
    """Shopper id -> their limit as it stood at ``since``, for the shoppers whose line changed
    since then (every change is recorded with the limit it replaced); the others' limit is
    still their line's."""
    return CreditRepository(session).limits_before_changes_since(since)


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
    _record_changes(
        session,
        [
            _change(
                shopper_id=shopper_id,
                previous_limit_minor=line.limit_minor,
                new_limit_minor=line.limit_minor,
                previous_status=from_status,
                new_status=to_status,
                reason=reasons[0],
                now=now,
            )
        ],
        now=now,
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
    values, changes = _grown_by_repayment(
        {
            "limit_minor": line.limit_minor,
            "on_time_orders": line.on_time_orders,
            "status": line.status,
        },
        shopper_id=shopper_id,
        order_id=order_id,
        policy=policy,
        now=now,
    )
    repository.update_line(shopper_id, **values)
    _record_changes(session, changes, now=now)
    session.expire(line)


def growth_reading(shopper_id: str) -> AnySelect:
    """What ``record_on_time_repayment`` reads of the line (its one row is
    ``on_time_repayment_writes``' ``line_row``), as a statement to send with other reads; the
    caller holds the line's lock."""
    return CreditRepository.growth_statement(shopper_id)


def on_time_repayment_writes(
    line_row: dict[str, Any],
    *,
    shopper_id: str,
    order_id: str,
    released_minor: int,
    policy: CreditPolicy,
    now: datetime,
) -> list[UpdateBase]:
    """``release`` of ``released_minor`` and ``record_on_time_repayment`` as parts of one
    statement: the line written once (released and grown), then the change of its limit and
    the message that announces it, if the limit moved (what ``_record_changes`` writes)."""
    if released_minor < 0:
        raise InvariantViolated("a release must not be negative")
    values, changes = _grown_by_repayment(
        line_row, shopper_id=shopper_id, order_id=order_id, policy=policy, now=now
    )
    return [
        CreditRepository.line_write(shopper_id, released_minor=released_minor, values=values),
        *CreditRepository.changes_writes(changes, _change_messages(changes, now=now)),
    ]


def _grown_by_repayment(
    line_row: dict[str, Any],
    *,
    shopper_id: str,
    order_id: str,
    policy: CreditPolicy,
    now: datetime,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What one more order repaid on time does to the line (its limit, on-time orders and
    status in ``line_row``): the columns to write, and the change to record (none when the
    limit stays)."""
    limit_minor = int(line_row["limit_minor"])
    on_time_orders = int(line_row["on_time_orders"]) + 1
    change = policy.after_on_time_repayment(limit_minor=limit_minor, on_time_orders=on_time_orders)
    values = {
        "on_time_orders": on_time_orders,
        "limit_minor": change.new_limit_minor,
        "reasons": [change.reason.as_dict()],
        "reviewed_at": now,
    }
    if change.new_limit_minor == limit_minor:
        return values, []
    status = str(line_row["status"])
    return values, [
        _change(
            shopper_id=shopper_id,
            previous_limit_minor=limit_minor,
            new_limit_minor=change.new_limit_minor,
            previous_status=status,
            new_status=status,
            reason=change.reason,
            now=now,
            order_id=order_id,
        )
    ]


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
    _record_changes(
        session,
        [
            _change(
                shopper_id=shopper_id,
                previous_limit_minor=limit_minor,
                new_limit_minor=limit_minor,
                previous_status="active",
                new_status="frozen",
                reason=FROZEN_OVERDUE,
                now=now,
            )
            for shopper_id, limit_minor in frozen
        ],
        now=now,
    )
    return len(frozen)


def close_after_charge_off(session: Session, *, shopper_id: str, now: datetime) -> None:
    repository = CreditRepository(session)
    line = repository.get(shopper_id, for_update=True)
    if line is None or line.status == "closed":
        return
    reason = Reason("charged_off", "An unpaid order was charged off; the credit line is closed.")
    repository.update_line(shopper_id, status="closed", reasons=[reason.as_dict()])
    _record_changes(
        session,
        [
            _change(
                shopper_id=shopper_id,
                previous_limit_minor=line.limit_minor,
                new_limit_minor=line.limit_minor,
                previous_status=line.status,
                new_status="closed",
                reason=reason,
                now=now,
            )
        ],
        now=now,
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
