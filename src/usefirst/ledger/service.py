"""The only writer of journal entries: balanced, append-only postings."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Insert, UpdateBase
from sqlalchemy.orm import Session

from usefirst.kit.db import AnySelect
from usefirst.kit.errors import InvariantViolated
from usefirst.kit.ids import new_id
from usefirst.ledger import accounts
from usefirst.ledger.accounts import AccountRef, EntryKind, Leg, transfer
from usefirst.ledger.repository import LedgerRepository


def post_entry(
    session: Session,
    *,
    kind: EntryKind,
    currency: str,
    legs: Sequence[Leg],
    now: datetime,
    shopper_id: str | None = None,
    merchant_id: str | None = None,
    order_id: str | None = None,
    reference_id: str | None = None,
    memo: str = "",
) -> str:
    """Post one balanced entry and return its id. Zero legs are dropped; an empty entry is a no-op
    only when every leg is zero (returns "")."""
    rows = entry_rows(
        kind=kind,
        currency=currency,
        legs=legs,
        now=now,
        shopper_id=shopper_id,
        merchant_id=merchant_id,
        order_id=order_id,
        reference_id=reference_id,
        memo=memo,
    )
    if rows is None:
        return ""
    repository = LedgerRepository(session)
    repository.ensure_accounts(rows.accounts)
    repository.insert_entry(entry=rows.entry, postings=rows.postings, now=now)
    repository.insert_open_items(open_items(rows.accounts, [rows.entry], rows.postings))
    return rows.entry_id


def open_items(
    accounts_made: Iterable[dict[str, object]],
    entries: Sequence[dict[str, object]],
    postings: Sequence[dict[str, object]],
) -> list[dict[str, object]]:
    """The open items (``ledger_open_items``) of entries about to be written: one per posting to
    an account kept item by item (``accounts.OPEN_ITEM_KINDS``), with what its entry says."""
    kept = {
        account["code"]: account
        for account in accounts_made
        if account["kind"] in accounts.OPEN_ITEM_KINDS and account["owner_id"] is not None
    }
    if not kept:
        return []
    entry_of = {entry["id"]: entry for entry in entries}
    items: list[dict[str, object]] = []
    for posting in postings:
        account = kept.get(posting["account_code"])
        if account is None:
            continue
        entry = entry_of[posting["entry_id"]]
        items.append(
            {
                "owner_id": account["owner_id"],
                "account_code": posting["account_code"],
                "entry_id": posting["entry_id"],
                "account_kind": account["kind"],
                "currency": posting["currency"],
                "entry_kind": entry["kind"],
                "order_id": entry["order_id"],
                "amount_minor": posting["amount_minor"],
                "created_at": entry["created_at"],
            }
        )
    return items


def clear_open_items(session: Session, *, owner_entries: Sequence[tuple[str, str]]) -> None:
    """Close the open items of these (owner, entry) pairs, in the caller's transaction: their
    entries are settled (the settlement run calls it with every entry its settlement lines
    record). Set-based; a pair without an open item (a payout's own entries) changes nothing."""
    LedgerRepository(session).clear_open_items(owner_entries)


@dataclass(frozen=True)
class EntryRows:
    accounts: list[dict[str, object]]
    entry: dict[str, object]
    postings: list[dict[str, object]]

    @property
    def entry_id(self) -> str:
        return str(self.entry["id"])


@dataclass(frozen=True)
class EntryWrites:
    """One entry as two statements that may be sent together (PostgreSQL): ``postings`` (its
    accounts and postings, sent first) and ``entry`` (its header, a part of a later
    statement). See ``LedgerRepository.postings_statement``."""

    entry_id: str
    postings: AnySelect
    entry: Insert


def entry_writes(rows: EntryRows) -> EntryWrites:
    """The entry ``entry_rows`` made, as statements (``post_entry`` writes the same rows). For
    entries without open items (a shopper's payment): those are written by ``post_entry``."""
    if open_items(rows.accounts, [rows.entry], rows.postings):
        raise InvariantViolated(f"a {rows.entry['kind']} entry with open items needs post_entry")
    return EntryWrites(
        entry_id=rows.entry_id,
        postings=LedgerRepository.postings_statement(
            accounts=rows.accounts, entry=rows.entry, postings=rows.postings
        ),
        entry=LedgerRepository.entry_insert(rows.entry),
    )


def entry_rows(
    *,
    kind: EntryKind,
    currency: str,
    legs: Sequence[Leg],
    now: datetime,
    shopper_id: str | None = None,
    merchant_id: str | None = None,
    order_id: str | None = None,
    reference_id: str | None = None,
    memo: str = "",
) -> EntryRows | None:
    """One balanced entry's rows (``post_entry``'s checks: zero legs dropped, None when every
    leg is zero, at least two legs, a new entry id), not written."""
    merged: dict[AccountRef, int] = defaultdict(int)
    for leg in legs:
        merged[leg.account] += leg.amount_minor
    live_legs = [(account, amount) for account, amount in merged.items() if amount != 0]
    if sum(amount for _, amount in live_legs) != 0:
        raise InvariantViolated(f"unbalanced {kind} entry: {live_legs!r}")
    if not live_legs:
        return None
    if len(live_legs) < 2:
        raise InvariantViolated(f"{kind} entry needs at least two non-zero legs")
    entry_id = new_id("journal_entry")
    return EntryRows(
        accounts=[
            {
                "code": account.code(currency),
                "kind": account.kind.value,
                "owner_id": account.owner_id,
                "currency": currency,
                "created_at": now,
            }
            for account, _ in live_legs
        ],
        entry={
            "id": entry_id,
            "kind": kind.value,
            "shopper_id": shopper_id,
            "merchant_id": merchant_id,
            "order_id": order_id,
            "reference_id": reference_id,
            "posting_count": len(live_legs),
            "memo": memo[:200],
            "created_at": now,
        },
        postings=[
            {
                "entry_id": entry_id,
                "seq": seq,
                "account_code": account.code(currency),
                "currency": currency,
                "amount_minor": amount,
            }
            for seq, (account, amount) in enumerate(live_legs, start=1)
        ],
    )


@dataclass(frozen=True)
class Transfer:
    """One two-legged entry of a batch (see ``post_transfers``)."""

    debit: AccountRef
    credit: AccountRef
    amount_minor: int
    currency: str
    shopper_id: str | None = None
    merchant_id: str | None = None
    order_id: str | None = None
    reference_id: str | None = None
    memo: str = ""


def post_transfers(
    session: Session, *, kind: EntryKind, transfers: Sequence[Transfer], now: datetime
) -> list[str]:
    """Post many two-legged entries of one kind in a few statements (the daily sweep's late fees,
    for instance): one entry per transfer, each with its own id, owner and order, so every entry
    stays traceable as if posted by ``post_transfer``. Zero amounts post nothing (id ""); the
    ids are returned in the order of ``transfers``."""
    return post_kinds_of_transfers(session, transfers=[(kind, item) for item in transfers], now=now)


def post_kinds_of_transfers(
    session: Session, *, transfers: Sequence[tuple[EntryKind, Transfer]], now: datetime
) -> list[str]:
    """``post_transfers`` for transfers of different kinds (the entries of one money call, as
    ``post_transfer`` one by one would post them): one account upsert and one insert of the
    entries and postings for all of them."""
    rows = transfers_rows(transfers=transfers, now=now)
    repository = LedgerRepository(session)
    repository.ensure_accounts_many(rows.accounts)
    repository.insert_entries(
        entries=rows.entries, postings=rows.postings, open_items=rows.open_items
    )
    return rows.ids


@dataclass(frozen=True)
class TransfersRows:
    """The rows ``post_kinds_of_transfers`` writes: the accounts (each once), the entries'
    headers and postings, their open items (``open_items``), and the entries' ids in the order
    of the transfers ("" for a zero amount, which posts nothing)."""

    accounts: list[dict[str, object]]
    entries: list[dict[str, object]]
    postings: list[dict[str, object]]
    open_items: list[dict[str, object]]
    ids: list[str]


def transfers_rows(
    *, transfers: Sequence[tuple[EntryKind, Transfer]], now: datetime
) -> TransfersRows:
    """``post_kinds_of_transfers``' checks and rows (new entry ids, in the order of the
    transfers), not written."""
    accounts_by_code: dict[str, dict[str, object]] = {}
    entries: list[dict[str, object]] = []
    postings: list[dict[str, object]] = []
    ids: list[str] = []
    for kind, item in transfers:
        if item.amount_minor < 0:
            raise InvariantViolated(f"{kind} transfer of a negative amount: {item!r}")
        if item.amount_minor == 0:
            ids.append("")
            continue
        if item.debit == item.credit:
            raise InvariantViolated(f"{kind} transfer needs two different accounts: {item!r}")
        entry_id = new_id("journal_entry")
        ids.append(entry_id)
        for seq, (account, amount) in enumerate(
            ((item.debit, item.amount_minor), (item.credit, -item.amount_minor)), start=1
        ):
            code = account.code(item.currency)
            if code not in accounts_by_code:
                accounts_by_code[code] = {
                    "code": code,
                    "kind": account.kind.value,
                    "owner_id": account.owner_id,
                    "currency": item.currency,
                    "created_at": now,
                }
            postings.append(
                {
                    "entry_id": entry_id,
                    "seq": seq,
                    "account_code": code,
                    "currency": item.currency,
                    "amount_minor": amount,
                }
            )
        entries.append(
            {
                "id": entry_id,
                "kind": kind.value,
                "shopper_id": item.shopper_id,
                "merchant_id": item.merchant_id,
                "order_id": item.order_id,
                "reference_id": item.reference_id,
                "posting_count": 2,
                "memo": item.memo[:200],
                "created_at": now,
            }
        )
    return TransfersRows(
        accounts=list(accounts_by_code.values()),
        entries=entries,
        postings=postings,
        open_items=open_items(accounts_by_code.values(), entries, postings),
        ids=ids,
    )


@dataclass(frozen=True)
class TransfersWrites:
    """``TransfersRows`` as parts of two statements sent one after the other (PostgreSQL):
    ``accounts`` and ``postings`` in the first, ``entries`` (the headers) and the open items
    (when any: a merchant payable's postings) in the second, for the ledger's guards (see
    ``LedgerRepository.postings_statement``)."""

    accounts: UpdateBase
    postings: UpdateBase
    entries: UpdateBase
    open_items: UpdateBase | None


def transfers_writes(rows: TransfersRows) -> TransfersWrites | None:
    """The rows as statement parts (None when every transfer was zero: nothing to post)."""
    if not rows.entries:
        return None
    accounts, postings, entries = LedgerRepository.transfers_parts(
        accounts=rows.accounts, entries=rows.entries, postings=rows.postings
    )
    return TransfersWrites(
        accounts=accounts,
        postings=postings,
        entries=entries,
        open_items=LedgerRepository.open_items_part(rows.open_items),
    )


@dataclass(frozen=True)
class ChargesPosted:
    entries: int
    total_minor: int


def post_receivable_charges(
    session: Session,
    *,
    kind: EntryKind,
    charges_sql: str,
    credit: AccountRef,
    memo: str,
    now: datetime,
) -> ChargesPosted:
    """Post one two-legged entry per row of the SQL query ``charges_sql`` (columns shopper_id,
    order_id, currency, amount_minor): the shopper's receivable is debited and ``credit`` (an
    unowned account) credited, with the shopper and order on the entry, exactly as
    ``post_transfers`` would. Zero amounts post nothing; a negative amount is refused.

    On PostgreSQL the entries are made on the server from the query and only their ids travel
    (a day's late fees are ~80,000 entries: reading them into Python and sending them back as
    ~1.2 million values cost seconds); elsewhere the rows are read and posted by
    ``post_transfers``."""
    if credit.owner_id is not None:
        raise InvariantViolated(f"{kind} charges credit an unowned account, not {credit!r}")
    repository = LedgerRepository(session)
    if session.get_bind().dialect.name != "postgresql":
        rows = repository.charges_of(charges_sql)
        post_transfers(
            session,
            kind=kind,
            transfers=[
                Transfer(
                    debit=accounts.shopper_receivable(shopper_id),
                    credit=credit,
                    amount_minor=amount_minor,
                    currency=currency,
                    shopper_id=shopper_id,
                    order_id=order_id,
                    memo=memo,
                )
                for shopper_id, order_id, currency, amount_minor in rows
            ],
            now=now,
        )
        charged = [amount_minor for *_, amount_minor in rows if amount_minor != 0]
        return ChargesPosted(entries=len(charged), total_minor=sum(charged))
    count, total_minor, smallest = repository.stage_charges(charges_sql)
    if smallest is not None and smallest < 0:
        raise InvariantViolated(f"{kind} charge of a negative amount: {smallest}")
    if count:
        repository.insert_staged_charges(
            entry_ids=[new_id("journal_entry") for _ in range(count)],
            kind=kind.value,
            credit_kind=credit.kind,
            memo=memo[:200],
            now=now,
        )
    repository.drop_staged_charges()
    return ChargesPosted(entries=count, total_minor=total_minor)


def balance_of(session: Session, account: AccountRef, currency: str) -> int:
    """Debit-positive balance of an account (a liability's balance is negative)."""
    return LedgerRepository(session).balance_of(account.code(currency))


def balance_reading(account: AccountRef, currency: str) -> AnySelect:
    """``balance_of`` as a statement to send with other reads (``kit.db.rows_together``): its
    one row's ``balance_minor``."""
    return LedgerRepository.balance_statement(account.code(currency))


def balances_of(
    session: Session, accounts: Sequence[AccountRef], currency: str
) -> dict[AccountRef, int]:
    """``balance_of`` for many accounts in one query per thousand (0 for no postings)."""
    codes = {account.code(currency): account for account in accounts}
    found = LedgerRepository(session).balances_of(sorted(codes))
    return {account: found.get(code, 0) for code, account in codes.items()}


@dataclass
class TrialBalanceLine:
    account: str
    kind: str
    currency: str
    debits_minor: int
    credits_minor: int

    @property
    def balance_minor(self) -> int:
        return self.debits_minor - self.credits_minor


@dataclass
class TrialBalance:
    lines: list[TrialBalanceLine]
    debits_minor: int
    credits_minor: int


def trial_balance(session: Session) -> TrialBalance:
    lines = [TrialBalanceLine(*row) for row in LedgerRepository(session).balances()]
    return TrialBalance(
        lines=lines,
        debits_minor=sum(line.debits_minor for line in lines),
        credits_minor=sum(line.credits_minor for line in lines),
    )


@dataclass
class AuditReport:
    entries: int = 0
    debits_minor: int = 0
    credits_minor: int = 0
    shoppers_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def is_balanced(self) -> bool:
        return not self.problems


def audit_journal(session: Session) -> AuditReport:
    """Prove the journal: every entry balances with all its postings, debits = credits. (The
    reconcile flow adds the check of receivables against what shoppers' statements say.)"""
    repository = LedgerRepository(session)
    report = AuditReport()
    report.debits_minor, report.credits_minor, report.entries = repository.totals()
    if report.debits_minor != report.credits_minor:
        report.problems.append(
            f"total debits {report.debits_minor} != total credits {report.credits_minor}"
        )
    for entry_id, currency, total in repository.unbalanced_entries():
        report.problems.append(f"entry {entry_id} does not balance in {currency}: {total}")
    for entry_id in repository.entries_with_wrong_posting_count():
        report.problems.append(f"entry {entry_id} has missing or orphan postings")
    return report


# Entries whose receivable postings are not the order's own: a payment (or held credit, or a
# provider's reversal) is posted once per shopper, the allocations saying which orders it paid;
# a charge-off moves the debt to a loss without forgiving it (the shopper still owes it).
SHOPPER_LEVEL_KINDS = (
    EntryKind.SHOPPER_PAYMENT.value,
    EntryKind.UNAPPLIED_CREDIT_APPLIED.value,
    EntryKind.PAYMENT_REVERSAL.value,
    EntryKind.CHARGE_OFF.value,
)
# Entries that take an amount off an order's schedule: an early payoff's rebate, a refund.
SCHEDULE_CUT_KINDS = (
    EntryKind.PAYOFF_REBATE.value,
    EntryKind.REFUND_REDUCING_DEBT.value,
    EntryKind.FEE_WAIVER.value,
)


@dataclass(frozen=True)
class OrderReceivable:
    """An order's own receivable postings as of an instant."""

    # What the order was charged by then (principal, plan fee, late fees) less what was taken
    # off it without a payment (waivers, refunds, rebates, a hardship settlement's write-off);
    # its payments are the caller's to subtract (the allocations made by then).
    charged_minor: int
    # Rebates and refunds posted since, which took that much off its schedule.
    cut_since_minor: int


def order_receivables(
    session: Session, *, order_ids: Sequence[str], before: datetime
) -> dict[str, OrderReceivable]:
    """Each order's :class:`OrderReceivable` as of ``before`` from its journal entries, in one
    statement for all the orders (an order with no entries is absent)."""
    found = LedgerRepository(session).order_receivables(
        order_ids, before=before, left_out_kinds=SHOPPER_LEVEL_KINDS, cut_kinds=SCHEDULE_CUT_KINDS
    )
    return {
        order_id: OrderReceivable(charged_minor=charged, cut_since_minor=cut)
        for order_id, (charged, cut) in found.items()
    }


def receivables_by_shopper(session: Session) -> dict[str, int]:
    """Shopper id -> the balance of their receivable account(s)."""
    return LedgerRepository(session).balances_by_owner("shopper_receivable")


def post_transfer(
    session: Session,
    *,
    kind: EntryKind,
    debit: AccountRef,
    credit: AccountRef,
    amount_minor: int,
    currency: str,
    now: datetime,
    shopper_id: str | None = None,
    merchant_id: str | None = None,
    order_id: str | None = None,
    reference_id: str | None = None,
    memo: str = "",
) -> str:
    """Post a two-legged entry moving ``amount_minor`` from ``credit`` to ``debit``; nothing
    (and "") for a zero amount."""
    if amount_minor == 0:
        return ""
    return post_entry(
        session,
        kind=kind,
        currency=currency,
        legs=transfer(debit=debit, credit=credit, amount_minor=amount_minor),
        now=now,
        shopper_id=shopper_id,
        merchant_id=merchant_id,
        order_id=order_id,
        reference_id=reference_id,
        memo=memo,
    )
