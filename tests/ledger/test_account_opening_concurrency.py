"""Two money calls that each post an entry and then open a ledger account, at the same moment,
both commit (issue 15).

On a Citus cluster ``ledger_accounts`` is a reference table: an upsert into it took a cluster-wide
ExclusiveLock on its shard until the end of the transaction, even when every account existed,
and each posting's insert takes a RowExclusiveLock on it (the foreign key to the accounts). Two
transactions that had posted and then upserted accounts waited for each other, a deadlock Citus
broke by cancelling one (the flows' storm test failed so, now and then). The ledger now reads the
accounts first, writes none that exists, and inserts a missing one as a commutative modification.
On one PostgreSQL the same two transactions never waited for each other; the test runs there too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from sqlalchemy import text

from tests.conftest import CITUS_URL, make_runtime
from usefirst.ledger.accounts import LATE_FEE_INCOME, AccountKind, AccountRef, EntryKind, transfer
from usefirst.ledger.service import (
    ChargesPosted,
    balance_of,
    post_entry,
    post_receivable_charges,
    trial_balance,
)
from usefirst.runtime import Runtime, Work

pytestmark = pytest.mark.postgresql

SHOPPERS = ("shp_opening_race_a", "shp_opening_race_b")
CASH = AccountRef(AccountKind.PLATFORM_CASH)


@pytest.fixture
def runtime(postgres_url: str) -> Iterator[Runtime]:
    runtime = make_runtime(postgres_url)
    yield runtime
    runtime.database.dispose()


def _receive(work: Work, shopper_id: str, account: AccountRef, amount_minor: int) -> str:
    """Cash received from a shopper, credited to ``account``."""
    return post_entry(
        work.session,
        kind=EntryKind.SHOPPER_PAYMENT,
        currency="CNY",
        legs=transfer(debit=CASH, credit=account, amount_minor=amount_minor),
        now=work.now,
        shopper_id=shopper_id,
    )


def test_two_transactions_that_posted_then_open_accounts_both_commit(runtime: Runtime) -> None:
    with runtime.work() as work:  # the cash and receivable accounts exist before the race
        for shopper_id in SHOPPERS:
            receivable = AccountRef(AccountKind.SHOPPER_RECEIVABLE, shopper_id)
            _receive(work, shopper_id, receivable, 100)
    barrier = threading.Barrier(len(SHOPPERS))

    def money_call(index: int) -> tuple[str, str]:
        shopper_id = SHOPPERS[index]
        with runtime.work() as work:
            receivable = AccountRef(AccountKind.SHOPPER_RECEIVABLE, shopper_id)
            paid = _receive(work, shopper_id, receivable, 50)
            # Both have posted (and hold what a posting holds) before either opens an account.
            barrier.wait(timeout=30)
            held = AccountRef(AccountKind.SHOPPER_UNAPPLIED_CREDIT, shopper_id)
            return paid, _receive(work, shopper_id, held, 30)

    with ThreadPoolExecutor(max_workers=len(SHOPPERS)) as pool:
        entry_ids = list(pool.map(money_call, range(len(SHOPPERS))))

    assert all(paid and held for paid, held in entry_ids)
    with runtime.work(read_only=True) as work:
        assert balance_of(work.session, CASH, "CNY") == 2 * (100 + 50 + 30)
        for shopper_id in SHOPPERS:
            receivable = AccountRef(AccountKind.SHOPPER_RECEIVABLE, shopper_id)
            held = AccountRef(AccountKind.SHOPPER_UNAPPLIED_CREDIT, shopper_id)
            assert balance_of(work.session, receivable, "CNY") == -150
            assert balance_of(work.session, held, "CNY") == -30
        totals = trial_balance(work.session)
        assert totals.debits_minor == totals.credits_minor == 2 * (100 + 50 + 30)


# A day's late fees, as the sweep's step posts them (``post_receivable_charges``): two charges of a
# shopper whose receivable exists and one of a shopper whose receivable does not yet.
LATE_FEES_SQL = (
    "SELECT * FROM (VALUES ('shp_opening_race_b', 'ord_opening_b1', 'CNY', CAST(40 AS bigint)),"
    " ('shp_opening_race_b', 'ord_opening_b2', 'CNY', CAST(25 AS bigint)),"
    " ('shp_opening_race_c', 'ord_opening_c1', 'CNY', CAST(7 AS bigint)))"
    " AS c(shopper_id, order_id, currency, amount_minor)"
)


def _charge_late_fee(work: Work, shopper_id: str, amount_minor: int) -> str:
    """One late fee posted by a money call (the accounts opened as a payment opens them)."""
    return post_entry(
        work.session,
        kind=EntryKind.LATE_FEE,
        currency="CNY",
        legs=transfer(
            debit=AccountRef(AccountKind.SHOPPER_RECEIVABLE, shopper_id),
            credit=LATE_FEE_INCOME,
            amount_minor=amount_minor,
        ),
        now=work.now,
        shopper_id=shopper_id,
    )


def _post_the_days_late_fees(work: Work) -> ChargesPosted:
    """``LATE_FEES_SQL`` posted as the sweep's late-fee step posts a day's fees."""
    return post_receivable_charges(
        work.session,
        kind=EntryKind.LATE_FEE,
        charges_sql=LATE_FEES_SQL,
        credit=LATE_FEE_INCOME,
        memo="daily late fee",
        now=work.now,
    )


@pytest.mark.parametrize("income_exists", [True, False], ids=["income-open", "income-missing"])
def test_the_sweeps_late_fees_post_while_a_payment_is_open(
    runtime: Runtime, income_exists: bool
) -> None:
    """The sweep's late-fee step opens the accounts it lacks, and posts, while a payment of
    another shopper has posted and not committed yet: on a cluster an upsert of the accounts (a
    reference table) by ``VALUES`` takes its cluster-wide ExclusiveLock and would wait for every
    payment in flight (and every later one behind it, until the step committed). The step
    reads the missing accounts and opens only those, as a money call opens its accounts."""
    with runtime.work() as work:
        _receive(work, SHOPPERS[0], AccountRef(AccountKind.SHOPPER_RECEIVABLE, SHOPPERS[0]), 100)
        _receive(work, SHOPPERS[1], AccountRef(AccountKind.SHOPPER_RECEIVABLE, SHOPPERS[1]), 100)
        if income_exists:
            _charge_late_fee(work, SHOPPERS[1], 3)
    payment_posted = threading.Event()
    fees_posted = threading.Event()

    def payment() -> bool:
        """A payment posted and held open until the late fees are posted (or 20 s): whether
        they were posted meanwhile."""
        with runtime.work() as work:
            _receive(work, SHOPPERS[0], AccountRef(AccountKind.SHOPPER_RECEIVABLE, SHOPPERS[0]), 50)
            payment_posted.set()
            return fees_posted.wait(timeout=20)

    def late_fees() -> ChargesPosted:
        payment_posted.wait(timeout=30)
        with runtime.work() as work:
            posted = _post_the_days_late_fees(work)
        fees_posted.set()
        return posted

    with ThreadPoolExecutor(max_workers=2) as pool:
        paying = pool.submit(payment)
        charging = pool.submit(late_fees)
        posted_while_open = paying.result()
        posted = charging.result()

    assert posted_while_open is True
    assert posted == ChargesPosted(entries=3, total_minor=72)
    before = 3 if income_exists else 0
    with runtime.work(read_only=True) as work:
        receivable = {
            shopper_id: balance_of(
                work.session, AccountRef(AccountKind.SHOPPER_RECEIVABLE, shopper_id), "CNY"
            )
            for shopper_id in (*SHOPPERS, "shp_opening_race_c")
        }
        assert receivable == {
            SHOPPERS[0]: -150,
            SHOPPERS[1]: -100 + before + 40 + 25,
            "shp_opening_race_c": 7,
        }
        assert balance_of(work.session, LATE_FEE_INCOME, "CNY") == -(before + 72)
        codes = work.session.scalars(text("SELECT code FROM ledger_accounts ORDER BY code")).all()
        assert codes == [
            "late_fee_income::CNY",
            "platform_cash::CNY",
            f"shopper_receivable:{SHOPPERS[0]}:CNY",
            f"shopper_receivable:{SHOPPERS[1]}:CNY",
            "shopper_receivable:shp_opening_race_c:CNY",
        ]
        totals = trial_balance(work.session)
        assert totals.debits_minor == totals.credits_minor == 250 + before + 72


def _waiting_lock(url: str, pid: int) -> str | None:
    """The type of the first lock the backend ``pid`` waits for within 20 s (None if none)."""
    with psycopg.connect(url, autocommit=True) as watcher:
        for _ in range(200):
            row = watcher.execute(
                "SELECT locktype FROM pg_locks WHERE pid = %s AND NOT granted", (pid,)
            ).fetchone()
            if row is not None:
                return str(row[0])
            time.sleep(0.1)
    return None


def test_the_sweep_opens_an_account_a_money_call_is_opening_after_it(
    runtime: Runtime, postgres_url: str
) -> None:
    """A money call has opened the late-fee income account and not committed when the sweep's
    late-fee step needs the same account: the step waits for the call, then posts to the
    account the call opened (one account, the same ledger as one after the other). On one
    PostgreSQL it waits on the key; on a cluster it waits at the account's advisory lock on
    the coordinator, the lock a money call opening an account takes, so the two never write the
    reference table's placements at once (in different orders, a distributed deadlock): the
    step's one ``INSERT … SELECT`` used to skip that lock and wait on the placements."""
    with runtime.work() as work:
        for shopper_id in SHOPPERS:
            _receive(work, shopper_id, AccountRef(AccountKind.SHOPPER_RECEIVABLE, shopper_id), 100)
    opened = threading.Event()
    step_pid: list[int] = []
    waited_on: list[str | None] = []

    def money_call() -> None:
        with runtime.work() as work:
            _charge_late_fee(work, SHOPPERS[0], 3)
            opened.set()
            for _ in range(300):
                if step_pid:
                    break
                time.sleep(0.1)
            waited_on.append(_waiting_lock(postgres_url, step_pid[0]) if step_pid else None)

    def late_fees() -> ChargesPosted:
        opened.wait(timeout=30)
        with runtime.work() as work:
            step_pid.append(int(work.session.scalar(text("SELECT pg_backend_pid()"))))
            return _post_the_days_late_fees(work)

    with ThreadPoolExecutor(max_workers=2) as pool:
        calling = pool.submit(money_call)
        charging = pool.submit(late_fees)
        calling.result()
        posted = charging.result()

    assert waited_on == ["advisory" if CITUS_URL is not None else "transactionid"]
    assert posted == ChargesPosted(entries=3, total_minor=72)
    with runtime.work(read_only=True) as work:
        assert balance_of(work.session, LATE_FEE_INCOME, "CNY") == -(3 + 72)
        assert (
            balance_of(work.session, AccountRef(AccountKind.SHOPPER_RECEIVABLE, SHOPPERS[0]), "CNY")
            == -100 + 3
        )
        assert work.session.scalars(
            text("SELECT code FROM ledger_accounts WHERE kind = 'late_fee_income'")
        ).all() == ["late_fee_income::CNY"]
        totals = trial_balance(work.session)
        assert totals.debits_minor == totals.credits_minor == 200 + 3 + 72
