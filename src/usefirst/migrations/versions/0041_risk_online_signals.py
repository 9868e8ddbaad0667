"""risk_signal_events and risk_hour_counts: the checkout's online signals (issue 19)

risk_signal_events: one row per checkout and key (its device, IP block, address cluster; keyed
hashes), read by key range for the neighbourhood, splitting and link velocity signals.
risk_hour_counts: orders and amount per clock hour of each merchant and of the whole platform
(striped), read for merchant bursts and the platform's pace (sale days). Both start empty and
fill as checkouts come (the raw IP and address they are keyed by are not kept with the orders
in a form a migration can read).

Revision ID: 0041
Revises: 0039
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0041"
down_revision = "0039"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "risk_signal_events",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("is_held", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "kind", "key_hash", "created_at", "order_id", name=op.f("pk_risk_signal_events")
        ),
    )
    op.create_table(
        "risk_hour_counts",
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stripe", sa.Integer(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", "hour", "stripe", name=op.f("pk_risk_hour_counts")),
    )


def downgrade() -> None:
    op.drop_table("risk_hour_counts")
    op.drop_table("risk_signal_events")
