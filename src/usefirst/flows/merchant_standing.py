"""A merchant's standing as decided by admins and analysts: a change of standing, a fine, an
appeal filed and decided. merchants decides and records; the ledger posts a fine (debiting the
merchant's payable) or its reversal; notify tells the merchant and the platform."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from usefirst.kit.settings import Settings
from usefirst.ledger import accounts
from usefirst.ledger import service as ledger_service
from usefirst.ledger.accounts import EntryKind
from usefirst.merchants import standing
from usefirst.merchants.models import MerchantAppeal, MerchantFine, StandingChange
from usefirst.notify import service as notify_service


def change_standing(
    session: Session,
    *,
    merchant_id: str,
    status: str,
    reason: str,
    evidence: list[str],
    decided_by: str,
    now: datetime,
    settings: Settings,
    appeal_id: str | None = None,
) -> StandingChange | None:
    """Move a merchant to ``status`` (see ``merchants.standing.change_standing``); when it changed,
    the merchant and the platform get a ``merchant.standing_changed`` webhook."""
    change = standing.change_standing(
        session,
        merchant_id=merchant_id,
        status=status,
        reason=reason,
        evidence=evidence,
        decided_by=decided_by,
        now=now,
        appeal_id=appeal_id,
    )
    if change is not None:
        notify_service.publish_event(
            session,
            event_type="merchant.standing_changed",
            data={"standing_change": standing.standing_change_view(change)},
            now=now,
            settings=settings,
            merchant_id=change.merchant_id,
        )
    return change


def impose_fine(
    session: Session,
    *,
    merchant_id: str,
    amount_minor: int,
    currency: str,
    reason: str,
    evidence: list[str],
    decided_by: str,
    settings: Settings,
    now: datetime,
) -> MerchantFine:
    """Fine a merchant: its payable is debited (netted from its next payouts, carried forward if
    that goes negative) and the platform's penalty income credited."""
    decision = standing.decide_fine(
        session,
        merchant_id=merchant_id,
        amount_minor=amount_minor,
        currency=currency,
        reason=reason,
        evidence=evidence,
        decided_by=decided_by,
    )
    entry_id = ledger_service.post_transfer(
        session,
        kind=EntryKind.MERCHANT_FINE,
        debit=accounts.merchant_payable(decision.merchant.id),
        credit=accounts.MERCHANT_PENALTY_INCOME,
        amount_minor=decision.amount_minor,
        currency=decision.currency,
        now=now,
        merchant_id=decision.merchant.id,
        reference_id=decision.fine_id,
        memo=f"fine: {decision.reason}",
    )
    fine = standing.record_fine(session, decision=decision, entry_id=entry_id, now=now)
    notify_service.publish_event(
        session,
        event_type="merchant.fined",
        data={"fine": standing.fine_view(fine)},
        now=now,
        settings=settings,
        merchant_id=fine.merchant_id,
    )
    return fine


def file_appeal(
    session: Session,
    *,
    merchant_id: str,
    subject_id: str,
    grounds: str,
    evidence: list[str],
    filed_by: str,
    settings: Settings,
    now: datetime,
) -> MerchantAppeal:
    """A merchant contests a standing change or a fine; the platform is told."""
    appeal = standing.file_appeal(
        session,
        merchant_id=merchant_id,
        subject_id=subject_id,
        grounds=grounds,
        evidence=evidence,
        filed_by=filed_by,
        now=now,
    )
    notify_service.publish_event(
        session,
        event_type="merchant.appeal_filed",
        data={"appeal": standing.appeal_view(appeal)},
        now=now,
        settings=settings,
        merchant_id=merchant_id,
    )
    return appeal


def decide_appeal(
    session: Session,
    *,
    merchant_id: str,
    appeal_id: str,
    outcome: str,
    note: str,
    decided_by: str,
    settings: Settings,
    now: datetime,
) -> MerchantAppeal:
    """Grant or deny an open appeal. Granting a standing appeal restores the status the contested
    change replaced; granting a fine appeal reverses the fine in the ledger."""
    decision = standing.take_up_appeal(
        session,
        merchant_id=merchant_id,
        appeal_id=appeal_id,
        outcome=outcome,
        note=note,
        decided_by=decided_by,
    )
    appeal = decision.appeal
    if decision.restores_standing:
        contested = standing.contested_change(session, appeal=appeal)
        change_standing(
            session,
            merchant_id=merchant_id,
            status=contested.from_status,
            reason=f"appeal {appeal.id} granted: {decision.note}",
            evidence=list(appeal.evidence),
            decided_by=decision.decided_by,
            now=now,
            settings=settings,
            appeal_id=appeal.id,
        )
    elif decision.reverses_fine:
        fine = standing.contested_fine(session, appeal=appeal)
        if fine.status == "posted":
            _reverse_fine(session, fine=fine, appeal_id=appeal.id, now=now)
    standing.record_appeal_decision(session, decision=decision, now=now)
    notify_service.publish_event(
        session,
        event_type="merchant.appeal_decided",
        data={"appeal": standing.appeal_view(appeal)},
        now=now,
        settings=settings,
        merchant_id=merchant_id,
    )
    return appeal


def _reverse_fine(session: Session, *, fine: MerchantFine, appeal_id: str, now: datetime) -> None:
    entry_id = ledger_service.post_transfer(
        session,
        kind=EntryKind.MERCHANT_FINE_REVERSAL,
        debit=accounts.MERCHANT_PENALTY_INCOME,
        credit=accounts.merchant_payable(fine.merchant_id),
        amount_minor=fine.amount_minor,
        currency=fine.currency,
        now=now,
        merchant_id=fine.merchant_id,
        reference_id=fine.id,
        memo=f"fine reversed on appeal {appeal_id}",
    )
    standing.mark_fine_reversed(fine, entry_id=entry_id, now=now)
