"""the primary keys of the night's big append-only writes lead with their time-ordered id

The primary keys led with ``shard_key`` (the shopper), so the night's ~83,000 late-fee entries
and ~166,000 postings of a 1M-instalment book were inserted on a leaf page of nearly every
shopper: the postings' key (583 MB) and the journal's (261 MB) were rewritten page by page through
a 128 MB buffer cache, with a full-page image in the WAL for each page after a checkpoint, and the
seal guard, the postings' foreign key and the balance guard probed the same random pages again.
Entry ids grow with time (kit.ids.new_id), so keyed by the id first a night's rows land at the
right edge of each key. Measured on a swept copy of that book, inserting the night's postings
dirtied 8,599 pages and wrote 97 MB of WAL instead of 54,422 pages and 362 MB.

The night's reminders are the same shape: ~57,000 contact attempts keyed (shopper_id, id) and as
many outbox messages keyed (shard_key, id) dirtied 66,025 and 26,153 pages (361 MB and 183 MB of
WAL). Their keys lead with the id too. A shopper's contact attempts are found by ``uq_step``
(shopper_id first); the outbox is claimed through ``ix_outbox_messages_pending``.

The shard key stays in both keys (Citus requires a distributed table's keys to hold its
distribution column) and the postings still reference their entry by (shard_key, id). The
journal's index on ``id`` alone is now the key's prefix and goes; a shopper's entries
(kit.personal_data: ``shard_key = shopper_id``) are found by ``ix_journal_entries_shard_key``.

SQLite keeps the column order its tables were created with: re-ordering a key there means
rebuilding the table and its guards, and an embedded book is small. The indexes change on both.

Revision ID: 0060
Revises: 0059
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0060"
down_revision = "0059"
branch_labels = None
depends_on = None

POSTINGS_ENTRY_KEY = "fk_ledger_postings_shard_key_journal_entries"

# table: (the key before, the key after)
KEYS = {
    "ledger_postings": (["shard_key", "entry_id", "seq"], ["entry_id", "seq", "shard_key"]),
    "journal_entries": (["shard_key", "id"], ["id", "shard_key"]),
    "contact_attempts": (["shopper_id", "id"], ["id", "shopper_id"]),
    "outbox_messages": (["shard_key", "id"], ["id", "shard_key"]),
}


def _rekey(*, after: bool) -> None:
    op.drop_constraint(POSTINGS_ENTRY_KEY, "ledger_postings", type_="foreignkey")
    for table, (key_before, key_after) in KEYS.items():
        op.drop_constraint(f"pk_{table}", table, type_="primary")
        op.create_primary_key(f"pk_{table}", table, key_after if after else key_before)
    op.create_foreign_key(
        POSTINGS_ENTRY_KEY,
        "ledger_postings",
        "journal_entries",
        ["shard_key", "entry_id"],
        ["shard_key", "id"],
        deferrable=True,
        initially="DEFERRED",
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _rekey(after=True)
    op.drop_index("ix_journal_entries_id", "journal_entries")
    op.create_index("ix_journal_entries_shard_key", "journal_entries", ["shard_key"])


def downgrade() -> None:
    op.drop_index("ix_journal_entries_shard_key", "journal_entries")
    op.create_index("ix_journal_entries_id", "journal_entries", ["id"])
    if op.get_bind().dialect.name == "postgresql":
        _rekey(after=False)
