"""auth_throttle_hits: failed authentications counted once for every process on PostgreSQL

The throttle on failed API keys and console sign-ins (PyPI ``limits``) counted in each process's
memory: with four API processes an address had four times the limit. On PostgreSQL it now counts
in this table (kit.throttle.DatabaseThrottleStorage), one row per failure in a moving window,
deleted once it is out of every window. SQLite, one process by design, keeps counting in memory;
the table is made there too so that both databases have one schema.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_throttle_hits",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("throttle_key", sa.String(length=512), nullable=False),
        sa.Column("hit_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_throttle_hits")),
    )
    op.create_index(
        "ix_auth_throttle_hits_key_hit_at",
        "auth_throttle_hits",
        ["throttle_key", "hit_at"],
    )
    op.create_index("ix_auth_throttle_hits_expires_at", "auth_throttle_hits", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_auth_throttle_hits_expires_at", table_name="auth_throttle_hits")
    op.drop_index("ix_auth_throttle_hits_key_hit_at", table_name="auth_throttle_hits")
    op.drop_table("auth_throttle_hits")
