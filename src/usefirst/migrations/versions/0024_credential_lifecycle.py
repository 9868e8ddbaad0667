"""api_keys and merchants: credentials that expire, are rotated and revoked

API keys and operator tokens get an optional expiry (``expires_at``), the moment they were last
used (``last_used_at``, written at most once a minute), the role an operator token is bound to
(``role``), why a key was revoked (``revoked_reason``) and which key replaced it on rotation
(``replaced_by_key_id``). Keys made before this never expire, as before.

A merchant's webhook secret can be rotated with an overlap: the previous secret is kept
(encrypted) until ``previous_webhook_secret_expires_at`` and webhooks are signed with both until
then, as Standard Webhooks allows, so a receiver can switch secrets without losing a delivery.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("role", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("revoked_reason", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("replaced_by_key_id", sa.String(length=40), nullable=True))
        batch_op.create_index("ix_api_keys_operator_id", ["operator_id"], unique=False)
    with op.batch_alter_table("merchants") as batch_op:
        batch_op.add_column(
            sa.Column("previous_webhook_secret_encrypted", sa.String(length=512), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "previous_webhook_secret_expires_at", sa.DateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("merchants") as batch_op:
        batch_op.drop_column("previous_webhook_secret_expires_at")
        batch_op.drop_column("previous_webhook_secret_encrypted")
    with op.batch_alter_table("api_keys") as batch_op:
        batch_op.drop_index("ix_api_keys_operator_id")
        batch_op.drop_column("replaced_by_key_id")
        batch_op.drop_column("revoked_reason")
        batch_op.drop_column("role")
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("expires_at")
