"""Paying merchants what they are owed: daily payouts, holds, the rolling reserve, clawbacks.

What a merchant is owed lives in the ledger, on its payable account: delivery credits the
principal (ORDER_ACTIVATION) and takes the merchant fee at once (MERCHANT_FEE), refunds and
clawbacks debit it, fines debit it. A payout settles a set of those journal entries: every entry
on a merchant payable is recorded in exactly one settlement (``settlement_lines``), together with
the payout's own entries (the reserve withheld and the payout transfer), so the lines of each
settlement sum to zero and the entries not yet settled sum to the ledger balance. That is the
statement, and it reconciles to the cent by construction (see :func:`statement`).

An order's sale is paid once its delivery is ``settlement_days`` business days old and it has no
active hold; its fee and any refund before the payout travel with it. Debits that arrive after an
order was paid (a refund, a dispute clawback), fines and released reserve are netted from the next
payout. When the debits exceed what is due, nothing is paid and everything stays pending, so a
negative balance carries forward until new sales cover it; it never disappears.

This module plans payouts and records them; the run that posts them to the ledger and tells the
merchant is the flow ``usefirst.flows.settlement_run``, and clawbacks are posted by
``usefirst.flows.merchant_clawbacks``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.orm import Session

from usefirst.kit.clock import business_day_start
from usefirst.kit.errors import InvariantViolated, NotFound, ValidationFailed
from usefirst.kit.ids import new_id
from usefirst.kit.money import basis_points_of, check_currency
from usefirst.kit.settings import Settings
from usefirst.ledger import accounts
from usefirst.ledger.accounts import EntryKind
from usefirst.ledger.repository import LedgerRepository
from usefirst.merchants.models import Merchant, Settlement, SettlementHold, SettlementLine
from usefirst.merchants.repository import PayablePosting, SettlementRepository
from usefirst.merchants.service import get_merchant, lock_merchant
from usefirst.orders.repository import OrderRepository

HOLDING_STATUSES = ("suspended", "banned")
REFUND_KINDS = frozenset({EntryKind.REFUND_REDUCING_DEBT.value, EntryKind.REFUND_TO_SHOPPER.value})
FINE_KINDS = frozenset({EntryKind.MERCHANT_FINE.value, EntryKind.MERCHANT_FINE_REVERSAL.value})
# Entries a payout posts itself; they are recorded in their settlement when posted.
SETTLEMENT_KINDS = frozenset({EntryKind.MERCHANT_PAYOUT.value, EntryKind.RESERVE_WITHHELD.value})


# Holds (contract: risk cases and disputes call these)


def _check_source(source: str) -> str:
    source = source.strip()
    if not 1 <= len(source) <= 80:
        raise ValidationFailed("source must have 1 to 80 characters.", field="source")
    return source


def hold_order_settlement(
    session: Session, *, merchant_id: str, order_id: str, source: str, reason: str, now: datetime
) -> None:
    """Keep an order out of payouts until ``source`` releases it. Idempotent per (order, source):
    holding again while the hold is active changes nothing."""
    source = _check_source(source)
    order = OrderRepository(session).find(order_id)
    if order is None or order.merchant_id != merchant_id:
        raise NotFound("No such order.")
    repository = SettlementRepository(session)
    if any(hold.source == source for hold in repository.active_holds(merchant_id, order_id)):
        return
    repository.add(
        SettlementHold(
            merchant_id=merchant_id,
            id=new_id("settlement_hold"),
            order_id=order_id,
            source=source,
            reason=reason.strip()[:500] or source,
            created_at=now,
            released_at=None,
        )
    )
    session.flush()


def release_order_settlement_hold(
    session: Session, *, merchant_id: str, order_id: str, source: str, now: datetime
) -> None:
    """Lift ``source``'s hold on an order; other sources' holds stay. Idempotent: releasing a hold
    that is not active changes nothing."""
    source = _check_source(source)
    for hold in SettlementRepository(session).active_holds(merchant_id, order_id):
        if hold.source == source:
            hold.released_at = now
    session.flush()


# Clawbacks: what to take back (the flow posts it).


def check_clawback(*, amount_minor: int, currency: str, reason: str) -> str:
    """The clawback's reason, trimmed, once its amount, currency and reason are valid."""
    if amount_minor <= 0:
        raise ValidationFailed("amount_minor must be a positive integer.", field="amount_minor")
    check_currency(currency)
    if not reason.strip():
        raise ValidationFailed("reason must not be empty.", field="reason")
    return reason.strip()


