"""shoppers: the language and time zone reminders use (``language``, ``time_zone``)

Quiet hours and the daily contact cap follow the shopper's own clock, and reminders are written in
the shopper's language. Shoppers enrolled before this get the default language ("zh-CN") and the
operator's time zone: ``USEFIRST_TIME_ZONE`` as the migration runs (the setting enrolment defaults
to), else Asia/Shanghai.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-10
"""

from __future__ import annotations

import os
from zoneinfo import available_timezones

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

DEFAULT_LANGUAGE = "zh-CN"
DEFAULT_TIME_ZONE = "Asia/Shanghai"


def _operator_time_zone() -> str:
    time_zone = os.environ.get("USEFIRST_TIME_ZONE", DEFAULT_TIME_ZONE).strip()
    if time_zone not in available_timezones():
        raise RuntimeError(f"USEFIRST_TIME_ZONE={time_zone!r} is not an IANA time zone name")
    return time_zone


def upgrade() -> None:
    time_zone = _operator_time_zone()
    with op.batch_alter_table("shoppers") as batch_op:
        batch_op.add_column(
            sa.Column(
                "language",
                sa.String(length=16),
                nullable=False,
                server_default=sa.text(f"'{DEFAULT_LANGUAGE}'"),
            )
        )
        batch_op.add_column(
            sa.Column(
                "time_zone",
                sa.String(length=64),
                nullable=False,
                server_default=sa.text(f"'{time_zone}'"),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("shoppers") as batch_op:
        batch_op.drop_column("time_zone")
        batch_op.drop_column("language")
