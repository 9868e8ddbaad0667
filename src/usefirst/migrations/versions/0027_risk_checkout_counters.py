"""risk checkout counters: the checkout features read by key instead of aggregated per checkout

The checkout's features were one aggregate statement over the merchant's orders of 90 days
(and its top buyer's), the shopper's orders and the link observations: most of PostgreSQL's CPU
per checkout. Risk now keeps, as orders change:

- ``risk_order_facts``: per order, the flags the features count (lent, shipped, delivered,
  defaulted, refunded, amount counted), with its merchant, creation time, amount and device;
- ``risk_merchant_days``: per merchant, UTC creation day and stripe (``ascii`` of the
  shopper id's last character modulo 4), the sums of those flags;
- ``risk_merchant_buyers``: per merchant and shopper, an upper bound of the lent orders created
  in the last 90 days (exact after each night's refresh).

The upgrade fills them from the orders already there (``usefirst risk rebuild-counters`` does
the same on a running book).

Revision ID: 0027
Revises: 0025
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0025"
branch_labels = None
depends_on = None

_FLAGS = (
    "is_lent",
    "is_amount_counted",
    "is_shipped",
    "is_delivered",
    "is_defaulted",
    "is_refunded",
)
_LENT = "('approved', 'shipped', 'delivered', 'overdue', 'repaid', 'refunded', 'charged_off')"
_DELIVERED = "('delivered', 'overdue', 'repaid', 'refunded', 'charged_off')"
_SHIPPED = "('shipped', 'delivered', 'overdue', 'repaid', 'refunded', 'charged_off')"


def upgrade() -> None:
    op.create_table(
        "risk_order_facts",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=True),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in _FLAGS),
        sa.PrimaryKeyConstraint("shopper_id", "order_id", name=op.f("pk_risk_order_facts")),
    )
    op.create_index(
        "ix_risk_order_facts_merchant_created",
        "risk_order_facts",
        ["merchant_id", "created_at"],
    )
    op.create_index(
        "ix_risk_order_facts_merchant_shopper",
        "risk_order_facts",
        ["merchant_id", "shopper_id", "created_at"],
    )
    op.create_table(
        "risk_merchant_days",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("stripe", sa.Integer(), nullable=False),
        sa.Column("lent_orders", sa.Integer(), nullable=False),
        sa.Column("lent_amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("shipped_orders", sa.Integer(), nullable=False),
        sa.Column("delivered_orders", sa.Integer(), nullable=False),
        sa.Column("defaulted_orders", sa.Integer(), nullable=False),
        sa.Column("refunded_orders", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "day", "stripe", name=op.f("pk_risk_merchant_days")),
    )
    op.create_table(
        "risk_merchant_buyers",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("window_lent_bound", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "shopper_id", name=op.f("pk_risk_merchant_buyers")),
    )
    op.create_index(
        "ix_risk_merchant_buyers_window_bound",
        "risk_merchant_buyers",
        ["merchant_id", "window_lent_bound"],
    )
    _backfill()


def _backfill() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        day_of = "CAST(f.created_at AT TIME ZONE 'UTC' AS date)"
        stripe_of = "ascii(right(f.shopper_id, 1)) % 4"
    else:
        day_of = "date(f.created_at)"
        stripe_of = "unicode(substr(f.shopper_id, -1)) % 4"
    ever_delinquent = (
        "EXISTS (SELECT 1 FROM delinquent_orders c WHERE c.shopper_id = o.shopper_id"
        " AND c.order_id = o.id AND c.first_delinquent_on IS NOT NULL)"
    )
    op.execute(
        "INSERT INTO risk_order_facts (shopper_id, order_id, merchant_id, created_at,"
        f" amount_minor, device_id, {', '.join(_FLAGS)})"
        " SELECT o.shopper_id, o.id, o.merchant_id, o.created_at, o.amount_minor, o.device_id,"
        f" CASE WHEN o.status IN {_LENT} THEN 1 ELSE 0 END,"
        " CASE WHEN o.status IN ('declined', 'cancelled') THEN 0 ELSE 1 END,"
        f" CASE WHEN o.status IN {_SHIPPED} THEN 1 ELSE 0 END,"
        f" CASE WHEN o.status IN {_DELIVERED} THEN 1 ELSE 0 END,"
        f" CASE WHEN o.status IN {_DELIVERED} AND (o.status IN ('overdue', 'charged_off')"
        f" OR {ever_delinquent}) THEN 1 ELSE 0 END,"
        f" CASE WHEN o.status IN {_SHIPPED} AND o.refunded_minor > 0 THEN 1 ELSE 0 END"
        " FROM orders o"
    )
    op.execute(
        "INSERT INTO risk_merchant_days (merchant_id, day, stripe, lent_orders,"
        " lent_amount_minor, shipped_orders, delivered_orders, defaulted_orders,"
        f" refunded_orders) SELECT f.merchant_id, {day_of}, {stripe_of}, sum(f.is_lent),"
        " sum(f.is_lent * f.amount_minor), sum(f.is_shipped), sum(f.is_delivered),"
        " sum(f.is_defaulted), sum(f.is_refunded)"
        f" FROM risk_order_facts f GROUP BY f.merchant_id, {day_of}, {stripe_of}"
    )
    # An upper bound (every lent order, not only the last 90 days': the engine's clock may be a
    # test clock, not the database's); the nightly refresh makes it exact.
    op.execute(
        "INSERT INTO risk_merchant_buyers (merchant_id, shopper_id, window_lent_bound)"
        " SELECT f.merchant_id, f.shopper_id, count(*) FROM risk_order_facts f"
        " WHERE f.is_lent = 1 GROUP BY f.merchant_id, f.shopper_id"
    )


def downgrade() -> None:
    op.drop_table("risk_merchant_buyers")
    op.drop_table("risk_merchant_days")
    op.drop_table("risk_order_facts")