def kept_of_paid_order(
    session: Session, *, merchant_id: str, order_id: str, currency: str
) -> int | None:
    """What a merchant kept of an order it was already paid for: the order's entries on its
    payable (the sale, less the fee, refunds and earlier clawbacks). None when the sale was not
    paid out yet (a hold keeps it so) or nothing is left to take, so a retry or a second case
    about the order claws nothing twice."""
    # Locked like a payout locks it: a payout or another clawback of the order waits for this one.
    lock_merchant(session, merchant_id=merchant_id)
    postings = SettlementRepository(session).payable_postings(
        merchant_id=merchant_id,
        account_code=accounts.merchant_payable(merchant_id).code(currency),
        order_id=order_id,
        pending_only=False,
    )
    is_paid = any(
        posting.entry_kind == EntryKind.ORDER_ACTIVATION.value and posting.settlement_id
        for posting in postings
    )
    kept_minor = sum(posting.owed_minor for posting in postings)
    if not is_paid or kept_minor <= 0:
        return None
    return kept_minor


# Payout rails


@dataclass(frozen=True)
class PayoutReceipt:
    reference: str
    entry_id: str


class PayoutRail(Protocol):
    """Moves a settled amount to the merchant. Must post the payout to the ledger (debiting the
    merchant payable) in the caller's transaction and be idempotent per settlement id."""

    name: str

    def pay(
        self,
        session: Session,
        *,
        merchant_id: str,
        settlement_id: str,
        amount_minor: int,
        currency: str,
        now: datetime,
    ) -> PayoutReceipt: ...


# Settling one business date


@dataclass
class SettlementSummary:
    paid: int = 0
    paid_minor: int = 0
    carried_forward: int = 0  # debits exceed what is due: nothing paid, balance carried
    held_merchants: int = 0  # suspended or banned: nothing paid
    already_settled: int = 0
    reserves_released: int = 0
    settlement_ids: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "settlements_paid": self.paid,
            "settled_minor": self.paid_minor,
            "settlements_carried_forward": self.carried_forward,
            "settlements_held": self.held_merchants,
            "settlements_already_done": self.already_settled,
            "reserves_released": self.reserves_released,
        }


def settlement_candidates(
    session: Session, *, business_on: date, merchant_ids: Iterable[str] | None
) -> list[str]:
    """Every merchant with a payable or a reserve due (or the given ones), in id order so
    concurrent runs lock them in the same order."""
    repository = SettlementRepository(session)
    if merchant_ids is None:
        candidates = set(repository.merchants_with_payable())
        candidates.update(repository.merchants_with_reserve_due(due_on=business_on))
    else:
        candidates = set(merchant_ids)
    return sorted(candidates)


def is_held_from_payouts(merchant: Merchant) -> bool:
    return merchant.status in HOLDING_STATUSES


def reserve_rate_bps(merchant: Merchant, settings: Settings) -> int:
    if merchant.status == "on_watch":
        return max(settings.settlement_reserve_on_watch_bps, settings.settlement_reserve_bps)
    return settings.settlement_reserve_bps


def reserves_due(session: Session, *, merchant: Merchant, business_on: date) -> list[Settlement]:
    """Settlements whose reserve, withheld ``settlement_reserve_days`` ago, goes back to the
    payable today (locked). None for a suspended or banned merchant: its reserve is what covers
    the clawbacks its investigation may bring."""
    if is_held_from_payouts(merchant):
        return []
    return SettlementRepository(session).reserves_due(merchant.id, due_on=business_on)


def mark_reserve_released(withheld: Settlement, *, entry_id: str, now: datetime) -> None:
    withheld.reserve_release_entry_id = entry_id
    withheld.reserve_released_at = now


def payable_currencies(session: Session, *, merchant_id: str) -> list[str]:
    return SettlementRepository(session).payable_currencies(merchant_id)


