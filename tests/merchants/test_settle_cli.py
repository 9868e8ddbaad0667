"""``usefirst settle --date D`` against a fresh SQLite file in sandbox mode: it pays what is due on
D once, a second run for D changes nothing, a future date or a malformed one is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner, Result

from tests.factories import bearer, checkout_body, create_merchant, enrol
from usefirst.api.app import create_app
from usefirst.cli.main import app
from usefirst.identity.service import create_api_key
from usefirst.kit.clock import TestClock
from usefirst.kit.settings import get_settings
from usefirst.runtime import Runtime

# 2027-03-02 12:00 in Shanghai.
START = datetime(2027, 3, 2, 4, 0, tzinfo=UTC)


@pytest.fixture
def environment(long_tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    database = long_tmp_path / "cli.db"
    monkeypatch.setenv("USEFIRST_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("USEFIRST_KEYS_FILE", str(long_tmp_path / "keys.json"))
    monkeypatch.setenv("USEFIRST_SANDBOX", "true")
    for name in ("USEFIRST_ENCRYPTION_KEYS", "USEFIRST_BLIND_INDEX_KEY"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield database
    get_settings.cache_clear()


def run(*args: str) -> Result:
    get_settings.cache_clear()
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    get_settings.cache_clear()
    return result


def counts(database: Path) -> tuple[int, int, int]:
    runtime = Runtime(get_settings())
    try:
        with runtime.work(read_only=True) as work:
            return (
                int(work.session.scalar(text("SELECT COUNT(*) FROM settlements")) or 0),
                int(work.session.scalar(text("SELECT COUNT(*) FROM settlement_lines")) or 0),
                int(work.session.scalar(text("SELECT COUNT(*) FROM journal_entries")) or 0),
            )
    finally:
        runtime.database.dispose()


def deliver_two_orders(days_later: int) -> str:
    """A merchant with two delivered orders on 2027-03-02; the clock then moves on."""
    runtime = Runtime(get_settings())
    try:
        clock = runtime.clock
        assert isinstance(clock, TestClock)
        with runtime.work() as work:
            clock.set(work.session, START)
        with runtime.work() as work:
            platform = bearer(create_api_key(work.session, kind="platform", now=work.now))
        with TestClient(create_app(runtime)) as client:
            merchant = create_merchant(client, platform)
            for amount_minor in (30_000, 12_345):
                shopper = enrol(client, platform)
                created = client.post(
                    "/v1/checkouts",
                    headers=platform,
                    json=checkout_body(shopper["id"], merchant["id"], amount_minor),
                )
                order_id = created.json()["order"]["id"]
                shipped = client.post(
                    f"/v1/orders/{order_id}/ship",
                    headers=bearer(merchant["api_key"]),
                    json={"carrier": "SF Express", "tracking_number": f"SF{amount_minor:010d}"},
                )
                assert shipped.status_code == 200, shipped.text
                confirmed = client.post(f"/v1/orders/{order_id}/confirm-receipt", headers=platform)
                assert confirmed.status_code == 200, confirmed.text
        with runtime.work() as work:
            clock.set(work.session, START.replace(day=START.day + days_later))
        return str(merchant["id"])
    finally:
        runtime.database.dispose()


def test_settle_pays_once_per_date(environment: Path) -> None:
    assert run("migrate").exit_code == 0
    merchant_id = deliver_two_orders(days_later=1)
    before = counts(environment)

    # Not due yet on the delivery day itself (settlement_days = 1).
    same_day = run("settle", "--date", "2027-03-02")
    assert same_day.exit_code == 0, same_day.output
    assert "'settlements_paid': 0" in same_day.stdout
    assert counts(environment) == before

    first = run("settle", "--date", "2027-03-03")
    assert first.exit_code == 0, first.output
    assert "'settlements_paid': 1" in first.stdout
    # 42 345 sold, fee 180 + 74 (60 bps of 12 345 = 74.07), no reserve by default.
    assert f"'settled_minor': {42_345 - 254}" in first.stdout
    settlements, lines, entries = counts(environment)
    # Two sales, two fees and the payout; one new journal entry (the payout).
    assert (settlements, lines, entries) == (1, 5, before[2] + 1)

    again = run("settle", "--date", "2027-03-03", "--merchant", merchant_id)
    assert again.exit_code == 0, again.output
    assert "'settlements_paid': 0" in again.stdout
    assert "'settlements_already_done': 1" in again.stdout
    assert counts(environment) == (settlements, lines, entries)


def test_settle_json(environment: Path) -> None:
    assert run("migrate").exit_code == 0
    deliver_two_orders(days_later=1)
    before = counts(environment)
    future = run("settle", "--date", "2027-03-04", "--json")
    assert future.exit_code == 2
    assert future.stdout == ""
    assert counts(environment) == before

    paid = run("settle", "--date", "2027-03-03", "--json")
    assert paid.exit_code == 0, paid.output
    runtime = Runtime(get_settings())
    try:
        with runtime.work(read_only=True) as work:
            (settlement_id,) = work.session.scalars(text("SELECT id FROM settlements"))
    finally:
        runtime.database.dispose()
    assert json.loads(paid.stdout) == {
        "business_on": "2027-03-03",
        "reserves_released": 0,
        "settled_minor": 42_345 - 254,
        "settlement_ids": [settlement_id],
        "settlements_already_done": 0,
        "settlements_carried_forward": 0,
        "settlements_held": 0,
        "settlements_paid": 1,
    }


def test_settle_refuses_bad_dates(environment: Path) -> None:
    assert run("migrate").exit_code == 0
    deliver_two_orders(days_later=1)
    before = counts(environment)
    future = run("settle", "--date", "2027-03-04")
    assert future.exit_code == 2
    assert future.stderr.splitlines() == ["2027-03-04 is in the future (today is 2027-03-03)."]
    malformed = CliRunner().invoke(app, ["settle", "--date", "2027-02-30"])
    assert malformed.exit_code == 2
    assert malformed.stderr.splitlines() == ["--date: use YYYY-MM-DD, not '2027-02-30'"]
    unknown = run("settle", "--date", "2027-03-03", "--merchant", "mer_nope")
    assert unknown.exit_code == 2
    assert "No such merchant" in unknown.stderr
    assert future.stdout == malformed.stdout == unknown.stdout == ""
    assert counts(environment) == before
