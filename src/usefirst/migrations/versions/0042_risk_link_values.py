"""risk_link_values: the distinct (kind, value_hash, shopper_id) of the link observations (issue 14)

The checkout reads the other shoppers seen with its device, IP and shipping address. From the
observations (one row per order and identifier) that read was a scan of every order ever placed
with the identifier and a sort to make the shoppers distinct: for a hot key (a carrier NAT IP, a
household device) its cost grew with the key's history. This table keeps each shopper once per
identifier, written by the checkout itself (an upsert that moves ``last_observed_on``, the UTC
day of the latest observation, on at most once a day), so the read is one primary-key range per
identifier, at most the same 1,000 rows.

Filled from the observations here (the day of the latest observation of each triple), leaving
out values erasure replaced by its tombstone (``erased:<shopper id>``: erasure deletes this
table's rows).
On Citus it is distributed by ``value_hash`` (run ``usefirst db distribute`` after migrating).

Revision ID: 0042
Revises: 0041
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0042"
down_revision = "0041"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "risk_link_values",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value_hash", sa.String(length=64), nullable=False),
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("last_observed_on", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint(
            "kind", "value_hash", "shopper_id", name=op.f("pk_risk_link_values")
        ),
    )
    day = (
        "CAST(max(observed_at) AT TIME ZONE 'UTC' AS date)"
        if op.get_bind().dialect.name == "postgresql"
        else "date(max(observed_at))"
    )
    op.execute(
        "INSERT INTO risk_link_values (kind, value_hash, shopper_id, last_observed_on)"
        f" SELECT kind, value_hash, shopper_id, {day} FROM risk_link_observations"
        " WHERE value_hash <> 'erased:' || shopper_id"
        " GROUP BY kind, value_hash, shopper_id"
    )


def downgrade() -> None:
    op.drop_table("risk_link_values")
