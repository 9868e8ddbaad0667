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
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import make_runtime
from usefirst.ledger.accounts import AccountKind, AccountRef, EntryKind, transfer
from usefirst.ledger.service import balance_of, post_entry, trial_balance
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
