"""contact_attempts.order_id may be empty: a notice about the shopper's account, not an order

A notice that the credit limit changed (raised, lowered, frozen, available again) is about the
shopper's credit line, which no single order may explain (a risk hold, a review), so its contact
attempts name no order. Every other contact still names one.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contact_attempts") as batch:
        batch.alter_column("order_id", existing_type=sa.String(length=40), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM contact_attempts WHERE order_id IS NULL")
    with op.batch_alter_table("contact_attempts") as batch:
        batch.alter_column("order_id", existing_type=sa.String(length=40), nullable=False)
