"""Risk's part beyond the checkout decision itself: the merchant's early warning, step-up one-time
codes (sent by SMS through the outbox, checked, expired; ``usefirst.flows.step_up`` moves the
order along) and reading decision records."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from usefirst.credit.policy import Reason
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.errors import Conflict, NotFound, UsefirstError
from usefirst.kit.outbox import enqueue
from usefirst.kit.settings import Settings
from usefirst.orders.models import Order
from usefirst.risk import actions
from usefirst.risk.models import RiskDecision, StepUpChallenge
from usefirst.risk.repository import RiskRepository

STEP_UP_TOPIC = "risk_step_up_sms"
CODE_DIGITS = 6


class StepUpCodeIncorrect(UsefirstError):
    status_code = 422
    code = "step_up_code_incorrect"
    default_message = "The code is not correct."


class StepUpFailed(Conflict):
    code = "step_up_failed"
    default_message = "Too many wrong codes: the order was declined."


class StepUpExpired(Conflict):
    code = "step_up_expired"
    default_message = "The code expired: the order was declined."


def get_decision(session: Session, *, order_id: str) -> RiskDecision:
    row = RiskRepository(session).decision_of_order(order_id)
    if row is None:
        raise NotFound("No risk decision for this order.")
    return row


# --- merchant early warning ------------------------------------------------------------------

MERCHANT_WARNING_EVENT = "risk.merchant_warning"


def merchant_warning(order: Order, *, case_id: str, warnings: list[str]) -> dict[str, Any]:
    """What the merchant is told, before it ships, of an order held and why, in its own terms
    (the data of a ``risk.merchant_warning`` event)."""
    return {
        "order_id": order.id,
        "amount_minor": order.amount_minor,
        "currency": order.currency,
        "order_status": order.status,
        "action": "do_not_ship",
        "message": (
            "Please do not ship this order yet: we are checking it and will tell you "
            "(order.approved or order.declined) when we are done."
        ),
        "reasons": warnings,
        "case_id": case_id,
    }


# --- step-up -------------------------------------------------------------------------------------


def _code_hash(cipher: FieldCipher, *, order_id: str, code: str) -> str:
    # Bound to the order: a code for one order never unlocks another.
    return cipher.blind_index(f"{order_id}:{code}", field="step_up_code")


def start_step_up(
    session: Session, *, order: Order, cipher: FieldCipher, settings: Settings, now: datetime
) -> StepUpChallenge:
    """Create the order's one-time code and queue the SMS to the shopper's own phone. Only a
    keyed hash is stored; the outbox carries the code encrypted until it is sent."""
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    challenge = StepUpChallenge(
        shopper_id=order.shopper_id,
        order_id=order.id,
        code_hash=_code_hash(cipher, order_id=order.id, code=code),
        status="pending",
        attempts=0,
        max_attempts=settings.step_up_max_attempts,
        expires_at=now + timedelta(seconds=settings.step_up_code_ttl_seconds),
        delivery_status="queued",
        created_at=now,
    )
    RiskRepository(session).add(challenge)
    enqueue(
        session,
        topic=STEP_UP_TOPIC,
        payload={
            "shopper_id": order.shopper_id,
            "order_id": order.id,
            "code_encrypted": cipher.encrypt(code, field="step_up_code"),
        },
        now=now,
    )
    return challenge


@dataclass(frozen=True)
class CodeCheck:
    """How a one-time code attempt went: ``declined_for`` says why the order is to be declined
    (the code expired, or the last allowed attempt was wrong); ``error`` is what to raise once the
    attempt is committed (None when the code was right)."""

    is_verified: bool
    declined_for: Reason | None
    error: UsefirstError | None


STEP_UP_EXPIRED = Reason("step_up_expired", "The one-time code was not confirmed in time.")
STEP_UP_FAILED = Reason("step_up_failed", "Too many wrong one-time codes were entered.")


def check_step_up_code(
    session: Session, *, order: Order, code: str, cipher: FieldCipher, now: datetime
) -> CodeCheck:
    """Check a one-time code for a step-up order (locked by the caller). Right: the challenge is
    verified. Wrong: the attempt counts, and the last allowed wrong attempt ends the challenge.
    Expired: the challenge ends."""
    challenge = RiskRepository(session).challenge(order.shopper_id, order.id, for_update=True)
    if challenge is None or challenge.status != "pending":
        raise NotFound("No code is waiting for this order.")
    if now >= challenge.expires_at:
        _end_challenge(challenge, status="expired", now=now)
        return CodeCheck(False, STEP_UP_EXPIRED, StepUpExpired())
    expected = challenge.code_hash
    given = _code_hash(cipher, order_id=order.id, code=code.strip())
    if hmac.compare_digest(expected, given):
        challenge.status = "verified"
        challenge.finished_at = now
        return CodeCheck(True, None, None)
    challenge.attempts += 1
    remaining = challenge.max_attempts - challenge.attempts
    if remaining <= 0:
        _end_challenge(challenge, status="failed", now=now)
        return CodeCheck(False, STEP_UP_FAILED, StepUpFailed())
    return CodeCheck(
        False,
        None,
        StepUpCodeIncorrect(f"The code is not correct; {remaining} attempt(s) left.", field="code"),
    )


def _end_challenge(challenge: StepUpChallenge, *, status: str, now: datetime) -> None:
    """The challenge failed or expired: its order is declined."""
    challenge.status = status
    challenge.finished_at = now


def expire_challenge(session: Session, *, order: Order, now: datetime) -> bool:
    """End the order's pending challenge as expired; False when none is pending."""
    challenge = RiskRepository(session).challenge(order.shopper_id, order.id, for_update=True)
    if challenge is None or challenge.status != "pending":
        return False
    _end_challenge(challenge, status="expired", now=now)
    return True


def record_step_up_approval(session: Session, *, order: Order, now: datetime) -> None:
    actions.log_action(
        session,
        action="approve",
        subject_id=order.shopper_id,
        order_id=order.id,
        decided_by="shopper:step_up_code",
        reason="the shopper confirmed the order with the one-time code",
        now=now,
    )


def record_step_up_decline(
    session: Session, *, order: Order, declined_for: Reason, now: datetime
) -> None:
    actions.log_action(
        session,
        action="decline",
        subject_id=order.shopper_id,
        order_id=order.id,
        decided_by="risk:step_up",
        reason=declined_for.message,
        now=now,
    )


def expired_step_ups(session: Session, *, now: datetime) -> list[tuple[str, str]]:
    """(shopper id, order id) of the challenges still pending whose code expired by ``now``."""
    return RiskRepository(session).expired_pending_challenges(now)


def pending_challenge(
    session: Session, *, shopper_id: str, order_id: str, now: datetime
) -> StepUpChallenge | None:
    """The order's challenge while its code can still be entered; None otherwise."""
    challenge = RiskRepository(session).challenge(shopper_id, order_id)
    if challenge is None or challenge.status != "pending" or now >= challenge.expires_at:
        return None
    return challenge


def record_code_delivery(
    session: Session, *, shopper_id: str, order_id: str, is_sent: bool, error: str | None
) -> None:
    """Whether the one-time code's text reached the SMS gateway."""
    row = RiskRepository(session).challenge(shopper_id, order_id, for_update=True)
    if row is not None:
        row.delivery_status = "sent" if is_sent else "failed"
        row.delivery_error = None if is_sent else (error or "")[:200]
