"""instalments as they stood before a refund or a hardship plan changed them

``instalment_changes``: one row per instalment a refund cut or a hardship plan rescheduled,
with its status, principal, plan fee and settlement date just before, and when. A bureau file
made later for a month that ended before the change reports the instalment as it was then.
Changes made before this migration have no row (their files read as before).

Revision ID: 0059
Revises: 0054
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0059"
down_revision = "0054"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instalment_changes",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("cause", sa.String(length=16), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_before", sa.String(length=16), nullable=False),
        sa.Column("principal_minor_before", sa.BigInteger(), nullable=False),
        sa.Column("fees_minor_before", sa.BigInteger(), nullable=False),
        sa.Column("settled_on_before", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("shopper_id", "id", name=op.f("pk_instalment_changes")),
    )
    op.create_index("ix_instalment_changes_order", "instalment_changes", ["shopper_id", "order_id"])


def downgrade() -> None:
    op.drop_index("ix_instalment_changes_order", "instalment_changes")
    op.drop_table("instalment_changes")
