"""A merchant's risk standing: watch, suspension, ban, fines, and appeals against them.

Standing moves along active → on_watch → suspended → banned and back when a review or an appeal
says so. Suspended and banned merchants take no new pay-later orders (checkout declines them) and
are not paid out (settlement holds everything and keeps their reserve). Every change records who
decided, why, and links to the evidence; a ban is lifted only by granting an appeal.

This module decides and records; posting fines to the ledger and telling the merchant (webhooks)
is the flow ``usefirst.flows.merchant_standing``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from usefirst.kit.errors import Conflict, NotFound, ValidationFailed
from usefirst.kit.ids import new_id
from usefirst.kit.money import check_currency
from usefirst.merchants.models import Merchant, MerchantAppeal, MerchantFine, StandingChange
from usefirst.merchants.repository import StandingRepository
from usefirst.merchants.service import get_merchant, lock_merchant

STATUSES = ("active", "on_watch", "suspended", "banned")
MAX_EVIDENCE_LINKS = 50


class StandingConflict(Conflict):
    code = "standing_conflict"
    default_message = "The merchant's standing does not allow this."


class AppealConflict(Conflict):
    code = "appeal_conflict"
    default_message = "This appeal cannot be filed or decided now."


def _clean_evidence(evidence: list[str]) -> list[str]:
    links = [link.strip() for link in evidence if link.strip()]
    if len(links) > MAX_EVIDENCE_LINKS:
        raise ValidationFailed(f"At most {MAX_EVIDENCE_LINKS} evidence links.", field="evidence")
    for link in links:
        if len(link) > 2048:
            raise ValidationFailed(
                "An evidence link is longer than 2048 characters.", field="evidence"
            )
    return links


def _clean_text(value: str, *, field: str, limit: int) -> str:
    value = value.strip()
    if not 1 <= len(value) <= limit:
        raise ValidationFailed(f"{field} must have 1 to {limit} characters.", field=field)
    return value


def _clean_actor(decided_by: str) -> str:
    return _clean_text(decided_by, field="decided_by", limit=80)


def change_standing(
    session: Session,
    *,
    merchant_id: str,
    status: str,
    reason: str,
    evidence: list[str],
    decided_by: str,
    now: datetime,
    appeal_id: str | None = None,
) -> StandingChange | None:
    """Move a merchant to ``status`` and record the decision; None when it already has it (a
    monitor raising the same concern twice changes nothing). A banned merchant is reinstated only
    through a granted appeal. The webhook is the flow's (``flows.merchant_standing``)."""
    if status not in STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(STATUSES)}.", field="status")
    reason = _clean_text(reason, field="reason", limit=1000)
    links = _clean_evidence(evidence)
    decided_by = _clean_actor(decided_by)
    merchant = lock_merchant(session, merchant_id=merchant_id)
    if merchant.status == status:
        return None
    if merchant.status == "banned" and appeal_id is None:
        raise StandingConflict("A banned merchant is reinstated only by granting its appeal.")
    change = StandingChange(
        merchant_id=merchant.id,
        id=new_id("standing_change"),
        from_status=merchant.status,
        to_status=status,
        reason=reason,
        evidence=links,
        decided_by=decided_by,
        appeal_id=appeal_id,
        created_at=now,
    )
    merchant.status = status
    StandingRepository(session).add(change)
    session.flush()
    return change


def lift_watch(
    session: Session,
    *,
    merchant_id: str,
    placed_for: list[str],
    reason: str,
    decided_by: str,
    now: datetime,
) -> StandingChange | None:
    """Return a merchant on watch to active when its current watch was placed for one of
    ``placed_for`` (cases named in that change's evidence); None otherwise. A later decision, an
    admin's or another case's, is not theirs to undo."""
    merchant = lock_merchant(session, merchant_id=merchant_id)
    changes = StandingRepository(session).changes_of(merchant_id)
    if merchant.status != "on_watch" or not changes:
        return None
    latest = changes[-1]
    placed_by = [link for link in latest.evidence if link in placed_for]
    if latest.to_status != "on_watch" or not placed_by:
        return None
    return change_standing(
        session,
        merchant_id=merchant_id,
        status="active",
        reason=reason,
        evidence=placed_by,
        decided_by=decided_by,
        now=now,
    )


