"""disputes: disputes and evidence

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "disputes",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("open_order_id", sa.String(length=40), nullable=True),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("opened_by", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("is_pausing_collections", sa.Boolean(), nullable=False),
        sa.Column("disputed_minor", sa.BigInteger(), nullable=False),
        sa.Column("respond_by", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decide_by", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("resolution_basis", sa.String(length=32), nullable=True),
        sa.Column("resolved_by", sa.String(length=40), nullable=True),
        sa.Column("resolution_note", sa.Text(), nullable=True),
        sa.Column("shopper_refund_minor", sa.BigInteger(), nullable=False),
        sa.Column("refund_id", sa.String(length=40), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("disputed_minor >= 0", name=op.f("ck_disputes_disputed_not_negative")),
        sa.CheckConstraint(
            "shopper_refund_minor >= 0", name=op.f("ck_disputes_refund_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["shopper_id", "order_id"],
            ["orders.shopper_id", "orders.id"],
            name=op.f("fk_disputes_shopper_id_order_id_orders"),
        ),
        sa.PrimaryKeyConstraint("shopper_id", "id", name=op.f("pk_disputes")),
        sa.UniqueConstraint("shopper_id", "open_order_id", name="uq_disputes_one_open_per_order"),
    )
    with op.batch_alter_table("disputes", schema=None) as batch_op:
        batch_op.create_index("ix_disputes_id", ["id"], unique=False)
        batch_op.create_index("ix_disputes_merchant_id", ["merchant_id", "id"], unique=False)
        batch_op.create_index("ix_disputes_status", ["status", "respond_by"], unique=False)

    op.create_table(
        "dispute_evidence",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("dispute_id", sa.String(length=40), nullable=False),
        sa.Column("submitted_by", sa.String(length=16), nullable=False),
        sa.Column("submitter_id", sa.String(length=40), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("size_bytes > 0", name=op.f("ck_dispute_evidence_size_positive")),
        sa.ForeignKeyConstraint(
            ["shopper_id", "dispute_id"],
            ["disputes.shopper_id", "disputes.id"],
            name=op.f("fk_dispute_evidence_shopper_id_dispute_id_disputes"),
        ),
        sa.PrimaryKeyConstraint("shopper_id", "id", name=op.f("pk_dispute_evidence")),
        sa.UniqueConstraint(
            "shopper_id", "dispute_id", "sha256", name="uq_dispute_evidence_content"
        ),
    )
    with op.batch_alter_table("dispute_evidence", schema=None) as batch_op:
        batch_op.create_index(
            "ix_dispute_evidence_dispute", ["shopper_id", "dispute_id", "id"], unique=False
        )

    op.create_table(
        "dispute_actions",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("dispute_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=40), nullable=False),
        sa.Column("actor_id", sa.String(length=40), nullable=True),
        sa.Column("status_after", sa.String(length=24), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["shopper_id", "dispute_id"],
            ["disputes.shopper_id", "disputes.id"],
            name=op.f("fk_dispute_actions_shopper_id_dispute_id_disputes"),
        ),
        sa.PrimaryKeyConstraint("shopper_id", "dispute_id", "seq", name=op.f("pk_dispute_actions")),
    )


def downgrade() -> None:
    op.drop_table("dispute_actions")
    with op.batch_alter_table("dispute_evidence", schema=None) as batch_op:
        batch_op.drop_index("ix_dispute_evidence_dispute")
    op.drop_table("dispute_evidence")
    with op.batch_alter_table("disputes", schema=None) as batch_op:
        batch_op.drop_index("ix_disputes_status")
        batch_op.drop_index("ix_disputes_merchant_id")
        batch_op.drop_index("ix_disputes_id")
    op.drop_table("disputes")
