"""Step-up: a checkout risk held for the shopper's one-time code (``usefirst.risk.service`` starts
it with the decision). The code is texted to the shopper's own phone (:class:`StepUpCodeSender`,
an outbox handler); a right code lets the order proceed, a last wrong one or an expired code
declines it (:func:`verify_step_up`, and :func:`expire_step_ups` in the daily sweep).

In order: orders locks the order, risk checks the code, orders approves or declines it, risk
records the decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from usefirst.credit.policy import Reason
from usefirst.flows import held_orders
from usefirst.identity import service as identity_service
from usefirst.kit.business_day import DailyContext
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.errors import UsefirstError
from usefirst.kit.settings import Settings
from usefirst.merchants import service as merchant_service
from usefirst.orders import service as order_service
from usefirst.orders.models import Order
from usefirst.risk import service as risk_service


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
    order = order_service.lock_order(session, order_id=order_id)
    if order.status != "step_up":
        raise order_service.OrderStateConflict(
            f"The order is {order.status}; there is no code to confirm."
        )
    check = risk_service.check_step_up_code(session, order=order, code=code, cipher=cipher, now=now)
    if check.is_verified:
        held_orders.release_held_order(session, order_id=order.id, settings=settings, now=now)
        risk_service.record_step_up_approval(session, order=order, now=now)
    elif check.declined_for is not None:
        _decline(session, order=order, declined_for=check.declined_for, settings=settings, now=now)
    return StepUpResult(order, check.is_verified, check.error)


def expire_step_ups(session: Session, context: DailyContext) -> dict[str, int]:
    """Daily: decline step-up orders whose code was never confirmed, releasing their credit."""
    expired = 0
    for _, order_id in risk_service.expired_step_ups(session, now=context.now):
        order = order_service.lock_order(session, order_id=order_id)
        if order.status != "step_up" or not risk_service.expire_challenge(
            session, order=order, now=context.now
        ):
            continue
        _decline(
            session,
            order=order,
            declined_for=risk_service.STEP_UP_EXPIRED,
            settings=context.settings,
            now=context.now,
        )
        expired += 1
    return {"step_ups_expired": expired}


def _decline(
    session: Session, *, order: Order, declined_for: Reason, settings: Settings, now: datetime
) -> None:
    held_orders.decline_held_order(
        session,
        order_id=order.id,
        reason_code=declined_for.code,
        reason_message=declined_for.message,
        settings=settings,
        now=now,
    )
    risk_service.record_step_up_decline(session, order=order, declined_for=declined_for, now=now)


class StepUpCodeSender:
    """Outbox handler: texts the one-time code to the shopper's own verified phone."""

    def __init__(self, *, runtime: Any, sms_gateway: Any) -> None:
        self.runtime = runtime
        self.sms_gateway = sms_gateway

    def __call__(self, payload: dict[str, Any]) -> None:
        cipher: FieldCipher = self.runtime.cipher
        with self.runtime.work(read_only=True) as work:
            challenge = risk_service.pending_challenge(
                work.session,
                shopper_id=payload["shopper_id"],
                order_id=payload["order_id"],
                now=work.now,
            )
            if challenge is None:
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
            risk_service.record_code_delivery(
                work.session,
                shopper_id=payload["shopper_id"],
                order_id=payload["order_id"],
                is_sent=delivery.is_sent,
                error=delivery.error,
            )
        if not delivery.is_sent:
            raise RuntimeError(f"SMS not sent: {delivery.error}")
