"""sweep_steps: the daily sweep commits step by step, and remembers which steps of a date are done

The sweep of a business date ran in one transaction: on a large book it held its locks for
minutes, and a crash lost all of it. It now commits after each step (collections' steps, risk's
monitors and graph, settlement, …). A step's row is written in the step's own transaction, with
what the step did, so a step is done exactly when its row exists: a sweep that crashed resumes at
the first step without a row, and a step is never done twice. ``sweep_runs`` keeps its meaning:
the date's row is written when every step is done (with the summary of all of them), so the
catch-up still starts after the latest fully swept date.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sweep_steps",
        sa.Column("business_on", sa.Date(), nullable=False),
        sa.Column("step", sa.String(length=100), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "counts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("business_on", "step", name=op.f("pk_sweep_steps")),
    )


def downgrade() -> None:
    op.drop_table("sweep_steps")
