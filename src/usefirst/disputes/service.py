"""Disputes: a shopper (through the platform) or a merchant contests an order, both sides give
evidence, an operator decides, and the money follows the decision.

States: ``open`` (filed; the opener adds its evidence) → ``awaiting_evidence`` (the opener's
evidence is in; the respondent is asked) → ``under_review`` (the respondent answered; an operator
decides) → ``resolved``. The respondent is the other side: the merchant for a shopper's dispute,
the shopper for a merchant's. Deadlines count from filing: the respondent answers by
``respond_by``, the operator decides by ``decide_by``. The daily sweep settles a dispute whose
deadline passed in the opener's favour: a respondent who did not answer loses, and a claim the
platform failed to rule on in time stands (see ``deadline_decision``).

While a dispute is unresolved the order's settlement to the merchant is held. A shopper's
dispute also pauses dunning: reminders and late fees stop, days past due stop counting and the
bureau file carries the dispute code. A merchant's dispute does not pause dunning.

Money: ``for_shopper`` refunds what is left of the order and ``split`` part of it, through the
orders refund path (it reduces what the shopper owes first, then returns what was paid, waives
fees on refunded instalments and releases credit); either way the merchant's payable is debited
for it, so the merchant bears the refund and, if it was already paid out, the next payout nets it.
``for_merchant`` moves no money: the debt stands and dunning resumes.

This module does the dispute's own work; ``usefirst.flows.dispute_resolution`` files, decides and
settles a dispute with the other domains (the order, its refund, the settlement hold, events).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from usefirst.disputes.errors import (
    DisputeAlreadyDecided,
    DisputeAlreadyOpen,
    DisputeClosed,
    DisputeNotAllowed,
    RespondentDeadlinePassed,
)
from usefirst.disputes.models import (
    Dispute,
    DisputeAction,
    DisputedOrder,
    DisputeEvidence,
    DisputePauseClosure,
)
from usefirst.disputes.repository import (
    AWAITING_RESPONDENT_STATUSES,
    UNRESOLVED_STATUSES,
    DisputeRepository,
)
from usefirst.disputes.storage import CheckedFile, EvidenceStore
from usefirst.kit.errors import NotFound, PermissionDenied, ValidationFailed
from usefirst.kit.ids import new_id
from usefirst.kit.settings import Settings
from usefirst.orders.models import Order
from usefirst.repayment.repository import RepaymentRepository

OPENERS = ("merchant", "shopper")
REASONS_BY_OPENER = {
    "merchant": ("unpaid", "suspected_cash_out"),
    "shopper": ("not_received", "not_as_described", "unauthorized"),
}
# Order statuses each reason can be raised from: a shopper contests goods once they are on their
# way (before that, the order can simply be cancelled); "unpaid" needs a debt running.
DISPUTABLE_STATUSES = {
    "not_received": ("shipped", "delivered", "overdue", "repaid"),
    "not_as_described": ("shipped", "delivered", "overdue", "repaid"),
    "unauthorized": ("shipped", "delivered", "overdue", "repaid"),
    "unpaid": ("delivered", "overdue"),
    "suspected_cash_out": ("shipped", "delivered", "overdue", "repaid"),
}
OUTCOMES = ("for_shopper", "for_merchant", "split")
SIDES = ("merchant", "shopper", "operator")
MAX_DESCRIPTION_CHARACTERS = 4000
MAX_NOTE_CHARACTERS = 2000
SYSTEM = "system"


@dataclass(frozen=True)
class Caller:
    """Who acts on a dispute: the shopper's side (the platform), one merchant, or an operator."""

    side: str  # shopper | merchant | operator
    actor_id: str  # the API key or operator id
    merchant_id: str | None = None  # set for a merchant: it sees only its own orders


def respondent_of(dispute: Dispute) -> str:
    return "merchant" if dispute.opened_by == "shopper" else "shopper"


def default_outcome(dispute: Dispute) -> str:
    """The opener's win: what a missed deadline (respondent's or operator's) leads to."""
    return "for_shopper" if dispute.opened_by == "shopper" else "for_merchant"


# --- filing ------------------------------------------------------------------------------------