def is_settled(session: Session, *, merchant_id: str, currency: str, business_on: date) -> bool:
    """Whether the payout of this merchant, currency and date was made (at most one is)."""
    return (
        SettlementRepository(session).settlement_on(merchant_id, currency, business_on) is not None
    )


@dataclass(frozen=True)
class PayoutPlan:
    """One payout of a merchant in one currency for a business date: the entries it settles, each
    as a component, and what they add up to. Amounts are owed to the merchant and add up exactly:
    net = gross - refunded - fee - clawback - fines + reserve_released - reserve."""

    currency: str
    business_on: date
    lines: list[tuple[PayablePosting, str]]
    gross_minor: int
    refunded_minor: int
    fee_minor: int
    clawback_minor: int
    fines_minor: int
    reserve_released_minor: int
    reserve_minor: int
    net_minor: int

    @property
    def is_payable(self) -> bool:
        """False when the debits use up what is due: nothing is paid, the balance carries."""
        return self.net_minor > 0

    @property
    def order_count(self) -> int:
        return len({posting.order_id for posting, component in self.lines if component == "sale"})


def _components(
    postings: list[PayablePosting],
    *,
    sales_before: datetime,
    held_order_ids: set[str],
    previously_sold: set[str],
) -> list[tuple[PayablePosting, str]]:
    """The pending entries a payout settles now, each with its component."""
    sale_by_order = {
        posting.order_id: posting
        for posting in postings
        if posting.entry_kind == EntryKind.ORDER_ACTIVATION.value and posting.order_id
    }
    paying = {
        order_id
        for order_id, sale in sale_by_order.items()
        if sale.created_at < sales_before and order_id not in held_order_ids
    }
    lines: list[tuple[PayablePosting, str]] = []
    for posting in postings:
        order_id = posting.order_id
        if posting.entry_kind in SETTLEMENT_KINDS:
            raise InvariantViolated(f"payout entry {posting.entry_id} is not in its settlement")
        if posting.entry_kind == EntryKind.RESERVE_RELEASED.value:
            lines.append((posting, "reserve_release"))
        elif posting.entry_kind in FINE_KINDS:
            lines.append((posting, "fine"))
        elif order_id is None or order_id in previously_sold:
            lines.append((posting, "clawback"))
        elif order_id in paying:
            if posting.entry_kind == EntryKind.ORDER_ACTIVATION.value:
                lines.append((posting, "sale"))
            elif posting.entry_kind == EntryKind.MERCHANT_FEE.value:
                lines.append((posting, "fee"))
            elif posting.entry_kind in REFUND_KINDS:
                lines.append((posting, "refund"))
            else:
                lines.append((posting, "clawback"))
        elif order_id not in sale_by_order:
            # Charged on an order whose sale never reached this merchant's payable here (or was
            # settled under another currency): nothing to wait for.
            lines.append((posting, "clawback"))
        # else: travels with its order's sale, which is not due yet or is held.
    return lines


def plan_payout(
    session: Session, *, merchant: Merchant, currency: str, business_on: date, settings: Settings
) -> PayoutPlan | None:
    """The payout due on ``business_on`` in ``currency``; None when no entry is pending."""
    repository = SettlementRepository(session)
    postings = repository.payable_postings(
        merchant_id=merchant.id,
        account_code=accounts.merchant_payable(merchant.id).code(currency),
        created_before=_day_end(business_on, settings),
        pending_only=True,
    )
    if not postings:
        return None
    return _plan(
        merchant=merchant,
        currency=currency,
        business_on=business_on,
        settings=settings,
        postings=postings,
        held_order_ids=repository.held_order_ids(merchant.id),
        previously_sold=repository.sold_order_ids_settled(
            merchant.id, {p.order_id for p in postings if p.order_id is not None}
        ),
    )


def _day_end(business_on: date, settings: Settings) -> datetime:
    return business_day_start(business_on + timedelta(days=1), settings.time_zone)


