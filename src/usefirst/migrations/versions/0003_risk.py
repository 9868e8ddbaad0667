"""risk: risk decisions, rules, cases, links

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "risk_decisions",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("risk_outcome", sa.String(length=16), nullable=False),
        sa.Column("risk_score", sa.Integer(), nullable=False),
        sa.Column("credit_score", sa.Integer(), nullable=True),
        sa.Column("model_score", sa.Float(), nullable=True),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("rule_set_version", sa.String(length=64), nullable=False),
        sa.Column("rule_hits", _json(), nullable=False),
        sa.Column("reasons", _json(), nullable=False),
        sa.Column("features", _json(), nullable=False),
        sa.Column("links", _json(), nullable=False),
        sa.Column("latency_micros", sa.Integer(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shopper_id", "order_id", name=op.f("pk_risk_decisions")),
    )
    with op.batch_alter_table("risk_decisions", schema=None) as batch_op:
        batch_op.create_index("ix_risk_decisions_order_id", ["order_id"], unique=False)
        batch_op.create_index("ix_risk_decisions_decided_at", ["decided_at"], unique=False)

    op.create_table(
        "risk_link_observations",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value_hash", sa.String(length=64), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "shopper_id", "order_id", "kind", name=op.f("pk_risk_link_observations")
        ),
    )
    with op.batch_alter_table("risk_link_observations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_risk_link_observations_value", ["kind", "value_hash"], unique=False
        )

    op.create_table(
        "risk_cases",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("case_type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("subject_key", sa.String(length=80), nullable=False),
        sa.Column("subject_ids", _json(), nullable=False),
        sa.Column("amount_at_risk_minor", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("evidence", _json(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("assignee", sa.String(length=40), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.String(length=24), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("resolved_by", sa.String(length=40), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_cases")),
    )
    with op.batch_alter_table("risk_cases", schema=None) as batch_op:
        batch_op.create_index(
            "ix_risk_cases_status_type", ["status", "case_type", "id"], unique=False
        )
        batch_op.create_index("ix_risk_cases_subject_key", ["subject_key", "status"], unique=False)

    op.create_table(
        "risk_known_fraud",
        sa.Column("subject_id", sa.String(length=40), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject_id", name=op.f("pk_risk_known_fraud")),
    )

    op.create_table(
        "risk_labels",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("decided_by", sa.String(length=40), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shopper_id", "order_id", name=op.f("pk_risk_labels")),
    )
    with op.batch_alter_table("risk_labels", schema=None) as batch_op:
        batch_op.create_index("ix_risk_labels_decided_at", ["decided_at"], unique=False)

    op.create_table(
        "risk_step_up_challenges",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivery_status", sa.String(length=16), nullable=False),
        sa.Column("delivery_error", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("shopper_id", "order_id", name=op.f("pk_risk_step_up_challenges")),
    )

    op.create_table(
        "risk_actions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=True),
        sa.Column("case_id", sa.String(length=40), nullable=True),
        sa.Column("decided_by", sa.String(length=80), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("details", _json(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_actions")),
    )
    with op.batch_alter_table("risk_actions", schema=None) as batch_op:
        batch_op.create_index("ix_risk_actions_subject", ["subject_id", "id"], unique=False)
        batch_op.create_index("ix_risk_actions_case_id", ["case_id"], unique=False)

    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone_encrypted", sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column("phone_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("address_encrypted", sa.String(length=2048), nullable=True))
        batch_op.add_column(sa.Column("address_hash", sa.String(length=64), nullable=True))

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("shipping_address_hash", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_orders_tracking_number", ["tracking_number"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_tracking_number")
        batch_op.drop_column("shipping_address_hash")
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.drop_column("address_hash")
        batch_op.drop_column("address_encrypted")
        batch_op.drop_column("phone_hash")
        batch_op.drop_column("phone_encrypted")
    for table in (
        "risk_actions",
        "risk_step_up_challenges",
        "risk_labels",
        "risk_known_fraud",
        "risk_cases",
        "risk_link_observations",
        "risk_decisions",
    ):
        op.drop_table(table)
