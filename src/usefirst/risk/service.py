"""Risk use cases beyond the checkout decision itself: the merchant's early warning, step-up
one-time codes (sent by SMS through the outbox, verified, expired) and reading decision records."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from usefirst.kit.crypto import FieldCipher
from usefirst.kit.errors import Conflict, NotFound, UsefirstError
from usefirst.kit.outbox import enqueue
from usefirst.kit.settings import Settings
from usefirst.notify.service import publish_event
from usefirst.risk import actions
from usefirst.risk.models import RiskDecision, StepUpChallenge
from usefirst.risk.repository import RiskRepository

if TYPE_CHECKING:
    from usefirst.kit.business_day import DailyContext
    from usefirst.orders.models import Order

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
        event_type="risk.merchant_warning",
        data={
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
        },
        now=now,
        settings=settings,
        merchant_id=order.merchant_id,
    )
    actions.log_action(
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
class StepUpResult:
    order: Order
    verified: bool
    error: UsefirstError | None


def verify_step_up(
    session: Session,
    *,
    order_id: str,
    code: str,
    cipher: FieldCipher,
    settings: Settings,
    now: datetime,
) -> StepUpResult:
    """Check a one-time code. Right: the order proceeds (approved). Wrong: the attempt counts;
    the last allowed wrong attempt declines the order. Expired: the order is declined. The
    result carries the error to raise after the attempt is committed."""
    from usefirst.flows import held_orders
    from usefirst.orders import service as order_service

    order = order_service.lock_order(session, order_id=order_id)
    if order.status != "step_up":
        raise order_service.OrderStateConflict(
            f"The order is {order.status}; there is no code to confirm."
        )
    repository = RiskRepository(session)
    challenge = repository.challenge(order.shopper_id, order.id, for_update=True)
    if challenge is None or challenge.status != "pending":
        raise NotFound("No code is waiting for this order.")
    if now >= challenge.expires_at:
        _finish(session, challenge, order=order, status="expired", settings=settings, now=now)
        return StepUpResult(order, False, StepUpExpired())
    expected = challenge.code_hash
    given = _code_hash(cipher, order_id=order.id, code=code.strip())
    if hmac.compare_digest(expected, given):
        challenge.status = "verified"
        challenge.finished_at = now
        held_orders.release_held_order(session, order_id=order.id, settings=settings, now=now)
        actions.log_action(
            session,
            action="approve",
            subject_id=order.shopper_id,
            order_id=order.id,
            decided_by="shopper:step_up_code",
            reason="the shopper confirmed the order with the one-time code",
            now=now,
        )
        return StepUpResult(order, True, None)
    challenge.attempts += 1
    remaining = challenge.max_attempts - challenge.attempts
    if remaining <= 0:
        _finish(session, challenge, order=order, status="failed", settings=settings, now=now)
        return StepUpResult(order, False, StepUpFailed())
    return StepUpResult(
        order,
        False,
        StepUpCodeIncorrect(f"The code is not correct; {remaining} attempt(s) left.", field="code"),
    )


def _finish(
    session: Session,
    challenge: StepUpChallenge,
    *,
    order: Order,
    status: str,
    settings: Settings,
    now: datetime,
) -> None:
    from usefirst.flows import held_orders

    challenge.status = status
    challenge.finished_at = now
    if status == "expired":
        code, message = "step_up_expired", "The one-time code was not confirmed in time."
    else:
        code, message = "step_up_failed", "Too many wrong one-time codes were entered."
    held_orders.decline_held_order(
        session,
        order_id=order.id,
        reason_code=code,
        reason_message=message,
        settings=settings,
        now=now,
    )
    actions.log_action(
        session,
        action="decline",
        subject_id=order.shopper_id,
        order_id=order.id,
        decided_by="risk:step_up",
        reason=message,
        now=now,
    )


def expire_step_ups(session: Session, context: DailyContext) -> dict[str, int]:
    """Daily: decline step-up orders whose code was never confirmed, releasing their credit."""
    from usefirst.orders import service as order_service

    pending = session.execute(
        select(StepUpChallenge.shopper_id, StepUpChallenge.order_id)
        .where(StepUpChallenge.status == "pending", StepUpChallenge.expires_at <= context.now)
        .order_by(StepUpChallenge.shopper_id, StepUpChallenge.order_id)
    ).all()
    expired = 0
    for shopper_id, order_id in pending:
        order = order_service.lock_order(session, order_id=order_id)
        challenge = RiskRepository(session).challenge(shopper_id, order_id, for_update=True)
        if challenge is None or challenge.status != "pending" or order.status != "step_up":
            continue
        _finish(session, challenge, order=order, status="expired", settings=context.settings,
                now=context.now)  # fmt: skip
        expired += 1
    return {"step_ups_expired": expired}


class StepUpCodeSender:
    """Outbox handler: texts the one-time code to the shopper's own verified phone."""

    def __init__(self, *, runtime: Any, sms_gateway: Any) -> None:
        self.runtime = runtime
        self.sms_gateway = sms_gateway

    def __call__(self, payload: dict[str, Any]) -> None:
        from usefirst.identity import service as identity_service
        from usefirst.merchants import service as merchant_service
        from usefirst.orders import service as order_service

        cipher: FieldCipher = self.runtime.cipher
        with self.runtime.work(read_only=True) as work:
            challenge = RiskRepository(work.session).challenge(
                payload["shopper_id"], payload["order_id"]
            )
            if (
                challenge is None
                or challenge.status != "pending"
                or work.now >= challenge.expires_at
            ):
                return
            order = order_service.find_order(work.session, order_id=payload["order_id"])
            merchant_name = merchant_service.get_merchant(
                work.session, merchant_id=order.merchant_id
            ).name
            contact = identity_service.contact_details(
                work.session, shopper_id=order.shopper_id, cipher=cipher
            )
            minutes = max(int((challenge.expires_at - work.now).total_seconds() // 60), 1)
            amount = f"{order.amount_minor // 100}.{order.amount_minor % 100:02d} {order.currency}"
        code = cipher.decrypt(payload["code_encrypted"], field="step_up_code")
        text = (
            f"【{self.runtime.settings.lender_name}】验证码 {code}，用于确认您在{merchant_name}的"
            f"先用后付订单（{amount}），{minutes} 分钟内有效，请勿告诉他人。"
            f" Code {code} confirms your pay-later order at {merchant_name} ({amount}); "
            f"valid {minutes} min. Never share it."
        )
        delivery = self.sms_gateway.send(
            to_e164=contact.phone_e164, text=text, reference=f"stepup-{payload['order_id']}"
        )
        with self.runtime.work() as work:
            row = RiskRepository(work.session).challenge(
                payload["shopper_id"], payload["order_id"], for_update=True
            )
            if row is not None:
                row.delivery_status = "sent" if delivery.is_sent else "failed"
                row.delivery_error = None if delivery.is_sent else (delivery.error or "")[:200]
        if not delivery.is_sent:
            raise RuntimeError(f"SMS not sent: {delivery.error}")
