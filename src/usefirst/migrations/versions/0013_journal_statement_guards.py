"""journal guards per statement: the seal and balance checks of PostgreSQL run once per INSERT

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# The same guarantees as the row-level guards of 0001, checked once per statement over its
# transition table instead of once per row (the daily sweep posts ~85,000 entries at a time).
# Postings always precede their header (ledger.repository), so an entry is complete when its
# header goes in: the balance check can run then rather than deferred to the commit, and the
# seal keeps any later posting out. The deferred foreign key from a posting to its header stays:
# it is what refuses postings that never get one.
STATEMENT_GUARDS = [
    """CREATE FUNCTION usefirst_postings_not_sealed() RETURNS trigger AS $$
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
    "DROP TRIGGER ledger_postings_sealed ON ledger_postings",
    """CREATE TRIGGER ledger_postings_sealed AFTER INSERT ON ledger_postings
    REFERENCING NEW TABLE AS new_postings
    FOR EACH STATEMENT EXECUTE FUNCTION usefirst_postings_not_sealed()""",
    "DROP FUNCTION usefirst_posting_not_sealed()",
    """CREATE FUNCTION usefirst_journal_entries_balanced() RETURNS trigger AS $$
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
                WHERE p.entry_id = e.id
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
    "DROP TRIGGER journal_entries_balanced ON journal_entries",
    """CREATE TRIGGER journal_entries_balanced AFTER INSERT ON journal_entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION usefirst_journal_entries_balanced()""",
    "DROP FUNCTION usefirst_journal_entry_balanced()",
]

# 0001's row-level guards, as they were.
ROW_GUARDS = [
    """CREATE FUNCTION usefirst_journal_entry_balanced() RETURNS trigger AS $$
    BEGIN
        IF NEW.posting_count < 2
           OR (SELECT COUNT(*) FROM ledger_postings WHERE entry_id = NEW.id) <> NEW.posting_count
           OR EXISTS (SELECT 1 FROM ledger_postings WHERE entry_id = NEW.id
                      GROUP BY currency HAVING SUM(amount_minor) <> 0) THEN
            RAISE EXCEPTION 'journal entry % does not balance', NEW.id
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER journal_entries_balanced ON journal_entries",
    """CREATE CONSTRAINT TRIGGER journal_entries_balanced AFTER INSERT ON journal_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    EXECUTE FUNCTION usefirst_journal_entry_balanced()""",
    "DROP FUNCTION usefirst_journal_entries_balanced()",
    """CREATE FUNCTION usefirst_posting_not_sealed() RETURNS trigger AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM journal_entries WHERE id = NEW.entry_id) THEN
            RAISE EXCEPTION 'journal entry % is sealed', NEW.entry_id
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER ledger_postings_sealed ON ledger_postings",
    """CREATE TRIGGER ledger_postings_sealed BEFORE INSERT ON ledger_postings
    FOR EACH ROW EXECUTE FUNCTION usefirst_posting_not_sealed()""",
    "DROP FUNCTION usefirst_postings_not_sealed()",
]


def upgrade() -> None:
    # SQLite has no statement-level triggers: its row-level guards of 0001 stay.
    if op.get_bind().dialect.name == "postgresql":
        for statement in STATEMENT_GUARDS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in ROW_GUARDS:
            op.execute(statement)
