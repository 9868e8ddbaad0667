"""risk_models: fraud model registry and graph runs

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "risk_model_versions",
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("artefact_path", sa.String(length=1024), nullable=False),
        sa.Column("feature_names", _json(), nullable=False),
        sa.Column("training_summary", _json(), nullable=False),
        sa.Column("auc", sa.Float(), nullable=False),
        sa.Column("trained_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_risk_model_versions")),
    )
    op.create_table(
        "risk_graph_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("business_on", sa.Date(), nullable=True),
        sa.Column("shoppers", sa.Integer(), nullable=False),
        sa.Column("link_values", sa.Integer(), nullable=False),
        sa.Column("edges", sa.Integer(), nullable=False),
        sa.Column("components", sa.Integer(), nullable=False),
        sa.Column("communities", sa.Integer(), nullable=False),
        sa.Column("rings_scored", sa.Integer(), nullable=False),
        sa.Column("rings_flagged", sa.Integer(), nullable=False),
        sa.Column("cases_opened", sa.Integer(), nullable=False),
        sa.Column("cases_updated", sa.Integer(), nullable=False),
        sa.Column("parameters", _json(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_graph_runs")),
        sa.UniqueConstraint("trigger", "business_on", name="uq_risk_graph_runs_nightly"),
    )
    with op.batch_alter_table("risk_graph_runs", schema=None) as batch_op:
        batch_op.create_index("ix_risk_graph_runs_started_at", ["started_at"], unique=False)
    op.create_table(
        "risk_rings",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("anchor_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=True),
        sa.Column("members", _json(), nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("evidence", _json(), nullable=False),
        sa.Column("amount_at_risk_minor", sa.BigInteger(), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=True),
        sa.Column("first_run_id", sa.String(length=40), nullable=False),
        sa.Column("last_run_id", sa.String(length=40), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_rings")),
    )
    with op.batch_alter_table("risk_rings", schema=None) as batch_op:
        batch_op.create_index("ix_risk_rings_anchor", ["anchor_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("risk_rings", schema=None) as batch_op:
        batch_op.drop_index("ix_risk_rings_anchor")
    op.drop_table("risk_rings")
    with op.batch_alter_table("risk_graph_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_risk_graph_runs_started_at")
    op.drop_table("risk_graph_runs")
    op.drop_table("risk_model_versions")
