"""``usefirst sandbox-clock``: move the demo's business time by seconds, hours and days, and on to
a working hour so that collectors' calls are not refused as quiet hours."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.cli.test_cli import environment, migrated, run

__all__ = ["environment"]


def clock_of(database: Path) -> datetime:
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        value = connection.execute(text("SELECT now_at FROM sandbox_clock WHERE id = 1")).scalar()
    engine.dispose()
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def set_clock(database: Path, moment: datetime) -> None:
    engine = create_engine(f"sqlite:///{database}")
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM sandbox_clock"))
        connection.execute(
            text("INSERT INTO sandbox_clock (id, now_at) VALUES (1, :now_at)"),
            {"now_at": moment.replace(tzinfo=None).isoformat(sep=" ")},
        )
    engine.dispose()


def test_refused_outside_sandbox_mode(environment: Path) -> None:
    migrated(environment)
    refused = run("sandbox-clock", "--hours", "1")
    assert refused.exit_code == 2
    assert "only in sandbox mode" in refused.output


def test_moves_by_seconds_hours_and_days_then_to_a_working_hour(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrated(environment)
    monkeypatch.setenv("USEFIRST_SANDBOX", "true")
    # 2027-03-02 22:30 in Shanghai: inside quiet hours.
    set_clock(environment, datetime(2027, 3, 2, 14, 30, tzinfo=UTC))
    moved = run("sandbox-clock", "--seconds", "90", "--hours", "2", "--days", "1")
    assert moved.exit_code == 0, moved.output
    assert clock_of(environment) == datetime(2027, 3, 3, 16, 31, 30, tzinfo=UTC)
    assert "2027-03-04 00:31:30 CST" in moved.stdout
    opened = run("sandbox-clock", "--working-hour", "10")
    assert opened.exit_code == 0, opened.output
    assert clock_of(environment) == datetime(2027, 3, 4, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
    assert re.search(r"2027-03-04 10:00:00 CST \(02:00 UTC\)", opened.stdout)
    # Already inside working hours: it stays where it is.
    stays = run("sandbox-clock", "--working-hour", "10")
    assert stays.exit_code == 0
    assert clock_of(environment) == datetime(2027, 3, 4, 2, 0, tzinfo=UTC)