@dataclass(frozen=True)
class FineDecision:
    """A fine checked and about to be posted: the id its ledger entry refers to, and what it is."""

    merchant: Merchant
    fine_id: str
    amount_minor: int
    currency: str
    reason: str
    evidence: list[str]
    decided_by: str


def decide_fine(
    session: Session,
    *,
    merchant_id: str,
    amount_minor: int,
    currency: str,
    reason: str,
    evidence: list[str],
    decided_by: str,
) -> FineDecision:
    """Check a fine (a positive amount, a reason, one evidence link or more); lock its merchant."""
    if isinstance(amount_minor, bool) or amount_minor <= 0:
        raise ValidationFailed("amount_minor must be a positive integer.", field="amount_minor")
    check_currency(currency)
    reason = _clean_text(reason, field="reason", limit=1000)
    links = _clean_evidence(evidence)
    if not links:
        raise ValidationFailed("A fine needs at least one evidence link.", field="evidence")
    decided_by = _clean_actor(decided_by)
    return FineDecision(
        merchant=lock_merchant(session, merchant_id=merchant_id),
        fine_id=new_id("merchant_fine"),
        amount_minor=amount_minor,
        currency=currency,
        reason=reason,
        evidence=links,
        decided_by=decided_by,
    )


def record_fine(
    session: Session, *, decision: FineDecision, entry_id: str, now: datetime
) -> MerchantFine:
    """Record a fine whose ledger entry (debiting the merchant's payable) is ``entry_id``."""
    fine = MerchantFine(
        merchant_id=decision.merchant.id,
        id=decision.fine_id,
        amount_minor=decision.amount_minor,
        currency=decision.currency,
        reason=decision.reason,
        evidence=decision.evidence,
        decided_by=decision.decided_by,
        status="posted",
        entry_id=entry_id,
        reversal_entry_id=None,
        created_at=now,
        reversed_at=None,
    )
    StandingRepository(session).add(fine)
    session.flush()
    return fine


def mark_fine_reversed(fine: MerchantFine, *, entry_id: str, now: datetime) -> None:
    fine.reversal_entry_id = entry_id
    fine.status = "reversed"
    fine.reversed_at = now


def file_appeal(
    session: Session,
    *,
    merchant_id: str,
    subject_id: str,
    grounds: str,
    evidence: list[str],
    filed_by: str,
    now: datetime,
) -> MerchantAppeal:
    """A merchant contests a standing change (the latest one only: an older decision was already
    superseded) or a fine still in force. One open appeal per subject."""
    grounds = _clean_text(grounds, field="grounds", limit=4000)
    links = _clean_evidence(evidence)
    lock_merchant(session, merchant_id=merchant_id)
    repository = StandingRepository(session)
    subject_type: str
    if subject_id.startswith("stc_"):
        change = repository.get_change(merchant_id, subject_id)
        if change is None:
            raise NotFound("No such standing change.")
        changes = repository.changes_of(merchant_id)
        if changes[-1].id != change.id:
            raise AppealConflict("Only the merchant's current standing can be appealed.")
        if change.to_status == "active":
            raise AppealConflict("A return to active standing has nothing to appeal.")
        subject_type = "standing_change"
    elif subject_id.startswith("fin_"):
        fine = repository.get_fine(merchant_id, subject_id)
        if fine is None:
            raise NotFound("No such fine.")
        if fine.status != "posted":
            raise AppealConflict("This fine was already reversed.")
        subject_type = "fine"
    else:
        raise ValidationFailed(
            "subject_id must be a standing change (stc_…) or a fine (fin_…).", field="subject_id"
        )
    if repository.open_appeal_for(merchant_id, subject_id) is not None:
        raise AppealConflict("An appeal against this decision is already open.")
    appeal = MerchantAppeal(
        merchant_id=merchant_id,
        id=new_id("merchant_appeal"),
        subject_type=subject_type,
        subject_id=subject_id,
        grounds=grounds,
        evidence=links,
        status="open",
        filed_by=_clean_actor(filed_by),
        filed_at=now,
        decided_by=None,
        decision_note=None,
        decided_at=None,
    )
    repository.add(appeal)
    session.flush()
    return appeal


@dataclass(frozen=True)
class AppealDecision:
    """An open appeal, locked, with the decision about to be taken on it (checked, trimmed)."""

    appeal: MerchantAppeal
    outcome: str
    note: str
    decided_by: str

    @property
    def restores_standing(self) -> bool:
        return self.outcome == "granted" and self.appeal.subject_type == "standing_change"

    @property
    def reverses_fine(self) -> bool:
        return self.outcome == "granted" and self.appeal.subject_type == "fine"


