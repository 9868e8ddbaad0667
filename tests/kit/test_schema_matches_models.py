"""The migrated schema is the schema the models describe: a model change without its migration
(or the reverse) fails here instead of in production."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from usefirst.distribution import CITUS_ACCOUNT_FOREIGN_KEY
from usefirst.kit.db import normalize_database_url
from usefirst.models import metadata


def _differences(url: str) -> list[Any]:
    engine = create_engine(normalize_database_url(url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={"compare_type": True, "compare_server_default": False},
            )
            found = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    # alembic_version is Alembic's own bookkeeping, not a model; on a Citus cluster `db
    # distribute` adds the postings' key to the accounts in place of the trigger's check.
    return [
        difference
        for difference in found
        if not (
            isinstance(difference, tuple)
            and (
                (difference[0] == "remove_table" and difference[1].name == "alembic_version")
                or (
                    difference[0] == "remove_fk" and difference[1].name == CITUS_ACCOUNT_FOREIGN_KEY
                )
            )
        )
    ]


def test_sqlite_schema_matches_models(sqlite_template: Path) -> None:
    assert _differences(f"sqlite:///{sqlite_template}") == []


@pytest.mark.postgresql
def test_postgres_schema_matches_models(postgres_schema: str) -> None:
    assert _differences(postgres_schema) == []
