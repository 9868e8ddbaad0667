"""ledger open items: the merchant payables' postings that no payout has settled yet

Settlement read the entries still to pay with an anti-join of every posting ever made to a
merchant payable against every settlement line (5.8 s of a 1M-instalment night, and growing with
the history). ``ledger_open_items`` keeps those postings instead, one row each with what
settlement reads of its entry: written with the posting, deleted when the settlement line of its
entry is written. Filled here from the postings to merchant payables that have no settlement line
yet.

It also drops ``ix_journal_entries_shopper_id``: an entry with a shopper is stored under that
shopper's ``shard_key`` (first in the primary key), so a shopper's entries are read by
``shard_key = shopper_id AND shopper_id = shopper_id`` (kit.personal_data) through the primary key;
the index only cost the journal's busiest writer (a day's late fees, ~80,000 entries at 1M
instalments) one more index update per entry.

Revision ID: 0045
Revises: 0042
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0045"
down_revision = "0042"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_open_items",
        sa.Column("owner_id", sa.String(length=40), nullable=False),
        sa.Column("account_code", sa.String(length=120), nullable=False),
        sa.Column("entry_id", sa.String(length=40), nullable=False),
        sa.Column("account_kind", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("entry_kind", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "owner_id", "account_code", "entry_id", name=op.f("pk_ledger_open_items")
        ),
    )
    op.execute(
        "INSERT INTO ledger_open_items (owner_id, account_code, entry_id, account_kind, currency,"
        " entry_kind, order_id, amount_minor, created_at)"
        " SELECT a.owner_id, p.account_code, p.entry_id, a.kind, p.currency, e.kind, e.order_id,"
        " p.amount_minor, e.created_at"
        " FROM ledger_postings p"
        " JOIN ledger_accounts a ON a.code = p.account_code"
        " JOIN journal_entries e ON e.shard_key = p.shard_key AND e.id = p.entry_id"
        " WHERE a.kind = 'merchant_payable' AND a.owner_id IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM settlement_lines l"
        " WHERE l.merchant_id = a.owner_id AND l.entry_id = p.entry_id)"
    )

    op.drop_index("ix_journal_entries_shopper_id", table_name="journal_entries")


def downgrade() -> None:
    op.create_index("ix_journal_entries_shopper_id", "journal_entries", ["shopper_id"])
    op.drop_table("ledger_open_items")
