"""Migration 0019: shoppers enrolled before it get the default language and the operator's time
zone (``USEFIRST_TIME_ZONE`` as the migration runs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from usefirst.kit.migrate import downgrade, upgrade

COLUMNS = (
    "id, external_id, status, name_encrypted, national_id_encrypted, phone_encrypted, "
    "name_masked, national_id_masked, phone_masked, phone_hash, created_at"
)


def _insert_shopper(url: str, shopper_id: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                f"INSERT INTO shoppers ({COLUMNS}) VALUES (:id, :id, 'active', 'n', 'i', 'p', "
                "'张*', '110***', '+86 138****0000', 'h', '2026-01-01 00:00:00')"
            ),
            {"id": shopper_id},
        )
    engine.dispose()


def _preferences(url: str) -> list[tuple[str, str, str]]:
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, language, time_zone FROM shoppers ORDER BY id"))
        result = [(row[0], row[1], row[2]) for row in rows]
    engine.dispose()
    return result


def test_existing_shoppers_get_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'before.db'}"
    upgrade(url, "0018")
    _insert_shopper(url, "shp_old")
    monkeypatch.setenv("USEFIRST_TIME_ZONE", "Europe/Berlin")
    upgrade(url)
    assert _preferences(url) == [("shp_old", "zh-CN", "Europe/Berlin")]

    downgrade(url, "0018")
    monkeypatch.delenv("USEFIRST_TIME_ZONE")
    upgrade(url)
    assert _preferences(url) == [("shp_old", "zh-CN", "Asia/Shanghai")]


def test_a_bad_operator_time_zone_stops_the_migration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    upgrade(url, "0018")
    monkeypatch.setenv("USEFIRST_TIME_ZONE", "Asia/Shanghia")
    with pytest.raises(RuntimeError, match="Asia/Shanghia"):
        upgrade(url)
    engine = create_engine(url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
            "0018"
        )
    engine.dispose()
