"""What the commands write (issue 22): whole lines, plain when not on a terminal, on the stream
they belong to, whatever the length of a path in them; with ``--json`` one JSON document on
standard output and the exit code of the run without it."""

from __future__ import annotations

import io
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from tests.cli.test_cli import (
    FIRST_SWEEP_OF_DECEMBER,
    add_a_paid_instalment_order,
    environment,
    migrated,
    post_a_receivable_without_a_statement,
    run,
    swept_dates,
)
from usefirst.cli.output import console_for
from usefirst.collections.ladder import DEFAULT_LADDER_FILE
from usefirst.flows import daily_sweep
from usefirst.kit.db import Database
from usefirst.lab import risk_evaluation as risk_evaluate
from usefirst.lab.risk_evaluation import EvaluationReport, SimulationSize, SystemResult
from usefirst.lab.sim.fraud import FraudScenario
from usefirst.risk.decision import default_model

__all__ = ["environment"]

# Over 200 characters of path, then a message with the spaces rich would have wrapped at.
LONG_PROBLEM = (
    "/tmp/" + "a-long-directory-" * 14 + "/overflow.toml:192: rule 'hostile': condition "
    "numbers must lie between -10**15 and 10**15 (column 22) [red]not markup[/red] :fire:"
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def table_of(*rows: tuple[str, str]) -> Table:
    table = Table(title="checks")
    table.add_column("check")
    table.add_column("value", justify="right")
    for row in rows:
        table.add_row(*row)
    return table


def test_off_a_terminal_every_line_and_table_row_is_written_whole_and_plain() -> None:
    stream = io.StringIO()
    console = console_for(stream)
    console.print(LONG_PROBLEM, style="red")
    console.print(table_of((LONG_PROBLEM, "1"), ("short", "22")))
    written = stream.getvalue()
    assert "\x1b" not in written
    lines = written.splitlines()
    assert lines[0] == LONG_PROBLEM
    assert lines[1] == "checks"
    cells = [line.strip("│┃ ").split(" │ ") for line in lines if line.startswith("│")]
    assert [[cell.strip() for cell in row] for row in cells] == [
        [LONG_PROBLEM, "1"],
        ["short", "22"],
    ]


def test_on_a_terminal_rich_lays_lines_out_to_its_width_in_colour(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "COLORTERM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "60")
    stream = Terminal()
    console: Console = console_for(stream)
    console.print(LONG_PROBLEM, style="red")
    written = stream.getvalue()
    assert "\x1b[31m" in written
    shown = re.sub(r"\x1b\[[0-9;]*m", "", written).splitlines()
    assert len(shown) > 1 and all(len(line) <= 60 for line in shown)


def document(result: Any) -> Any:
    """The JSON a ``--json`` run printed: the whole of standard output, nothing beside it."""
    return json.loads(result.stdout)


def scalar(environment: Path, sql: str) -> Any:
    database = Database(f"sqlite:///{environment}")
    try:
        with database.transaction(read_only=True) as session:
            return session.scalar(text(sql))
    finally:
        database.dispose()


def test_ledger_audit_json(environment: Path) -> None:
    migrated(environment)
    fresh = run("ledger", "audit", "--json")
    assert fresh.exit_code == 0, fresh.output
    assert document(fresh) == {
        "balanced": True,
        "credits_minor": 0,
        "debits_minor": 0,
        "entries": 0,
        "problems": [],
        "shoppers_checked": 0,
    }

    add_a_paid_instalment_order()
    busy = run("ledger", "audit", "--json")
    assert busy.exit_code == 0, busy.output
    debits = scalar(
        environment, "SELECT SUM(amount_minor) FROM ledger_postings WHERE amount_minor > 0"
    )
    assert debits > 30_000
    assert document(busy) == {
        "balanced": True,
        "credits_minor": debits,
        "debits_minor": debits,
        "entries": scalar(environment, "SELECT COUNT(*) FROM journal_entries"),
        "problems": [],
        "shoppers_checked": 1,
    }

    post_a_receivable_without_a_statement(environment)
    broken = run("ledger", "audit", "--json")
    assert broken.exit_code == 1
    assert broken.stderr == ""
    report = document(broken)
    assert report["balanced"] is False
    assert report["problems"] == ["shopper shp_ghost: receivable 700 != statement 0"]


def test_sweep_json_and_a_refused_date(environment: Path) -> None:
    migrated(environment)
    swept = run("sweep", "--date", "2026-12-01", "--json")
    assert swept.exit_code == 0, swept.output
    (summary,) = document(swept)["sweeps"]
    assert set(summary.pop("jobs")) == set(daily_sweep.JOB_NAMES)
    assert summary == FIRST_SWEEP_OF_DECEMBER

    again = run("sweep", "--date", "2026-12-01", "--json")
    assert again.exit_code == 0, again.output
    (summary,) = document(again)["sweeps"]
    assert (summary["business_on"], summary["already_ran"]) == ("2026-12-01", True)

    malformed = run("sweep", "--date", "2026-12-32", "--json")
    assert malformed.exit_code == 2
    assert malformed.stdout == ""
    assert malformed.stderr.splitlines() == ["--date: use YYYY-MM-DD, not '2026-12-32'"]
    assert swept_dates(environment) == ["2026-12-01"]


def test_bureau_report_json(environment: Path) -> None:
    migrated(environment)
    output = environment.parent / "bureau-2026-10.txt"
    result = run("bureau", "report", "--period", "2026-10", "--output", str(output), "--json")
    assert result.exit_code == 0, result.output
    assert document(result) == {
        "file_id": scalar(environment, "SELECT id FROM bureau_files"),
        "format": "metro2",
        "output": str(output),
        "period": "2026-10",
        "records": 0,
    }
    assert output.exists()

    refused = run("bureau", "report", "--period", "2026-13", "--json")
    assert refused.exit_code == 2
    assert refused.stdout == ""
    assert len(refused.stderr.splitlines()) == 1
    assert scalar(environment, "SELECT COUNT(*) FROM bureau_files") == 1


def test_portfolio_report_json(environment: Path) -> None:
    migrated(environment)
    add_a_paid_instalment_order()
    chart = environment.parent / "portfolio.svg"
    result = run("report", "portfolio", "--chart", str(chart), "--json")
    assert result.exit_code == 0, result.output
    report = document(result)
    shown = run("report", "portfolio", "--chart", str(chart))
    assert shown.stdout.splitlines()[0] == f"delinquency on {report['as_of']}"
    receivable = scalar(
        environment,
        "SELECT SUM(amount_minor) FROM ledger_postings "
        "WHERE account_code LIKE 'shopper_receivable:%'",
    )
    assert report == {
        "as_of": report["as_of"],
        "buckets": [
            {"accounts": 1, "bucket": "current", "outstanding_minor": receivable},
            {"accounts": 0, "bucket": "1-30", "outstanding_minor": 0},
            {"accounts": 0, "bucket": "31-60", "outstanding_minor": 0},
            {"accounts": 0, "bucket": "61-90", "outstanding_minor": 0},
            {"accounts": 0, "bucket": "91-180", "outstanding_minor": 0},
            {"accounts": 0, "bucket": "180+", "outstanding_minor": 0},
        ],
        "chart": str(chart),
        "currency": "CNY",
        "roll_rates": [],
        "vintages": {report["as_of"][:7]: [0.0]},
    }
    assert b"<svg" in chart.read_bytes()[:1000]


def test_config_show_and_history_json(environment: Path, long_tmp_path: Path) -> None:
    migrated(environment)
    shown = run("config", "show", "dunning_ladder", "--json")
    assert shown.exit_code == 0, shown.output
    assert shown.stderr == ""
    ladder = DEFAULT_LADDER_FILE.read_text(encoding="utf-8")
    assert document(shown) == {
        "content": ladder,
        "kind": "dunning_ladder",
        "source": str(DEFAULT_LADDER_FILE),
        "version": 0,
    }
    assert document(run("config", "history", "dunning_ladder", "--json")) == {
        "kind": "dunning_ladder",
        "versions": [],
    }

    sooner = long_tmp_path / "sooner.toml"
    sooner.write_text(
        ladder.replace('day = 7\naction = "call_queue"', 'day = 5\naction = "call_queue"')
    )
    note = "call sooner: " + ", ".join(["a reason that is long"] * 12)
    assert run("config", "publish", "dunning_ladder", str(sooner), "--note", note).exit_code == 0
    assert document(run("config", "show", "dunning_ladder", "--json")) == {
        "content": sooner.read_text(),
        "kind": "dunning_ladder",
        "source": "version 1",
        "version": 1,
    }
    saved_at = scalar(environment, "SELECT created_at FROM config_versions")
    history = document(run("config", "history", "dunning_ladder", "--json"))
    assert history == {
        "kind": "dunning_ladder",
        "versions": [
            {
                "note": note,
                "saved_at": history["versions"][0]["saved_at"],
                "saved_by": "cli",
                "summary": "10 steps, day -3 to 180",
                "version": 1,
            }
        ],
    }
    assert datetime.fromisoformat(history["versions"][0]["saved_at"]).replace(
        tzinfo=None
    ) == datetime.fromisoformat(str(saved_at))
    # The table keeps the version on one line, the long note and all.
    (row,) = [
        line
        for line in run("config", "history", "dunning_ladder").stdout.splitlines()
        if " cli " in line
    ]
    assert note in row

    unknown = run("config", "history", "nonsense", "--json")
    assert unknown.exit_code == 2
    assert unknown.stdout == ""


def test_risk_model_list_json(environment: Path) -> None:
    migrated(environment)
    shipped = default_model()
    assert shipped is not None
    result = run("risk", "model", "list", "--json")
    assert result.exit_code == 0, result.output
    listed = document(result)
    (model,) = listed["models"]
    trained_at = model.pop("trained_at")
    assert datetime.fromisoformat(trained_at) == datetime.fromisoformat(shipped.metadata.trained_at)
    assert model == {
        "auc": shipped.metadata.auc,
        "in_force": True,
        "servable": True,
        "shipped": True,
        "training_summary": json.loads(json.dumps(shipped.metadata.training_summary)),
        "version": shipped.version,
    }
    assert listed["in_force"] == shipped.version


EVALUATION = EvaluationReport(
    seed=7,
    size=SimulationSize(shoppers=10, merchants=1, days=10, scenario=FraudScenario().scaled(0.2)),
    orders=35,
    review_budget=14,
    model_version="fraud-20261123-d6bdb93a74",
    systems=[
        SystemResult(
            name="engine",
            flagged_orders=14,
            fraud_orders=19,
            fraud_stopped=15,
            cash_out_minor=1_366_100,
            cash_out_stopped_minor=1_096_200,
            honest_orders=16,
            honest_flagged=0,
            precision=1.0,
            recall=0.75,
            honest_stepped_up=6,
        )
    ],
    typologies={
        "ring": {"orders": 9, "stopped": 8, "amount_minor": 700_000, "stopped_minor": 650_000}
    },
)


def test_risk_evaluate_json_prints_the_report_and_its_progress_apart(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The simulation itself is tested in tests/risk; here what the command does with its
    report: the JSON alone on standard output, the progress on standard error."""

    def evaluate(**arguments: Any) -> EvaluationReport:
        arguments["console"].print("day 5/10: 1 s wall, 1 s CPU, 14 orders")
        assert arguments["seed"] == 7
        return EVALUATION

    monkeypatch.setattr(risk_evaluate, "evaluate", evaluate)
    copy = environment.parent / "evaluation.json"
    result = run("risk", "evaluate", "--seed", "7", "--json", "--json-file", str(copy))
    assert result.exit_code == 0, result.output
    expected = json.loads(json.dumps(EVALUATION.as_dict()))
    assert document(result) == expected
    assert json.loads(copy.read_text()) == expected
    assert result.stderr.splitlines() == ["day 5/10: 1 s wall, 1 s CPU, 14 orders"]
