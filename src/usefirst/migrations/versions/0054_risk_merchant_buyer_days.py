"""the merchant buyers' lent orders per UTC day, the shoppers' orders per merchant and hour

``risk_merchant_buyer_days``: per merchant, shopper and UTC creation day, the shopper's lent
orders at the merchant. The checkout's risk read counts each top-buyer candidate's lent orders in
the merchant's 90-day window from these day rows (after the window's edge day) plus the facts
of the edge day from the window's start on, instead of one fact row per order: the read stays
flat as a buyer's history grows. Backfilled from every fact (the engine's clock may be a test
clock, not the database's, so no day is left out here); the nightly refresh of the top-buyer
bounds deletes the days the window has left.

``risk_shopper_merchant_hours``: per shopper, merchant and clock hour (UTC), the orders and
their amount: the shopper's own orders at the merchant in the last 6 hours (the splitting
signal) are these hours plus or minus the facts of the two edge hours. Backfilled from every
fact likewise; the signals' nightly prune deletes the hours no window reads.

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
    op.create_table(
        "risk_shopper_merchant_hours",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "shopper_id", "merchant_id", "hour", name=op.f("pk_risk_shopper_merchant_hours")
        ),
    )
    if op.get_bind().dialect.name == "postgresql":
        day_of = "CAST(f.created_at AT TIME ZONE 'UTC' AS date)"
        hour_of = "date_trunc('hour', f.created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    else:
        day_of = "date(f.created_at)"
        hour_of = "strftime('%Y-%m-%d %H:00:00.000000', f.created_at)"
    op.execute(
        "INSERT INTO risk_merchant_buyer_days (merchant_id, shopper_id, day, lent_orders)"
        f" SELECT f.merchant_id, f.shopper_id, {day_of}, count(*) FROM risk_order_facts f"
        f" WHERE f.is_lent = 1 GROUP BY f.merchant_id, f.shopper_id, {day_of}"
    )
    op.execute(
        "INSERT INTO risk_shopper_merchant_hours (shopper_id, merchant_id, hour, orders,"
        f" amount_minor) SELECT f.shopper_id, f.merchant_id, {hour_of}, count(*),"
        f" sum(f.amount_minor) FROM risk_order_facts f"
        f" GROUP BY f.shopper_id, f.merchant_id, {hour_of}"
    )


def downgrade() -> None:
    op.drop_table("risk_shopper_merchant_hours")
    op.drop_table("risk_merchant_buyer_days")
