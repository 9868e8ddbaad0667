"""The ``usefirst`` command line, run in-process against a fresh SQLite file in a directory
whose path is over 250 characters long: every line that names a file must still arrive whole."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner, Result

from tests.collections.metro2_parser import split_records
from tests.factories import bearer, checkout_body, create_merchant, enrol
from usefirst.api.app import create_app
from usefirst.cli.main import app
from usefirst.flows import daily_sweep
from usefirst.identity.service import authenticate
from usefirst.kit.clock import TestClock
from usefirst.kit.db import Database
from usefirst.kit.migrate import alembic_config
from usefirst.kit.settings import get_settings
from usefirst.runtime import Runtime


@pytest.fixture
def environment(long_tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    database = long_tmp_path / "cli.db"
    monkeypatch.setenv("USEFIRST_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("USEFIRST_KEYS_FILE", str(long_tmp_path / "keys.json"))
    for name in ("USEFIRST_ENCRYPTION_KEYS", "USEFIRST_BLIND_INDEX_KEY", "USEFIRST_SANDBOX"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield database
    get_settings.cache_clear()


def run(*args: str) -> Result:
    get_settings.cache_clear()
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    get_settings.cache_clear()
    return result


def last_line(result: Result) -> str:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return lines[-1].strip()


def migrated(environment: Path) -> None:
    result = run("migrate")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"migrated sqlite:///{environment}"]


def test_migrate_creates_the_schema_and_is_repeatable(environment: Path) -> None:
    assert not environment.exists()
    migrated(environment)
    assert environment.exists()
    again = run("migrate")
    assert again.exit_code == 0, again.output
    database = Database(f"sqlite:///{environment}")
    try:
        with database.transaction(read_only=True) as session:
            version = session.scalar(text("SELECT version_num FROM alembic_version"))
            triggers = set(
                session.scalars(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
            )
    finally:
        database.dispose()
    head = ScriptDirectory.from_config(
        alembic_config(f"sqlite:///{environment}")
    ).get_current_head()
    assert head is not None and version == head
    assert {"journal_entries_balanced", "ledger_postings_sealed"} <= triggers


def test_create_platform_key_prints_a_key_that_authenticates(environment: Path) -> None:
    migrated(environment)
    first = run("admin", "create-platform-key")
    second = run("admin", "create-platform-key", "--label", "backup")
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    key, other_key = last_line(first), last_line(second)
    assert key.startswith("uf_plat") and other_key.startswith("uf_plat")
    assert key != other_key
    assert key not in first.stdout.splitlines()[0]  # alone on its own line, not in the banner

    database = Database(f"sqlite:///{environment}")
    try:
        with database.transaction(read_only=True) as session:
            principal = authenticate(session, secret=key)
            assert authenticate(session, secret=key + "x") is None
            stored = session.scalars(text("SELECT secret_hash FROM api_keys")).all()
    finally:
        database.dispose()
    assert principal is not None and principal.kind == "platform"
    assert key not in stored  # only the hash is kept

    # And it works over HTTP with the same settings the CLI used.
    get_settings.cache_clear()
    runtime = Runtime(get_settings())
    try:
        with TestClient(create_app(runtime)) as client:
            shopper = enrol(client, bearer(key))
            assert shopper["status"] == "active"
            assert (
                client.get("/v1/shoppers/" + shopper["id"], headers=bearer("nope")).status_code
                == 401
            )
    finally:
        runtime.database.dispose()


def test_create_operator_prints_a_token_with_its_role(environment: Path) -> None:
    migrated(environment)
    result = run("admin", "create-operator", "--email", "Ops@Example.com", "--role", "admin")
    assert result.exit_code == 0, result.output
    token = last_line(result)
    assert token.startswith("uf_op")

    get_settings.cache_clear()
    runtime = Runtime(get_settings())
    try:
        with runtime.work(read_only=True) as work:
            principal = authenticate(work.session, secret=token)
        assert principal is not None
        assert (principal.kind, principal.role) == ("operator", "admin")
        with TestClient(create_app(runtime)) as client:
            trial = client.get("/v1/ledger/trial-balance", headers=bearer(token))
            assert trial.status_code == 200, trial.text
            assert trial.json()["debits_minor"] == trial.json()["credits_minor"] == 0
    finally:
        runtime.database.dispose()

    duplicate = run("admin", "create-operator", "--email", "ops@example.com", "--role", "support")
    assert duplicate.exit_code == 2
    bad_role = run("admin", "create-operator", "--email", "x@example.com", "--role", "root")
    assert bad_role.exit_code == 2
    collector = run("admin", "create-operator", "--email", "c@example.com", "--role", "collector")
    assert collector.exit_code == 0, collector.output
    get_settings.cache_clear()
    runtime = Runtime(get_settings())
    try:
        with TestClient(create_app(runtime)) as client:
            forbidden = client.get("/v1/ledger/trial-balance", headers=bearer(last_line(collector)))
            assert forbidden.status_code == 403
    finally:
        runtime.database.dispose()


def sweep_summary(result: Result) -> dict[str, object]:
    summary = ast.literal_eval(result.stdout.strip())
    assert isinstance(summary, dict)
    return summary


# What the sweep of 2026-12-01 reports on an empty database, but for its jobs.
FIRST_SWEEP_OF_DECEMBER = {
    "business_on": "2026-12-01",
    "already_ran": False,
    "auto_confirmed": 0,
    "newly_overdue_orders": 0,
    "late_fees_minor": 0,
    "reminders_planned": 0,
    "call_queue": 0,
    "bureau_reported": 0,
    "legal_referred": 0,
    "charged_off": 0,
    # The first of the month writes last month's bureau files (Metro 2 and JSON Lines).
    "bureau_files": 2,
}


def test_sweep_for_a_date_runs_once(environment: Path) -> None:
    migrated(environment)
    first = run("sweep", "--date", "2026-12-01")
    assert first.exit_code == 0, first.output
    summary = sweep_summary(first)
    assert set(summary.pop("jobs")) == set(daily_sweep.JOB_NAMES)
    assert summary == FIRST_SWEEP_OF_DECEMBER
    second = run("sweep", "--date", "2026-12-01")
    assert second.exit_code == 0, second.output
    assert sweep_summary(second)["already_ran"] is True
    assert sweep_summary(second)["business_on"] == "2026-12-01"

    database = Database(f"sqlite:///{environment}")
    try:
        with database.transaction(read_only=True) as session:
            runs = session.scalar(text("SELECT COUNT(*) FROM sweep_runs"))
    finally:
        database.dispose()
    assert runs == 1


def test_sweep_rejects_a_malformed_date(environment: Path) -> None:
    migrated(environment)
    result = CliRunner().invoke(app, ["sweep", "--date", "2026-13-01"])
    get_settings.cache_clear()
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["--date: use YYYY-MM-DD, not '2026-13-01'"]
    assert result.stdout == ""


def add_a_paid_instalment_order() -> None:
    """A shopper's 300.00 order in three instalments, delivered, and a payment of 123.45."""
    platform_key = last_line(run("admin", "create-platform-key"))
    get_settings.cache_clear()
    runtime = Runtime(get_settings())
    try:
        with TestClient(create_app(runtime)) as client:
            headers = bearer(platform_key)
            shopper = enrol(client, headers)
            merchant = create_merchant(client, headers)
            checkout = client.post(
                "/v1/checkouts",
                headers=headers,
                json=checkout_body(shopper["id"], merchant["id"], 30_000, "instalments_3"),
            )
            order_id = checkout.json()["order"]["id"]
            assert (
                client.post(
                    f"/v1/orders/{order_id}/ship",
                    headers=bearer(merchant["api_key"]),
                    json={"carrier": "SF", "tracking_number": "SF0000001"},
                ).status_code
                == 200
            )
            assert (
                client.post(f"/v1/orders/{order_id}/confirm-receipt", headers=headers).status_code
                == 200
            )
            paid = client.post(
                "/v1/payments",
                headers=headers,
                json={"shopper_id": shopper["id"], "amount_minor": 12_345, "method": "alipay"},
            )
            assert paid.status_code == 201, paid.text
    finally:
        runtime.database.dispose()


