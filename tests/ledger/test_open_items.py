"""Issue 21: the ledger keeps the postings to merchant payables that no payout has settled as open
items (``ledger_open_items``), written with the posting and cleared with the settlement line of
its entry, so that settlement reads what is pending without the payable's whole history. At every
step they are exactly the payable postings without a settlement line, with the entry's kind,
order and time."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import text

from tests.merchants.settlement_env import Env, open_env
from usefirst.flows.merchant_clawbacks import claw_back
from usefirst.kit.errors import InvariantViolated
from usefirst.ledger import accounts
from usefirst.ledger import service as ledger_service
from usefirst.ledger.accounts import EntryKind, transfer
from usefirst.merchants.settlement import settlement_statement

# The payable postings no settlement line names, as the anti-join settlement ran before issue 21:
# the payable postings with their entries (one shard each on a cluster: an entry is stored with
# its postings) less the (merchant, entry) pairs of the settlement lines (sharded by merchant),
# read apart and subtracted here, since Citus does not plan the anti-join across the two.
PAYABLE_POSTINGS = (
    "SELECT a.owner_id, p.account_code, p.entry_id, a.kind, p.currency, e.kind, e.order_id,"
    " p.amount_minor, e.created_at"
    " FROM ledger_postings p JOIN ledger_accounts a ON a.code = p.account_code"
    " JOIN journal_entries e ON e.shard_key = p.shard_key AND e.id = p.entry_id"
    " WHERE a.kind = 'merchant_payable'"
)
SETTLED_ENTRIES = "SELECT merchant_id, entry_id FROM settlement_lines"
OPEN_ITEMS = (
    "SELECT owner_id, account_code, entry_id, account_kind, currency, entry_kind, order_id,"
    " amount_minor, created_at FROM ledger_open_items"
)


def _rows(env: Env, sql: str) -> list[tuple[Any, ...]]:
    with env.runtime.database.transaction(read_only=True) as session:
        return sorted(tuple(row) for row in session.execute(text(sql)))


def _open_items(env: Env) -> list[tuple[Any, ...]]:
    """The open items, checked against the payable postings without a settlement line."""
    items = _rows(env, OPEN_ITEMS)
    settled = set(_rows(env, SETTLED_ENTRIES))
    unsettled = [row for row in _rows(env, PAYABLE_POSTINGS) if (row[0], row[2]) not in settled]
    assert items == unsettled
    return items


def test_open_items_are_the_unsettled_payable_postings_at_every_step(database_url: str) -> None:
    with open_env(database_url) as env:
        merchant = env.merchant()
        merchant_id = merchant["id"]
        code = accounts.merchant_payable(merchant_id).code("CNY")
        first = env.deliver(merchant, 10_000)
        # The sale and its fee, each with its entry's kind and order.
        assert sorted((item[5], item[6], item[7]) for item in _open_items(env)) == sorted(
            [("order_activation", first, -10_000), ("merchant_fee", first, 60)]
        )
        assert {(item[0], item[1], item[3]) for item in _open_items(env)} == {
            (merchant_id, code, "merchant_payable")
        }
        env.advance_to_day(date(2027, 3, 3))
        # Paid out: both settled, and the payout's own entries never stay open.
        assert env.settlements(merchant_id)[0]["net_minor"] == 9_940
        assert _open_items(env) == []
        second = env.deliver(merchant, 5_000)
        with env.runtime.work() as work:
            clawback = claw_back(
                work.session,
                merchant_id=merchant_id,
                order_id=first,
                amount_minor=12_000,
                currency="CNY",
                reason="dispute dsp_1 decided for the shopper",
                now=work.now,
            )
        assert sorted((item[5], item[6], item[7]) for item in _open_items(env)) == sorted(
            [
                ("order_activation", second, -5_000),
                ("merchant_fee", second, 30),
                ("merchant_clawback", first, 12_000),
            ]
        )
        assert clawback in {item[2] for item in _open_items(env)}
        env.advance_to_day(date(2027, 3, 4))
        # 5 000 - 30 does not cover the clawback: nothing paid, everything stays open.
        assert len(env.settlements(merchant_id)) == 1
        assert len(_open_items(env)) == 3
        env.deliver(merchant, 20_000)
        env.advance_to_day(date(2027, 3, 5))
        assert env.settlements(merchant_id)[-1]["net_minor"] == 25_000 - 150 - 12_000
        assert _open_items(env) == []
        env.assert_reconciled(merchant_id)


def test_the_statement_catches_an_open_item_that_went_missing(database_url: str) -> None:
    with open_env(database_url) as env:
        merchant = env.merchant()
        env.deliver(merchant, 10_000)
        env.assert_reconciled(merchant["id"])
        with env.runtime.database.transaction() as session:
            session.execute(text("DELETE FROM ledger_open_items WHERE entry_kind = 'merchant_fee'"))
        with env.runtime.work(read_only=True) as work:
            checked = settlement_statement(work.session, merchant_id=merchant["id"], currency="CNY")
        assert checked.problems == ["the ledger's open items of the payable != its pending entries"]


def test_the_lean_payment_path_refuses_an_entry_with_open_items(database_url: str) -> None:
    with open_env(database_url) as env:
        merchant = env.merchant()
        with env.runtime.work() as work:
            rows = ledger_service.entry_rows(
                kind=EntryKind.MERCHANT_FINE,
                currency="CNY",
                legs=transfer(
                    debit=accounts.merchant_payable(merchant["id"]),
                    credit=accounts.MERCHANT_PENALTY_INCOME,
                    amount_minor=500,
                ),
                now=work.now,
                merchant_id=merchant["id"],
            )
            assert rows is not None
            with pytest.raises(InvariantViolated, match="open items"):
                ledger_service.entry_writes(rows)
        assert _open_items(env) == []