def check_filing(*, opened_by: str, reason: str, description: str, caller: Caller) -> str:
    """Refuse a filing that is malformed or made by the wrong side; the description, trimmed."""
    if opened_by not in OPENERS:
        raise ValidationFailed("opened_by must be merchant or shopper.", field="opened_by")
    if caller.side != opened_by:
        raise PermissionDenied(
            "A platform key files disputes for shoppers, a merchant key for its merchant.",
            field="opened_by",
        )
    if reason not in REASONS_BY_OPENER[opened_by]:
        raise ValidationFailed(
            f"A {opened_by} disputes for one of: {', '.join(REASONS_BY_OPENER[opened_by])}.",
            field="reason",
        )
    description = description.strip()
    if not 1 <= len(description) <= MAX_DESCRIPTION_CHARACTERS:
        raise ValidationFailed(
            f"description must have 1 to {MAX_DESCRIPTION_CHARACTERS} characters.",
            field="description",
        )
    return description


def file_dispute(
    session: Session,
    *,
    order: Order,
    opened_by: str,
    reason: str,
    description: str,
    caller: Caller,
    settings: Settings,
    now: datetime,
) -> Dispute:
    """The dispute on ``order``, filed (``check_filing`` passed): one unresolved per order, one
    per side and order."""
    if order.status not in DISPUTABLE_STATUSES[reason]:
        raise DisputeNotAllowed(
            f"An order that is {order.status} cannot be disputed as {reason}; allowed from: "
            f"{', '.join(DISPUTABLE_STATUSES[reason])}.",
            field="order_id",
        )
    disputed_minor = order.amount_minor - order.refunded_minor
    if disputed_minor <= 0:
        raise DisputeNotAllowed("The order is refunded in full.", field="order_id")
    repository = DisputeRepository(session)
    if repository.unresolved_of_order(order.shopper_id, order.id) is not None:
        raise DisputeAlreadyOpen(field="order_id")
    # One dispute per side and order: a decided dispute is not re-filed to pause dunning again.
    if repository.was_filed_by(order.shopper_id, order.id, opened_by):
        raise DisputeAlreadyDecided(field="order_id")
    dispute = Dispute(
        shopper_id=order.shopper_id,
        id=new_id("dispute"),
        order_id=order.id,
        open_order_id=order.id,
        merchant_id=order.merchant_id,
        currency=order.currency,
        opened_by=opened_by,
        reason=reason,
        description=description,
        status="open",
        is_pausing_collections=opened_by == "shopper",
        disputed_minor=disputed_minor,
        respond_by=now + timedelta(days=settings.dispute_respond_days),
        decide_by=now + timedelta(days=settings.dispute_decide_days),
        opened_at=now,
        shopper_refund_minor=0,
        updated_at=now,
    )
    try:
        # A concurrent filing on the same order loses here, on the one-unresolved-per-order key.
        with session.begin_nested():
            repository.add(dispute)
            session.flush()
    except IntegrityError:
        raise DisputeAlreadyOpen(field="order_id") from None
    _log(
        session,
        dispute,
        action="opened",
        actor=opened_by,
        actor_id=caller.actor_id,
        detail=f"{reason}; {disputed_minor} {dispute.currency} disputed",
        now=now,
    )
    return dispute


# --- reading -----------------------------------------------------------------------------------


def find_dispute(session: Session, *, dispute_id: str, merchant_id: str | None) -> Dispute:
    """The dispute, or 404; a merchant sees only disputes on its own orders."""
    dispute = DisputeRepository(session).find(dispute_id)
    if dispute is None or (merchant_id is not None and dispute.merchant_id != merchant_id):
        raise NotFound("No such dispute.")
    return dispute


def list_disputes(
    session: Session,
    *,
    merchant_id: str | None,
    status: str | None,
    starting_after: str | None,
    limit: int,
) -> list[Dispute]:
    if status is not None and status not in (*UNRESOLVED_STATUSES, "resolved"):
        raise ValidationFailed(
            "status must be open, awaiting_evidence, under_review or resolved.", field="status"
        )
    return DisputeRepository(session).page(
        merchant_id=merchant_id, status=status, starting_after=starting_after, limit=limit
    )


def evidence_file(
    session: Session,
    *,
    dispute_id: str,
    evidence_id: str,
    merchant_id: str | None,
    store: EvidenceStore,
) -> tuple[DisputeEvidence, bytes]:
    """An evidence file's record and bytes, the bytes checked against the recorded SHA-256."""
    dispute = find_dispute(session, dispute_id=dispute_id, merchant_id=merchant_id)
    row = DisputeRepository(session).evidence(dispute.shopper_id, dispute.id, evidence_id)
    if row is None:
        raise NotFound("No such evidence on this dispute.")
    return row, store.read(row.sha256)


