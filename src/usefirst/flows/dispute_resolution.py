"""Disputes across domains: filing one (the order looked up, dunning paused, the merchant's
settlement of the order held), adding evidence, an operator's decision and the daily sweep's
default decisions when a deadline passed (the refund through the orders refund path, dunning
resumed, the hold released). Each step announces the dispute (``dispute.updated``)."""

from __future__ import annotations

import logging
from datetime import date, datetime

from sqlalchemy.orm import Session

from usefirst.disputes import service as dispute_service
from usefirst.disputes.models import Dispute
from usefirst.disputes.storage import CheckedFile, EvidenceStore
from usefirst.flows import refunds
from usefirst.kit.business_day import DailyContext
from usefirst.kit.clock import business_date
from usefirst.kit.settings import Settings
from usefirst.merchants import settlement
from usefirst.notify.service import publish_event
from usefirst.orders import service as order_service
from usefirst.orders.models import Order

logger = logging.getLogger(__name__)


def open_dispute(
    session: Session,
    *,
    order_id: str,
    opened_by: str,
    reason: str,
    description: str,
    caller: dispute_service.Caller,
    settings: Settings,
    now: datetime,
) -> Dispute:
    description = dispute_service.check_filing(
        opened_by=opened_by, reason=reason, description=description, caller=caller
    )
    order = order_service.find_order(session, order_id=order_id, merchant_id=caller.merchant_id)
    dispute = dispute_service.file_dispute(
        session,
        order=order,
        opened_by=opened_by,
        reason=reason,
        description=description,
        caller=caller,
        settings=settings,
        now=now,
    )
    if dispute.is_pausing_collections:
        set_dispute_flag(session, order_id=order.id, is_disputed=True, settings=settings, now=now)
    settlement.hold_order_settlement(
        session,
        merchant_id=order.merchant_id,
        order_id=order.id,
        source=dispute_service.hold_source(dispute),
        reason=f"dispute {reason}",
        now=now,
    )
    _announce(session, dispute, settings=settings, now=now)
    return dispute


def add_evidence(
    session: Session,
    *,
    dispute_id: str,
    checked: CheckedFile,
    caller: dispute_service.Caller,
    store: EvidenceStore,
    settings: Settings,
    now: datetime,
) -> dispute_service.EvidenceOutcome:
    """Attach a checked file (see ``disputes.service.add_evidence``); new evidence is announced,
    the same bytes sent again are not."""
    outcome = dispute_service.add_evidence(
        session, dispute_id=dispute_id, checked=checked, caller=caller, store=store, now=now
    )
    if outcome.is_new:
        _announce(session, outcome.dispute, settings=settings, now=now)
    return outcome


def resolve(
    session: Session,
    *,
    dispute_id: str,
    outcome: str,
    shopper_refund_minor: int | None,
    note: str,
    operator_id: str,
    today: date,
    settings: Settings,
    now: datetime,
) -> Dispute:
    """An operator decides. Money moves in the same transaction (see ``disputes.service``)."""
    note = dispute_service.check_decision(
        outcome=outcome, shopper_refund_minor=shopper_refund_minor, note=note
    )
    dispute = dispute_service.lock_unresolved(session, dispute_id=dispute_id)
    order = order_service.find_order(session, order_id=dispute.order_id)
    refund_minor = dispute_service.refund_amount(
        order, outcome=outcome, split_minor=shopper_refund_minor
    )
    _settle(
        session,
        dispute,
        order=order,
        outcome=outcome,
        refund_minor=refund_minor,
        basis="decision",
        resolved_by=operator_id,
        actor="operator",
        note=note,
        today=today,
        settings=settings,
        now=now,
    )
    return dispute


