"""ledger: postings name existing accounts, checked once per statement; accounts append-only

The foreign key from a posting to its account checked (and share-locked) the account row once per
posting: on a day of late fees that is 166,000 checks, half of them of the same income account,
about 2 s of the daily sweep. In its place:

- accounts are append-only (a trigger refuses UPDATE and DELETE), so an account that exists when
  a posting goes in exists for good and needs no lock;
- PostgreSQL checks the distinct accounts of each INSERT into ``ledger_postings`` once, over the
  statement's transition table, in the trigger that already refuses postings to sealed entries;
- SQLite (row-level triggers only) checks each posting's account in a BEFORE INSERT trigger.

The deferred foreign key from a posting to its entry header stays.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

ACCOUNT_FOREIGN_KEY = "fk_ledger_postings_account_code_ledger_accounts"

POSTGRESQL_UPGRADE = [
    f"ALTER TABLE ledger_postings DROP CONSTRAINT {ACCOUNT_FOREIGN_KEY}",
    """CREATE OR REPLACE FUNCTION usefirst_postings_not_sealed() RETURNS trigger AS $$
    DECLARE
        found text;
    BEGIN
        SELECT p.entry_id INTO found
        FROM (SELECT DISTINCT entry_id FROM new_postings) p
        WHERE EXISTS (SELECT 1 FROM journal_entries e WHERE e.id = p.entry_id)
        LIMIT 1;
        IF found IS NOT NULL THEN
            RAISE EXCEPTION 'journal entry % is sealed', found USING ERRCODE = 'check_violation';
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
    """CREATE FUNCTION usefirst_accounts_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'ledger accounts are append-only (% on %)', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'check_violation';
    END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER ledger_accounts_append_only BEFORE UPDATE OR DELETE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION usefirst_accounts_append_only()""",
]

POSTGRESQL_DOWNGRADE = [
    "DROP TRIGGER ledger_accounts_append_only ON ledger_accounts",
    "DROP FUNCTION usefirst_accounts_append_only()",
    """CREATE OR REPLACE FUNCTION usefirst_postings_not_sealed() RETURNS trigger AS $$
    DECLARE
        sealed text;
    BEGIN
        SELECT p.entry_id INTO sealed
        FROM (SELECT DISTINCT entry_id FROM new_postings) p
        WHERE EXISTS (SELECT 1 FROM journal_entries e WHERE e.id = p.entry_id)
        LIMIT 1;
        IF sealed IS NOT NULL THEN
            RAISE EXCEPTION 'journal entry % is sealed', sealed USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    f"""ALTER TABLE ledger_postings ADD CONSTRAINT {ACCOUNT_FOREIGN_KEY}
    FOREIGN KEY (account_code) REFERENCES ledger_accounts (code)""",
]

# SQLite: the table is rebuilt to lose the key (batch mode). Its triggers go with the old table,
# and a trigger of journal_entries that reads ledger_postings would break the rename, so every
# ledger guard is dropped first and made again afterwards (as in 0001).
SQLITE_LEDGER_GUARDS = {
    "journal_entries_balanced": """CREATE TRIGGER journal_entries_balanced
    AFTER INSERT ON journal_entries
    BEGIN
        SELECT RAISE(ABORT, 'journal entry does not balance')
        WHERE NEW.posting_count < 2
           OR (SELECT COUNT(*) FROM ledger_postings WHERE entry_id = NEW.id) <> NEW.posting_count
           OR EXISTS (SELECT 1 FROM ledger_postings WHERE entry_id = NEW.id
                      GROUP BY currency HAVING SUM(amount_minor) <> 0);
    END""",
    "ledger_postings_sealed": """CREATE TRIGGER ledger_postings_sealed
    BEFORE INSERT ON ledger_postings
    WHEN EXISTS (SELECT 1 FROM journal_entries WHERE id = NEW.entry_id)
    BEGIN SELECT RAISE(ABORT, 'journal entry is sealed'); END""",
    "journal_entries_no_update": """CREATE TRIGGER journal_entries_no_update
    BEFORE UPDATE ON journal_entries
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END""",
    "journal_entries_no_delete": """CREATE TRIGGER journal_entries_no_delete
    BEFORE DELETE ON journal_entries
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END""",
    "ledger_postings_no_update": """CREATE TRIGGER ledger_postings_no_update
    BEFORE UPDATE ON ledger_postings
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END""",
    "ledger_postings_no_delete": """CREATE TRIGGER ledger_postings_no_delete
    BEFORE DELETE ON ledger_postings
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END""",
}
SQLITE_ACCOUNT_GUARDS = {
    "ledger_postings_account_exists": """CREATE TRIGGER ledger_postings_account_exists
    BEFORE INSERT ON ledger_postings
    WHEN NOT EXISTS (SELECT 1 FROM ledger_accounts WHERE code = NEW.account_code)
    BEGIN SELECT RAISE(ABORT, 'ledger account does not exist'); END""",
    "ledger_accounts_no_update": """CREATE TRIGGER ledger_accounts_no_update
    BEFORE UPDATE ON ledger_accounts
    BEGIN SELECT RAISE(ABORT, 'ledger accounts are append-only'); END""",
    "ledger_accounts_no_delete": """CREATE TRIGGER ledger_accounts_no_delete
    BEFORE DELETE ON ledger_accounts
    BEGIN SELECT RAISE(ABORT, 'ledger accounts are append-only'); END""",
}


def _rebuild_sqlite_postings(*, with_account_key: bool) -> None:
    for name in SQLITE_LEDGER_GUARDS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    with op.batch_alter_table("ledger_postings", recreate="always") as batch_op:
        if with_account_key:
            batch_op.create_foreign_key(
                ACCOUNT_FOREIGN_KEY, "ledger_accounts", ["account_code"], ["code"]
            )
        else:
            batch_op.drop_constraint(ACCOUNT_FOREIGN_KEY, type_="foreignkey")
    for statement in SQLITE_LEDGER_GUARDS.values():
        op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRESQL_UPGRADE:
            op.execute(statement)
        return
    _rebuild_sqlite_postings(with_account_key=False)
    for statement in SQLITE_ACCOUNT_GUARDS.values():
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRESQL_DOWNGRADE:
            op.execute(statement)
        return
    for name in SQLITE_ACCOUNT_GUARDS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    _rebuild_sqlite_postings(with_account_key=True)