# --- evidence ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvidenceOutcome:
    dispute: Dispute
    evidence: DisputeEvidence
    is_new: bool


def add_evidence(
    session: Session,
    *,
    dispute_id: str,
    checked: CheckedFile,
    caller: Caller,
    store: EvidenceStore,
    now: datetime,
) -> EvidenceOutcome:
    """Attach a checked file to an unresolved dispute. The same bytes sent again to the same
    dispute return the evidence already recorded and store nothing new (safe retries).

    The opener's first file moves an ``open`` dispute to ``awaiting_evidence``; the respondent's
    first file moves it to ``under_review`` and must come by ``respond_by``."""
    if caller.side not in SIDES:
        raise PermissionDenied()
    found = find_dispute(session, dispute_id=dispute_id, merchant_id=caller.merchant_id)
    repository = DisputeRepository(session)
    dispute = repository.lock(found.shopper_id, found.id)
    if dispute is None:
        raise NotFound("No such dispute.")
    if dispute.status == "resolved":
        raise DisputeClosed()
    is_first_answer = (
        caller.side == respondent_of(dispute) and dispute.status in AWAITING_RESPONDENT_STATUSES
    )
    if is_first_answer and now > dispute.respond_by:
        # Else an answer between the deadline and the next sweep would escape the default.
        raise RespondentDeadlinePassed(
            f"The {caller.side} had to answer by {dispute.respond_by.isoformat()}."
        )
    existing = repository.evidence_with_hash(dispute.shopper_id, dispute.id, checked.sha256)
    if existing is not None:
        return EvidenceOutcome(dispute=dispute, evidence=existing, is_new=False)
    evidence = DisputeEvidence(
        shopper_id=dispute.shopper_id,
        id=new_id("dispute_evidence"),
        dispute_id=dispute.id,
        submitted_by=caller.side,
        submitter_id=caller.actor_id,
        content_type=checked.content_type,
        size_bytes=checked.size_bytes,
        sha256=checked.sha256,
        filename=checked.filename,
        created_at=now,
    )
    repository.add(evidence)
    if caller.side == dispute.opened_by and dispute.status == "open":
        dispute.status = "awaiting_evidence"
    elif is_first_answer:
        dispute.status = "under_review"
        dispute.responded_at = now
    dispute.updated_at = now
    session.flush()
    _log(
        session,
        dispute,
        action="evidence_added",
        actor=caller.side,
        actor_id=caller.actor_id,
        detail=f"{evidence.id} {checked.content_type} {checked.size_bytes} bytes "
        f"sha256 {checked.sha256}",
        now=now,
    )
    # Bytes last: a failure before this point stores nothing; a failure after it (the commit)
    # leaves at most an unreferenced content-addressed file, never a row without its file.
    store.save(checked)
    return EvidenceOutcome(dispute=dispute, evidence=evidence, is_new=True)


# --- decision ----------------------------------------------------------------------------------


def check_decision(*, outcome: str, shopper_refund_minor: int | None, note: str) -> str:
    """Refuse a malformed decision; the note, trimmed."""
    if outcome not in OUTCOMES:
        raise ValidationFailed(
            "outcome must be for_shopper, for_merchant or split.", field="outcome"
        )
    if outcome == "split":
        if shopper_refund_minor is None or shopper_refund_minor <= 0:
            raise ValidationFailed(
                "A split needs a positive shopper_refund_minor.", field="shopper_refund_minor"
            )
    elif shopper_refund_minor is not None:
        raise ValidationFailed(
            f"shopper_refund_minor is only for a split; {outcome} decides the amount itself.",
            field="shopper_refund_minor",
        )
    note = note.strip()
    if not 1 <= len(note) <= MAX_NOTE_CHARACTERS:
        raise ValidationFailed(
            f"note must have 1 to {MAX_NOTE_CHARACTERS} characters.", field="note"
        )
    return note


def lock_unresolved(session: Session, *, dispute_id: str) -> Dispute:
    """The dispute, locked for a decision; 404 if there is none, a conflict if it is decided."""
    found = find_dispute(session, dispute_id=dispute_id, merchant_id=None)
    dispute = DisputeRepository(session).lock(found.shopper_id, found.id)
    if dispute is None:
        raise NotFound("No such dispute.")
    if dispute.status == "resolved":
        raise DisputeClosed()
    return dispute


