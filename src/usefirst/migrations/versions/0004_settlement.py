"""settlement: merchant settlement, holds, reserve, standing

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "settlement_holds",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=80), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("merchant_id", "id", name=op.f("pk_settlement_holds")),
    )
    with op.batch_alter_table("settlement_holds", schema=None) as batch_op:
        batch_op.create_index(
            "ix_settlement_holds_merchant_order", ["merchant_id", "order_id"], unique=False
        )

    op.create_table(
        "settlements",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("settled_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("order_count", sa.Integer(), nullable=False),
        sa.Column("gross_minor", sa.BigInteger(), nullable=False),
        sa.Column("refunded_minor", sa.BigInteger(), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("reserve_minor", sa.BigInteger(), nullable=False),
        sa.Column("reserve_released_minor", sa.BigInteger(), nullable=False),
        sa.Column("clawback_minor", sa.BigInteger(), nullable=False),
        sa.Column("fines_minor", sa.BigInteger(), nullable=False),
        sa.Column("net_minor", sa.BigInteger(), nullable=False),
        sa.Column("payout_rail", sa.String(length=40), nullable=False),
        sa.Column("payout_reference", sa.String(length=120), nullable=False),
        sa.Column("payout_entry_id", sa.String(length=40), nullable=True),
        sa.Column("reserve_entry_id", sa.String(length=40), nullable=True),
        sa.Column("reserve_release_on", sa.Date(), nullable=True),
        sa.Column("reserve_release_entry_id", sa.String(length=40), nullable=True),
        sa.Column("reserve_released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "id", name=op.f("pk_settlements")),
        sa.UniqueConstraint("merchant_id", "currency", "settled_on", name="uq_settlements_day"),
    )

    op.create_table(
        "settlement_lines",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("entry_id", sa.String(length=40), nullable=False),
        sa.Column("settlement_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=True),
        sa.Column("entry_kind", sa.String(length=40), nullable=False),
        sa.Column("component", sa.String(length=20), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "entry_id", name=op.f("pk_settlement_lines")),
    )
    with op.batch_alter_table("settlement_lines", schema=None) as batch_op:
        batch_op.create_index(
            "ix_settlement_lines_settlement", ["merchant_id", "settlement_id"], unique=False
        )
        batch_op.create_index(
            "ix_settlement_lines_order", ["merchant_id", "order_id"], unique=False
        )

    op.create_table(
        "merchant_standing_changes",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=False),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("evidence", _json(), nullable=False),
        sa.Column("decided_by", sa.String(length=80), nullable=False),
        sa.Column("appeal_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "id", name=op.f("pk_merchant_standing_changes")),
    )

    op.create_table(
        "merchant_fines",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("evidence", _json(), nullable=False),
        sa.Column("decided_by", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("entry_id", sa.String(length=40), nullable=False),
        sa.Column("reversal_entry_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reversed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("merchant_id", "id", name=op.f("pk_merchant_fines")),
    )

    op.create_table(
        "merchant_appeals",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("subject_type", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.String(length=40), nullable=False),
        sa.Column("grounds", sa.String(length=4000), nullable=False),
        sa.Column("evidence", _json(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("filed_by", sa.String(length=80), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=80), nullable=True),
        sa.Column("decision_note", sa.String(length=2000), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("merchant_id", "id", name=op.f("pk_merchant_appeals")),
    )


def downgrade() -> None:
    op.drop_table("merchant_appeals")
    op.drop_table("merchant_fines")
    op.drop_table("merchant_standing_changes")
    with op.batch_alter_table("settlement_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_settlement_lines_order")
        batch_op.drop_index("ix_settlement_lines_settlement")
    op.drop_table("settlement_lines")
    op.drop_table("settlements")
    with op.batch_alter_table("settlement_holds", schema=None) as batch_op:
        batch_op.drop_index("ix_settlement_holds_merchant_order")
    op.drop_table("settlement_holds")