def test_ledger_audit_on_a_fresh_and_a_busy_database(environment: Path) -> None:
    migrated(environment)
    fresh = run("ledger", "audit")
    assert fresh.exit_code == 0, fresh.output
    assert "ledger balanced: yes" in fresh.stdout

    add_a_paid_instalment_order()

    busy = run("ledger", "audit")
    assert busy.exit_code == 0, busy.output
    assert "ledger balanced: yes" in busy.stdout
    assert "problem" not in busy.stdout


def post_a_receivable_without_a_statement(environment: Path) -> None:
    """A balanced journal entry owing 700 from a shopper no statement knows of: the audit's
    receivables-equal-statements check fails on it."""
    database = Database(f"sqlite:///{environment}")
    try:
        with database.transaction() as session:
            for code, kind, owner in (
                ("shopper_receivable:shp_ghost:CNY", "shopper_receivable", "shp_ghost"),
                ("suspense::CNY", "suspense", None),
            ):
                session.execute(
                    text(
                        "INSERT INTO ledger_accounts (code, kind, owner_id, currency, created_at) "
                        "VALUES (:code, :kind, :owner, 'CNY', '2026-11-01 00:00:00')"
                    ),
                    {"code": code, "kind": kind, "owner": owner},
                )
            for seq, code, amount in (
                (1, "shopper_receivable:shp_ghost:CNY", 700),
                (2, "suspense::CNY", -700),
            ):
                session.execute(
                    text(
                        "INSERT INTO ledger_postings"
                        " (shard_key, entry_id, seq, account_code, currency, amount_minor)"
                        " VALUES ('platform', 'jen_ghost', :seq, :code, 'CNY', :amount)"
                    ),
                    {"seq": seq, "code": code, "amount": amount},
                )
            session.execute(
                text(
                    "INSERT INTO journal_entries"
                    " (shard_key, id, kind, posting_count, memo, created_at)"
                    " VALUES ('platform', 'jen_ghost', 'manual', 2, 'ghost', '2026-11-01 00:00:00')"
                )
            )
    finally:
        database.dispose()


