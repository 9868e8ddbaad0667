"""Checkout: a shopper buys now and pays later, or is told why not.

In the order it happens: the request is checked; the shopper, the merchant and the shopper's
credit line are read; risk assesses the checkout (before the order exists and before its credit
is reserved, so it reads the shopper's history as it was); the outcome is decided, reserving the
amount against the shopper's available credit in one conditional update; the order is recorded,
approved or not, with its repayment schedule when it goes ahead; risk records its decision and
acts on it (a case for a held order, a one-time code for a step-up); the order event is published.
Nothing is posted to the ledger yet: the debt enters it at delivery (flows/fulfilment.py).

On PostgreSQL a checkout that risk approves (nearly all of them) is written as one statement:
the reads go out together in one round trip, and the write is one data-modifying statement
to which each domain contributes its part (the reservation, the order, its instalments, risk's
record, the event and its messages, the idempotency record). The parts are written on the
condition that the reservation turns out as the credit line just read predicts; when a
concurrent checkout or payment moved the line in between, nothing but the reservation's
outcome is written and the checkout is written again for that outcome. Held and risk-declined
checkouts (cases, one-time codes, risk actions) and SQLite go through the unit of work."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from usefirst.credit import service as credit_service
from usefirst.credit.policy import Reason
from usefirst.credit.service import LineStanding
from usefirst.flows import risk_effects
from usefirst.flows.order_events import insert_order_event, publish_order_event
from usefirst.identity import service as identity_service
from usefirst.identity.service import ShopperStanding
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.db import Part, look_up_together, on_citus, write_prepared
from usefirst.kit.errors import ValidationFailed
from usefirst.kit.idempotency import KeyAlreadyRecorded, ResponseRecord
from usefirst.kit.settings import Settings
from usefirst.merchants import service as merchant_service
from usefirst.merchants.service import MerchantStanding
from usefirst.orders import service as order_service
from usefirst.orders.models import Order
from usefirst.orders.service import CheckoutRequest
from usefirst.repayment import service as repayment_service
from usefirst.repayment.models import Instalment
from usefirst.risk import counters as risk_counters
from usefirst.risk import decision as risk_decision

# What the caller answers, from the order as the API shows it and the decision: (status, body).
Answer = Callable[[dict[str, Any], "Decision"], tuple[int, Any]]


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
    order, decision, _answered = _checkout(
        session,
        request=request,
        cipher=cipher,
        settings=settings,
        now=now,
        answer=None,
        record=None,
    )
    return order, decision


def checkout_answered(
    session: Session,
    *,
    request: CheckoutRequest,
    cipher: FieldCipher,
    settings: Settings,
    now: datetime,
    answer: Answer,
    record: ResponseRecord | None,
) -> tuple[int, Any]:
    """``checkout``, answered by ``answer`` (from the order as the API shows it and the
    decision, built from what is written: nothing is read back) and the answer recorded under
    the call's idempotency key with the rest of the work (:class:`KeyAlreadyRecorded` when the
    key has a response already)."""
    _order, _decision, answered = _checkout(
        session,
        request=request,
        cipher=cipher,
        settings=settings,
        now=now,
        answer=answer,
        record=record,
    )
    assert answered is not None
    return answered


def _checkout(
    session: Session,
    *,
    request: CheckoutRequest,
    cipher: FieldCipher,
    settings: Settings,
    now: datetime,
    answer: Answer | None,
    record: ResponseRecord | None,
) -> tuple[Order, Decision, tuple[int, Any] | None]:
    amount = order_service.validate_checkout(request)
    shopper, merchant, line = look_up_together(
        session,
        identity_service.shopper_standing(request.shopper_id),
        merchant_service.merchant_standing(request.merchant_id),
        credit_service.line_standing(request.shopper_id),
    )
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
    refusal = _refusal(shopper, merchant, line, assessment)
    checkout = _Checkout(
        request=request,
        items=items,
        amount_minor=amount,
        merchant=merchant,
        line=line,
        assessment=assessment,
        cipher=cipher,
        settings=settings,
        now=now,
        answer=answer,
        record=record,
    )
    if session.get_bind().dialect.name == "postgresql" and assessment.outcome == "approved":
        return checkout.write_in_one_statement(session, refusal)
    return checkout.write_in_unit_of_work(session, refusal)


def _refusal(
    shopper: ShopperStanding,
    merchant: MerchantStanding,
    line: LineStanding,
    assessment: risk_decision.Assessment,
) -> list[Reason]:
    """Why the checkout is declined before its credit is asked for (none: reserve it)."""
    if shopper.status != "active" or line.status == "closed":
        return [Reason("credit_line_closed", "The shopper has no open credit line.")]
    if merchant.status in ("suspended", "banned"):
        return [Reason("merchant_not_accepting", "This merchant cannot take pay-later orders now.")]
    if line.status == "frozen":
        return [credit_service.frozen_reason(line)]
    if assessment.outcome == "declined":
        return list(assessment.reasons)
    return []


OVER_LIMIT = Reason(
    "credit_limit_exceeded", "The order is larger than the shopper's available credit."
)


@dataclass(frozen=True)
class _Checkout:
    """A checkout decided up to its reservation, and how to record each outcome."""

    request: CheckoutRequest
    items: list[dict[str, Any]]
    amount_minor: int
    merchant: MerchantStanding
    line: LineStanding
    assessment: risk_decision.Assessment
    cipher: FieldCipher
    settings: Settings
    now: datetime
    answer: Answer | None
    record: ResponseRecord | None

    def decided(self, reasons: list[Reason]) -> tuple[Decision, Order, list[Instalment]]:
        """The decision, its order and instalments (not stored), ``reasons`` being why it is
        declined (none: approved or held, its credit reserved)."""
        assessment = self.assessment
        reasons = list(reasons)
        # approved, or held with its credit reserved: review (the merchant must not ship) or
        # step_up (the shopper confirms with a one-time code first)
        outcome = "declined" if reasons else assessment.outcome
        if outcome == "approved":
            reasons.append(Reason("within_credit_limit", "The order fits the available credit."))
        elif outcome in order_service.HELD_STATUSES:
            reasons.extend(assessment.reasons)
        decision = Decision(
            outcome=outcome, reasons=reasons, score=self.line.score, decided_at=self.now
        )
        order = order_service.new_order(
            request=self.request,
            items=self.items,
            amount_minor=self.amount_minor,
            outcome=outcome,
            reasons=[reason.as_dict() for reason in reasons],
            cipher=self.cipher,
            now=self.now,
            shipping_address_hash=assessment.features.link_hashes.get("address"),
        )
        instalments: list[Instalment] = []
        if outcome in ("approved", *order_service.HELD_STATUSES):
            instalments = repayment_service.new_schedule(
                shopper_id=order.shopper_id,
                order_id=order.id,
                currency=order.currency,
                principal_minor=self.amount_minor,
                plan=order.plan,
                settings=self.settings,
            )
        return decision, order, instalments

    def write_in_unit_of_work(
        self, session: Session, refusal: list[Reason]
    ) -> tuple[Order, Decision, tuple[int, Any] | None]:
        """The order, its schedule, risk's record and what risk decided carried out (a case,
        a one-time code), flushed with the unit of work."""
        reasons = refusal
        if not refusal and not credit_service.try_reserve(
            session, shopper_id=self.line.shopper_id, amount_minor=self.amount_minor
        ):
            reasons = [OVER_LIMIT]
        decision, order, instalments = self.decided(reasons)
        order_service.add_order(session, order)
        repayment_service.add_schedule(session, instalments)
        # The shared counter rows in the order the one-statement write locks them: PostgreSQL
        # runs a statement's unreferenced data-modifying CTEs last to first, so there the
        # signals' hour counts (a later part) are upserted before the merchant-day counters;
        # Citus runs them as steps in their written order, the merchant-day counters first. A
        # declined checkout beside an approved one that took them the other way round
        # deadlocked (tests/flows/test_concurrency_postgres.py, fifty checkouts of one shopper).
        counters_first = on_citus(session.connection())
        if counters_first:
            risk_counters.record_new_order(session, order=order, now=self.now)
        risk_decision.record_checkout_decision(
            session,
            order=order,
            assessment=self.assessment,
            reasons=decision.reasons,
            credit_score=self.line.score,
            cipher=self.cipher,
            settings=self.settings,
            effects=risk_effects,
            now=self.now,
        )
        if not counters_first:
            risk_counters.record_new_order(session, order=order, now=self.now)
        session.flush()
        view = order_service.order_view(session, order, instalments)
        publish_order_event(
            session,
            order=order,
            event_type=f"order.{decision.outcome}",
            settings=self.settings,
            now=self.now,
            view=view,
            one_statement=True,
        )
        if self.answer is None:
            return order, decision, None
        answered = self.answer(view, decision)
        if self.record is not None:
            self.record.write(session, *answered)
        return order, decision, answered

    def write_in_one_statement(
        self, session: Session, refusal: list[Reason]
    ) -> tuple[Order, Decision, tuple[int, Any] | None]:
        """The whole write as one statement (PostgreSQL, a checkout risk approved). The parts
        are written only if the reservation turns out as the line read predicts; otherwise
        they are built and written again for the outcome it had."""
        if refusal:
            written = self._write_outcome(session, refusal, reservation=None, predicted=False)
            assert written is not None
            return written
        predicted = self.line.used_minor + self.amount_minor <= self.line.limit_minor
        reservation = credit_service.reservation(
            shopper_id=self.line.shopper_id, amount_minor=self.amount_minor
        )
        written = self._write_outcome(
            session, [] if predicted else [OVER_LIMIT], reservation=reservation, predicted=predicted
        )
        if written is not None:
            return written
        # The line moved since it was read: the reservation went the other way.
        again = self._write_outcome(
            session, [OVER_LIMIT] if predicted else [], reservation=None, predicted=False
        )
        assert again is not None
        return again

    def _write_outcome(
        self,
        session: Session,
        reasons: list[Reason],
        *,
        reservation: Part | None,
        predicted: bool,
    ) -> tuple[Order, Decision, tuple[int, Any] | None] | None:
        """Write the outcome ``reasons`` make, as one statement; with ``reservation``, only if
        it reserves (``predicted``) or not as expected: None when it went the other way."""
        decision, order, instalments = self.decided(reasons)
        view = order_service.order_view(session, order, instalments)
        answered = self.answer(view, decision) if self.answer is not None else None
        parts: list[Part] = [
            order_service.insert_order(order),
            *risk_counters.new_order_writes(order=order, now=self.now),
        ]
        if instalments:
            parts.append(repayment_service.insert_schedule(instalments))
        parts.extend(
            risk_decision.insert_checkout_decision(
                order=order,
                assessment=self.assessment,
                reasons=decision.reasons,
                credit_score=self.line.score,
                now=self.now,
            )
        )
        parts.extend(
            insert_order_event(
                order=order,
                event_type=f"order.{decision.outcome}",
                settings=self.settings,
                now=self.now,
                view=view,
                merchant_webhook_url=self.merchant.webhook_url,
            )
        )
        record = None
        if self.record is not None and answered is not None:
            record = self.record.part(*answered)
        outcome = write_prepared(
            session, parts, guard=reservation, expect_guarded=predicted, claim=record
        )
        if reservation is not None and outcome.guarded != predicted:
            return None
        if not outcome.claimed:
            raise KeyAlreadyRecorded()
        if self.answer is None:
            # A caller that goes on with the order in this session gets it as the session's;
            # an answered checkout (the API's) is done with it: its answer is built already.
            order_service.attach_order(session, order)
        return order, decision, answered
