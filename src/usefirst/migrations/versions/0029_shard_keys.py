"""shard keys: events, journal entries and postings keyed by the shard of their subject

Citus distributes a table by one column, which must be part of its primary key
(usefirst.distribution).
``events``, ``journal_entries`` and ``ledger_postings`` get ``shard_key`` — the row's shopper, else
its merchant, else ``platform`` — first in their primary key; a posting carries its entry's, and
its foreign key to the entry names both columns, so an entry and its postings are stored together.
The PostgreSQL balance and seal guards read only their own entry's rows (by shard key and id).
Lookups by id alone keep an index of their own.

Revision ID: 0029
Revises: 0027
Create Date: 2026-12-07
"""

from __future__ import annotations

import warnings

import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import SAWarning

revision = "0029"
down_revision = "0027"
branch_labels = None
depends_on = None

ENTRY_FOREIGN_KEY = "fk_ledger_postings_entry_id_journal_entries"
SHARDED_ENTRY_FOREIGN_KEY = "fk_ledger_postings_shard_key_journal_entries"
SUBJECT = "coalesce(nullif(shopper_id, ''), nullif(merchant_id, ''), 'platform')"


def _guards(*, by_shard: bool) -> list[str]:
    """The statement-level guards of 0013/0015, matching a posting to its entry by id alone or by
    shard key and id."""
    match = "e.shard_key = p.shard_key AND e.id = p.entry_id" if by_shard else "e.id = p.entry_id"
    own_postings = (
        "p.shard_key = e.shard_key AND p.entry_id = e.id" if by_shard else "p.entry_id = e.id"
    )
    distinct = "DISTINCT shard_key, entry_id" if by_shard else "DISTINCT entry_id"
    return [
        f"""CREATE OR REPLACE FUNCTION usefirst_postings_not_sealed() RETURNS trigger AS $$
        DECLARE
            found text;
        BEGIN
            SELECT p.entry_id INTO found
            FROM (SELECT {distinct} FROM new_postings) p
            WHERE EXISTS (SELECT 1 FROM journal_entries e WHERE {match})
            LIMIT 1;
            IF found IS NOT NULL THEN
                RAISE EXCEPTION 'journal entry % is sealed', found
                    USING ERRCODE = 'check_violation';
            END IF;
            SELECT p.account_code INTO found
            FROM (SELECT DISTINCT account_code FROM new_postings) p
            WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts a WHERE a.code = p.account_code)
            LIMIT 1;
            IF found IS NOT NULL THEN
                RAISE EXCEPTION 'ledger account does not exist: %', found
                    USING ERRCODE = 'foreign_key_violation';
            END IF;
            RETURN NULL;
        END $$ LANGUAGE plpgsql""",
        f"""CREATE OR REPLACE FUNCTION usefirst_journal_entries_balanced() RETURNS trigger AS $$
        DECLARE
            unbalanced text;
        BEGIN
            SELECT e.id INTO unbalanced
            FROM new_entries e
            LEFT JOIN LATERAL (
                SELECT sum(c.postings) AS postings, bool_and(c.total = 0) AS balanced
                FROM (
                    SELECT count(*) AS postings, sum(p.amount_minor) AS total
                    FROM ledger_postings p
                    WHERE {own_postings}
                    GROUP BY p.currency
                ) c
            ) x ON true
            WHERE e.posting_count < 2
               OR x.postings IS DISTINCT FROM e.posting_count
               OR NOT x.balanced
            LIMIT 1;
            IF unbalanced IS NOT NULL THEN
                RAISE EXCEPTION 'journal entry % does not balance', unbalanced
                    USING ERRCODE = 'check_violation';
            END IF;
            RETURN NULL;
        END $$ LANGUAGE plpgsql""",
    ]


