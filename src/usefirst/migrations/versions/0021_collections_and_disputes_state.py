"""delinquent_orders, disputed_orders: collections' and disputes' state of an order leaves orders

The ``orders`` row held two other domains' state: collections' (the date of first delinquency, the
call queue, the bureau report, legal referral, charge-off) and disputes' (an open dispute pausing
dunning, the days it paused). Each moves to a table its domain owns, one row per order that
entered collections or was ever disputed by its shopper, keyed (shopper_id, order_id) like every
shopper-side table (the Citus distribution column first; the only foreign key is to shoppers).
The rows are copied set-based, then the columns are dropped. The merchant book's covering index
(0012) carried ``first_delinquent_on``; it now carries the order id instead, which finds the
order's delinquency by key. The downgrade moves the state back onto orders.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

COLLECTIONS_COLUMNS = (
    "first_delinquent_on",
    "call_queue_since_on",
    "bureau_reported_on",
    "legal_referred_on",
    "charged_off_on",
    "charged_off_minor",
)
DISPUTE_COLUMNS = (
    "is_disputed",
    "disputed_since_on",
    "dispute_paused_days",
    "dispute_resolved_on",
)
MERCHANT_BOOK_BEFORE = [
    "merchant_id",
    "created_at",
    "status",
    "shopper_id",
    "amount_minor",
    "refunded_minor",
    "first_delinquent_on",
]
MERCHANT_BOOK = [
    "merchant_id",
    "created_at",
    "status",
    "shopper_id",
    "id",
    "amount_minor",
    "refunded_minor",
]


def upgrade() -> None:
    op.create_table(
        "delinquent_orders",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("first_delinquent_on", sa.Date(), nullable=True),
        sa.Column("call_queue_since_on", sa.Date(), nullable=True),
        sa.Column("bureau_reported_on", sa.Date(), nullable=True),
        sa.Column("legal_referred_on", sa.Date(), nullable=True),
        sa.Column("charged_off_on", sa.Date(), nullable=True),
        sa.Column("charged_off_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["shopper_id"], ["shoppers.id"], name=op.f("fk_delinquent_orders_shopper_id_shoppers")
        ),
        sa.PrimaryKeyConstraint("shopper_id", "order_id", name=op.f("pk_delinquent_orders")),
    )
    op.create_table(
        "disputed_orders",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("is_disputed", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("disputed_since_on", sa.Date(), nullable=True),
        sa.Column("dispute_paused_days", sa.Integer(), server_default="0", nullable=False),
        sa.Column("dispute_resolved_on", sa.Date(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["shopper_id"], ["shoppers.id"], name=op.f("fk_disputed_orders_shopper_id_shoppers")
        ),
        sa.PrimaryKeyConstraint("shopper_id", "order_id", name=op.f("pk_disputed_orders")),
    )
    columns = ", ".join(COLLECTIONS_COLUMNS)
    op.execute(
        f"INSERT INTO delinquent_orders (shopper_id, order_id, {columns}, updated_at) "
        f"SELECT shopper_id, id, {columns}, updated_at FROM orders "
        "WHERE first_delinquent_on IS NOT NULL OR call_queue_since_on IS NOT NULL "
        "OR bureau_reported_on IS NOT NULL OR legal_referred_on IS NOT NULL "
        "OR charged_off_on IS NOT NULL OR charged_off_minor <> 0"
    )
    columns = ", ".join(DISPUTE_COLUMNS)
    op.execute(
        f"INSERT INTO disputed_orders (shopper_id, order_id, {columns}, updated_at) "
        f"SELECT shopper_id, id, {columns}, updated_at FROM orders "
        "WHERE is_disputed OR disputed_since_on IS NOT NULL OR dispute_paused_days <> 0 "
        "OR dispute_resolved_on IS NOT NULL"
    )
    op.drop_index("ix_orders_merchant_book", table_name="orders")
    op.drop_index("ix_orders_dispute_paused", table_name="orders")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        for column in (*COLLECTIONS_COLUMNS, *DISPUTE_COLUMNS):
            batch_op.drop_column(column)
    op.create_index("ix_orders_merchant_book", "orders", MERCHANT_BOOK, unique=False)


def downgrade() -> None:
    op.drop_index("ix_orders_merchant_book", table_name="orders")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_disputed", sa.Boolean(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("first_delinquent_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("call_queue_since_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("bureau_reported_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("legal_referred_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("charged_off_on", sa.Date(), nullable=True))
        batch_op.add_column(
            sa.Column("charged_off_minor", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("disputed_since_on", sa.Date(), nullable=True))
        batch_op.add_column(
            sa.Column("dispute_paused_days", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("dispute_resolved_on", sa.Date(), nullable=True))
    for table, columns in (
        ("delinquent_orders", COLLECTIONS_COLUMNS),
        ("disputed_orders", DISPUTE_COLUMNS),
    ):
        assignments = ", ".join(f"{column} = s.{column}" for column in columns)
        op.execute(
            f"UPDATE orders SET {assignments} FROM {table} s "
            "WHERE orders.shopper_id = s.shopper_id AND orders.id = s.order_id"
        )
    op.create_index("ix_orders_merchant_book", "orders", MERCHANT_BOOK_BEFORE, unique=False)
    op.create_index(
        "ix_orders_dispute_paused",
        "orders",
        ["shopper_id", "id"],
        unique=False,
        postgresql_where=sa.text("dispute_paused_days > 0"),
        sqlite_where=sa.text("dispute_paused_days > 0"),
    )
    op.drop_table("disputed_orders")
    op.drop_table("delinquent_orders")
