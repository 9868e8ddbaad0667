"""hardship_requests: a shopper's request for relief and the operator's answer

A shopper (through the platform) or an operator opens a hardship request on an order: late fees,
dunning, escalation and auto-debit hold at once. An operator answers within a deadline with a plan
(what is owed re-spread over some months, fee-free), a settlement for less (the rest written off),
or a refusal. The table belongs to collections and is shopper-side (keyed by shopper_id first, the
Citus distribution column; its only foreign key is to shoppers). A partial unique index keeps at
most one holding request (open, offered, plan) per order; the set-based sweep statements find the
held orders through it.

contact_attempts.facts: what a notice to the shopper tells (a receipt's amounts, a failed charge's
next try, a limit's old and new value, a checkout's schedule and cost), fixed when the event
happens; the deliverer renders the message from it. Null for dunning reminders, which are written
as true at send time.

Revision ID: 0032
Revises: 0030
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0032"
down_revision = "0030"
branch_labels = None
depends_on = None

HOLDING = "status IN ('open', 'offered', 'plan')"


def upgrade() -> None:
    op.create_table(
        "hardship_requests",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("opened_by", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("owed_minor", sa.BigInteger(), nullable=False),
        sa.Column("opened_on", sa.Date(), nullable=False),
        sa.Column("answer_due_on", sa.Date(), nullable=False),
        sa.Column("decided_on", sa.Date(), nullable=True),
        sa.Column("decision", sa.String(length=12), nullable=True),
        sa.Column("decision_note", sa.String(length=500), nullable=True),
        sa.Column("operator_id", sa.String(length=40), nullable=True),
        sa.Column("plan_months", sa.Integer(), nullable=True),
        sa.Column("plan_instalment_minor", sa.BigInteger(), nullable=True),
        sa.Column("settlement_minor", sa.BigInteger(), nullable=True),
        sa.Column("settlement_valid_until_on", sa.Date(), nullable=True),
        sa.Column("written_off_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("missed_notice_on", sa.Date(), nullable=True),
        sa.Column("answer_overdue_on", sa.Date(), nullable=True),
        sa.Column("ended_on", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "plan_months IS NULL OR plan_months >= 1",
            name=op.f("ck_hardship_requests_plan_months_positive"),
        ),
        sa.CheckConstraint(
            "settlement_minor IS NULL OR settlement_minor > 0",
            name=op.f("ck_hardship_requests_settlement_positive"),
        ),
        sa.ForeignKeyConstraint(
            ["shopper_id"], ["shoppers.id"], name="fk_hardship_requests_shopper"
        ),
        sa.PrimaryKeyConstraint("shopper_id", "id", name=op.f("pk_hardship_requests")),
    )
    op.create_index(
        "uq_hardship_requests_holding",
        "hardship_requests",
        ["shopper_id", "order_id"],
        unique=True,
        postgresql_where=sa.text(HOLDING),
        sqlite_where=sa.text(HOLDING),
    )

    op.add_column(
        "contact_attempts",
        sa.Column(
            "facts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
    )


def downgrade() -> None:
    with op.batch_alter_table("contact_attempts") as batch:
        batch.drop_column("facts")
    op.drop_index("uq_hardship_requests_holding", table_name="hardship_requests")
    op.drop_table("hardship_requests")
