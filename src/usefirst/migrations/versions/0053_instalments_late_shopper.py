"""the shopper's late instalments by a partial index

``ix_instalments_late_shopper`` (shopper, only instalments that were ever overdue): the
checkout's risk read counts the shopper's late instalments (``shopper_late_instalments``) from
it, without visiting every instalment of the shopper (a bitmap scan of the primary key's
shopper range, then a heap page per few instalments, growing with each order). Most
instalments are never late, so the index stays small and an insert of a schedule (never
overdue yet) does not touch it.

Revision ID: 0053
Revises: 0052
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0053"
down_revision = "0052"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_instalments_late_shopper",
        "instalments",
        ["shopper_id"],
        postgresql_where=sa.text("was_overdue"),
        sqlite_where=sa.text("was_overdue"),
    )


def downgrade() -> None:
    op.drop_index("ix_instalments_late_shopper", "instalments")
