"""the nightly graph, incremental: enrolment identifiers hashed, the last run's grouped shoppers

``shoppers.enrolment_device_hash`` and ``enrolment_ip_hash``: the keyed hashes the link graph
gives the enrolment device and IP (``risk.features.identifier_hash``), so that the shoppers holding
one can be found in SQL. Enrolment sets them; the graph run fills them for rows made before (the
field key is not known to the migration), finding those rows through a partial index; erasure
clears them with the device and IP. An empty string means "nothing to link" (a blank device).

``risk_link_observations.observed_at`` is indexed: the night reads the observations made since the
last run and those that left the window since.

``risk_graph_members``: the shoppers of every connected component with at least
``min_ring_members`` shoppers at the last graph run. An incremental run starts from them and from
what changed since, and recomputes whole components (keyed by shopper: Citus distributes it with
the shoppers).

Revision ID: 0037
Revises: 0033
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0037"
down_revision = "0033"
branch_labels = None
depends_on = None

UNHASHED = (
    "(enrolment_device_id IS NOT NULL AND enrolment_device_hash IS NULL)"
    " OR (enrolment_ip IS NOT NULL AND enrolment_ip_hash IS NULL)"
)


def upgrade() -> None:
    with op.batch_alter_table("shoppers") as batch:
        batch.add_column(sa.Column("enrolment_device_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("enrolment_ip_hash", sa.String(length=64), nullable=True))
    op.create_index("ix_shoppers_enrolment_device_hash", "shoppers", ["enrolment_device_hash"])
    op.create_index("ix_shoppers_enrolment_ip_hash", "shoppers", ["enrolment_ip_hash"])
    op.create_index(
        "ix_shoppers_enrolment_unhashed",
        "shoppers",
        ["id"],
        postgresql_where=sa.text(UNHASHED),
        sqlite_where=sa.text(UNHASHED),
    )
    op.create_index(
        "ix_risk_link_observations_observed_at", "risk_link_observations", ["observed_at"]
    )
    op.create_table(
        "risk_graph_members",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("shopper_id", name="pk_risk_graph_members"),
    )


def downgrade() -> None:
    op.drop_table("risk_graph_members")
    op.drop_index("ix_risk_link_observations_observed_at", "risk_link_observations")
    op.drop_index("ix_shoppers_enrolment_unhashed", "shoppers")
    op.drop_index("ix_shoppers_enrolment_ip_hash", "shoppers")
    op.drop_index("ix_shoppers_enrolment_device_hash", "shoppers")
    with op.batch_alter_table("shoppers") as batch:
        batch.drop_column("enrolment_ip_hash")
        batch.drop_column("enrolment_device_hash")
