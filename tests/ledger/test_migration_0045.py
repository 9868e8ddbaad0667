"""Migration 0045: the merchant payables' postings that no settlement line names become the
ledger's open items, with their entries' kind, order and time; settled ones and other accounts'
postings do not; the journal's index on shopper_id is dropped; down and up again gives the same
rows. SQLite here (the schema test checks PostgreSQL's keys against the models)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, inspect, text

from usefirst.kit.migrate import downgrade, upgrade

AT = "2026-12-01 04:00:00.000000"
PAYABLE = "merchant_payable:mer_1:CNY"
RECEIVABLE = "shopper_receivable:shp_1:CNY"
FEE_INCOME = "merchant_fee_income::CNY"
# entry id, kind, order, postings (account, amount)
ENTRIES = (
    ("je_sale", "order_activation", "ord_1", ((RECEIVABLE, 10_000), (PAYABLE, -10_000))),
    ("je_fee", "merchant_fee", "ord_1", ((PAYABLE, 60), (FEE_INCOME, -60))),
    ("je_old", "order_activation", "ord_0", ((RECEIVABLE, 5_000), (PAYABLE, -5_000))),
)
OPEN_ITEMS = "SELECT * FROM ledger_open_items ORDER BY entry_id"


def _open_items(url: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(OPEN_ITEMS)).all()]
    finally:
        engine.dispose()


def _journal_indexes(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {str(index["name"]) for index in inspect(engine).get_indexes("journal_entries")}
    finally:
        engine.dispose()


def test_unsettled_payable_postings_become_open_items(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'before.db'}"
    upgrade(url, "0042")
    engine = create_engine(url)
    with engine.begin() as connection:
        for code, kind, owner in (
            (PAYABLE, "merchant_payable", "mer_1"),
            (RECEIVABLE, "shopper_receivable", "shp_1"),
            (FEE_INCOME, "merchant_fee_income", None),
        ):
            connection.execute(
                text(
                    "INSERT INTO ledger_accounts (code, kind, owner_id, currency, created_at)"
                    " VALUES (:code, :kind, :owner, 'CNY', :at)"
                ),
                {"code": code, "kind": kind, "owner": owner, "at": AT},
            )
        for entry_id, kind, order_id, postings in ENTRIES:
            for seq, (code, amount) in enumerate(postings, start=1):
                connection.execute(
                    text(
                        "INSERT INTO ledger_postings (shard_key, entry_id, seq, account_code,"
                        " currency, amount_minor) VALUES ('shp_1', :entry, :seq, :code, 'CNY',"
                        " :amount)"
                    ),
                    {"entry": entry_id, "seq": seq, "code": code, "amount": amount},
                )
            connection.execute(
                text(
                    "INSERT INTO journal_entries (shard_key, id, kind, shopper_id, merchant_id,"
                    " order_id, reference_id, posting_count, memo, created_at) VALUES ('shp_1',"
                    " :entry, :kind, 'shp_1', 'mer_1', :order, NULL, 2, '', :at)"
                ),
                {"entry": entry_id, "kind": kind, "order": order_id, "at": AT},
            )
        # The old sale was paid out already.
        connection.execute(
            text(
                "INSERT INTO settlement_lines (merchant_id, entry_id, settlement_id, order_id,"
                " entry_kind, component, amount_minor) VALUES ('mer_1', 'je_old', 'stl_1',"
                " 'ord_0', 'order_activation', 'sale', 5000)"
            )
        )
    engine.dispose()
    upgrade(url, "0045")
    expected = [
        ("mer_1", PAYABLE, "je_fee", "merchant_payable", "CNY", "merchant_fee", "ord_1", 60, AT),
        (
            "mer_1",
            PAYABLE,
            "je_sale",
            "merchant_payable",
            "CNY",
            "order_activation",
            "ord_1",
            -10_000,
            AT,
        ),
    ]
    assert _open_items(url) == expected
    # The journal's shopper index goes (the primary key's shard_key serves it), and comes back.
    assert "ix_journal_entries_shopper_id" not in _journal_indexes(url)
    downgrade(url, "0042")
    assert "ix_journal_entries_shopper_id" in _journal_indexes(url)
    upgrade(url, "0045")
    assert _open_items(url) == expected
