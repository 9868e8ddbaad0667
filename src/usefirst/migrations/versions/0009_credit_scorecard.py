"""credit_scorecard: score, band and scorecard version on credit lines and their changes

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("credit_lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scorecard_version", sa.String(length=64), nullable=True))
    with op.batch_alter_table("credit_line_changes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("score", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("band", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("scorecard_version", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column(
                "scorecard_inputs",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("credit_line_changes", schema=None) as batch_op:
        batch_op.drop_column("scorecard_inputs")
        batch_op.drop_column("scorecard_version")
        batch_op.drop_column("band")
        batch_op.drop_column("score")
    with op.batch_alter_table("credit_lines", schema=None) as batch_op:
        batch_op.drop_column("scorecard_version")
