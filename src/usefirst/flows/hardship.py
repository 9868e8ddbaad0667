"""Hardship: a shopper who cannot pay asks for relief on an order (through the platform), or an
operator opens the request for them (console). From that moment the order's late fees, dunning
reminders, escalation (call queue, bureau report, legal referral, charge-off) and auto-debit
charges hold. An operator answers within ``hardship_answer_days`` (default 21) with

- a **plan**: what the order still owes (principal, plan fees and late fees already charged) is
  re-spread over up to ``hardship_plan_max_months`` monthly instalments, fee-free (nothing is
  added, and no late fee accrues while it runs), and the shopper is told the plan by push, SMS
  and e-mail; the bureau file reports the account with the
  Metro 2 special comment AC (paying under a partial payment agreement);
- a **settlement for less**: the shopper pays the amount offered, before the offer lapses, and
  the rest is written off as a loss (``hardship_write_off``: write-off expense against the
  shopper's receivable); the bureau file reports the account paid (13) with the special comment
  AU (paid in full for less than the full balance);
- or a **refusal**: the hold ends and dunning resumes where it stood.

The daily sweep's hardship step tells operators about requests past their answer deadline, lapses
settlement offers not taken up, completes plans whose order is repaid, and for a plan payment
missed tells the shopper (``hardship.plan_payment_missed``, and a notice by push, SMS and e-mail
in their language under the contact policy) and ends the plan
``hardship_plan_notice_days`` later if it is still unpaid (``hardship.ended``, outcome broken):
the hold lifts and the plan's unpaid instalments are dunned as any overdue instalment.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy.orm import Session

from usefirst.collections import service as collections_service
from usefirst.collections.models import HardshipRequest
from usefirst.credit import service as credit_service
from usefirst.flows import payments
from usefirst.kit.business_day import DailyContext
from usefirst.kit.errors import Conflict, ValidationFailed
from usefirst.kit.settings import Settings
from usefirst.ledger import accounts
from usefirst.ledger.accounts import EntryKind
from usefirst.ledger.service import post_transfer
from usefirst.notify.service import publish_event
from usefirst.orders import service as order_service
from usefirst.orders.models import Order
from usefirst.repayment import service as repayment_service

HARDSHIP_JOB = "usefirst.flows.hardship:enforce_hardship"
Decision = Literal["plan", "settlement", "declined"]


class HardshipOrderNotOpen(Conflict):
    code = "hardship_order_not_open"
    default_message = "Hardship relief is for a delivered or overdue order that still owes money."


class SettlementAmountMismatch(Conflict):
    code = "settlement_amount_mismatch"
    default_message = "The amount is not the settlement offered."


def _order_owing(session: Session, *, order_id: str) -> tuple[Order, int]:
    order = order_service.find_order(session, order_id=order_id)
    if order.status not in ("delivered", "overdue"):
        raise HardshipOrderNotOpen()
    owed = repayment_service.owed_on_order(
        session, shopper_id=order.shopper_id, order_id=order.id
    ).total_minor
    if owed <= 0:
        raise HardshipOrderNotOpen()
    return order, owed


def _publish(
    session: Session,
    request: HardshipRequest,
    *,
    event_type: str,
    settings: Settings,
    now: datetime,
    **extra: Any,
) -> None:
    publish_event(
        session,
        event_type=event_type,
        data={**collections_service.hardship_view(request), **extra},
        now=now,
        settings=settings,
        shopper_id=request.shopper_id,
    )


def request_hardship(
    session: Session,
    *,
    order_id: str,
    opened_by: Literal["shopper", "operator"],
    reason: str,
    operator_id: str | None,
    settings: Settings,
    today: date,
    now: datetime,
) -> dict[str, Any]:
    """Open a hardship request on the order: its dunning holds at once (``hardship.requested``),
    an answer is due within ``hardship_answer_days``."""
    order, owed = _order_owing(session, order_id=order_id)
    credit_service.lock_credit_line(session, shopper_id=order.shopper_id)
    request = collections_service.open_hardship(
        session,
        order=order,
        opened_by=opened_by,
        reason=reason,
        owed_minor=owed,
        operator_id=operator_id,
        answer_days=settings.hardship_answer_days,
        today=today,
        now=now,
    )
    _publish(session, request, event_type="hardship.requested", settings=settings, now=now)
    return collections_service.hardship_view(request)


def decide(
    session: Session,
    *,
    request_id: str,
    decision: Decision,
    plan_months: int | None,
    settlement_minor: int | None,
    note: str | None,
    operator_id: str | None,
    settings: Settings,
    today: date,
    now: datetime,
) -> dict[str, Any]:
    """An operator's answer to an open request (``hardship.decided``). A plan re-spreads what
    the order owes over ``plan_months`` months from today; a settlement offers to close the
    order for ``settlement_minor`` (less than it owes) until ``hardship_settlement_valid_days``
    from today; a refusal lifts the hold."""
    found = collections_service.find_hardship(session, request_id=request_id)
    credit_service.lock_credit_line(session, shopper_id=found.shopper_id)
    request = collections_service.find_hardship(session, request_id=request_id, for_update=True)
    if request.status != "open":
        raise collections_service.HardshipNotOpen()
    owed = repayment_service.owed_on_order(
        session, shopper_id=request.shopper_id, order_id=request.order_id
    ).total_minor
    max_months = settings.hardship_plan_max_months
    if decision == "plan" and (plan_months is None or not 1 <= plan_months <= max_months):
        raise ValidationFailed(
            f"plan_months must be between 1 and {max_months}.", field="plan_months"
        )
    if decision == "settlement" and (settlement_minor is None or not 0 < settlement_minor < owed):
        raise ValidationFailed(
            f"settlement_minor must be more than 0 and less than the {owed} the order owes.",
            field="settlement_minor",
        )
    collections_service.decide_hardship(
        request,
        decision=decision,
        operator_id=operator_id,
        note=note,
        plan_months=plan_months if decision == "plan" else None,
        settlement_minor=settlement_minor if decision == "settlement" else None,
        settlement_valid_until_on=today + timedelta(days=settings.hardship_settlement_valid_days)
        if decision == "settlement"
        else None,
        today=today,
        now=now,
    )
    plan: list[dict[str, Any]] = []
    if decision == "plan":
        assert plan_months is not None
        rows = repayment_service.reschedule_for_hardship(
            session,
            shopper_id=request.shopper_id,
            order_id=request.order_id,
            months=plan_months,
            today=today,
            now=now,
        )
        plan = [
            {"seq": row.seq, "due_on": row.due_on, "amount_minor": row.remaining_minor}
            for row in rows
        ]
        request.plan_instalment_minor = rows[0].remaining_minor
        collections_service.queue_notice(
            session,
            step=collections_service.HARDSHIP_NOTICE_STEP,
            shopper_id=request.shopper_id,
            order_id=request.order_id,
            seq=rows[0].seq,
            template="hardship_plan_agreed",
            now=now,
        )
        # Nothing of the order is overdue any more: it is delivered again. The shopper's credit
        # stays frozen while the plan runs (payments.refresh_freeze).
        payments.follow_schedules(
            session,
            shopper_id=request.shopper_id,
            order_ids=[request.order_id],
            settings=settings,
            now=now,
        )
    else:
        _tell_decision(session, request, now=now)
        if decision == "declined":
            payments.refresh_freeze(session, shopper_id=request.shopper_id, now=now)
    _publish(session, request, event_type="hardship.decided", settings=settings, now=now, plan=plan)
    return {**collections_service.hardship_view(request), "plan": plan}


def _tell_decision(session: Session, request: HardshipRequest, *, now: datetime) -> None:
    """Tell the shopper a settlement offered (the amount and the last day to pay it) or a
    refusal (the next payment due under the agreement, and its date), facts fixed now."""
    rows = repayment_service.instalments_of(
        session, shopper_id=request.shopper_id, order_id=request.order_id
    )
    due = sorted(
        (row for row in rows if row.due_on is not None and row.remaining_minor > 0),
        key=lambda row: (row.due_on, row.seq),
    )
    if not due:
        return
    first = due[0]
    assert first.due_on is not None
    if request.status == "offered":
        assert request.settlement_minor is not None
        assert request.settlement_valid_until_on is not None
        template = "hardship_settlement_offered"
        facts = {
            "amount_due_minor": request.settlement_minor,
            "due_on": request.settlement_valid_until_on.isoformat(),
        }
    else:
        template = "hardship_declined"
        facts = {"amount_due_minor": first.remaining_minor, "due_on": first.due_on.isoformat()}
    collections_service.queue_notice(
        session,
        step=collections_service.HARDSHIP_NOTICE_STEP,
        shopper_id=request.shopper_id,
        order_id=request.order_id,
        seq=first.seq,
        template=template,
        now=now,
        facts=facts,
    )


def pay_settlement(
    session: Session,
    *,
    request_id: str,
    amount_minor: int,
    method: str,
    external_ref: str | None,
    settings: Settings,
    today: date,
    now: datetime,
) -> dict[str, Any]:
    """The shopper pays the settlement offered: the payment goes through the waterfall, what the
    order still owes after it is forgiven and written off as a loss, the order is repaid (never
    "on time": it grows no limit), and the hold ends (``hardship.ended``, outcome settled)."""
    found = collections_service.find_hardship(session, request_id=request_id)
    credit_service.lock_credit_line(session, shopper_id=found.shopper_id)
    request = collections_service.find_hardship(session, request_id=request_id, for_update=True)
    if request.status != "offered" or request.settlement_minor is None:
        raise collections_service.HardshipNoOffer()
    if amount_minor != request.settlement_minor:
        raise SettlementAmountMismatch(
            f"The settlement offered is {request.settlement_minor}.", field="amount_minor"
        )
    outcome = payments.pay_order_in_full(
        session,
        order=order_service.find_order(session, order_id=request.order_id),
        amount_minor=amount_minor,
        method=method,
        external_ref=external_ref,
        today=today,
        settings=settings,
        now=now,
    )
    forgiven = repayment_service.forgive_rest(
        session,
        shopper_id=request.shopper_id,
        order_id=request.order_id,
        today=today,
        now=now,
    )
    credit_service.release(
        session, shopper_id=request.shopper_id, amount_minor=forgiven.principal_minor
    )
    post_transfer(
        session,
        kind=EntryKind.HARDSHIP_WRITE_OFF,
        debit=accounts.WRITE_OFF_EXPENSE,
        credit=accounts.shopper_receivable(request.shopper_id),
        amount_minor=forgiven.total_minor,
        currency=request.currency,
        now=now,
        shopper_id=request.shopper_id,
        order_id=request.order_id,
        memo="the rest of a hardship settlement for less, written off",
    )
    request.written_off_minor = forgiven.total_minor
    # The receipt tells what the order owes once the rest is forgiven: nothing.
    outcome.left_by_order[request.order_id] = 0
    payments.publish_reported_receipt(session, outcome, settings=settings, now=now)
    collections_service.end_hardship(request, status="settled", today=today, now=now)
    payments.follow_schedules(
        session,
        shopper_id=request.shopper_id,
        order_ids=[request.order_id],
        settings=settings,
        now=now,
    )
    _publish(session, request, event_type="hardship.ended", settings=settings, now=now)
    return {
        **collections_service.hardship_view(request),
        "payment_id": outcome.payment.id,
        "order_status": order_service.find_order(session, order_id=request.order_id).status,
    }


def hardships_of_order(session: Session, *, order_id: str) -> list[dict[str, Any]]:
    order = order_service.find_order(session, order_id=order_id)
    return [
        collections_service.hardship_view(request)
        for request in collections_service.hardships_of_order(
            session, shopper_id=order.shopper_id, order_id=order.id
        )
    ]


# --- the daily sweep's step ------------------------------------------------------------------


def enforce_hardship(session: Session, context: DailyContext) -> dict[str, int]:
    """The hardship step of the nightly run of ``context.business_on`` (before overdue and late
    fees, so a plan broken today is dunned from today): answers overdue flagged, lapsed offers
    ended, kept plans completed, missed plan payments noticed, and plans whose notice ran out
    ended as broken."""
    today, now, settings = context.business_on, context.now, context.settings
    counts = {
        "answers_overdue": 0,
        "offers_lapsed": 0,
        "plans_completed": 0,
        "plan_payments_missed": 0,
        "plans_broken": 0,
    }
    for request in collections_service.holding_hardships(session):
        if request.status == "open":
            if request.answer_due_on < today and request.answer_overdue_on is None:
                request.answer_overdue_on = today
                request.updated_at = now
                _publish(
                    session,
                    request,
                    event_type="hardship.answer_overdue",
                    settings=settings,
                    now=now,
                )
                counts["answers_overdue"] += 1
        elif request.status == "offered":
            valid_until = request.settlement_valid_until_on
            if valid_until is not None and valid_until < today:
                _end(session, request, status="lapsed", context=context)
                counts["offers_lapsed"] += 1
        elif request.status == "plan":
            moved = _follow_plan(session, request, context=context)
            if moved is not None:
                counts[moved] += 1
    return counts


def _end(session: Session, request: HardshipRequest, *, status: str, context: DailyContext) -> None:
    credit_service.lock_credit_line(session, shopper_id=request.shopper_id)
    collections_service.end_hardship(
        request, status=status, today=context.business_on, now=context.now
    )
    payments.refresh_freeze(session, shopper_id=request.shopper_id, now=context.now)
    _publish(
        session, request, event_type="hardship.ended", settings=context.settings, now=context.now
    )


def _follow_plan(
    session: Session, request: HardshipRequest, *, context: DailyContext
) -> str | None:
    """Where a running plan stands today; returns the count it adds to (None: unchanged)."""
    today, now = context.business_on, context.now
    rows = repayment_service.instalments_of(
        session, shopper_id=request.shopper_id, order_id=request.order_id
    )
    if all(row.status in repayment_service.CLOSED_STATUSES for row in rows):
        _end(session, request, status="completed", context=context)
        return "plans_completed"
    missed = [
        row
        for row in rows
        if row.status in ("pending", "overdue")
        and row.due_on is not None
        and row.due_on < today
        and row.remaining_minor > 0
    ]
    if not missed:
        if request.missed_notice_on is not None:  # caught up: a later miss is noticed afresh
            request.missed_notice_on = None
            request.updated_at = now
        return None
    if request.missed_notice_on is None:
        request.missed_notice_on = today
        request.updated_at = now
        collections_service.queue_notice(
            session,
            step=collections_service.HARDSHIP_NOTICE_STEP,
            shopper_id=request.shopper_id,
            order_id=request.order_id,
            seq=missed[0].seq,
            template="hardship_plan_missed",
            now=now,
        )
        ends_on = today + timedelta(days=context.settings.hardship_plan_notice_days)
        _publish(
            session,
            request,
            event_type="hardship.plan_payment_missed",
            settings=context.settings,
            now=now,
            missed_minor=sum(row.remaining_minor for row in missed),
            plan_ends_on=ends_on,
        )
        return "plan_payments_missed"
    if (
        request.missed_notice_on + timedelta(days=context.settings.hardship_plan_notice_days)
        <= today
    ):
        _end(session, request, status="broken", context=context)
        return "plans_broken"
    return None
