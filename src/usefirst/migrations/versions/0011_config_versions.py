"""config versions: operator-edited risk rules and dunning ladder, versioned in the database

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "config_versions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=120), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_by", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_versions")),
        sa.UniqueConstraint("kind", "number", name=op.f("uq_config_versions_kind_number")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Saved versions are history: nobody edits or deletes one, a change is a new version.
        op.execute(
            """
            CREATE FUNCTION config_versions_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'config_versions is append-only';
            END;
            $$ LANGUAGE plpgsql;
            CREATE TRIGGER config_versions_append_only
                BEFORE UPDATE OR DELETE ON config_versions
                FOR EACH ROW EXECUTE FUNCTION config_versions_append_only();
            """
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS config_versions_append_only ON config_versions")
        op.execute("DROP FUNCTION IF EXISTS config_versions_append_only()")
    op.drop_table("config_versions")