def _plan(
    *,
    merchant: Merchant,
    currency: str,
    business_on: date,
    settings: Settings,
    postings: list[PayablePosting],
    held_order_ids: set[str],
    previously_sold: set[str],
) -> PayoutPlan:
    lines = _components(
        postings,
        sales_before=business_day_start(
            business_on - timedelta(days=merchant.settlement_days - 1), settings.time_zone
        ),
        held_order_ids=held_order_ids,
        previously_sold=previously_sold,
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


# Settling every merchant of a date at once: the same plans and records as merchant by merchant,
# with the reads and writes of all merchants batched (a handful of statements for the day).


def reserves_due_many(
    session: Session, *, merchants: list[Merchant], business_on: date
) -> list[Settlement]:
    """:func:`reserves_due` of many merchants (locked), by merchant id."""
    paying = [merchant.id for merchant in merchants if not is_held_from_payouts(merchant)]
    return SettlementRepository(session).reserves_due_many(paying, due_on=business_on)


@dataclass(frozen=True)
class DayPlans:
    """The payouts of many merchants for one date: ``plans`` (payable or carried forward), by
    merchant id then currency, and how many (merchant, currency) were already settled."""

    plans: list[tuple[Merchant, PayoutPlan]]
    already_settled: int


def plan_payouts(
    session: Session, *, merchants: list[Merchant], business_on: date, settings: Settings
) -> DayPlans:
    """:func:`plan_payout` for every currency of every merchant given (none of them held from
    payouts), with the reads batched. Run after the day's reserves are released."""
    repository = SettlementRepository(session)
    merchant_ids = [merchant.id for merchant in merchants]
    currencies = repository.payable_currencies_many(merchant_ids)
    settled = repository.settled_on_many(merchant_ids, business_on)
    wanted = [
        (merchant, currency)
        for merchant in merchants
        for currency in currencies.get(merchant.id, [])
    ]
    to_plan = [
        (merchant, currency)
        for merchant, currency in wanted
        if (merchant.id, currency) not in settled
    ]
    postings = repository.pending_payable_postings_many(
        sorted({merchant.id for merchant, _ in to_plan}),
        created_before=_day_end(business_on, settings),
    )
    with_postings = [
        (merchant, currency)
        for merchant, currency in to_plan
        if postings.get((merchant.id, currency))
    ]
    paying_ids = sorted({merchant.id for merchant, _ in with_postings})
    held = repository.held_order_ids_many(paying_ids)
    order_ids: dict[str, set[str]] = {}
    for merchant, currency in with_postings:
        order_ids.setdefault(merchant.id, set()).update(
            p.order_id for p in postings[(merchant.id, currency)] if p.order_id is not None
        )
    sold = repository.sold_order_ids_settled_many(order_ids)
    plans = [
        (
            merchant,
            _plan(
                merchant=merchant,
                currency=currency,
                business_on=business_on,
                settings=settings,
                postings=postings[(merchant.id, currency)],
                held_order_ids=held.get(merchant.id, set()),
                previously_sold=sold.get(merchant.id, set()),
            ),
        )
        for merchant, currency in with_postings
    ]
    return DayPlans(plans=plans, already_settled=len(wanted) - len(to_plan))


@dataclass(frozen=True)
class RecordedPayout:
    merchant: Merchant
    plan: PayoutPlan
    settlement_id: str
    rail_name: str
    receipt: PayoutReceipt
    reserve_entry_id: str


@dataclass(frozen=True)
class RecordedSettlements:
    """What :func:`record_settlements` wrote: the settlements, and the (merchant id, entry id) of
    every line, which the caller closes in the ledger's open items (``ledger.service
    .clear_open_items``) in the same transaction: an entry leaves the open items exactly when
    its settlement line is written."""

    settlements: list[Settlement]
    settled_entries: list[tuple[str, str]]


def record_settlements(
    session: Session, *, payouts: list[RecordedPayout], settings: Settings, now: datetime
) -> RecordedSettlements:
    """Record payouts whose reserves and transfers are posted: the settlements, then a line for
    every entry each settles, its own two included (they must add up to zero), all lines in one
    insert."""
    repository = SettlementRepository(session)
    settlements: list[Settlement] = []
    lines: list[dict[str, object]] = []
    # The payouts' own lines (no order) go after all the others: the executemany is sent as one
    # multi-row INSERT per run of rows with the same columns, not two per settlement.
    own_lines: list[dict[str, object]] = []
    for payout in payouts:
        merchant, plan, settlement_id = payout.merchant, payout.plan, payout.settlement_id
        receipt, reserve_entry_id = payout.receipt, payout.reserve_entry_id
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
            payout_rail=payout.rail_name,
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
        repository.add(settlement)
        settlements.append(settlement)
        lines.extend(
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
        )
        own_entries = (
            (reserve_entry_id, EntryKind.RESERVE_WITHHELD, "reserve", plan.reserve_minor),
            (receipt.entry_id, EntryKind.MERCHANT_PAYOUT, "payout", plan.net_minor),
        )
        for entry_id, kind, component, amount in own_entries:
            if entry_id:
                own_lines.append(
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
        settled_total = sum(posting.owed_minor for posting, _ in plan.lines)
        if settled_total != plan.reserve_minor + plan.net_minor:
            raise InvariantViolated(f"settlement {settlement_id} does not pay out what it settles")
    session.flush()
    written = [*lines, *own_lines]
    repository.add_lines(written)
    session.flush()
    return RecordedSettlements(
        settlements=settlements,
        settled_entries=[(str(row["merchant_id"]), str(row["entry_id"])) for row in written],
    )


# Reading: balances, settlements, statements


@dataclass(frozen=True)
class MerchantBalance:
    currency: str
    payable_minor: int  # owed to the merchant now (negative: the merchant owes the platform)
    held_minor: int  # part of payable that holds or a suspension keep from payouts
    reserve_minor: int  # withheld as rolling reserve, not part of payable


def _balance(session: Session, account: accounts.AccountRef, currency: str) -> int:
    return LedgerRepository(session).balance_of(account.code(currency))


def merchant_balance(session: Session, *, merchant_id: str, currency: str) -> MerchantBalance:
    merchant = get_merchant(session, merchant_id=merchant_id)
    repository = SettlementRepository(session)
    payable = -_balance(session, accounts.merchant_payable(merchant_id), currency)
    reserve = -_balance(session, accounts.merchant_reserve(merchant_id), currency)
    if merchant.status in HOLDING_STATUSES:
        held = max(payable, 0)
    else:
        held_orders = repository.held_order_ids(merchant_id)
        pending = repository.payable_postings(
            merchant_id=merchant_id,
            account_code=accounts.merchant_payable(merchant_id).code(currency),
            pending_only=True,
        )
        held = sum(p.owed_minor for p in pending if p.order_id in held_orders)
    return MerchantBalance(
        currency=currency, payable_minor=payable, held_minor=held, reserve_minor=reserve
    )


def list_settlements(
    session: Session, *, merchant_id: str, limit: int, starting_after: str | None
) -> list[Settlement]:
    return SettlementRepository(session).settlements_page(
        merchant_id, limit=limit, starting_after=starting_after
    )


def get_settlement(session: Session, *, merchant_id: str, settlement_id: str) -> Settlement:
    settlement = SettlementRepository(session).get_settlement(merchant_id, settlement_id)
    if settlement is None:
        raise NotFound("No such settlement.")
    return settlement


def settlement_lines(session: Session, *, settlement: Settlement) -> list[SettlementLine]:
    return SettlementRepository(session).lines_of(settlement.merchant_id, settlement.id)


def settlement_view(settlement: Settlement) -> dict[str, Any]:
    return {
        "id": settlement.id,
        "merchant_id": settlement.merchant_id,
        "currency": settlement.currency,
        "settled_on": settlement.settled_on,
        "status": settlement.status,
        "order_count": settlement.order_count,
        "gross_minor": settlement.gross_minor,
        "refunded_minor": settlement.refunded_minor,
        "fee_minor": settlement.fee_minor,
        "reserve_minor": settlement.reserve_minor,
        "reserve_released_minor": settlement.reserve_released_minor,
        "clawback_minor": settlement.clawback_minor,
        "fines_minor": settlement.fines_minor,
        "net_minor": settlement.net_minor,
        "reserve_release_on": settlement.reserve_release_on,
        "reserve_released_at": settlement.reserve_released_at,
        "payout_rail": settlement.payout_rail,
        "payout_reference": settlement.payout_reference,
        "paid_at": settlement.paid_at,
    }


def line_view(line: SettlementLine) -> dict[str, Any]:
    return {
        "entry_id": line.entry_id,
        "entry_kind": line.entry_kind,
        "component": line.component,
        "order_id": line.order_id,
        "amount_minor": line.amount_minor,
    }


# Each settlement column is the sum of its lines of one component; payout and reserve lines are
# debits of the payable, the rest keep the sign of what they did to it.
HEADER_COMPONENTS = (
    ("gross_minor", "sale", 1),
    ("refunded_minor", "refund", -1),
    ("fee_minor", "fee", -1),
    ("clawback_minor", "clawback", -1),
    ("fines_minor", "fine", -1),
    ("reserve_released_minor", "reserve_release", 1),
    ("reserve_minor", "reserve", -1),
    ("net_minor", "payout", -1),
)


@dataclass(frozen=True)
class StatementLine:
    entry_id: str
    entry_kind: str
    order_id: str | None
    amount_minor: int  # what it did to the amount owed to the merchant
    created_at: datetime
    settlement_id: str | None
    is_held: bool


@dataclass(frozen=True)
class SettlementStatement:
    """A merchant payable, entry by entry, checked against the ledger and its payouts."""

    merchant_id: str
    currency: str
    ledger_payable_minor: int
    pending_minor: int  # entries no payout has settled yet
    settled_minor: int  # all settled lines together: zero when every payout balanced
    lines: list[StatementLine]
    problems: list[str]

    @property
    def is_reconciled(self) -> bool:
        return not self.problems


def settlement_statement(
    session: Session, *, merchant_id: str, currency: str
) -> SettlementStatement:
    """Every posting on the merchant's payable is either in exactly one settlement, whose lines
    sum to zero and add up to its columns, or pending; pending sums to the ledger balance."""
    repository = SettlementRepository(session)
    postings = repository.payable_postings(
        merchant_id=merchant_id,
        account_code=accounts.merchant_payable(merchant_id).code(currency),
        pending_only=False,
    )
    held_orders = repository.held_order_ids(merchant_id)
    ledger_payable = -_balance(session, accounts.merchant_payable(merchant_id), currency)
    problems: list[str] = []
    by_settlement: dict[str, int] = defaultdict(int)
    for posting in postings:
        if posting.settlement_id is not None:
            by_settlement[posting.settlement_id] += posting.owed_minor
    pending = sum(p.owed_minor for p in postings if p.settlement_id is None)
    if pending != ledger_payable:
        problems.append(f"pending entries {pending} != ledger payable {ledger_payable}")
    # What the next payout reads as pending: the ledger's open items of the payable.
    open_items = LedgerRepository(session).open_items_of_account(
        merchant_id, accounts.merchant_payable(merchant_id).code(currency)
    )
    pending_owed = {p.entry_id: p.owed_minor for p in postings if p.settlement_id is None}
    if {entry: -amount for entry, amount in open_items.items()} != pending_owed:
        problems.append("the ledger's open items of the payable != its pending entries")
    for settlement_id, total in sorted(by_settlement.items()):
        if total != 0:
            problems.append(f"settlement {settlement_id}: its entries sum to {total}, not 0")
    owed_by_entry = {posting.entry_id: posting.owed_minor for posting in postings}
    for settlement in repository.settlements_of(merchant_id, currency):
        lines = repository.lines_of(merchant_id, settlement.id)
        by_component: dict[str, int] = defaultdict(int)
        for line in lines:
            by_component[line.component] += line.amount_minor
            if owed_by_entry.get(line.entry_id) != line.amount_minor:
                problems.append(f"settlement {settlement.id}: line {line.entry_id} != its posting")
        for column, component, sign in HEADER_COMPONENTS:
            if getattr(settlement, column) != sign * by_component.get(component, 0):
                problems.append(f"settlement {settlement.id}: {column} != its {component} lines")
    return SettlementStatement(
        merchant_id=merchant_id,
        currency=currency,
        ledger_payable_minor=ledger_payable,
        pending_minor=pending,
        settled_minor=sum(by_settlement.values()),
        lines=[
            StatementLine(
                entry_id=p.entry_id,
                entry_kind=p.entry_kind,
                order_id=p.order_id,
                amount_minor=p.owed_minor,
                created_at=p.created_at,
                settlement_id=p.settlement_id,
                is_held=p.settlement_id is None and p.order_id in held_orders,
            )
            for p in postings
        ],
        problems=problems,
    )
