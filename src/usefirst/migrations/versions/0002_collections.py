"""collections

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bureau_files",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bureau_files")),
    )
    with op.batch_alter_table("bureau_files", schema=None) as batch_op:
        batch_op.create_index("ix_bureau_files_period", ["period", "format"], unique=False)

    op.create_table(
        "contact_attempts",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("step_day", sa.Integer(), nullable=True),
        sa.Column("step", sa.String(length=40), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=True),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("status_reason", sa.String(length=200), nullable=True),
        sa.Column("outcome", sa.String(length=24), nullable=True),
        sa.Column("promise_on", sa.Date(), nullable=True),
        sa.Column("promise_minor", sa.BigInteger(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("operator_id", sa.String(length=40), nullable=True),
        sa.Column("destination_masked", sa.String(length=320), nullable=True),
        sa.Column("provider_reference", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shopper_id", "id", name=op.f("pk_contact_attempts")),
        sa.UniqueConstraint("shopper_id", "order_id", "seq", "step_day", "channel", name="uq_step"),
    )
    with op.batch_alter_table("contact_attempts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_contact_attempts_shopper_scheduled", ["shopper_id", "scheduled_at"], unique=False
        )

    op.create_table(
        "legal_cases",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("claimed_principal_minor", sa.BigInteger(), nullable=False),
        sa.Column("claimed_fees_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shopper_id", "id", name=op.f("pk_legal_cases")),
        sa.UniqueConstraint("shopper_id", "order_id", name="uq_legal_case_order"),
    )
    with op.batch_alter_table("instalments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("late_fees_minor", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("late_fees_waived_minor", sa.BigInteger(), server_default="0", nullable=False)
        )
        # Late fees are paid from paid_fees_minor too, so its bound now includes them.
        batch_op.drop_constraint(op.f("ck_instalments_fees_paid_within"), type_="check")
        batch_op.create_check_constraint(
            "fees_paid_within",
            "paid_fees_minor >= 0 AND paid_fees_minor <= fees_minor + late_fees_minor",
        )
        batch_op.create_check_constraint("late_fees_not_negative", "late_fees_minor >= 0")

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delivery_confirmation", sa.String(length=16), nullable=True))
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


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("charged_off_minor")
        batch_op.drop_column("charged_off_on")
        batch_op.drop_column("legal_referred_on")
        batch_op.drop_column("bureau_reported_on")
        batch_op.drop_column("call_queue_since_on")
        batch_op.drop_column("first_delinquent_on")
        batch_op.drop_column("is_disputed")
        batch_op.drop_column("delivery_confirmation")

    with op.batch_alter_table("instalments", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_instalments_late_fees_not_negative"), type_="check")
        batch_op.drop_constraint(op.f("ck_instalments_fees_paid_within"), type_="check")
        batch_op.create_check_constraint(
            "fees_paid_within", "paid_fees_minor >= 0 AND paid_fees_minor <= fees_minor"
        )
        batch_op.drop_column("late_fees_waived_minor")
        batch_op.drop_column("late_fees_minor")

    op.drop_table("legal_cases")
    with op.batch_alter_table("contact_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_attempts_shopper_scheduled")

    op.drop_table("contact_attempts")
    with op.batch_alter_table("bureau_files", schema=None) as batch_op:
        batch_op.drop_index("ix_bureau_files_period")

    op.drop_table("bureau_files")
