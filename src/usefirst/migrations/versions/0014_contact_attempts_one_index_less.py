"""contact_attempts: drop the (shopper_id, scheduled_at) index

Every read of contact attempts is one shopper's (the contact log, the per-day contact cap, the
evidence pack, erasure): the primary key's shopper_id prefix finds them, a few dozen at most,
and sorting them costs nothing. The index cost the daily sweep a random index insert for each
of the ~50,000 reminders it plans on a book of a million instalments.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_contact_attempts_shopper_scheduled", table_name="contact_attempts")


def downgrade() -> None:
    op.create_index(
        "ix_contact_attempts_shopper_scheduled",
        "contact_attempts",
        ["shopper_id", "scheduled_at"],
        unique=False,
    )
