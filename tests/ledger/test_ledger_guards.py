"""The journal defends itself: in code (post_entry) and in the database (triggers, deferred keys).

Every refused attempt is followed by a check that nothing at all changed, and ``audit()`` is shown
to catch a receivable that no longer matches the shopper's statement.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError, InternalError

from tests.factories import enrol_in_work
from usefirst.flows.reconcile import audit
from usefirst.kit.db import on_citus
from usefirst.kit.errors import InvariantViolated
from usefirst.kit.models import PLATFORM_SHARD_KEY
from usefirst.ledger import accounts
from usefirst.ledger.accounts import AccountKind, AccountRef, EntryKind, Leg, transfer
from usefirst.ledger.service import balance_of, post_entry, post_receivable_charges
from usefirst.runtime import Runtime


def _on_citus(runtime: Runtime) -> bool:
    with runtime.database.engine.connect() as connection:
        return on_citus(connection)


def unknown_account_refused(runtime: Runtime) -> str:
    """What refuses a posting to an account that does not exist: the guard trigger, or on a Citus
    cluster the postings' foreign key to the accounts (reference) table that stands in for it
    (usefirst.distribution)."""
    if _on_citus(runtime):
        return 'foreign key constraint "fk_ledger_postings_account_code_ledger_accounts'
    return "account does not exist"


SUSPENSE = AccountRef(AccountKind.SUSPENSE)
CASH = accounts.PLATFORM_CASH
CASH_CODE = CASH.code("CNY")
SUSPENSE_CODE = SUSPENSE.code("CNY")


def journal(runtime: Runtime) -> dict[str, Any]:
    """Everything the journal holds, to prove that a refused write changed nothing."""
    with runtime.work(read_only=True) as work:
        entries = work.session.execute(
            text("SELECT id, kind, posting_count, memo FROM journal_entries ORDER BY id")
        ).all()
        postings = work.session.execute(
            text(
                "SELECT entry_id, seq, account_code, currency, amount_minor "
                "FROM ledger_postings ORDER BY entry_id, seq"
            )
        ).all()
        account_codes = work.session.scalars(
            text("SELECT code FROM ledger_accounts ORDER BY code")
        ).all()
    return {
        "entries": [tuple(row) for row in entries],
        "postings": [tuple(row) for row in postings],
        "accounts": list(account_codes),
    }


def counts(runtime: Runtime) -> tuple[int, int]:
    with runtime.work(read_only=True) as work:
        entries = work.session.scalar(text("SELECT COUNT(*) FROM journal_entries"))
        postings = work.session.scalar(text("SELECT COUNT(*) FROM ledger_postings"))
    return int(entries or 0), int(postings or 0)


@pytest.fixture
def seeded(runtime: Runtime) -> str:
    """One genuine entry (cash ↔ suspense), so the accounts exist and there is something to
    tamper with. Returns its id."""
    with runtime.work() as work:
        entry_id = post_entry(
            work.session,
            kind=EntryKind.SHOPPER_PAYMENT,
            currency="CNY",
            legs=transfer(debit=CASH, credit=SUSPENSE, amount_minor=1_000),
            now=work.now,
            memo="seed",
        )
    assert entry_id
    return entry_id


def insert_postings(work_session: Any, entry_id: str, legs: list[tuple[str, str, int]]) -> None:
    for seq, (account_code, currency, amount) in enumerate(legs, start=1):
        work_session.execute(
            text(
                "INSERT INTO ledger_postings"
                " (shard_key, entry_id, seq, account_code, currency, amount_minor) "
                "VALUES (:shard_key, :entry_id, :seq, :account_code, :currency, :amount)"
            ),
            {
                "shard_key": PLATFORM_SHARD_KEY,
                "entry_id": entry_id,
                "seq": seq,
                "account_code": account_code,
                "currency": currency,
                "amount": amount,
            },
        )


def insert_header(work_session: Any, entry_id: str, posting_count: int, now: Any) -> None:
    work_session.execute(
        text(
            "INSERT INTO journal_entries (shard_key, id, kind, posting_count, memo, created_at) "
            "VALUES (:shard_key, :id, 'suspense_move', :posting_count, 'raw', :created_at)"
        ),
        {
            "shard_key": PLATFORM_SHARD_KEY,
            "id": entry_id,
            "posting_count": posting_count,
            "created_at": now,
        },
    )


def ensure_account(
    work_session: Any, code: str, kind: str, owner_id: str | None, currency: str, now: Any
) -> None:
    work_session.execute(
        text(
            "INSERT INTO ledger_accounts (code, kind, owner_id, currency, created_at) "
            "VALUES (:code, :kind, :owner_id, :currency, :created_at)"
        ),
        {"code": code, "kind": kind, "owner_id": owner_id, "currency": currency, "created_at": now},
    )


def db_now(runtime: Runtime) -> Any:
    with runtime.work(read_only=True) as work:
        return work.now.replace(tzinfo=None) if runtime.database.is_sqlite else work.now


# --- in code -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "legs",
    [
        [Leg(CASH, 100), Leg(SUSPENSE, -99)],
        [Leg(CASH, 100)],
        [Leg(CASH, 100), Leg(SUSPENSE, -50), Leg(SUSPENSE, -49)],  # merges to -99
        [Leg(CASH, 1), Leg(CASH, 1), Leg(SUSPENSE, -1)],
        [Leg(CASH, -5), Leg(SUSPENSE, -5)],
    ],
    ids=["off-by-one", "one-leg", "merged-legs", "merged-debits", "two-credits"],
)
def test_post_entry_refuses_unbalanced_legs(runtime: Runtime, seeded: str, legs: list[Leg]) -> None:
    before = journal(runtime)
    with pytest.raises(InvariantViolated, match="unbalanced"), runtime.work() as work:
        post_entry(work.session, kind=EntryKind.FEE_WAIVER, currency="CNY", legs=legs, now=work.now)
    assert journal(runtime) == before


def test_post_entry_rolls_back_everything_in_the_failed_transaction(
    runtime: Runtime, seeded: str
) -> None:
    """A good entry followed by a refused one in the same unit of work: neither survives."""
    before = journal(runtime)
    with pytest.raises(InvariantViolated), runtime.work() as work:
        post_entry(
            work.session,
            kind=EntryKind.FEE_WAIVER,
            currency="CNY",
            legs=transfer(debit=SUSPENSE, credit=CASH, amount_minor=7),
            now=work.now,
        )
        post_entry(
            work.session,
            kind=EntryKind.FEE_WAIVER,
            currency="CNY",
            legs=[Leg(CASH, 7), Leg(SUSPENSE, -6)],
            now=work.now,
        )
    assert journal(runtime) == before


def test_post_entry_merges_and_drops_zero_legs(runtime: Runtime, seeded: str) -> None:
    before_entries, before_postings = counts(runtime)
    with runtime.work() as work:
        nothing = post_entry(
            work.session,
            kind=EntryKind.FEE_WAIVER,
            currency="CNY",
            legs=[Leg(CASH, 5), Leg(CASH, -5), Leg(SUSPENSE, 0)],
            now=work.now,
        )
        merged = post_entry(
            work.session,
            kind=EntryKind.FEE_WAIVER,
            currency="CNY",
            legs=[Leg(CASH, 30), Leg(SUSPENSE, -10), Leg(SUSPENSE, -20)],
            now=work.now,
        )
    assert nothing == ""
    assert merged
    assert counts(runtime) == (before_entries + 1, before_postings + 2)
    with runtime.work(read_only=True) as work:
        assert balance_of(work.session, CASH, "CNY") == 1_030
        assert balance_of(work.session, SUSPENSE, "CNY") == -1_030
        assert audit(work.session).problems == []


# --- in the database ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("legs", "posting_count"),
    [
        ([(CASH_CODE, "CNY", 100), (SUSPENSE_CODE, "CNY", -99)], 2),
        ([(CASH_CODE, "CNY", 100), (SUSPENSE_CODE, "CNY", 100)], 2),
        ([(CASH_CODE, "CNY", 100), (SUSPENSE_CODE, "CNY", -100)], 3),  # count lies (too many)
        ([(CASH_CODE, "CNY", 100), (SUSPENSE_CODE, "CNY", -100)], 1),  # count lies (too few)
        ([(CASH_CODE, "CNY", 100), (SUSPENSE_CODE, "CNY", -60)], 3),  # and a missing leg
        ([], 2),  # a header without postings
        ([], 0),
        # Balanced in total, but not per currency.
        ([(CASH_CODE, "CNY", 100), ("suspense::USD", "USD", -100)], 2),
    ],
    ids=[
        "off-by-one",
        "all-debits",
        "count-too-high",
        "count-too-low",
        "unbalanced-count-high",
        "header-only",
        "header-only-zero-count",
        "currencies-mixed",
    ],
)
def test_database_refuses_unbalanced_entry(
    runtime: Runtime, seeded: str, legs: list[tuple[str, str, int]], posting_count: int
) -> None:
    now = db_now(runtime)
    with runtime.work() as work:
        ensure_account(work.session, "suspense::USD", "suspense", None, "USD", now)
    before = journal(runtime)
    with pytest.raises(IntegrityError, match="does not balance"), runtime.work() as work:
        insert_postings(work.session, "jen_raw_unbalanced", legs)
        insert_header(work.session, "jen_raw_unbalanced", posting_count, now)
    assert journal(runtime) == before


def test_database_accepts_a_balanced_raw_entry(runtime: Runtime, seeded: str) -> None:
    """The guards are not simply refusing everything: a balanced entry goes in."""
    now = db_now(runtime)
    before_entries, before_postings = counts(runtime)
    with runtime.work() as work:
        insert_postings(
            work.session,
            "jen_raw_balanced",
            [(CASH_CODE, "CNY", 40), (SUSPENSE_CODE, "CNY", -15), (SUSPENSE_CODE, "CNY", -25)],
        )
        insert_header(work.session, "jen_raw_balanced", 3, now)
    assert counts(runtime) == (before_entries + 1, before_postings + 3)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE journal_entries SET memo = 'edited' WHERE id = :entry_id",
        "UPDATE journal_entries SET posting_count = 3 WHERE id = :entry_id",
        "DELETE FROM journal_entries WHERE id = :entry_id",
        "UPDATE ledger_postings SET amount_minor = amount_minor * 2 WHERE entry_id = :entry_id",
        "UPDATE ledger_postings SET account_code = 'platform_cash::CNY' WHERE entry_id = :entry_id",
        "DELETE FROM ledger_postings WHERE entry_id = :entry_id",
        "DELETE FROM ledger_postings",
        "DELETE FROM journal_entries",
    ],
)
def test_journal_is_append_only(runtime: Runtime, seeded: str, statement: str) -> None:
    before = journal(runtime)
    assert before["entries"] and before["postings"]
    with pytest.raises(DBAPIError, match="append-only"), runtime.work() as work:
        work.session.execute(text(statement), {"entry_id": seeded})
    assert journal(runtime) == before


@pytest.mark.parametrize(
    "legs",
    [
        [(CASH_CODE, "CNY", 500)],
        [(CASH_CODE, "CNY", 500), (SUSPENSE_CODE, "CNY", -500)],  # even a balanced pair
    ],
    ids=["one-posting", "balanced-pair"],
)
def test_sealed_entry_refuses_more_postings(
    runtime: Runtime, seeded: str, legs: list[tuple[str, str, int]]
) -> None:
    before = journal(runtime)
    with pytest.raises(IntegrityError, match="sealed"), runtime.work() as work:
        for offset, (account_code, currency, amount) in enumerate(legs):
            work.session.execute(
                text(
                    "INSERT INTO ledger_postings "
                    "(shard_key, entry_id, seq, account_code, currency, amount_minor) "
                    "VALUES (:shard_key, :entry_id, :seq, :account_code, :currency, :amount)"
                ),
                {
                    "shard_key": PLATFORM_SHARD_KEY,
                    "entry_id": seeded,
                    "seq": 10 + offset,
                    "account_code": account_code,
                    "currency": currency,
                    "amount": amount,
                },
            )
    assert journal(runtime) == before


def test_header_then_postings_is_refused(runtime: Runtime, seeded: str) -> None:
    """Writing the header first cannot be used to skip the check: it seals the entry at once."""
    now = db_now(runtime)
    before = journal(runtime)
    with pytest.raises(IntegrityError, match=r"sealed|does not balance"), runtime.work() as work:
        insert_header(work.session, "jen_raw_header_first", 2, now)
        insert_postings(
            work.session,
            "jen_raw_header_first",
            [(CASH_CODE, "CNY", 100), (SUSPENSE_CODE, "CNY", -100)],
        )
    assert journal(runtime) == before


@pytest.mark.parametrize(
    "legs",
    [
        [(CASH_CODE, "CNY", 100), (SUSPENSE_CODE, "CNY", -100)],  # balanced, yet headerless
        [(CASH_CODE, "CNY", 100)],
    ],
    ids=["balanced", "single"],
)
def test_orphan_postings_fail_at_commit(
    runtime: Runtime, seeded: str, legs: list[tuple[str, str, int]]
) -> None:
    before = journal(runtime)
    session_reached_commit = False
    # A Citus worker refuses the deferred key when the coordinator commits the shard's
    # transaction, and the coordinator reports that commit as failed.
    refused = (
        pytest.raises(InternalError, match="could not commit transaction for shard")
        if _on_citus(runtime)
        else pytest.raises(IntegrityError, match=r"(?i)foreign key")
    )
    with refused, runtime.work() as work:
        insert_postings(work.session, "jen_raw_orphan", legs)
        work.session.flush()
        # The key is deferred (postings precede their header), so the insert itself passes.
        session_reached_commit = True
    assert session_reached_commit
    assert journal(runtime) == before


def test_zero_posting_refused(runtime: Runtime, seeded: str) -> None:
    now = db_now(runtime)
    before = journal(runtime)
    with pytest.raises(IntegrityError), runtime.work() as work:
        insert_postings(
            work.session,
            "jen_raw_zero",
            [(CASH_CODE, "CNY", 100), (SUSPENSE_CODE, "CNY", -100), (SUSPENSE_CODE, "CNY", 0)],
        )
        insert_header(work.session, "jen_raw_zero", 3, now)
    assert journal(runtime) == before


@pytest.mark.parametrize(
    "legs",
    [
        [(CASH_CODE, "CNY", 100), ("no_such_account::CNY", "CNY", -100)],
        [("no_such_account::CNY", "CNY", 100), (SUSPENSE_CODE, "CNY", -100)],
    ],
    ids=["second-leg", "first-leg"],
)
def test_posting_to_an_unknown_account_is_refused(
    runtime: Runtime, seeded: str, legs: list[tuple[str, str, int]]
) -> None:
    now = db_now(runtime)
    before = journal(runtime)
    with (
        pytest.raises(IntegrityError, match=unknown_account_refused(runtime)),
        runtime.work() as work,
    ):
        insert_postings(work.session, "jen_raw_unknown_account", legs)
        insert_header(work.session, "jen_raw_unknown_account", 2, now)
    assert journal(runtime) == before


def test_one_unknown_account_refuses_a_whole_multi_row_insert(
    runtime: Runtime, seeded: str
) -> None:
    """PostgreSQL checks the accounts once per statement: one bad row among many fails it all."""
    before = journal(runtime)
    with (
        pytest.raises(IntegrityError, match=unknown_account_refused(runtime)),
        runtime.work() as work,
    ):
        work.session.execute(
            text(
                "INSERT INTO ledger_postings"
                " (shard_key, entry_id, seq, account_code, currency, amount_minor)"
                " VALUES ('platform', 'jen_raw_many', 1, :cash, 'CNY', 300),"
                " ('platform', 'jen_raw_many', 2, :suspense, 'CNY', -100),"
                " ('platform', 'jen_raw_many', 3, 'suspense:typo:CNY', 'CNY', -200)"
            ),
            {"cash": CASH_CODE, "suspense": SUSPENSE_CODE},
        )
    assert journal(runtime) == before


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_accounts SET code = 'renamed::CNY' WHERE code = :code",
        "UPDATE ledger_accounts SET kind = 'platform_cash' WHERE code = :code",
        "DELETE FROM ledger_accounts WHERE code = :code",
        "DELETE FROM ledger_accounts",
    ],
)
def test_ledger_accounts_are_append_only(runtime: Runtime, seeded: str, statement: str) -> None:
    """Postings are not share-locking their account any more (0015): an account, once made, must
    stay as it is for every posting that names it."""
    before = journal(runtime)
    assert SUSPENSE_CODE in before["accounts"]
    with pytest.raises(DBAPIError, match="append-only"), runtime.work() as work:
        work.session.execute(text(statement), {"code": SUSPENSE_CODE})
    assert journal(runtime) == before


# --- the audit ---------------------------------------------------------------------------------


def test_audit_reports_receivable_that_does_not_match_the_statement(runtime: Runtime) -> None:
    """A balanced entry that moves money onto a shopper's receivable without going through
    repayment passes every database guard, and the audit still catches it."""
    with runtime.work() as work:
        shopper, _ = enrol_in_work(
            runtime, work, external_id="u-audit", birth_on=date(1990, 1, 15), name="张三"
        )
        shopper_id = shopper.id
    with runtime.work(read_only=True) as work:
        clean = audit(work.session)
    assert clean.problems == []

    receivable_code = accounts.shopper_receivable(shopper_id).code("CNY")
    now = db_now(runtime)
    with runtime.work() as work:
        ensure_account(work.session, receivable_code, "shopper_receivable", shopper_id, "CNY", now)
        ensure_account(work.session, SUSPENSE_CODE, "suspense", None, "CNY", now)
        insert_postings(
            work.session,
            "jen_raw_tamper",
            [(receivable_code, "CNY", 2_500), (SUSPENSE_CODE, "CNY", -2_500)],
        )
        insert_header(work.session, "jen_raw_tamper", 2, now)

    with runtime.work(read_only=True) as work:
        report = audit(work.session)
    assert report.debits_minor == report.credits_minor == 2_500
    assert report.entries == 1
    assert report.shoppers_checked == 1
    assert report.problems == [f"shopper {shopper_id}: receivable 2500 != statement 0"]
    assert not report.is_balanced


def test_audit_of_a_clean_ledger_counts_entries_debits_and_credits(runtime: Runtime) -> None:
    with runtime.work() as work:
        for amount in (10, 20, 30):
            post_entry(
                work.session,
                kind=EntryKind.SHOPPER_PAYMENT,
                currency="CNY",
                legs=transfer(debit=CASH, credit=SUSPENSE, amount_minor=amount),
                now=work.now,
            )
    with runtime.work(read_only=True) as work:
        report = audit(work.session)
    assert report.problems == []
    assert (report.entries, report.debits_minor, report.credits_minor) == (3, 60, 60)


# --- charges posted from a query (the daily sweep's late fees) -----------------------------------


def charges_query(rows: list[tuple[str, str, int]]) -> str:
    return " UNION ALL ".join(
        f"SELECT '{shopper}' AS shopper_id, '{order}' AS order_id, 'CNY' AS currency,"
        f" {amount} AS amount_minor"
        for shopper, order, amount in rows
    )


def test_receivable_charges_post_one_entry_per_row(runtime: Runtime, seeded: str) -> None:
    before = journal(runtime)
    with runtime.work() as work:
        posted = post_receivable_charges(
            work.session,
            kind=EntryKind.LATE_FEE,
            charges_sql=charges_query(
                [("shp_b", "ord_2", 50), ("shp_a", "ord_1", 120), ("shp_a", "ord_3", 0)]
            ),
            credit=accounts.LATE_FEE_INCOME,
            memo="daily late fee",
            now=work.now,
        )
    assert (posted.entries, posted.total_minor) == (2, 170)
    after = journal(runtime)
    new_entries = [entry for entry in after["entries"] if entry not in before["entries"]]
    assert sorted(entry[1:] for entry in new_entries) == [
        ("late_fee", 2, "daily late fee"),
        ("late_fee", 2, "daily late fee"),
    ]
    with runtime.work(read_only=True) as work:
        rows = work.session.execute(
            text(
                "SELECT e.shopper_id, e.order_id, p.seq, p.account_code, p.amount_minor"
                " FROM journal_entries e JOIN ledger_postings p"
                " ON p.shard_key = e.shard_key AND p.entry_id = e.id"
                " WHERE e.kind = 'late_fee' ORDER BY e.order_id, p.seq"
            )
        ).all()
    assert [tuple(row) for row in rows] == [
        ("shp_a", "ord_1", 1, "shopper_receivable:shp_a:CNY", 120),
        ("shp_a", "ord_1", 2, "late_fee_income::CNY", -120),
        ("shp_b", "ord_2", 1, "shopper_receivable:shp_b:CNY", 50),
        ("shp_b", "ord_2", 2, "late_fee_income::CNY", -50),
    ]
    assert set(after["accounts"]) - set(before["accounts"]) == {
        "shopper_receivable:shp_a:CNY",
        "shopper_receivable:shp_b:CNY",
        "late_fee_income::CNY",
    }


def test_receivable_charges_refuse_a_negative_amount_and_post_nothing(
    runtime: Runtime, seeded: str
) -> None:
    before = journal(runtime)
    with pytest.raises(InvariantViolated, match="negative"), runtime.work() as work:
        post_receivable_charges(
            work.session,
            kind=EntryKind.LATE_FEE,
            charges_sql=charges_query([("shp_a", "ord_1", 10), ("shp_b", "ord_2", -5)]),
            credit=accounts.LATE_FEE_INCOME,
            memo="daily late fee",
            now=work.now,
        )
    assert journal(runtime) == before


def test_receivable_charges_credit_only_an_unowned_account(runtime: Runtime, seeded: str) -> None:
    before = journal(runtime)
    with pytest.raises(InvariantViolated, match="unowned"), runtime.work() as work:
        post_receivable_charges(
            work.session,
            kind=EntryKind.LATE_FEE,
            charges_sql=charges_query([("shp_a", "ord_1", 10)]),
            credit=accounts.merchant_payable("mer_x"),
            memo="daily late fee",
            now=work.now,
        )
    assert journal(runtime) == before
