"""risk_model_versions: the artefact itself (ONNX bytes, SHA-256, metadata) kept in the row

A trained model used to be a directory on the machine that trained it, which the API servers and
the worker could not reach. Its bytes now live in the registry row, so a promoted model
(``usefirst risk model promote``) can be loaded by every process. Rows registered before this
migration have no bytes and cannot be promoted: train again.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("risk_model_versions") as batch_op:
        batch_op.add_column(sa.Column("onnx_model", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("onnx_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("artefact_metadata", _json(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("risk_model_versions") as batch_op:
        batch_op.drop_column("artefact_metadata")
        batch_op.drop_column("onnx_sha256")
        batch_op.drop_column("onnx_model")
