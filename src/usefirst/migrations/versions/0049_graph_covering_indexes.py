"""the nightly graph's two index reads made index-only

``ix_risk_link_observations_value`` (kind, value hash) carries the shopper and the observed time
on PostgreSQL (``INCLUDE``): the graph's "who holds these identifiers since the window opened"
(thousands of identifiers a night) reads the index alone instead of visiting a heap page per
observation; the checkout's neighbour read by value is served as before.

``ix_orders_tracking_number`` (tracking number) gains the shipping time: the graph's reused
tracking numbers (numbers on more than one order shipped in the window) are grouped from an
index-only scan instead of a scan of the whole orders table; lookups by tracking number use the
index as before.

Revision ID: 0049
Revises: 0045
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0049"
down_revision = "0045"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_risk_link_observations_value", "risk_link_observations")
    op.create_index(
        "ix_risk_link_observations_value",
        "risk_link_observations",
        ["kind", "value_hash"],
        postgresql_include=["shopper_id", "observed_at"],
    )
    op.drop_index("ix_orders_tracking_number", "orders")
    op.create_index("ix_orders_tracking_number", "orders", ["tracking_number", "shipped_at"])


def downgrade() -> None:
    op.drop_index("ix_orders_tracking_number", "orders")
    op.create_index("ix_orders_tracking_number", "orders", ["tracking_number"])
    op.drop_index("ix_risk_link_observations_value", "risk_link_observations")
    op.create_index(
        "ix_risk_link_observations_value", "risk_link_observations", ["kind", "value_hash"]
    )
