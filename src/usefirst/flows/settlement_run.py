"""The settlement run: paying merchants what is due on a business date (the daily sweep's job,
``usefirst settle``). For all merchants of the date at once, locked in id order: reserves due go
back to their payables (ledger), merchants plans the payouts, the ledger posts the reserves
withheld and the rail the payouts, merchants records the settlements (and the ledger closes the
open items they settle), notify tells each merchant."""

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
    ``business_on``, all merchants at once. The merchants are locked in id order; their due
    reserves go back to the payable in one batch of entries; their payouts are planned from one
    read of all pending entries, posted in one batch of entries per kind (the ledger rail; another
    rail pays one by one) and recorded with all their lines in one insert. Same payouts, lines and
    entries as the merchant-by-merchant settlement it replaced (kept as the tests' oracle in
    ``tests/merchants/reference_settlement.py``)."""
    summary = SettlementSummary()
    rail = rail or LedgerPayoutRail()
    candidates = settlement.settlement_candidates(
        session, business_on=business_on, merchant_ids=merchant_ids
    )
    merchants = merchant_service.lock_merchants(session, merchant_ids=candidates)
    due = settlement.reserves_due_many(session, merchants=merchants, business_on=business_on)
    released = ledger_service.post_transfers(
        session,
        kind=EntryKind.RESERVE_RELEASED,
        transfers=[
            ledger_service.Transfer(
                debit=accounts.merchant_reserve(withheld.merchant_id),
                credit=accounts.merchant_payable(withheld.merchant_id),
                amount_minor=withheld.reserve_minor,
                currency=withheld.currency,
                merchant_id=withheld.merchant_id,
                reference_id=withheld.id,
                memo=f"reserve of {withheld.settled_on.isoformat()} released",
            )
            for withheld in due
        ],
        now=now,
    )
    for withheld, entry_id in zip(due, released, strict=True):
        settlement.mark_reserve_released(withheld, entry_id=entry_id, now=now)
    summary.reserves_released = len(due)
    session.flush()
    paying = [merchant for merchant in merchants if not settlement.is_held_from_payouts(merchant)]
    summary.held_merchants = len(merchants) - len(paying)
    day = settlement.plan_payouts(
        session, merchants=paying, business_on=business_on, settings=settings
    )
    summary.already_settled = day.already_settled
    payable = [(merchant, plan) for merchant, plan in day.plans if plan.is_payable]
    summary.carried_forward = len(day.plans) - len(payable)
    paid = _pay_many(session, payable=payable, rail=rail, settings=settings, now=now)
    summary.paid = len(paid)
    summary.paid_minor = sum(row.net_minor for row in paid)
    summary.settlement_ids = [row.id for row in paid]
    return summary


def _pay_many(
    session: Session,
    *,
    payable: list[tuple[Merchant, PayoutPlan]],
    rail: PayoutRail,
    settings: Settings,
    now: datetime,
) -> list[Settlement]:
    """Pay the planned payouts: each withholds its rolling reserve and transfers the rest (the
    reserves in one batch of entries, the transfers in another on the ledger rail), then the
    settlements and their lines are recorded together and each merchant is told."""
    settlement_ids = [new_id("settlement") for _ in payable]
    reserve_entry_ids = ledger_service.post_transfers(
        session,
        kind=EntryKind.RESERVE_WITHHELD,
        transfers=[
            ledger_service.Transfer(
                debit=accounts.merchant_payable(merchant.id),
                credit=accounts.merchant_reserve(merchant.id),
                amount_minor=plan.reserve_minor,
                currency=plan.currency,
                merchant_id=merchant.id,
                reference_id=settlement_id,
                memo=f"rolling reserve of payout {plan.business_on.isoformat()}",
            )
            for (merchant, plan), settlement_id in zip(payable, settlement_ids, strict=True)
        ],
        now=now,
    )
    if isinstance(rail, LedgerPayoutRail):
        payout_entry_ids = ledger_service.post_transfers(
            session,
            kind=EntryKind.MERCHANT_PAYOUT,
            transfers=[
                ledger_service.Transfer(
                    debit=accounts.merchant_payable(merchant.id),
                    credit=accounts.PLATFORM_CASH,
                    amount_minor=plan.net_minor,
                    currency=plan.currency,
                    merchant_id=merchant.id,
                    reference_id=settlement_id,
                    memo="merchant payout",
                )
                for (merchant, plan), settlement_id in zip(payable, settlement_ids, strict=True)
            ],
            now=now,
        )
        receipts = [PayoutReceipt(reference=entry, entry_id=entry) for entry in payout_entry_ids]
    else:
        receipts = [
            rail.pay(
                session,
                merchant_id=merchant.id,
                settlement_id=settlement_id,
                amount_minor=plan.net_minor,
                currency=plan.currency,
                now=now,
            )
            for (merchant, plan), settlement_id in zip(payable, settlement_ids, strict=True)
        ]
    recorded = settlement.record_settlements(
        session,
        payouts=[
            settlement.RecordedPayout(
                merchant=merchant,
                plan=plan,
                settlement_id=settlement_id,
                rail_name=rail.name,
                receipt=receipt,
                reserve_entry_id=reserve_entry_id,
            )
            for (merchant, plan), settlement_id, receipt, reserve_entry_id in zip(
                payable, settlement_ids, receipts, reserve_entry_ids, strict=True
            )
        ],
        settings=settings,
        now=now,
    )
    # The settled entries leave the ledger's open items with their lines, in this transaction.
    ledger_service.clear_open_items(session, owner_entries=recorded.settled_entries)
    paid = recorded.settlements
    for row in paid:
        notify_service.publish_event(
            session,
            event_type="settlement.paid",
            data={"settlement": settlement.settlement_view(row)},
            now=now,
            settings=settings,
            merchant_id=row.merchant_id,
        )
    return paid
