"""bureau_files: the file's text is encrypted at rest (``content`` → ``content_encrypted``)

A credit-bureau file holds the reported shoppers' names, national IDs, birth dates and phones.
New files are stored encrypted like every other PII column (field name ``content``). A
migration has no keys, so files made before it keep their text in the renamed column; readers
take a value that is not a ciphertext as the text itself, and ``usefirst keys rotate`` (which
re-encrypts every ``*_encrypted`` column) encrypts them.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bureau_files") as batch_op:
        batch_op.alter_column("content", new_column_name="content_encrypted")


def downgrade() -> None:
    # Files encrypted since stay ciphertexts under the old name: decrypt them before going back.
    with op.batch_alter_table("bureau_files") as batch_op:
        batch_op.alter_column("content_encrypted", new_column_name="content")
