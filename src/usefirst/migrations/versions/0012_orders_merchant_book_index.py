"""orders: a covering index for the checkout decision's merchant book

The checkout decision reads a merchant's orders of the last 90 days (lent, delivered, defaulted,
shipped, refunded, top buyer). With this index that is one range of the index, without a table
row read per order.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

COLUMNS = [
    "merchant_id",
    "created_at",
    "status",
    "shopper_id",
    "amount_minor",
    "refunded_minor",
    "first_delinquent_on",
]


def upgrade() -> None:
    op.create_index("ix_orders_merchant_book", "orders", COLUMNS, unique=False)


def downgrade() -> None:
    op.drop_index("ix_orders_merchant_book", table_name="orders")
