"""Checkout: a shopper buys now and pays later, or is told why not.

In the order it happens: the request is checked; the shopper, the merchant and the shopper's
credit line are read; risk assesses the checkout (before the order exists and before its credit
is reserved, so it reads the shopper's history as it was); the outcome is decided, reserving the
amount against the shopper's available credit in one conditional update; the order is recorded,
approved or not, with its repayment schedule when it goes ahead; risk records its decision and
acts on it (a case for a held order, a one-time code for a step-up); the order event is published.
Nothing is posted to the ledger yet: the debt enters it at delivery (flows/fulfilment.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from usefirst.credit import service as credit_service
from usefirst.credit.policy import Reason
from usefirst.flows import risk_effects
from usefirst.flows.order_events import publish_order_event
from usefirst.identity import service as identity_service
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.errors import ValidationFailed
from usefirst.kit.settings import Settings
from usefirst.merchants import service as merchant_service
from usefirst.orders import service as order_service
from usefirst.orders.models import Order
from usefirst.orders.service import CheckoutRequest
from usefirst.repayment import service as repayment_service
from usefirst.repayment.models import Instalment
from usefirst.risk import counters as risk_counters
from usefirst.risk import decision as risk_decision


@dataclass(frozen=True)
class Decision:
    outcome: str  # approved | review | step_up | declined
    reasons: list[Reason]
    score: int | None
    decided_at: datetime

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "outcome": self.outcome,
            "reasons": [reason.as_dict() for reason in self.reasons],
            "decided_at": self.decided_at,
        }
        if self.score is not None:
            body["score"] = self.score
        return body


def checkout(
    session: Session,
    *,
    request: CheckoutRequest,
    cipher: FieldCipher,
    settings: Settings,
    now: datetime,
) -> tuple[Order, Decision]:
    """Decide a checkout and record the order, approved or not. Approval reserves the amount
    against the shopper's available credit in one conditional update."""
    order, decision, _view = checkout_with_view(
        session, request=request, cipher=cipher, settings=settings, now=now
    )
    return order, decision


def checkout_with_view(
    session: Session,
    *,
    request: CheckoutRequest,
    cipher: FieldCipher,
    settings: Settings,
    now: datetime,
) -> tuple[Order, Decision, dict[str, Any]]:
    """``checkout``, and the order as the API shows it, built from the rows just written (the
    event and the response share it; nothing is read back)."""
    amount = order_service.validate_checkout(request)
    shopper = identity_service.get_shopper(session, shopper_id=request.shopper_id)
    merchant = merchant_service.get_merchant(session, merchant_id=request.merchant_id)
    line = credit_service.get_credit_line(session, shopper_id=shopper.id)
    if line.currency != request.currency:
        raise ValidationFailed(f"This shopper's credit is in {line.currency}.", field="currency")
    items = request.item_documents()
    # Risk reads history before this order exists and before its credit is reserved.
    assessment = risk_decision.assess_checkout(
        session,
        shopper_id=shopper.id,
        merchant_id=merchant.id,
        amount_minor=amount,
        items=items,
        device_id=request.device_id,
        ip=request.ip,
        shipping_address=request.shipping_address,
        credit_limit_minor=line.limit_minor,
        credit_used_minor=line.used_minor,
        cipher=cipher,
        settings=settings,
        now=now,
    )

    reasons: list[Reason] = []
    if shopper.status != "active" or line.status == "closed":
        reasons.append(Reason("credit_line_closed", "The shopper has no open credit line."))
    elif merchant.status in ("suspended", "banned"):
        reasons.append(
            Reason("merchant_not_accepting", "This merchant cannot take pay-later orders now.")
        )
    elif line.status == "frozen":
        reasons.append(credit_service.frozen_reason(line))
    elif assessment.outcome == "declined":
        reasons.extend(assessment.reasons)
    elif not credit_service.try_reserve(session, shopper_id=shopper.id, amount_minor=amount):
        reasons.append(
            Reason(
                "credit_limit_exceeded",
                "The order is larger than the shopper's available credit.",
            )
        )
    # approved, or held with its credit reserved: review (the merchant must not ship) or
    # step_up (the shopper confirms with a one-time code first)
    outcome = "declined" if reasons else assessment.outcome
    if outcome == "approved":
        reasons.append(Reason("within_credit_limit", "The order fits the available credit."))
    elif outcome in order_service.HELD_STATUSES:
        reasons.extend(assessment.reasons)
    decision = Decision(outcome=outcome, reasons=reasons, score=line.score, decided_at=now)

    order = order_service.create_order(
        session,
        request=request,
        items=items,
        amount_minor=amount,
        outcome=outcome,
        reasons=[reason.as_dict() for reason in reasons],
        cipher=cipher,
        now=now,
        shipping_address_hash=assessment.features.link_hashes.get("address"),
    )
    risk_counters.record_new_order(session, order=order, now=now)
    instalments: list[Instalment] = []
    if outcome in ("approved", *order_service.HELD_STATUSES):
        instalments = repayment_service.create_schedule(
            session,
            shopper_id=order.shopper_id,
            order_id=order.id,
            currency=order.currency,
            principal_minor=amount,
            plan=order.plan,
            settings=settings,
        )
    risk_decision.record_checkout_decision(
        session,
        order=order,
        assessment=assessment,
        reasons=reasons,
        credit_score=line.score,
        cipher=cipher,
        settings=settings,
        effects=risk_effects,
        now=now,
    )
    session.flush()
    view = order_service.order_view(session, order, instalments)
    publish_order_event(
        session,
        order=order,
        event_type=f"order.{outcome}",
        settings=settings,
        now=now,
        view=view,
        one_statement=True,
    )
    return order, decision, view
