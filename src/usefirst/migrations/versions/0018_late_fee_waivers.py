"""late_fee_waivers: an operator's waiver of an order's late fees, with its full reason

The reason (up to 500 characters) was cut to the journal entry's 200-character memo, where
erasure cannot clear it either. Shopper-side (keyed by shopper_id first, like refunds).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "late_fee_waivers",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("entry_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("operator_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_late_fee_waivers_amount_positive")),
        sa.ForeignKeyConstraint(
            ["shopper_id"], ["shoppers.id"], name=op.f("fk_late_fee_waivers_shopper_id_shoppers")
        ),
        sa.PrimaryKeyConstraint("shopper_id", "id", name=op.f("pk_late_fee_waivers")),
    )


def downgrade() -> None:
    op.drop_table("late_fee_waivers")