# SQLite: the rebuilt tables lose their triggers; these are 0015's, matching by shard key too.
def _sqlite_guards(*, by_shard: bool) -> dict[str, str]:
    own = "shard_key = NEW.shard_key AND entry_id = NEW.id" if by_shard else "entry_id = NEW.id"
    sealed = "shard_key = NEW.shard_key AND id = NEW.entry_id" if by_shard else "id = NEW.entry_id"
    append_only = "BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END"
    return {
        "journal_entries_balanced": f"""CREATE TRIGGER journal_entries_balanced
        AFTER INSERT ON journal_entries
        BEGIN
            SELECT RAISE(ABORT, 'journal entry does not balance')
            WHERE NEW.posting_count < 2
               OR (SELECT COUNT(*) FROM ledger_postings WHERE {own}) <> NEW.posting_count
               OR EXISTS (SELECT 1 FROM ledger_postings WHERE {own}
                          GROUP BY currency HAVING SUM(amount_minor) <> 0);
        END""",
        "ledger_postings_sealed": f"""CREATE TRIGGER ledger_postings_sealed
        BEFORE INSERT ON ledger_postings
        WHEN EXISTS (SELECT 1 FROM journal_entries WHERE {sealed})
        BEGIN SELECT RAISE(ABORT, 'journal entry is sealed'); END""",
        "ledger_postings_account_exists": """CREATE TRIGGER ledger_postings_account_exists
        BEFORE INSERT ON ledger_postings
        WHEN NOT EXISTS (SELECT 1 FROM ledger_accounts WHERE code = NEW.account_code)
        BEGIN SELECT RAISE(ABORT, 'ledger account does not exist'); END""",
        "journal_entries_no_update": "CREATE TRIGGER journal_entries_no_update"
        f" BEFORE UPDATE ON journal_entries {append_only}",
        "journal_entries_no_delete": "CREATE TRIGGER journal_entries_no_delete"
        f" BEFORE DELETE ON journal_entries {append_only}",
        "ledger_postings_no_update": "CREATE TRIGGER ledger_postings_no_update"
        f" BEFORE UPDATE ON ledger_postings {append_only}",
        "ledger_postings_no_delete": "CREATE TRIGGER ledger_postings_no_delete"
        f" BEFORE DELETE ON ledger_postings {append_only}",
    }


def _shard_key_column() -> sa.Column[str]:
    return sa.Column("shard_key", sa.String(length=40), nullable=True)


def _upgrade_postgresql() -> None:
    op.add_column("events", _shard_key_column())
    op.execute(f"UPDATE events SET shard_key = {SUBJECT}")
    op.alter_column("events", "shard_key", nullable=False)
    op.drop_constraint("pk_events", "events", type_="primary")
    op.create_primary_key("pk_events", "events", ["shard_key", "id"])
    op.create_index("ix_events_id", "events", ["id"])

    # The journal refuses UPDATE (append-only): the one backfill runs with its user triggers off.
    op.execute("ALTER TABLE journal_entries DISABLE TRIGGER USER")
    op.execute("ALTER TABLE ledger_postings DISABLE TRIGGER USER")
    op.add_column("journal_entries", _shard_key_column())
    op.add_column("ledger_postings", _shard_key_column())
    op.execute(f"UPDATE journal_entries SET shard_key = {SUBJECT}")
    op.execute(
        "UPDATE ledger_postings p SET shard_key = e.shard_key"
        " FROM journal_entries e WHERE e.id = p.entry_id"
    )
    op.execute("ALTER TABLE journal_entries ENABLE TRIGGER USER")
    op.execute("ALTER TABLE ledger_postings ENABLE TRIGGER USER")
    op.alter_column("journal_entries", "shard_key", nullable=False)
    op.alter_column("ledger_postings", "shard_key", nullable=False)
    op.drop_constraint(ENTRY_FOREIGN_KEY, "ledger_postings", type_="foreignkey")
    op.drop_constraint("pk_ledger_postings", "ledger_postings", type_="primary")
    op.drop_constraint("pk_journal_entries", "journal_entries", type_="primary")
    op.create_primary_key("pk_journal_entries", "journal_entries", ["shard_key", "id"])
    op.create_index("ix_journal_entries_id", "journal_entries", ["id"])
    op.create_primary_key("pk_ledger_postings", "ledger_postings", ["shard_key", "entry_id", "seq"])
    op.create_foreign_key(
        SHARDED_ENTRY_FOREIGN_KEY,
        "ledger_postings",
        "journal_entries",
        ["shard_key", "entry_id"],
        ["shard_key", "id"],
        deferrable=True,
        initially="DEFERRED",
    )
    for statement in _guards(by_shard=True):
        op.execute(statement)


