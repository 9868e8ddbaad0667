"""privacy: PII audit chain, complaints, privacy requests

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

GENESIS_HASH = "0" * 64


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject_shopper_id", sa.String(length=40), nullable=True),
        sa.Column("fields", _json(), nullable=False),
        sa.Column("purpose", sa.String(length=500), nullable=False),
        sa.Column("reference_id", sa.String(length=40), nullable=True),
        sa.Column("previous_hash", sa.String(length=64), nullable=False),
        sa.Column("row_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("id", name=op.f("uq_audit_log_id")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_subject", ["subject_shopper_id", "seq"], unique=False)

    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    op.execute(
        f"INSERT INTO audit_chain_head (id, last_seq, last_hash) VALUES (1, 0, '{GENESIS_HASH}')"
    )

    op.create_table(
        "complaints",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("category", sa.String(length=24), nullable=False),
        sa.Column("description_encrypted", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("respond_by", sa.DateTime(timezone=True), nullable=False),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("overdue_reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shopper_id", "id", name=op.f("pk_complaints")),
    )
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.create_index("ix_complaints_id", ["id"], unique=False)
        batch_op.create_index(
            "ix_complaints_open_respond_by", ["responded_at", "respond_by"], unique=False
        )

    op.create_table(
        "complaint_responses",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("complaint_id", sa.String(length=40), nullable=False),
        sa.Column("operator_id", sa.String(length=40), nullable=False),
        sa.Column("message_encrypted", sa.Text(), nullable=False),
        sa.Column("closes_complaint", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shopper_id", "id", name=op.f("pk_complaint_responses")),
    )
    with op.batch_alter_table("complaint_responses", schema=None) as batch_op:
        batch_op.create_index(
            "ix_complaint_responses_complaint", ["shopper_id", "complaint_id"], unique=False
        )

    op.create_table(
        "privacy_requests",
        sa.Column("shopper_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("requested_by", sa.String(length=120), nullable=False),
        sa.Column("summary", _json(), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shopper_id", "id", name=op.f("pk_privacy_requests")),
    )
    create_audit_guards()


def downgrade() -> None:
    drop_audit_guards()
    op.drop_table("privacy_requests")
    with op.batch_alter_table("complaint_responses", schema=None) as batch_op:
        batch_op.drop_index("ix_complaint_responses_complaint")
    op.drop_table("complaint_responses")
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.drop_index("ix_complaints_open_respond_by")
        batch_op.drop_index("ix_complaints_id")
    op.drop_table("complaints")
    op.drop_table("audit_chain_head")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_subject")
    op.drop_table("audit_log")


# The audit log is append-only, like the journal (0001): the database refuses to change or remove
# a row, and the chain head can move but never disappear.
SQLITE_GUARDS = [
    """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER audit_chain_head_no_delete BEFORE DELETE ON audit_chain_head
    BEGIN SELECT RAISE(ABORT, 'the audit chain head cannot be removed'); END""",
    """CREATE TRIGGER audit_chain_head_forward BEFORE UPDATE ON audit_chain_head
    WHEN NEW.last_seq < OLD.last_seq OR NEW.id <> OLD.id
    BEGIN SELECT RAISE(ABORT, 'the audit chain head only moves forward'); END""",
]

POSTGRESQL_GUARDS = [
    """CREATE FUNCTION usefirst_audit_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'the audit log is append-only (% on %)', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'check_violation';
    END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION usefirst_audit_append_only()""",
    """CREATE TRIGGER audit_chain_head_no_delete BEFORE DELETE ON audit_chain_head
    FOR EACH ROW EXECUTE FUNCTION usefirst_audit_append_only()""",
    """CREATE FUNCTION usefirst_audit_head_forward() RETURNS trigger AS $$
    BEGIN
        IF NEW.last_seq < OLD.last_seq OR NEW.id <> OLD.id THEN
            RAISE EXCEPTION 'the audit chain head only moves forward'
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER audit_chain_head_forward BEFORE UPDATE ON audit_chain_head
    FOR EACH ROW EXECUTE FUNCTION usefirst_audit_head_forward()""",
]


def create_audit_guards() -> None:
    dialect = op.get_bind().dialect.name
    for statement in POSTGRESQL_GUARDS if dialect == "postgresql" else SQLITE_GUARDS:
        op.execute(statement)


def drop_audit_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_chain_head_no_delete ON audit_chain_head")
        op.execute("DROP TRIGGER IF EXISTS audit_chain_head_forward ON audit_chain_head")
        op.execute("DROP FUNCTION IF EXISTS usefirst_audit_append_only()")
        op.execute("DROP FUNCTION IF EXISTS usefirst_audit_head_forward()")
    else:
        for name in (
            "audit_log_no_update",
            "audit_log_no_delete",
            "audit_chain_head_no_delete",
            "audit_chain_head_forward",
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
