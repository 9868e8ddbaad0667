"""``usefirst config``: show what is in force, refuse a bad document with its lines (saving
nothing), publish a good one and list the versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_cli import environment, migrated, run
from usefirst.collections.ladder import DEFAULT_LADDER_FILE
from usefirst.risk.rules import DEFAULT_RULES_FILE

__all__ = ["environment"]

LADDER = DEFAULT_LADDER_FILE.read_text(encoding="utf-8")


def test_show_check_publish_and_history(environment: Path, long_tmp_path: Path) -> None:
    migrated(environment)
    shown = run("config", "show", "dunning_ladder")
    assert shown.exit_code == 0
    assert shown.stdout == LADDER
    assert shown.stderr.splitlines() == [f"in force: {DEFAULT_LADDER_FILE}"]

    bad = long_tmp_path / "bad.toml"
    bad.write_text(LADDER.replace('template = "overdue_notice"', 'template = "nag"', 1))
    rejected = run("config", "publish", "dunning_ladder", str(bad))
    assert rejected.exit_code == 2
    bad_line = bad.read_text().splitlines().index('template = "nag"') + 1
    problem, verdict = rejected.stderr.splitlines()
    assert problem.startswith(f"{bad}:{bad_line}: step #4: unknown template 'nag'; known: ")
    assert verdict == "rejected: nothing was saved"
    assert rejected.stdout == ""
    assert "no version saved yet" in run("config", "history", "dunning_ladder").stdout

    good = long_tmp_path / "good.toml"
    good.write_text(
        LADDER.replace('day = 7\naction = "call_queue"', 'day = 5\naction = "call_queue"')
    )
    published = run("config", "publish", "dunning_ladder", str(good), "--note", "call sooner")
    assert published.exit_code == 0, published.output
    assert published.stdout.splitlines() == [
        "saved dunning_ladder version 1 (10 steps, day -3 to 180)"
    ]
    assert run("config", "show", "dunning_ladder").stdout == good.read_text()
    stale = run("config", "publish", "dunning_ladder", str(DEFAULT_LADDER_FILE), "--based-on", "0")
    assert stale.exit_code == 1
    assert "Version 1 was saved after this edit started from version 0" in stale.stderr
    assert stale.stdout == ""
    assert run("config", "show", "dunning_ladder").stdout == good.read_text()
    listed = run("config", "history", "dunning_ladder").stdout
    assert "call sooner" in listed and "cli" in listed
    unknown = run("config", "show", "nonsense")
    assert unknown.exit_code == 2
    assert unknown.stderr.splitlines() == [
        "unknown kind 'nonsense'; use risk_rules or dunning_ladder"
    ]


RULES = DEFAULT_RULES_FILE.read_text(encoding="utf-8")
# A rule whose condition Python itself cannot take (a number no float holds, nesting deeper than
# the parser goes): a line-numbered problem, never a traceback.
HOSTILE_CONDITIONS = {
    "overflow": (
        "order_amount_minor > 1" + "0" * 400,
        "rule 'hostile': condition numbers must lie between -10**15 and 10**15 (column 22)",
    ),
    "deep": (
        "not " * 5_000 + "has_model",
        "rule 'hostile': condition is longer than 2000 characters",
    ),
    "deep_but_short": (
        "not " * 40 + "has_model",
        "rule 'hostile': condition nests deeper than 32 levels (column 129)",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_CONDITIONS))
def test_rules_python_cannot_parse_are_reported_not_crashed(
    environment: Path, long_tmp_path: Path, name: str
) -> None:
    migrated(environment)
    condition, message = HOSTILE_CONDITIONS[name]
    hostile = long_tmp_path / f"{name}.toml"
    hostile.write_text(
        RULES + f'\n[[rules]]\nid = "hostile"\nwhen = "{condition}"\nscore = 10\nreason = "r"\n'
    )
    when_line = len(RULES.splitlines()) + 4
    rejected = run("config", "publish", "risk_rules", str(hostile))
    assert rejected.exit_code == 2
    assert rejected.stderr.splitlines() == [
        f"{hostile}:{when_line}: {message}",
        "rejected: nothing was saved",
    ]
    assert "no version saved yet" in run("config", "history", "risk_rules").stdout
    backtest = run("risk", "backtest", "--rules", str(hostile))
    assert backtest.exit_code == 2
    assert backtest.stderr.splitlines() == [f"{hostile}:{when_line}: {message}"]
    assert backtest.stdout == ""


def test_a_changed_rule_file_needs_a_version_of_its_own(
    environment: Path, long_tmp_path: Path
) -> None:
    migrated(environment)
    version_line = RULES.splitlines().index('version = "2026-12-07.3"') + 1
    stricter = RULES.replace("review_at = 70", "review_at = 65")
    same_as_file = long_tmp_path / "same-as-file.toml"
    same_as_file.write_text(stricter)
    refused = run("config", "publish", "risk_rules", str(same_as_file))
    assert refused.exit_code == 2
    assert refused.stderr.splitlines() == [
        f"{same_as_file}:{version_line}: version '2026-12-07.3' already names other content "
        f"(the file {DEFAULT_RULES_FILE}); a changed document needs a new version",
        "rejected: nothing was saved",
    ]
    assert "no version saved yet" in run("config", "history", "risk_rules").stdout

    first = long_tmp_path / "ops-1.toml"
    first.write_text(stricter.replace('version = "2026-12-07.3"', 'version = "ops-1"'))
    assert run("config", "publish", "risk_rules", str(first)).exit_code == 0
    again = long_tmp_path / "ops-1-again.toml"
    again.write_text(first.read_text().replace("review_at = 65", "review_at = 60"))
    reused = run("config", "publish", "risk_rules", str(again))
    assert reused.exit_code == 2
    assert reused.stderr.splitlines() == [
        f"{again}:{version_line}: version 'ops-1' already names other content "
        "(saved version 1); a changed document needs a new version",
        "rejected: nothing was saved",
    ]
    assert run("config", "show", "risk_rules").stdout == first.read_text()

    # Back to the file exactly: its version names that content, so it may be saved again.
    back = run("config", "publish", "risk_rules", str(DEFAULT_RULES_FILE))
    assert back.exit_code == 0, back.output
    assert back.stdout.splitlines() == ["saved risk_rules version 2 (2026-12-07.3)"]
