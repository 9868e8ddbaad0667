"""outbox shard key: the outbox keyed by the shard of its subject

On a Citus cluster the outbox is distributed like the events it delivers (usefirst.distribution):
``outbox_messages`` gets ``shard_key`` — the subject's shopper, else merchant, else ``platform`` —
first in its primary key, so a message is stored on its subject's shard, written there in the
same shard transaction as the change that causes it, and claimed by ``usefirst worker`` one shard
at a time with ``FOR UPDATE SKIP LOCKED``. Existing rows take the shopper or merchant named in
their payload, else ``platform``.

Revision ID: 0039
Revises: 0037
Create Date: 2026-12-07
"""

from __future__ import annotations

import warnings

import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import SAWarning

revision = "0039"
down_revision = "0037"
branch_labels = None
depends_on = None


def _subject(dialect: str) -> str:
    field = "payload ->> '{}'" if dialect == "postgresql" else "json_extract(payload, '$.{}')"
    return (
        f"coalesce(nullif({field.format('shopper_id')}, ''),"
        f" nullif({field.format('merchant_id')}, ''), 'platform')"
    )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("outbox_messages", sa.Column("shard_key", sa.String(length=40), nullable=True))
    op.execute(f"UPDATE outbox_messages SET shard_key = {_subject(dialect)}")
    if dialect == "postgresql":
        op.alter_column("outbox_messages", "shard_key", nullable=False)
        op.drop_constraint("pk_outbox_messages", "outbox_messages", type_="primary")
        op.create_primary_key("pk_outbox_messages", "outbox_messages", ["shard_key", "id"])
        return
    # The rebuilt table's key changes on purpose; SQLAlchemy warns that it differs from the old.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*_alembic_tmp_.*primary_key", category=SAWarning
        )
        with op.batch_alter_table("outbox_messages", recreate="always") as batch_op:
            batch_op.alter_column("shard_key", nullable=False)
            batch_op.create_primary_key("pk_outbox_messages", ["shard_key", "id"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("pk_outbox_messages", "outbox_messages", type_="primary")
        op.drop_column("outbox_messages", "shard_key")
        op.create_primary_key("pk_outbox_messages", "outbox_messages", ["id"])
        return
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*_alembic_tmp_.*primary_key", category=SAWarning
        )
        with op.batch_alter_table("outbox_messages", recreate="always") as batch_op:
            batch_op.drop_column("shard_key")
            batch_op.create_primary_key("pk_outbox_messages", ["id"])
