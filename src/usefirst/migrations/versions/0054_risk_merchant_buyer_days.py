"""the merchant buyers' lent orders per UTC day

``risk_merchant_buyer_days``: per merchant, shopper and UTC creation day, the shopper's lent
orders at the merchant. The checkout's risk read counts each top-buyer candidate's lent orders in
the merchant's 90-day window from these day rows (after the window's edge day) plus the facts
of the edge day from the window's start on, instead of one fact row per order: the read stays
flat as a buyer's history grows. Backfilled from every fact (the engine's clock may be a test
clock, not the database's, so no day is left out here); the nightly refresh of the top-buyer
bounds deletes the days the window has left.

Revision ID: 0054
Revises: 0053
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0054"
down_revision = "0053"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "risk_merchant_buyer_days",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("lent_orders", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "merchant_id", "shopper_id", "day", name=op.f("pk_risk_merchant_buyer_days")
        ),
    )
    if op.get_bind().dialect.name == "postgresql":
        day_of = "CAST(f.created_at AT TIME ZONE 'UTC' AS date)"
    else:
        day_of = "date(f.created_at)"
    op.execute(
        "INSERT INTO risk_merchant_buyer_days (merchant_id, shopper_id, day, lent_orders)"
        f" SELECT f.merchant_id, f.shopper_id, {day_of}, count(*) FROM risk_order_facts f"
        f" WHERE f.is_lent = 1 GROUP BY f.merchant_id, f.shopper_id, {day_of}"
    )


def downgrade() -> None:
    op.drop_table("risk_merchant_buyer_days")