def refund_amount(order: Order, *, outcome: str, split_minor: int | None) -> int:
    remaining = order.amount_minor - order.refunded_minor
    if outcome == "for_merchant":
        return 0
    if outcome == "for_shopper":
        return remaining
    assert split_minor is not None
    if split_minor >= remaining:
        raise ValidationFailed(
            f"A split refunds less than what is left of the order ({remaining}); "
            "refunding all of it is for_shopper.",
            field="shopper_refund_minor",
        )
    return split_minor


def record_resolution(
    session: Session,
    dispute: Dispute,
    *,
    outcome: str,
    refund_minor: int,
    refund_id: str | None,
    basis: str,
    resolved_by: str,
    actor: str,
    note: str,
    now: datetime,
) -> None:
    """The dispute is resolved (its money has moved and its hold is released)."""
    if refund_id is not None:
        dispute.refund_id = refund_id
    dispute.status = "resolved"
    dispute.open_order_id = None
    dispute.outcome = outcome
    dispute.resolution_basis = basis
    dispute.resolved_by = resolved_by
    dispute.resolution_note = note
    dispute.shopper_refund_minor = refund_minor
    dispute.resolved_at = now
    dispute.updated_at = now
    session.flush()
    _log(
        session,
        dispute,
        action="resolved",
        actor=actor,
        actor_id=None if resolved_by == SYSTEM else resolved_by,
        detail=f"{outcome} ({basis}); refund {refund_minor} {dispute.currency}",
        now=now,
    )


# --- the pause of dunning ------------------------------------------------------------------------


def flag_order(
    session: Session, *, order: Order, is_disputed: bool, on: date, now: datetime
) -> None:
    """Open or close the order's shopper dispute as of the business date ``on`` (idempotent; the
    caller holds the order's lock).

    While a dispute is open the order's days past due stop counting: no late fee, no reminder
    after the due date and no escalation step happens, and the bureau file carries compliance
    code XB. On closing, the past-due days the dispute covered (those of its business dates,
    ``on`` excluded at the start and included at the end, after the order's oldest unpaid
    instalment fell due) are added to ``dispute_paused_days``: days past due = days since due −
    paused days, so dunning resumes where it stopped. The file of the period the dispute closed in
    carries XH. Each closing keeps the pause as it stood before (``DisputePauseClosure``), for
    the bureau file of a month that ended while the dispute was open."""
    repository = DisputeRepository(session)
    pause = repository.pause_of(order.shopper_id, order.id)
    if pause is None:
        if not is_disputed:
            return
        pause = DisputedOrder(
            shopper_id=order.shopper_id,
            order_id=order.id,
            is_disputed=False,
            dispute_paused_days=0,
            updated_at=now,
        )
        repository.add(pause)
    if pause.is_disputed == is_disputed:
        return
    if is_disputed:
        pause.disputed_since_on = on
    else:
        repository.add(
            DisputePauseClosure(
                shopper_id=pause.shopper_id,
                id=new_id("pause_closure"),
                order_id=pause.order_id,
                closed_at=now,
                disputed_since_on_before=pause.disputed_since_on,
                dispute_paused_days_before=pause.dispute_paused_days,
                dispute_resolved_on_before=pause.dispute_resolved_on,
            )
        )
        opened_on = pause.disputed_since_on or on
        unpaid_due_ons = [
            row.due_on
            for row in RepaymentRepository(session).instalments_of_order(order.shopper_id, order.id)
            if row.due_on is not None and row.due_on < on and row.remaining_minor > 0
        ]
        if unpaid_due_ons:
            paused_from = max(opened_on, min(unpaid_due_ons))
            pause.dispute_paused_days += max((on - paused_from).days, 0)
        pause.disputed_since_on = None
        pause.dispute_resolved_on = on
    pause.is_disputed = is_disputed
    pause.updated_at = now
    session.flush()


def pause_of(session: Session, *, shopper_id: str, order_id: str) -> DisputedOrder | None:
    """How the shopper's disputes paused the order's dunning; None if it never disputed it."""
    return DisputeRepository(session).pause_of(shopper_id, order_id)


# --- deadlines (daily sweep) -------------------------------------------------------------------


@dataclass(frozen=True)
class DefaultDecision:
    """A dispute whose deadline passed, settled in its opener's favour (see
    ``deadline_decision``)."""

    dispute: Dispute
    outcome: str
    basis: str  # respondent_missed_deadline | decision_deadline_missed
    note: str