def test_ledger_audit_fails_when_a_receivable_is_tampered_with(environment: Path) -> None:
    migrated(environment)
    post_a_receivable_without_a_statement(environment)
    result = run("ledger", "audit")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert "problem: shopper shp_ghost: receivable 700 != statement 0" in lines
    assert lines[-1] == "ledger balanced: no"


def count_rows(environment: Path, table: str) -> int:
    database = Database(f"sqlite:///{environment}")
    try:
        with database.transaction(read_only=True) as session:
            return int(session.scalar(text(f"SELECT COUNT(*) FROM {table}")) or 0)
    finally:
        database.dispose()


def swept_dates(environment: Path) -> list[str]:
    database = Database(f"sqlite:///{environment}")
    try:
        with database.transaction(read_only=True) as session:
            rows = session.scalars(text("SELECT business_on FROM sweep_runs ORDER BY business_on"))
            return [str(row) for row in rows]
    finally:
        database.dispose()


def test_sweep_refuses_a_date_after_today_and_catch_up_still_sweeps_every_day(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USEFIRST_SANDBOX", "true")
    migrated(environment)
    get_settings.cache_clear()
    runtime = Runtime(get_settings())
    try:
        with runtime.work() as work:
            clock = runtime.clock
            assert isinstance(clock, TestClock)
            # 2027-03-05 12:00 in Asia/Shanghai.
            clock.set(work.session, datetime(2027, 3, 5, 4, 0, tzinfo=UTC))
    finally:
        runtime.database.dispose()
    assert run("sweep", "--date", "2027-03-02").exit_code == 0

    refused = run("sweep", "--date", "2027-03-06")
    assert refused.exit_code == 2
    assert refused.stderr.splitlines() == ["2027-03-06 is in the future (today is 2027-03-05)."]
    assert refused.stdout == ""
    assert swept_dates(environment) == ["2027-03-02"]

    caught_up = run("sweep")
    assert caught_up.exit_code == 0, caught_up.output
    assert swept_dates(environment) == ["2027-03-02", "2027-03-03", "2027-03-04", "2027-03-05"]


@pytest.mark.parametrize("period", ["0000-01", "1800-01", "1999-12", "2026-13", "2026-00"])
def test_bureau_report_refuses_a_period_out_of_range(environment: Path, period: str) -> None:
    migrated(environment)
    output = environment.parent / "bureau.txt"
    result = run("bureau", "report", "--period", period, "--output", str(output))
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert "period must" in line or "must not be before 2000-01" in line
    assert result.stdout == ""
    assert count_rows(environment, "bureau_files") == 0
    assert not output.exists()


def test_bureau_report_writes_a_metro2_file_with_header_and_trailer(environment: Path) -> None:
    migrated(environment)
    output = environment.parent / "bureau-2026-10.txt"
    result = run("bureau", "report", "--period", "2026-10", "--output", str(output))
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    assert line.endswith(": 2026-10, metro2, 0 account(s)")
    content = output.read_text("ascii")
    records = split_records(content)
    assert [len(record) for record in records] == [426, 426]
    assert records[0][4:10] == "HEADER"
    assert records[1][4:11] == "TRAILER"
    assert count_rows(environment, "bureau_files") == 1


def test_bureau_report_refuses_an_output_in_a_missing_directory(environment: Path) -> None:
    migrated(environment)
    output = environment.parent / "missing" / "bureau.txt"
    result = run("bureau", "report", "--period", "2026-10", "--output", str(output))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"--output: no directory {output.parent}"]
    assert count_rows(environment, "bureau_files") == 0


