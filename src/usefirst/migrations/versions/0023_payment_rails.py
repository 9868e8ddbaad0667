"""payment_mandates, rail_charges, rail_callbacks: the engine collects money itself

Until now the engine only recorded payments the platform reported. With payment rails (issue 18)
a shopper's mandate lets the engine charge their instalments through a provider: each mandate, each
charge attempt (one row per instalment and attempt, unique, so a retried job never charges twice)
and each callback a provider sent (refused ones too, for the operator to see) get a table owned by
the new ``rails`` domain. Mandates and charges are shopper-side (keyed by shopper_id first, the
Citus distribution column; their only foreign key is to shoppers). Callbacks arrive before we know
whose they are, so they are keyed by their own id. Reconciliation breaks (a provider's statement
and our books disagree) are per provider and statement date, one per line and kind. An instalment
records the days a shopper moved its due date by (``extended_days``: once per order).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_mandates",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("provider_mandate_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["shopper_id"], ["shoppers.id"], name="fk_payment_mandates_shopper"
        ),
        sa.PrimaryKeyConstraint("shopper_id", "id", name=op.f("pk_payment_mandates")),
    )
    op.create_table(
        "rail_charges",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("mandate_id", sa.String(length=40), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("charge_on", sa.Date(), nullable=False),
        sa.Column("submit_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provider_charge_id", sa.String(length=128), nullable=True),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("next_attempt_on", sa.Date(), nullable=True),
        sa.Column("stop_reason", sa.String(length=32), nullable=True),
        sa.Column("confirmed_by", sa.String(length=16), nullable=True),
        sa.Column("payment_id", sa.String(length=40), nullable=True),
        sa.Column("reversed_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_rail_charges_amount_positive")),
        sa.CheckConstraint("attempt >= 1", name=op.f("ck_rail_charges_attempt_positive")),
        sa.ForeignKeyConstraint(["shopper_id"], ["shoppers.id"], name="fk_rail_charges_shopper"),
        sa.PrimaryKeyConstraint("shopper_id", "id", name=op.f("pk_rail_charges")),
        sa.UniqueConstraint("shopper_id", "order_id", "seq", "attempt", name="uq_rail_charges_try"),
    )
    op.create_index(
        "ix_rail_charges_provider_charge",
        "rail_charges",
        ["provider", "provider_charge_id"],
        unique=False,
    )
    op.create_index(
        "ix_rail_charges_status_next", "rail_charges", ["status", "next_attempt_on"], unique=False
    )
    op.create_table(
        "rail_callbacks",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=True),
        sa.Column("event_type", sa.String(length=32), nullable=True),
        sa.Column("shopper_id", sa.String(length=40), nullable=True),
        sa.Column("charge_id", sa.String(length=40), nullable=True),
        sa.Column("provider_charge_id", sa.String(length=128), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rail_callbacks")),
    )
    op.create_index(
        "ix_rail_callbacks_event", "rail_callbacks", ["provider", "event_id"], unique=False
    )
    op.create_index(
        "ix_rail_callbacks_charge", "rail_callbacks", ["shopper_id", "charge_id"], unique=False
    )
    op.create_table(
        "reconciliation_breaks",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("statement_on", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("line_key", sa.String(length=160), nullable=False),
        sa.Column("shopper_id", sa.String(length=40), nullable=True),
        sa.Column("charge_id", sa.String(length=40), nullable=True),
        sa.Column("provider_charge_id", sa.String(length=128), nullable=True),
        sa.Column("our_amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("their_amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_breaks")),
        sa.UniqueConstraint(
            "provider", "statement_on", "kind", "line_key", name="uq_reconciliation_breaks_line"
        ),
    )
    op.create_index(
        "ix_reconciliation_breaks_open",
        "reconciliation_breaks",
        ["resolved_at", "statement_on"],
        unique=False,
    )
    with op.batch_alter_table("instalments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("extended_days", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("instalments", schema=None) as batch_op:
        batch_op.drop_column("extended_days")
    op.drop_index("ix_reconciliation_breaks_open", table_name="reconciliation_breaks")
    op.drop_table("reconciliation_breaks")
    op.drop_index("ix_rail_callbacks_charge", table_name="rail_callbacks")
    op.drop_index("ix_rail_callbacks_event", table_name="rail_callbacks")
    op.drop_table("rail_callbacks")
    op.drop_index("ix_rail_charges_status_next", table_name="rail_charges")
    op.drop_index("ix_rail_charges_provider_charge", table_name="rail_charges")
    op.drop_table("rail_charges")
    op.drop_table("payment_mandates")
