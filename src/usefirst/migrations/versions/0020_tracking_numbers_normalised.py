"""orders.tracking_number in the normalised form (upper case, no whitespace or hyphens)

The engine now stores tracking numbers normalised (``orders.tracking.normalise_tracking_number``)
so that a reused waybill is found however it was typed. This brings the numbers stored before
into the same form, so every comparison is plain equality on ``ix_orders_tracking_number``.
Not reversible (what the merchant typed is not kept); the downgrade leaves the numbers as they are.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

# The characters normalisation drops (orders.tracking.IGNORED_CHARACTERS), by code point.
_DROPPED = (32, 9, 10, 13, 11, 12, 45)


def upgrade() -> None:
    character_function = "chr" if op.get_bind().dialect.name == "postgresql" else "char"
    normalised = "tracking_number"
    for code_point in _DROPPED:
        normalised = f"replace({normalised}, {character_function}({code_point}), '')"
    normalised = f"upper({normalised})"
    op.execute(
        f"UPDATE orders SET tracking_number = {normalised} "
        f"WHERE tracking_number IS NOT NULL AND tracking_number <> {normalised}"
    )


def downgrade() -> None:
    pass
