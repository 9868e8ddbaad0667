"""The settlement run: paying merchants what is due on a business date (the daily sweep's job,
``usefirst settle``). Per merchant, locked in id order: reserves due go back to its payable
(ledger), merchants plans the payout, the ledger posts the reserve withheld and the rail the
payout, merchants records the settlement, notify tells the merchant."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from sqlalchemy.orm import Session

from usefirst.kit.business_day import DailyContext
from usefirst.kit.ids import new_id
from usefirst.kit.settings import Settings
from usefirst.ledger import accounts
from usefirst.ledger import service as ledger_service
from usefirst.ledger.accounts import EntryKind
from usefirst.merchants import service as merchant_service
from usefirst.merchants import settlement
from usefirst.merchants.models import Merchant, Settlement
from usefirst.merchants.settlement import PayoutPlan, PayoutRail, PayoutReceipt, SettlementSummary
from usefirst.notify import service as notify_service


class LedgerPayoutRail:
    """The default rail: a local ledger transfer from the merchant payable to platform cash. A bank
    integration would instead credit a clearing account and settle it when the bank confirms."""

    name = "ledger"

    def pay(
        self,
        session: Session,
        *,
        merchant_id: str,
        settlement_id: str,
        amount_minor: int,
        currency: str,
        now: datetime,
    ) -> PayoutReceipt:
        entry_id = ledger_service.post_transfer(
            session,
            kind=EntryKind.MERCHANT_PAYOUT,
            debit=accounts.merchant_payable(merchant_id),
            credit=accounts.PLATFORM_CASH,
            amount_minor=amount_minor,
            currency=currency,
            now=now,
            merchant_id=merchant_id,
            reference_id=settlement_id,
            memo="merchant payout",
        )
        return PayoutReceipt(reference=entry_id, entry_id=entry_id)


def settle_daily(session: Session, context: DailyContext) -> dict[str, int]:
    """The daily sweep's job (after collections): pay out for the business date."""
    return settle(
        session, business_on=context.business_on, settings=context.settings, now=context.now
    ).counts()


def settle(
    session: Session,
    *,
    business_on: date,
    settings: Settings,
    now: datetime,
    rail: PayoutRail | None = None,
    merchant_ids: Iterable[str] | None = None,
) -> SettlementSummary:
    """Settle every merchant with a payable or a reserve due (or the given ones) for
    ``business_on``."""
    summary = SettlementSummary()
    for merchant_id in settlement.settlement_candidates(
        session, business_on=business_on, merchant_ids=merchant_ids
    ):
        settle_merchant(
            session,
            merchant_id=merchant_id,
            business_on=business_on,
            settings=settings,
            now=now,
            rail=rail,
            summary=summary,
        )
    return summary


def settle_merchant(
    session: Session,
    *,
    merchant_id: str,
    business_on: date,
    settings: Settings,
    now: datetime,
    rail: PayoutRail | None = None,
    summary: SettlementSummary | None = None,
) -> SettlementSummary:
    """Pay one merchant what is due on ``business_on``, once per (merchant, currency, date)."""
    summary = summary if summary is not None else SettlementSummary()
    rail = rail or LedgerPayoutRail()
    merchant = merchant_service.lock_merchant(session, merchant_id=merchant_id)
    summary.reserves_released += _release_due_reserves(
        session, merchant=merchant, business_on=business_on, now=now
    )
    if settlement.is_held_from_payouts(merchant):
        summary.held_merchants += 1
        return summary
    for currency in settlement.payable_currencies(session, merchant_id=merchant.id):
        if settlement.is_settled(
            session, merchant_id=merchant.id, currency=currency, business_on=business_on
        ):
            summary.already_settled += 1
            continue
        plan = settlement.plan_payout(
            session,
            merchant=merchant,
            currency=currency,
            business_on=business_on,
            settings=settings,
        )
        if plan is None:
            continue
        if not plan.is_payable:
            summary.carried_forward += 1
            continue
        paid = _pay(session, merchant=merchant, plan=plan, rail=rail, settings=settings, now=now)
        summary.paid += 1
        summary.paid_minor += paid.net_minor
        summary.settlement_ids.append(paid.id)
    return summary


def _release_due_reserves(
    session: Session, *, merchant: Merchant, business_on: date, now: datetime
) -> int:
    """Reserves withheld ``settlement_reserve_days`` ago go back to the payable, where the payout
    of the day picks them up."""
    due = settlement.reserves_due(session, merchant=merchant, business_on=business_on)
    for withheld in due:
        entry_id = ledger_service.post_transfer(
            session,
            kind=EntryKind.RESERVE_RELEASED,
            debit=accounts.merchant_reserve(merchant.id),
            credit=accounts.merchant_payable(merchant.id),
            amount_minor=withheld.reserve_minor,
            currency=withheld.currency,
            now=now,
            merchant_id=merchant.id,
            reference_id=withheld.id,
            memo=f"reserve of {withheld.settled_on.isoformat()} released",
        )
        settlement.mark_reserve_released(withheld, entry_id=entry_id, now=now)
    session.flush()
    return len(due)


def _pay(
    session: Session,
    *,
    merchant: Merchant,
    plan: PayoutPlan,
    rail: PayoutRail,
    settings: Settings,
    now: datetime,
) -> Settlement:
    settlement_id = new_id("settlement")
    reserve_entry_id = ledger_service.post_transfer(
        session,
        kind=EntryKind.RESERVE_WITHHELD,
        debit=accounts.merchant_payable(merchant.id),
        credit=accounts.merchant_reserve(merchant.id),
        amount_minor=plan.reserve_minor,
        currency=plan.currency,
        now=now,
        merchant_id=merchant.id,
        reference_id=settlement_id,
        memo=f"rolling reserve of payout {plan.business_on.isoformat()}",
    )
    receipt = rail.pay(
        session,
        merchant_id=merchant.id,
        settlement_id=settlement_id,
        amount_minor=plan.net_minor,
        currency=plan.currency,
        now=now,
    )
    paid = settlement.record_settlement(
        session,
        merchant=merchant,
        plan=plan,
        settlement_id=settlement_id,
        rail_name=rail.name,
        receipt=receipt,
        reserve_entry_id=reserve_entry_id,
        settings=settings,
        now=now,
    )
    notify_service.publish_event(
        session,
        event_type="settlement.paid",
        data={"settlement": settlement.settlement_view(paid)},
        now=now,
        settings=settings,
        merchant_id=merchant.id,
    )
    return paid