def enforce_deadlines(session: Session, context: DailyContext) -> dict[str, int]:
    """The daily sweep's first job: settle disputes whose deadline passed before the day began,
    in the opener's favour (see ``disputes.service.deadline_decision``), so that one settled
    today resumes (or never pauses) dunning before that day's late fees and reminders.

    Both kinds of default are logged (warning) and recorded on the dispute with their basis, so
    operators can see every decision the system took for them. A dispute whose refund cannot be
    made any more (say the order was charged off meanwhile) is left for an operator and counted
    as blocked. Idempotent: a settled dispute is no longer unresolved."""
    counts = {"respondent_deadline_missed": 0, "decision_deadline_missed": 0, "blocked": 0}
    now = context.now
    for shopper_id, dispute_id in dispute_service.past_deadline(session, now=now):
        decision = dispute_service.deadline_decision(
            session, shopper_id=shopper_id, dispute_id=dispute_id, now=now
        )
        if decision is None:
            continue
        dispute = decision.dispute
        order = order_service.find_order(session, order_id=dispute.order_id)
        refund_minor = dispute_service.refund_amount(
            order, outcome=decision.outcome, split_minor=None
        )
        if refund_minor > 0 and order.status not in order_service.REFUNDABLE_STATUSES:
            counts["blocked"] += 1
            logger.warning(
                "dispute %s: %s, but order %s is %s and cannot be refunded; left for an operator",
                dispute.id,
                decision.basis,
                order.id,
                order.status,
            )
            continue
        logger.warning(
            "dispute %s resolved %s by default on %s: %s",
            dispute.id,
            decision.outcome,
            context.business_on,
            decision.basis,
        )
        _settle(
            session,
            dispute,
            order=order,
            outcome=decision.outcome,
            refund_minor=refund_minor,
            basis=decision.basis,
            resolved_by=dispute_service.SYSTEM,
            actor=dispute_service.SYSTEM,
            note=decision.note,
            today=context.business_on,
            settings=context.settings,
            now=now,
        )
        if decision.basis == "respondent_missed_deadline":
            counts["respondent_deadline_missed"] += 1
        else:
            counts["decision_deadline_missed"] += 1
    return counts


def set_dispute_flag(
    session: Session,
    *,
    order_id: str,
    is_disputed: bool,
    settings: Settings,
    now: datetime,
    today: date | None = None,
) -> Order:
    """Open or close the order's shopper dispute, pausing or resuming its dunning (see
    ``disputes.service.flag_order``); idempotent. ``today`` is the business date (default: that
    of ``now``)."""
    on = today if today is not None else business_date(now, settings.time_zone)
    order = order_service.lock_order(session, order_id=order_id)
    dispute_service.flag_order(session, order=order, is_disputed=is_disputed, on=on, now=now)
    return order


def _settle(
    session: Session,
    dispute: Dispute,
    *,
    order: Order,
    outcome: str,
    refund_minor: int,
    basis: str,
    resolved_by: str,
    actor: str,
    note: str,
    today: date,
    settings: Settings,
    now: datetime,
) -> None:
    refund_id = None
    if refund_minor > 0:
        _, refund = refunds.refund(
            session,
            order_id=order.id,
            merchant_id=order.merchant_id,
            amount_minor=refund_minor,
            reason=f"dispute {dispute.id} resolved {outcome}",
            today=today,
            settings=settings,
            now=now,
        )
        refund_id = refund.id
    if dispute.is_pausing_collections:
        set_dispute_flag(
            session, order_id=order.id, is_disputed=False, settings=settings, now=now, today=today
        )
    settlement.release_order_settlement_hold(
        session,
        merchant_id=dispute.merchant_id,
        order_id=dispute.order_id,
        source=dispute_service.hold_source(dispute),
        now=now,
    )
    dispute_service.record_resolution(
        session,
        dispute,
        outcome=outcome,
        refund_minor=refund_minor,
        refund_id=refund_id,
        basis=basis,
        resolved_by=resolved_by,
        actor=actor,
        note=note,
        now=now,
    )
    _announce(session, dispute, settings=settings, now=now)


def _announce(session: Session, dispute: Dispute, *, settings: Settings, now: datetime) -> None:
    view = dispute_service.dispute_view(session, dispute)
    view.pop("history")
    publish_event(
        session,
        event_type="dispute.updated",
        data={"dispute": view},
        now=now,
        settings=settings,
        merchant_id=dispute.merchant_id,
        shopper_id=dispute.shopper_id,
    )
