"""the nightly graph reads a shopper's address clusters by shopper, and fresh accounts by enrolment

The link graph links shoppers through the address clusters of the online signals (the ways one
address is written folded into one key: ``risk/signals.py``), read from ``risk_signal_events``.
A cluster's holders are a range of the primary key (kind, key); a shopper's clusters, which the
incremental graph reads for the shoppers it expands, need ``ix_risk_signal_events_shopper``
(shopper, kind; with the key and the time on PostgreSQL, so that the read is index-only).

Accounts enrolled in the last ``fresh_enrolment_days`` count in the graph by their enrolment
identifiers before their first order; the incremental run finds those enrolled since its last
run, and those that stopped being fresh, through ``ix_shoppers_created_at``.

Revision ID: 0052
Revises: 0049
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0052"
down_revision = "0049"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_risk_signal_events_shopper",
        "risk_signal_events",
        ["shopper_id", "kind"],
        postgresql_include=["key_hash", "created_at"],
    )
    op.create_index("ix_shoppers_created_at", "shoppers", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_shoppers_created_at", "shoppers")
    op.drop_index("ix_risk_signal_events_shopper", "risk_signal_events")
