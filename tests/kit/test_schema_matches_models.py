"""The migrated schema is the schema the models describe: a model change without its migration
(or the reverse) fails here instead of in production."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

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


# The night's big append-only writes (migration 0060): keyed by their time-ordered id first, a
# night's rows land at the right edge of each key. Alembic's comparison above does not see the
# order of a key's columns, so a re-key by shopper first would pass it and slow the night.
ID_FIRST_KEYS = {
    "journal_entries": ["id", "shard_key"],
    "ledger_postings": ["entry_id", "seq", "shard_key"],
    "contact_attempts": ["id", "shopper_id"],
    "outbox_messages": ["id", "shard_key"],
}


@pytest.mark.postgresql
def test_postgres_append_heavy_keys_lead_with_their_id(postgres_schema: str) -> None:
    engine = create_engine(normalize_database_url(postgres_schema))
    try:
        with engine.connect() as connection:
            keys = {
                table: [
                    name
                    for (name,) in connection.execute(
                        text(
                            "SELECT a.attname FROM pg_index i"
                            " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)"
                            " JOIN pg_attribute a"
                            "   ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
                            " WHERE i.indrelid = CAST(:table AS regclass) AND i.indisprimary"
                            " ORDER BY k.n"
                        ),
                        {"table": table},
                    )
                ]
                for table in ID_FIRST_KEYS
            }
    finally:
        engine.dispose()
    assert keys == ID_FIRST_KEYS
