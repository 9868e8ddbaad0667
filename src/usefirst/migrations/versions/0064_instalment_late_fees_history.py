"""what late fees a hardship plan's instalment carried, what a change found of them, and the
pause a dispute's closing ended

A hardship plan moves the late fees already charged onto its instalments, and while an instalment
of the plan is not yet due those are the only late fees it has: the nightly run charges its own
only after the due date and the grace days. A bureau file made later for a month that ended
before the due date counts what the instalment owed then, so it needs the carried part apart
from the late fees the night added since.

``instalments.late_fees_carried_minor``: the late fees a plan moved onto the instalment when it
made it, less what a waiver, a refund or a settlement took off its late fees since (never more
than its late fees); NULL on an instalment a plan did not make, and on a plan's instalment made
before this migration (the file then counts its late fees as they are now, as before).

``instalment_changes.late_fees_carried_minor_before``: that figure just before the change (NULL
where the instalment has none). A change now is also a waiver of late fees (``late_fee_waiver``),
a settlement for less forgiving the rest (``forgiven``) and a payment reversal reopening the
instalment (``reversal``); those made before this migration have no row.

``dispute_pause_closures``: an order's dispute pause as it stood just before a shopper dispute on
it closed (open since when, the paused days and last closing of the ones closed before), and when.
A file made later for a month that ended while the dispute was open reports it open, with the
days paused then. Disputes closed before this migration have no row: such a file reports them as
closed, their days in the total, as before.

Revision ID: 0064
Revises: 0060
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0064"
down_revision = "0060"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable without a default: PostgreSQL (and Citus) add the column without rewriting the
    # table, SQLite without rebuilding it.
    op.add_column("instalments", sa.Column("late_fees_carried_minor", sa.BigInteger()))
    op.add_column(
        "instalment_changes", sa.Column("late_fees_carried_minor_before", sa.BigInteger())
    )
    op.create_table(
        "dispute_pause_closures",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disputed_since_on_before", sa.Date(), nullable=True),
        sa.Column("dispute_paused_days_before", sa.Integer(), nullable=False),
        sa.Column("dispute_resolved_on_before", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("shopper_id", "id", name=op.f("pk_dispute_pause_closures")),
    )
    op.create_index(
        "ix_dispute_pause_closures_order", "dispute_pause_closures", ["shopper_id", "order_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_dispute_pause_closures_order", "dispute_pause_closures")
    op.drop_table("dispute_pause_closures")
    with op.batch_alter_table("instalment_changes") as batch_op:
        batch_op.drop_column("late_fees_carried_minor_before")
    with op.batch_alter_table("instalments") as batch_op:
        batch_op.drop_column("late_fees_carried_minor")