def past_deadline(session: Session, *, now: datetime) -> list[tuple[str, str]]:
    """(shopper_id, dispute_id) of the unresolved disputes with a deadline before ``now``."""
    return DisputeRepository(session).past_deadline(now=now)


def deadline_decision(
    session: Session, *, shopper_id: str, dispute_id: str, now: datetime
) -> DefaultDecision | None:
    """The dispute, locked, and how its passed deadline settles it, in the opener's favour:

    - The respondent gave no evidence by ``respond_by``: it loses by default.
    - No operator decided by ``decide_by``: the claim stands as filed. For a shopper's dispute
      that refunds the shopper (the shopper must not stay in limbo, with dunning paused, because
      the platform did not rule); for a merchant's dispute the debt stands and dunning goes on,
      which is where it was anyway.

    None when it is resolved meanwhile or no deadline of its passed."""
    dispute = DisputeRepository(session).lock(shopper_id, dispute_id)
    if dispute is None or dispute.status == "resolved":
        return None
    if dispute.status in AWAITING_RESPONDENT_STATUSES and dispute.respond_by <= now:
        basis = "respondent_missed_deadline"
        note = (
            f"The {respondent_of(dispute)} gave no evidence by "
            f"{dispute.respond_by.isoformat()}; it loses by default."
        )
    elif dispute.decide_by <= now:
        basis = "decision_deadline_missed"
        note = (
            f"No decision by {dispute.decide_by.isoformat()}; the {dispute.opened_by}'s "
            "claim stands by default."
        )
    else:
        return None
    return DefaultDecision(
        dispute=dispute, outcome=default_outcome(dispute), basis=basis, note=note
    )


# --- views and plumbing ------------------------------------------------------------------------


def evidence_view(row: DisputeEvidence) -> dict[str, Any]:
    return {
        "id": row.id,
        "submitted_by": row.submitted_by,
        "content_type": row.content_type,
        "size_bytes": row.size_bytes,
        "sha256": row.sha256,
        "filename": row.filename,
        "created_at": row.created_at,
    }


def dispute_view(session: Session, dispute: Dispute) -> dict[str, Any]:
    repository = DisputeRepository(session)
    resolution = None
    if dispute.status == "resolved":
        resolution = {
            "outcome": dispute.outcome,
            "basis": dispute.resolution_basis,
            "shopper_refund_minor": dispute.shopper_refund_minor,
            "refund_id": dispute.refund_id,
            "note": dispute.resolution_note,
            "resolved_by": dispute.resolved_by,
            "resolved_at": dispute.resolved_at,
        }
    return {
        "id": dispute.id,
        "order_id": dispute.order_id,
        "shopper_id": dispute.shopper_id,
        "merchant_id": dispute.merchant_id,
        "opened_by": dispute.opened_by,
        "respondent": respondent_of(dispute),
        "reason": dispute.reason,
        "description": dispute.description,
        "status": dispute.status,
        "disputed_minor": dispute.disputed_minor,
        "currency": dispute.currency,
        "pauses_collections": dispute.is_pausing_collections,
        "respond_by": dispute.respond_by,
        "decide_by": dispute.decide_by,
        "opened_at": dispute.opened_at,
        "responded_at": dispute.responded_at,
        "resolution": resolution,
        "evidence": [
            evidence_view(row) for row in repository.evidence_of(dispute.shopper_id, dispute.id)
        ],
        "history": [
            {
                "seq": row.seq,
                "action": row.action,
                "actor": row.actor,
                "status": row.status_after,
                "detail": row.detail,
                "at": row.created_at,
            }
            for row in repository.actions_of(dispute.shopper_id, dispute.id)
        ],
    }


def hold_source(dispute: Dispute) -> str:
    """The source of the settlement hold the dispute puts on its order."""
    return f"dispute:{dispute.id}"


def _log(
    session: Session,
    dispute: Dispute,
    *,
    action: str,
    actor: str,
    actor_id: str | None,
    detail: str,
    now: datetime,
) -> None:
    repository = DisputeRepository(session)
    repository.add(
        DisputeAction(
            shopper_id=dispute.shopper_id,
            dispute_id=dispute.id,
            seq=repository.next_action_seq(dispute.shopper_id, dispute.id),
            action=action,
            actor=actor,
            actor_id=actor_id,
            status_after=dispute.status,
            detail=detail[:500],
            created_at=now,
        )
    )
    session.flush()
