"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "allocations",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=24), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=True),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("fees_minor", sa.BigInteger(), nullable=False),
        sa.Column("principal_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shopper_id", "id", name=op.f("pk_allocations")),
    )
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.create_index("ix_allocations_payment", ["shopper_id", "payment_id"], unique=False)

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=True),
        sa.Column("operator_id", sa.String(length=40), nullable=True),
        sa.Column("label", sa.String(length=120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_api_keys_secret_hash")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index("ix_api_keys_merchant_id", ["merchant_id"], unique=False)

    op.create_table(
        "events",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=True),
        sa.Column("shopper_id", sa.String(length=40), nullable=True),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_merchant_id", ["merchant_id", "id"], unique=False)
        batch_op.create_index("ix_events_type_id", ["type", "id"], unique=False)

    op.create_table(
        "idempotency_records",
        sa.Column("principal_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column(
            "response_body",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("principal_id", "key", name=op.f("pk_idempotency_records")),
    )
    op.create_table(
        "journal_entries",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("shopper_id", sa.String(length=40), nullable=True),
        sa.Column("merchant_id", sa.String(length=40), nullable=True),
        sa.Column("order_id", sa.String(length=40), nullable=True),
        sa.Column("reference_id", sa.String(length=40), nullable=True),
        sa.Column("posting_count", sa.Integer(), nullable=False),
        sa.Column("memo", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_entries")),
    )
    with op.batch_alter_table("journal_entries", schema=None) as batch_op:
        batch_op.create_index("ix_journal_entries_order_id", ["order_id"], unique=False)
        batch_op.create_index("ix_journal_entries_shopper_id", ["shopper_id"], unique=False)

    op.create_table(
        "ledger_accounts",
        sa.Column("code", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("owner_id", sa.String(length=40), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_ledger_accounts")),
    )
    op.create_table(
        "merchants",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("webhook_url", sa.String(length=2048), nullable=True),
        sa.Column("webhook_secret_encrypted", sa.String(length=512), nullable=False),
        sa.Column("settlement_days", sa.Integer(), nullable=False),
        sa.Column("fee_rate_bps", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchants")),
    )
    op.create_table(
        "operators",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operators")),
        sa.UniqueConstraint("email", name=op.f("uq_operators_email")),
    )
    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_messages")),
    )
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_messages_pending", ["delivered_at", "available_at"], unique=False
        )

    op.create_table(
        "payments",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("external_ref", sa.String(length=128), nullable=True),
        sa.Column("unapplied_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_payments_amount_positive")),
        sa.PrimaryKeyConstraint("shopper_id", "id", name=op.f("pk_payments")),
    )
    op.create_table(
        "sandbox_clock",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("now_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sandbox_clock")),
    )
    op.create_table(
        "shopper_external_id_lookup",
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("external_id", name=op.f("pk_shopper_external_id_lookup")),
    )
    op.create_table(
        "shopper_national_id_lookup",
        sa.Column("national_id_hash", sa.String(length=64), nullable=False),
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("national_id_hash", name=op.f("pk_shopper_national_id_lookup")),
    )
    op.create_table(
        "shoppers",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("name_encrypted", sa.String(length=512), nullable=False),
        sa.Column("national_id_encrypted", sa.String(length=512), nullable=False),
        sa.Column("phone_encrypted", sa.String(length=512), nullable=False),
        sa.Column("email_encrypted", sa.String(length=1024), nullable=True),
        sa.Column("name_masked", sa.String(length=200), nullable=False),
        sa.Column("national_id_masked", sa.String(length=18), nullable=False),
        sa.Column("phone_masked", sa.String(length=32), nullable=False),
        sa.Column("email_masked", sa.String(length=320), nullable=True),
        sa.Column("phone_hash", sa.String(length=64), nullable=False),
        sa.Column("enrolment_device_id", sa.String(length=128), nullable=True),
        sa.Column("enrolment_ip", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shoppers")),
    )
    with op.batch_alter_table("shoppers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_shoppers_phone_hash"), ["phone_hash"], unique=False)

    op.create_table(
        "sweep_runs",
        sa.Column("business_on", sa.Date(), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "summary",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("business_on", name=op.f("pk_sweep_runs")),
    )
    op.create_table(
        "consents",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("privacy_policy_version", sa.String(length=32), nullable=False),
        sa.Column("credit_report_authorized", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["shopper_id"], ["shoppers.id"], name=op.f("fk_consents_shopper_id_shoppers")
        ),
        sa.PrimaryKeyConstraint("shopper_id", "id", name=op.f("pk_consents")),
    )
    op.create_table(
        "credit_line_changes",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("previous_limit_minor", sa.BigInteger(), nullable=False),
        sa.Column("new_limit_minor", sa.BigInteger(), nullable=False),
        sa.Column("previous_status", sa.String(length=16), nullable=True),
        sa.Column("new_status", sa.String(length=16), nullable=False),
        sa.Column("reason_code", sa.String(length=64), nullable=False),
        sa.Column("message", sa.String(length=300), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["shopper_id"], ["shoppers.id"], name=op.f("fk_credit_line_changes_shopper_id_shoppers")
        ),
        sa.PrimaryKeyConstraint("shopper_id", "id", name=op.f("pk_credit_line_changes")),
    )
    op.create_table(
        "credit_lines",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("limit_minor", sa.BigInteger(), nullable=False),
        sa.Column("used_minor", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("band", sa.String(length=8), nullable=True),
        sa.Column(
            "reasons",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("on_time_orders", sa.Integer(), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "used_minor <= limit_minor", name=op.f("ck_credit_lines_used_within_limit")
        ),
        sa.CheckConstraint("used_minor >= 0", name=op.f("ck_credit_lines_used_not_negative")),
        sa.ForeignKeyConstraint(
            ["shopper_id"], ["shoppers.id"], name=op.f("fk_credit_lines_shopper_id_shoppers")
        ),
        sa.PrimaryKeyConstraint("shopper_id", name=op.f("pk_credit_lines")),
    )
    op.create_table(
        "ledger_postings",
        sa.Column("entry_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("account_code", sa.String(length=120), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount_minor <> 0", name=op.f("ck_ledger_postings_non_zero")),
        sa.ForeignKeyConstraint(
            ["account_code"],
            ["ledger_accounts.code"],
            name=op.f("fk_ledger_postings_account_code_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["journal_entries.id"],
            name=op.f("fk_ledger_postings_entry_id_journal_entries"),
            initially="DEFERRED",
            deferrable=True,
        ),
        sa.PrimaryKeyConstraint("entry_id", "seq", name=op.f("pk_ledger_postings")),
    )
    with op.batch_alter_table("ledger_postings", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_postings_account_code", ["account_code"], unique=False)

    op.create_table(
        "orders",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("plan", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("refunded_minor", sa.BigInteger(), nullable=False),
        sa.Column(
            "items",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("shipping_address_encrypted", sa.String(length=2048), nullable=True),
        sa.Column("device_id", sa.String(length=128), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("decision_outcome", sa.String(length=16), nullable=False),
        sa.Column(
            "decision_reasons",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("carrier", sa.String(length=64), nullable=True),
        sa.Column("tracking_number", sa.String(length=64), nullable=True),
        sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("repaid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_orders_amount_positive")),
        sa.CheckConstraint(
            "refunded_minor >= 0 AND refunded_minor <= amount_minor", name=op.f("ck_orders_refunds")
        ),
        sa.ForeignKeyConstraint(
            ["shopper_id"], ["shoppers.id"], name=op.f("fk_orders_shopper_id_shoppers")
        ),
        sa.PrimaryKeyConstraint("shopper_id", "id", name=op.f("pk_orders")),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index("ix_orders_id", ["id"], unique=False)
        batch_op.create_index("ix_orders_merchant_id", ["merchant_id", "id"], unique=False)
        batch_op.create_index("ix_orders_status", ["status", "shipped_at"], unique=False)

    op.create_table(
        "refunds",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("reduced_debt_minor", sa.BigInteger(), nullable=False),
        sa.Column("waived_fees_minor", sa.BigInteger(), nullable=False),
        sa.Column("returned_to_shopper_minor", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_refunds_amount_positive")),
        sa.ForeignKeyConstraint(
            ["shopper_id"], ["shoppers.id"], name=op.f("fk_refunds_shopper_id_shoppers")
        ),
        sa.PrimaryKeyConstraint("shopper_id", "id", name=op.f("pk_refunds")),
    )
    op.create_table(
        "instalments",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("principal_minor", sa.BigInteger(), nullable=False),
        sa.Column("fees_minor", sa.BigInteger(), nullable=False),
        sa.Column("paid_principal_minor", sa.BigInteger(), nullable=False),
        sa.Column("paid_fees_minor", sa.BigInteger(), nullable=False),
        sa.Column("was_overdue", sa.Boolean(), nullable=False),
        sa.Column("settled_on", sa.Date(), nullable=True),
        sa.CheckConstraint(
            "paid_fees_minor >= 0 AND paid_fees_minor <= fees_minor",
            name=op.f("ck_instalments_fees_paid_within"),
        ),
        sa.CheckConstraint(
            "paid_principal_minor >= 0 AND paid_principal_minor <= principal_minor",
            name=op.f("ck_instalments_principal_paid_within"),
        ),
        sa.ForeignKeyConstraint(
            ["shopper_id", "order_id"],
            ["orders.shopper_id", "orders.id"],
            name="fk_instalments_order",
        ),
        sa.PrimaryKeyConstraint("shopper_id", "order_id", "seq", name=op.f("pk_instalments")),
    )
    with op.batch_alter_table("instalments", schema=None) as batch_op:
        batch_op.create_index("ix_instalments_status_due_on", ["status", "due_on"], unique=False)
    create_ledger_guards()


def downgrade() -> None:
    drop_ledger_guards()
    with op.batch_alter_table("instalments", schema=None) as batch_op:
        batch_op.drop_index("ix_instalments_status_due_on")

    op.drop_table("instalments")
    op.drop_table("refunds")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_status")
        batch_op.drop_index("ix_orders_merchant_id")
        batch_op.drop_index("ix_orders_id")

    op.drop_table("orders")
    with op.batch_alter_table("ledger_postings", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_postings_account_code")

    op.drop_table("ledger_postings")
    op.drop_table("credit_lines")
    op.drop_table("credit_line_changes")
    op.drop_table("consents")
    op.drop_table("sweep_runs")
    with op.batch_alter_table("shoppers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shoppers_phone_hash"))

    op.drop_table("shoppers")
    op.drop_table("shopper_national_id_lookup")
    op.drop_table("shopper_external_id_lookup")
    op.drop_table("sandbox_clock")
    op.drop_table("payments")
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_messages_pending")

    op.drop_table("outbox_messages")
    op.drop_table("operators")
    op.drop_table("merchants")
    op.drop_table("ledger_accounts")
    with op.batch_alter_table("journal_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_journal_entries_shopper_id")
        batch_op.drop_index("ix_journal_entries_order_id")

    op.drop_table("journal_entries")
    op.drop_table("idempotency_records")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_type_id")
        batch_op.drop_index("ix_events_merchant_id")

    op.drop_table("events")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_api_keys_merchant_id")

    op.drop_table("api_keys")
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.drop_index("ix_allocations_payment")

    op.drop_table("allocations")


# The journal is append-only and every entry balances, enforced by the database as well as by
# code. Postings are inserted before their entry header; inserting the header seals the entry,
# checks that it balances per currency, and later postings to it are refused.
SQLITE_GUARDS = [
    """CREATE TRIGGER journal_entries_balanced AFTER INSERT ON journal_entries
    BEGIN
        SELECT RAISE(ABORT, 'journal entry does not balance')
        WHERE NEW.posting_count < 2
           OR (SELECT COUNT(*) FROM ledger_postings WHERE entry_id = NEW.id) <> NEW.posting_count
           OR EXISTS (SELECT 1 FROM ledger_postings WHERE entry_id = NEW.id
                      GROUP BY currency HAVING SUM(amount_minor) <> 0);
    END""",
    """CREATE TRIGGER ledger_postings_sealed BEFORE INSERT ON ledger_postings
    WHEN EXISTS (SELECT 1 FROM journal_entries WHERE id = NEW.entry_id)
    BEGIN SELECT RAISE(ABORT, 'journal entry is sealed'); END""",
    """CREATE TRIGGER journal_entries_no_update BEFORE UPDATE ON journal_entries
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END""",
    """CREATE TRIGGER journal_entries_no_delete BEFORE DELETE ON journal_entries
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END""",
    """CREATE TRIGGER ledger_postings_no_update BEFORE UPDATE ON ledger_postings
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END""",
    """CREATE TRIGGER ledger_postings_no_delete BEFORE DELETE ON ledger_postings
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END""",
]

POSTGRESQL_GUARDS = [
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
    """CREATE CONSTRAINT TRIGGER journal_entries_balanced AFTER INSERT ON journal_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    EXECUTE FUNCTION usefirst_journal_entry_balanced()""",
    """CREATE FUNCTION usefirst_posting_not_sealed() RETURNS trigger AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM journal_entries WHERE id = NEW.entry_id) THEN
            RAISE EXCEPTION 'journal entry % is sealed', NEW.entry_id
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER ledger_postings_sealed BEFORE INSERT ON ledger_postings
    FOR EACH ROW EXECUTE FUNCTION usefirst_posting_not_sealed()""",
    """CREATE FUNCTION usefirst_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'the journal is append-only (% on %)', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'check_violation';
    END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
    FOR EACH ROW EXECUTE FUNCTION usefirst_append_only()""",
    """CREATE TRIGGER ledger_postings_append_only BEFORE UPDATE OR DELETE ON ledger_postings
    FOR EACH ROW EXECUTE FUNCTION usefirst_append_only()""",
]


def create_ledger_guards() -> None:
    dialect = op.get_bind().dialect.name
    for statement in POSTGRESQL_GUARDS if dialect == "postgresql" else SQLITE_GUARDS:
        op.execute(statement)


def drop_ledger_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS journal_entries_balanced ON journal_entries")
        op.execute("DROP TRIGGER IF EXISTS ledger_postings_sealed ON ledger_postings")
        op.execute("DROP TRIGGER IF EXISTS journal_entries_append_only ON journal_entries")
        op.execute("DROP TRIGGER IF EXISTS ledger_postings_append_only ON ledger_postings")
        op.execute("DROP FUNCTION IF EXISTS usefirst_journal_entry_balanced()")
        op.execute("DROP FUNCTION IF EXISTS usefirst_posting_not_sealed()")
        op.execute("DROP FUNCTION IF EXISTS usefirst_append_only()")
    else:
        for name in (
            "journal_entries_balanced",
            "ledger_postings_sealed",
            "journal_entries_no_update",
            "journal_entries_no_delete",
            "ledger_postings_no_update",
            "ledger_postings_no_delete",
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
