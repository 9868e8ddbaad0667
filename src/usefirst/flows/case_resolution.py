"""An analyst resolves a risk case as confirmed fraud or legitimate, and every domain the case
touched acts on it.

Legitimate: held orders proceed (approved), this case's settlement holds are released, a watch
this case put a merchant under is lifted unless something else keeps the merchant suspected
(another open or confirmed case about it, or a confirmed fraud of its own), and the credit holds
this case placed end (unless another open case holds the shopper too).

Confirmed fraud: orders not yet shipped are declined (held) or cancelled (approved) and their
credit released; orders already shipped stay held from settlement; the shoppers' credit lines
close and they are remembered as known fraud. A merchant is treated as a fraudster only when
implicated (``usefirst.risk.cases.implicated_merchants``): it goes on watch, is remembered as known
fraud, and what it was already paid for the case's orders is clawed back. A merchant that was only
the fraudster's victim keeps its standing and its money.

Either way every order of the case becomes a training label. In order: risk locks the case,
orders are read, then each order is acted on (orders, merchants' settlement) and labelled (risk),
then merchants' standing and shoppers' credit (with repayment's overdue state) follow, and risk
closes the case. Each action is recorded in risk's log as it happens.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from usefirst.credit import service as credit_service
from usefirst.flows import cancellation, held_orders, merchant_clawbacks, risk_effects
from usefirst.kit.settings import Settings
from usefirst.merchants import settlement, standing
from usefirst.orders import service as order_service
from usefirst.orders.models import Order
from usefirst.repayment import service as repayment_service
from usefirst.risk import actions as risk_actions
from usefirst.risk import cases as risk_cases
from usefirst.risk.models import RiskCase


def resolve_case(
    session: Session,
    *,
    case_id: str,
    outcome: str,
    note: str,
    resolved_by: str,
    settings: Settings,
    now: datetime,
) -> RiskCase:
    """Close a case as ``confirmed_fraud`` or ``legitimate`` and act on it (see above)."""
    case = risk_cases.case_to_resolve(session, case_id=case_id, outcome=outcome, note=note)
    decided_by = f"operator:{resolved_by}"
    orders = [
        order_service.find_order(session, order_id=order_id)
        for order_id in risk_cases.order_ids_of(case)
    ]
    if outcome == "legitimate":
        _clear(session, case=case, orders=orders, decided_by=decided_by, settings=settings, now=now)
    else:
        _confirm(
            session, case=case, orders=orders, decided_by=decided_by, settings=settings, now=now
        )
    risk_cases.record_resolution(
        session, case=case, outcome=outcome, note=note, resolved_by=resolved_by, now=now
    )
    return case


def _clear(
    session: Session,
    *,
    case: RiskCase,
    orders: list[Order],
    decided_by: str,
    settings: Settings,
    now: datetime,
) -> None:
    for order in orders:
        if order.status in risk_cases.HELD_STATUSES:
            held_orders.release_held_order(session, order_id=order.id, settings=settings, now=now)
            risk_actions.log_action(
                session,
                action="approve",
                subject_id=order.shopper_id,
                order_id=order.id,
                case_id=case.id,
                decided_by=decided_by,
                reason="the case was cleared as legitimate",
                now=now,
            )
        risk_cases.label_order(
            session, case=case, order=order, label="legitimate", decided_by=decided_by, now=now
        )
    for merchant_id, order_id in sorted(
        risk_actions.settlement_holds_of_case(session, case_id=case.id)
    ):
        _release_settlement(
            session,
            merchant_id=merchant_id,
            order_id=order_id,
            case_id=case.id,
            decided_by=decided_by,
            reason="the case was cleared",
            now=now,
        )
    cleared = f"case {case.id} was cleared as legitimate"
    for merchant_id, case_ids in risk_cases.watches_to_lift(session, case=case):
        change = standing.lift_watch(
            session,
            merchant_id=merchant_id,
            placed_for=case_ids,
            reason=cleared,
            decided_by=decided_by,
            now=now,
        )
        if change is not None:
            risk_actions.log_action(
                session,
                action="unwatch_merchant",
                subject_id=merchant_id,
                case_id=case.id,
                decided_by=decided_by,
                reason=cleared,
                details={"evidence": list(change.evidence)},
                now=now,
            )
    for shopper_id in risk_actions.freezes_to_lift(session, case_id=case.id):
        if credit_service.lift_review_freeze(
            session,
            shopper_id=shopper_id,
            still_overdue=repayment_service.has_overdue(session, shopper_id=shopper_id),
            now=now,
        ):
            risk_actions.log_action(
                session,
                action="unfreeze_limit",
                subject_id=shopper_id,
                case_id=case.id,
                decided_by=decided_by,
                reason=cleared,
                now=now,
            )


def _confirm(
    session: Session,
    *,
    case: RiskCase,
    orders: list[Order],
    decided_by: str,
    settings: Settings,
    now: datetime,
) -> None:
    fraud = risk_cases.confirmed_fraud(session, case=case, orders=orders)
    for order in orders:
        verdict = fraud.verdict_on(order)
        if verdict == "decline":
            held_orders.decline_held_order(
                session,
                order_id=order.id,
                reason_code="confirmed_fraud",
                reason_message="A fraud investigation confirmed this order was not genuine.",
                settings=settings,
                now=now,
            )
        elif verdict == "cancel":
            cancellation.cancel(
                session, order_id=order.id, merchant_id=None, settings=settings, now=now
            )
        elif verdict == "pay_merchant":
            # An honest merchant that shipped in good faith is paid for the goods: the unpaid debt
            # is the shopper's, in collections. A hold this case placed while it was open ends.
            if fraud.is_held(order):
                _release_settlement(
                    session,
                    merchant_id=order.merchant_id,
                    order_id=order.id,
                    case_id=case.id,
                    decided_by=decided_by,
                    reason="the merchant is not implicated: it is paid for goods it shipped",
                    now=now,
                )
        elif order.status != "declined":  # keep_held: the implicated merchant's order
            _claw_back(session, case=case, order=order, decided_by=decided_by, now=now)
            if not fraud.is_held(order):
                risk_effects.hold_settlement(
                    session,
                    merchant_id=order.merchant_id,
                    order_id=order.id,
                    case_id=case.id,
                    reason="confirmed fraud: do not pay out this order",
                    decided_by=decided_by,
                    now=now,
                )
        risk_cases.record_verdict(
            session, case=case, order=order, verdict=verdict, decided_by=decided_by, now=now
        )
    for shopper_id in fraud.shoppers:
        risk_cases.remember_fraudster(session, subject_id=shopper_id, case=case, now=now)
        if credit_service.close_for_fraud(session, shopper_id=shopper_id, now=now):
            risk_actions.log_action(
                session,
                action="close_credit",
                subject_id=shopper_id,
                case_id=case.id,
                decided_by=decided_by,
                reason="credit closed after confirmed fraud",
                now=now,
            )
    for merchant_id in fraud.merchants:
        risk_cases.remember_fraudster(session, subject_id=merchant_id, case=case, now=now)
        risk_effects.put_merchant_on_watch(
            session,
            merchant_id=merchant_id,
            reason=f"confirmed fraud in case {case.id}",
            evidence=[case.id],
            decided_by=decided_by,
            case_id=case.id,
            now=now,
        )


def _release_settlement(
    session: Session,
    *,
    merchant_id: str,
    order_id: str,
    case_id: str,
    decided_by: str,
    reason: str,
    now: datetime,
) -> None:
    settlement.release_order_settlement_hold(
        session,
        merchant_id=merchant_id,
        order_id=order_id,
        source=risk_actions.settlement_hold_source(case_id),
        now=now,
    )
    risk_actions.log_action(
        session,
        action="release_settlement",
        subject_id=merchant_id,
        order_id=order_id,
        case_id=case_id,
        decided_by=decided_by,
        reason=reason,
        now=now,
    )


def _claw_back(
    session: Session, *, case: RiskCase, order: Order, decided_by: str, now: datetime
) -> None:
    """Take back what a colluding merchant kept of an order it was already paid for (nothing when
    the order was not paid out or was clawed back before)."""
    reason = f"confirmed fraud in case {case.id}"
    clawed = merchant_clawbacks.claw_back_paid_order(
        session,
        merchant_id=order.merchant_id,
        order_id=order.id,
        currency=order.currency,
        reason=reason,
        now=now,
    )
    if clawed is None:
        return
    entry_id, amount_minor = clawed
    risk_actions.log_action(
        session,
        action="claw_back_settlement",
        subject_id=order.merchant_id,
        order_id=order.id,
        case_id=case.id,
        decided_by=decided_by,
        reason=reason,
        details={"amount_minor": amount_minor, "currency": order.currency, "entry_id": entry_id},
        now=now,
    )
