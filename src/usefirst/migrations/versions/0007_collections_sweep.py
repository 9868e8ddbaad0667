"""collections_sweep: set-based sweep support, dispute pause of days past due

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        # An open dispute pauses the order's days past due: the business date it opened, the
        # past-due days of the disputes already closed, and when the last one closed (the bureau
        # file of that month carries compliance code XH).
        batch_op.add_column(sa.Column("disputed_since_on", sa.Date(), nullable=True))
        batch_op.add_column(
            sa.Column("dispute_paused_days", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("dispute_resolved_on", sa.Date(), nullable=True))
    # The reminders of orders whose days past due were paused are found through this (few rows).
    op.create_index(
        "ix_orders_dispute_paused",
        "orders",
        ["shopper_id", "id"],
        unique=False,
        postgresql_where=sa.text("dispute_paused_days > 0"),
        sqlite_where=sa.text("dispute_paused_days > 0"),
    )
    if op.get_bind().dialect.name == "postgresql":
        # The daily late fees update every overdue instalment; room on each page keeps those
        # updates HOT (no indexed column changes), so the indexes are not rewritten.
        op.execute("ALTER TABLE instalments SET (fillfactor = 85)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE instalments RESET (fillfactor)")
    op.drop_index("ix_orders_dispute_paused", table_name="orders")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("dispute_resolved_on")
        batch_op.drop_column("dispute_paused_days")
        batch_op.drop_column("disputed_since_on")
