"""outbox_messages.request_id: the request that wrote a message travels with it

An operator following one checkout from its HTTP request to the webhook the merchant received
needs one id across the two processes: the API writes the outbox message, the worker delivers it
later. The message keeps the request id (nullable: messages written before this revision, and by
jobs, have none of an HTTP request's), the worker logs its delivery under it and sends it as the
webhook's ``X-Request-Id``. The downgrade drops the column.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_messages") as batch:
        batch.add_column(sa.Column("request_id", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox_messages") as batch:
        batch.drop_column("request_id")