def take_up_appeal(
    session: Session,
    *,
    merchant_id: str,
    appeal_id: str,
    outcome: str,
    note: str,
    decided_by: str,
) -> AppealDecision:
    """Check a decision on an appeal (granted or denied, with a note) and lock the merchant and
    the appeal, which must still be open."""
    if outcome not in ("granted", "denied"):
        raise ValidationFailed("outcome must be granted or denied.", field="outcome")
    note = _clean_text(note, field="note", limit=2000)
    decided_by = _clean_actor(decided_by)
    lock_merchant(session, merchant_id=merchant_id)
    appeal = StandingRepository(session).get_appeal(merchant_id, appeal_id, for_update=True)
    if appeal is None:
        raise NotFound("No such appeal.")
    if appeal.status != "open":
        raise AppealConflict(f"This appeal was already {appeal.status}.")
    return AppealDecision(appeal=appeal, outcome=outcome, note=note, decided_by=decided_by)


def contested_change(session: Session, *, appeal: MerchantAppeal) -> StandingChange:
    """The standing change an appeal contests, still the merchant's current standing."""
    repository = StandingRepository(session)
    change = repository.get_change(appeal.merchant_id, appeal.subject_id)
    if change is None:
        raise NotFound("No such standing change.")
    if repository.changes_of(appeal.merchant_id)[-1].id != change.id:
        raise AppealConflict(
            "The merchant's standing changed since the appeal was filed; decide anew."
        )
    return change


def contested_fine(session: Session, *, appeal: MerchantAppeal) -> MerchantFine:
    """The fine an appeal contests, locked."""
    fine = StandingRepository(session).get_fine(
        appeal.merchant_id, appeal.subject_id, for_update=True
    )
    if fine is None:
        raise NotFound("No such fine.")
    return fine


def record_appeal_decision(
    session: Session, *, decision: AppealDecision, now: datetime
) -> MerchantAppeal:
    appeal = decision.appeal
    appeal.status = decision.outcome
    appeal.decided_by = decision.decided_by
    appeal.decision_note = decision.note
    appeal.decided_at = now
    session.flush()
    return appeal


def standing_history(session: Session, *, merchant_id: str) -> dict[str, Any]:
    merchant = get_merchant(session, merchant_id=merchant_id)
    repository = StandingRepository(session)
    return {
        "merchant_id": merchant.id,
        "status": merchant.status,
        "changes": [standing_change_view(row) for row in repository.changes_of(merchant_id)],
        "fines": [fine_view(row) for row in repository.fines_of(merchant_id)],
        "appeals": [appeal_view(row) for row in repository.appeals_of(merchant_id)],
    }


def standing_change_view(change: StandingChange) -> dict[str, Any]:
    return {
        "id": change.id,
        "merchant_id": change.merchant_id,
        "from_status": change.from_status,
        "to_status": change.to_status,
        "reason": change.reason,
        "evidence": list(change.evidence),
        "decided_by": change.decided_by,
        "appeal_id": change.appeal_id,
        "created_at": change.created_at,
    }


def fine_view(fine: MerchantFine) -> dict[str, Any]:
    return {
        "id": fine.id,
        "merchant_id": fine.merchant_id,
        "amount_minor": fine.amount_minor,
        "currency": fine.currency,
        "reason": fine.reason,
        "evidence": list(fine.evidence),
        "decided_by": fine.decided_by,
        "status": fine.status,
        "entry_id": fine.entry_id,
        "reversal_entry_id": fine.reversal_entry_id,
        "created_at": fine.created_at,
        "reversed_at": fine.reversed_at,
    }


def appeal_view(appeal: MerchantAppeal) -> dict[str, Any]:
    return {
        "id": appeal.id,
        "merchant_id": appeal.merchant_id,
        "subject_type": appeal.subject_type,
        "subject_id": appeal.subject_id,
        "grounds": appeal.grounds,
        "evidence": list(appeal.evidence),
        "status": appeal.status,
        "filed_by": appeal.filed_by,
        "filed_at": appeal.filed_at,
        "decided_by": appeal.decided_by,
        "decision_note": appeal.decision_note,
        "decided_at": appeal.decided_at,
    }