def _downgrade_postgresql() -> None:
    for statement in _guards(by_shard=False):
        op.execute(statement)
    op.drop_constraint(SHARDED_ENTRY_FOREIGN_KEY, "ledger_postings", type_="foreignkey")
    op.drop_constraint("pk_ledger_postings", "ledger_postings", type_="primary")
    op.drop_index("ix_journal_entries_id", "journal_entries")
    op.drop_constraint("pk_journal_entries", "journal_entries", type_="primary")
    op.create_primary_key("pk_journal_entries", "journal_entries", ["id"])
    op.create_primary_key("pk_ledger_postings", "ledger_postings", ["entry_id", "seq"])
    op.create_foreign_key(
        ENTRY_FOREIGN_KEY,
        "ledger_postings",
        "journal_entries",
        ["entry_id"],
        ["id"],
        deferrable=True,
        initially="DEFERRED",
    )
    op.drop_column("ledger_postings", "shard_key")
    op.drop_column("journal_entries", "shard_key")
    op.drop_index("ix_events_id", "events")
    op.drop_constraint("pk_events", "events", type_="primary")
    op.create_primary_key("pk_events", "events", ["id"])
    op.drop_column("events", "shard_key")


def _upgrade_sqlite() -> None:
    # Batch mode copies each table with the reflected primary key and then sets the new one;
    # SQLAlchemy warns that the copy's key changed, which is the point.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*_alembic_tmp_.*primary_key", category=SAWarning
        )
        _rebuild_sqlite_keyed_by_shard()


def _rebuild_sqlite_keyed_by_shard() -> None:
    for name in _sqlite_guards(by_shard=False):
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    for table in ("events", "journal_entries", "ledger_postings"):
        op.add_column(table, _shard_key_column())
    op.execute(f"UPDATE events SET shard_key = {SUBJECT}")
    op.execute(f"UPDATE journal_entries SET shard_key = {SUBJECT}")
    op.execute(
        "UPDATE ledger_postings SET shard_key = (SELECT e.shard_key FROM journal_entries e"
        " WHERE e.id = ledger_postings.entry_id)"
    )
    with op.batch_alter_table("events", recreate="always") as batch_op:
        batch_op.alter_column("shard_key", nullable=False)
        batch_op.create_primary_key("pk_events", ["shard_key", "id"])
        batch_op.create_index("ix_events_id", ["id"])
    with op.batch_alter_table("ledger_postings", recreate="always") as batch_op:
        batch_op.drop_constraint(ENTRY_FOREIGN_KEY, type_="foreignkey")
    with op.batch_alter_table("journal_entries", recreate="always") as batch_op:
        batch_op.alter_column("shard_key", nullable=False)
        batch_op.create_primary_key("pk_journal_entries", ["shard_key", "id"])
        batch_op.create_index("ix_journal_entries_id", ["id"])
    with op.batch_alter_table("ledger_postings", recreate="always") as batch_op:
        batch_op.alter_column("shard_key", nullable=False)
        batch_op.create_primary_key("pk_ledger_postings", ["shard_key", "entry_id", "seq"])
        batch_op.create_foreign_key(
            SHARDED_ENTRY_FOREIGN_KEY,
            "journal_entries",
            ["shard_key", "entry_id"],
            ["shard_key", "id"],
            deferrable=True,
            initially="DEFERRED",
        )
    for statement in _sqlite_guards(by_shard=True).values():
        op.execute(statement)


def _downgrade_sqlite() -> None:
    for name in _sqlite_guards(by_shard=True):
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    with op.batch_alter_table("ledger_postings", recreate="always") as batch_op:
        batch_op.drop_constraint(SHARDED_ENTRY_FOREIGN_KEY, type_="foreignkey")
    with op.batch_alter_table("journal_entries", recreate="always") as batch_op:
        batch_op.drop_index("ix_journal_entries_id")
        batch_op.create_primary_key("pk_journal_entries", ["id"])
        batch_op.drop_column("shard_key")
    with op.batch_alter_table("ledger_postings", recreate="always") as batch_op:
        batch_op.create_primary_key("pk_ledger_postings", ["entry_id", "seq"])
        batch_op.drop_column("shard_key")
        batch_op.create_foreign_key(
            ENTRY_FOREIGN_KEY,
            "journal_entries",
            ["entry_id"],
            ["id"],
            deferrable=True,
            initially="DEFERRED",
        )
    with op.batch_alter_table("events", recreate="always") as batch_op:
        batch_op.drop_index("ix_events_id")
        batch_op.create_primary_key("pk_events", ["id"])
        batch_op.drop_column("shard_key")
    for statement in _sqlite_guards(by_shard=False).values():
        op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _downgrade_postgresql()
    else:
        _downgrade_sqlite()