@pytest.mark.parametrize(
    ("name", "magic"), [("portfolio.png", b"\x89PNG\r\n\x1a\n"), ("p.svg", b"")]
)
def test_portfolio_report_writes_the_chart(environment: Path, name: str, magic: bytes) -> None:
    migrated(environment)
    chart = environment.parent / name
    result = run("report", "portfolio", "--chart", str(chart))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("delinquency on ")
    assert lines[-1] == f"chart written to {chart}"
    content = chart.read_bytes()
    if magic:
        assert content.startswith(magic)
    else:
        assert b"<svg" in content[:1000]


@pytest.mark.parametrize("name", ["portfolio.txt", "missing/portfolio.png"])
def test_portfolio_report_refuses_a_bad_chart_path(environment: Path, name: str) -> None:
    migrated(environment)
    chart = environment.parent / name
    result = run("report", "portfolio", "--chart", str(chart))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "--chart: the chart must be a .png or .svg file"
        if chart.suffix == ".txt"
        else f"--chart: no directory {chart.parent}"
    ]
    assert result.stdout == ""
    assert not chart.exists()
    assert not chart.parent.exists() or list(chart.parent.glob("portfolio*")) == []


def test_risk_rebuild_counters_counts_every_order_again(environment: Path) -> None:
    migrated(environment)
    add_a_paid_instalment_order()
    database = Database(f"sqlite:///{environment}")
    try:
        with database.transaction() as session:
            orders = session.execute(text("SELECT count(*) FROM orders")).scalar_one()
            kept = session.execute(
                text("SELECT * FROM risk_order_facts ORDER BY shopper_id, order_id")
            ).all()
            # Orders changed behind the engine's back: the counters lost track.
            session.execute(text("DELETE FROM risk_order_facts"))
            session.execute(text("DELETE FROM risk_merchant_days"))
    finally:
        database.dispose()

    result = run("risk", "rebuild-counters")

    assert result.exit_code == 0, result.output
    assert last_line(result) == f"counters rebuilt from {orders} orders"
    database = Database(f"sqlite:///{environment}")
    try:
        with database.transaction(read_only=True) as session:
            assert (
                session.execute(
                    text("SELECT * FROM risk_order_facts ORDER BY shopper_id, order_id")
                ).all()
                == kept
            )
            days = session.execute(text("SELECT sum(lent_orders) FROM risk_merchant_days"))
            assert days.scalar_one() == orders >= 1
    finally:
        database.dispose()
