"""Migration 0024: keys made before it keep working and never expire; down and up again keep
them. SQLite here (the schema test checks PostgreSQL's columns against the models)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text

from usefirst.identity.service import authenticate
from usefirst.kit.crypto import hash_api_key
from usefirst.kit.db import Database
from usefirst.kit.migrate import downgrade, upgrade

SECRET = "uf_plat_made-before-0024"


def test_keys_made_before_keep_working_and_never_expire(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'before.db'}"
    upgrade(url, "0021")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO api_keys (id, secret_hash, kind, label, created_at) "
                "VALUES ('key_old', :hash, 'platform', 'old', '2026-01-01 00:00:00')"
            ),
            {"hash": hash_api_key(SECRET)},
        )
    engine.dispose()
    upgrade(url)
    database = Database(url)
    try:
        with database.transaction(read_only=True) as session:
            principal = authenticate(session, secret=SECRET)
            row = session.execute(
                text("SELECT expires_at, last_used_at, role, revoked_reason FROM api_keys")
            ).one()
    finally:
        database.dispose()
    assert principal is not None and (principal.kind, principal.key_id) == ("platform", "key_old")
    assert tuple(row) == (None, None, None, None)

    downgrade(url, "0021")
    upgrade(url)
    database = Database(url)
    try:
        with database.transaction(read_only=True) as session:
            assert authenticate(session, secret=SECRET) is not None
    finally:
        database.dispose()
