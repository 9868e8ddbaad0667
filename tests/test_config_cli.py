"""``usefirst config``: show what is in force, refuse a bad document with its lines (saving
nothing), publish a good one and list the versions."""

from __future__ import annotations

from pathlib import Path

from tests.test_cli import environment, migrated, run
from usefirst.collections.ladder import DEFAULT_LADDER_FILE

__all__ = ["environment"]

LADDER = DEFAULT_LADDER_FILE.read_text(encoding="utf-8")


def test_show_check_publish_and_history(environment: Path, tmp_path: Path) -> None:
    migrated(environment)
    shown = run("config", "show", "dunning_ladder")
    assert shown.exit_code == 0
    assert shown.stdout == LADDER
    assert f"in force: {DEFAULT_LADDER_FILE}" in shown.stderr

    bad = tmp_path / "bad.toml"
    bad.write_text(LADDER.replace('template = "overdue_notice"', 'template = "nag"', 1))
    rejected = run("config", "publish", "dunning_ladder", str(bad))
    assert rejected.exit_code == 2
    bad_line = bad.read_text().splitlines().index('template = "nag"') + 1
    assert f"{bad}:{bad_line}: step #4: unknown template 'nag'" in rejected.stderr
    assert "rejected: nothing was saved" in rejected.stderr
    assert "no version saved yet" in run("config", "history", "dunning_ladder").stdout

    good = tmp_path / "good.toml"
    good.write_text(
        LADDER.replace('day = 7\naction = "call_queue"', 'day = 5\naction = "call_queue"')
    )
    published = run("config", "publish", "dunning_ladder", str(good), "--note", "call sooner")
    assert published.exit_code == 0, published.output
    assert "saved dunning_ladder version 1 (10 steps, day -3 to 180)" in published.stdout
    assert run("config", "show", "dunning_ladder").stdout == good.read_text()
    stale = run("config", "publish", "dunning_ladder", str(DEFAULT_LADDER_FILE), "--based-on", "0")
    assert stale.exit_code == 1
    assert "Version 1 was saved after this edit started from version 0" in stale.stderr
    assert run("config", "show", "dunning_ladder").stdout == good.read_text()
    listed = run("config", "history", "dunning_ladder").stdout
    assert "call sooner" in listed and "cli" in listed
    assert run("config", "show", "nonsense").exit_code == 2
