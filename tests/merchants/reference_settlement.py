"""Settlement as it was before issue 21: merchant by merchant, each with its own reads, entries
and insert of lines. Kept as the oracle the batched run (``usefirst.flows.settlement_run``) is
compared with row for row (tests/merchants/test_settlement_batched.py). Not used by the engine."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from usefirst.flows.settlement_run import LedgerPayoutRail
from usefirst.kit.clock import business_day_start
from usefirst.kit.errors import InvariantViolated
from usefirst.kit.ids import new_id
from usefirst.kit.money import basis_points_of
from usefirst.kit.settings import Settings
from usefirst.ledger import accounts
from usefirst.ledger import service as ledger_service
from usefirst.ledger.accounts import EntryKind
from usefirst.merchants import service as merchant_service
from usefirst.merchants import settlement
from usefirst.merchants.models import Merchant, Settlement
from usefirst.merchants.repository import SettlementRepository
from usefirst.merchants.settlement import (
    PayoutPlan,
    PayoutRail,
    PayoutReceipt,
    SettlementSummary,
    _components,
    reserve_rate_bps,
)
from usefirst.notify import service as notify_service


def plan_payout(
    session: Session, *, merchant: Merchant, currency: str, business_on: date, settings: Settings
) -> PayoutPlan | None:
    """The payout due on ``business_on`` in ``currency``; None when no entry is pending."""
    repository = SettlementRepository(session)
    day_end = business_day_start(business_on + timedelta(days=1), settings.time_zone)
    postings = repository.payable_postings(
        merchant_id=merchant.id,
        account_code=accounts.merchant_payable(merchant.id).code(currency),
        created_before=day_end,
        pending_only=True,
    )
    if not postings:
        return None
    lines = _components(
        postings,
        sales_before=business_day_start(
            business_on - timedelta(days=merchant.settlement_days - 1), settings.time_zone
        ),
        held_order_ids=repository.held_order_ids(merchant.id),
        previously_sold=repository.sold_order_ids_settled(
            merchant.id, {p.order_id for p in postings if p.order_id is not None}
        ),
    )

    def total(component: str) -> int:
        return sum(posting.owed_minor for posting, kind in lines if kind == component)

    gross = total("sale")
    refunded = -total("refund")
    fee = -total("fee")
    clawback = -total("clawback")
    fines = -total("fine")
    released = total("reserve_release")
    due = gross - refunded - fee - clawback - fines + released
    reserve = 0
    if due > 0:
        reserve = min(
            basis_points_of(max(gross - refunded, 0), reserve_rate_bps(merchant, settings)), due
        )
    return PayoutPlan(
        currency=currency,
        business_on=business_on,
        lines=lines,
        gross_minor=gross,
        refunded_minor=refunded,
        fee_minor=fee,
        clawback_minor=clawback,
        fines_minor=fines,
        reserve_released_minor=released,
        reserve_minor=reserve,
        net_minor=max(due - reserve, 0),
    )


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
        plan = plan_payout(
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
    paid = record_settlement(
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


def record_settlement(
    session: Session,
    *,
    merchant: Merchant,
    plan: PayoutPlan,
    settlement_id: str,
    rail_name: str,
    receipt: PayoutReceipt,
    reserve_entry_id: str,
    settings: Settings,
    now: datetime,
) -> Settlement:
    """Record a payout whose reserve and transfer are posted: the settlement, and a line for every
    entry it settles, its own two included (they must add up to zero)."""
    settlement = Settlement(
        merchant_id=merchant.id,
        id=settlement_id,
        currency=plan.currency,
        settled_on=plan.business_on,
        status="paid",
        order_count=plan.order_count,
        gross_minor=plan.gross_minor,
        refunded_minor=plan.refunded_minor,
        fee_minor=plan.fee_minor,
        reserve_minor=plan.reserve_minor,
        reserve_released_minor=plan.reserve_released_minor,
        clawback_minor=plan.clawback_minor,
        fines_minor=plan.fines_minor,
        net_minor=plan.net_minor,
        payout_rail=rail_name,
        payout_reference=receipt.reference,
        payout_entry_id=receipt.entry_id,
        reserve_entry_id=reserve_entry_id or None,
        reserve_release_on=(
            plan.business_on + timedelta(days=settings.settlement_reserve_days)
            if plan.reserve_minor
            else None
        ),
        reserve_release_entry_id=None,
        reserve_released_at=None,
        paid_at=now,
    )
    repository = SettlementRepository(session)
    repository.add(settlement)
    lines: list[dict[str, object]] = [
        {
            "merchant_id": merchant.id,
            "entry_id": posting.entry_id,
            "settlement_id": settlement_id,
            "order_id": posting.order_id,
            "entry_kind": posting.entry_kind,
            "component": component,
            "amount_minor": posting.owed_minor,
        }
        for posting, component in plan.lines
    ]
    own_entries = (
        (reserve_entry_id, EntryKind.RESERVE_WITHHELD, "reserve", plan.reserve_minor),
        (receipt.entry_id, EntryKind.MERCHANT_PAYOUT, "payout", plan.net_minor),
    )
    for entry_id, kind, component, amount in own_entries:
        if entry_id:
            lines.append(
                {
                    "merchant_id": merchant.id,
                    "entry_id": entry_id,
                    "settlement_id": settlement_id,
                    "order_id": None,
                    "entry_kind": kind.value,
                    "component": component,
                    "amount_minor": -amount,
                }
            )
    if sum(posting.owed_minor for posting, _ in plan.lines) != plan.reserve_minor + plan.net_minor:
        raise InvariantViolated(f"settlement {settlement_id} does not pay out what it settles")
    repository.add_lines(lines)
    # The ledger closes the settled entries' open items (``add_lines`` did it itself before).
    ledger_service.clear_open_items(
        session, owner_entries=[(merchant.id, str(line["entry_id"])) for line in lines]
    )
    session.flush()
    return settlement
