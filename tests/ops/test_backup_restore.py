"""Backup and restore of PostgreSQL as docs/operations.md tells it: pg_dump a populated
database, pg_restore it into a fresh one, and the restored book proves itself there with
`usefirst ledger audit` and `usefirst audit verify`. Skipped, saying why, when pg_dump is not
installed; CI installs it (.ci/run) and fails if this test did not run."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from tests.api.test_events_and_webhooks import SHIPMENT
from tests.conftest import TEST_BLIND_INDEX_KEY, TEST_KEYS, make_runtime
from tests.factories import bearer, checkout_body, create_merchant, enrol, skip_on_citus
from tests.privacy.privacy_env import operator_headers
from usefirst.api.app import create_app
from usefirst.cli.main import app as cli
from usefirst.identity.service import create_api_key
from usefirst.kit.settings import get_settings
from usefirst.ledger.models import JournalEntry
from usefirst.runtime import Runtime

pytestmark = pytest.mark.postgresql

TABLES = ("shoppers", "orders", "instalments", "journal_entries", "ledger_postings", "audit_log")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    return path


@pytest.fixture
def restored_url(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database beside the test one, dropped afterwards."""
    parts = urlsplit(postgres_url)
    name = f"{parts.path.lstrip('/')}_restored"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def populate(runtime: Runtime) -> None:
    """A small book: enrolment, a checkout shipped, received and paid, one left to go overdue,
    swept days, and a compliance export (an audit-log row)."""
    with TestClient(create_app(runtime)) as client:
        with runtime.work() as work:
            headers = bearer(create_api_key(work.session, kind="platform", now=work.now))
        merchant = create_merchant(client, headers)
        for amount, pays in ((30_000, True), (12_000, False)):
            shopper = enrol(client, headers)
            order = client.post(
                "/v1/checkouts",
                headers=headers,
                json=checkout_body(shopper["id"], merchant["id"], amount),
            ).json()["order"]
            client.post(
                f"/v1/orders/{order['id']}/ship", headers=bearer(merchant["api_key"]), json=SHIPMENT
            )
            client.post(f"/v1/orders/{order['id']}/confirm-receipt", headers=headers)
            if pays:
                paid = client.post(
                    "/v1/payments",
                    headers={**headers, "Idempotency-Key": f"pay-{shopper['id']}"},
                    json={"shopper_id": shopper["id"], "amount_minor": amount, "method": "alipay"},
                )
                assert paid.status_code == 201, paid.text
        advanced = client.post("/v1/sandbox/clock/advance", headers=headers, json={"days": 12})
        assert advanced.status_code == 200, advanced.text
        exported = client.get(
            f"/v1/shoppers/{shopper['id']}/export", headers=operator_headers(runtime, "compliance")
        )
        assert exported.status_code == 200, exported.text


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as connection:
        return {
            table: connection.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            ).fetchone()[0]  # type: ignore[index]
            for table in TABLES
        }


def run_cli(monkeypatch: pytest.MonkeyPatch, url: str, *args: str) -> dict[str, object]:
    monkeypatch.setenv("USEFIRST_DATABASE_URL", url)
    monkeypatch.setenv(
        "USEFIRST_ENCRYPTION_KEYS",
        ",".join(
            f"{key_id}:{base64.urlsafe_b64encode(key).decode()}"
            for key_id, key in TEST_KEYS.items()
        ),
    )
    monkeypatch.setenv("USEFIRST_ACTIVE_KEY_ID", "k1")
    monkeypatch.setenv(
        "USEFIRST_BLIND_INDEX_KEY", base64.urlsafe_b64encode(TEST_BLIND_INDEX_KEY).decode()
    )
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_a_pg_dump_restored_into_a_fresh_database_passes_the_ledger_and_audit_checks(
    postgres_url: str, restored_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    skip_on_citus(
        postgres_url,
        "a pg_dump of the coordinator holds the metadata, not the shards' rows: a cluster is"
        " backed up node by node to one citus_create_restore_point (docs/operations.md)",
    )
    pg_dump, pg_restore = _tool("pg_dump"), _tool("pg_restore")
    runtime = make_runtime(postgres_url)
    try:
        populate(runtime)
        with runtime.work(read_only=True) as work:
            entries = work.session.scalar(select(func.count()).select_from(JournalEntry))
    finally:
        runtime.database.dispose()
    before = counts(postgres_url)
    assert before["audit_log"] >= 1 and before["journal_entries"] == entries >= 6

    dump = tmp_path / "usefirst.dump"
    subprocess.run(
        [pg_dump, "--format=custom", "--no-owner", f"--file={dump}", postgres_url], check=True
    )
    subprocess.run(
        [pg_restore, "--no-owner", "--exit-on-error", f"--dbname={restored_url}", str(dump)],
        check=True,
    )

    assert counts(restored_url) == before
    ledger = run_cli(monkeypatch, restored_url, "ledger", "audit")
    assert ledger["balanced"] is True and ledger["problems"] == []
    assert ledger["entries"] == entries
    assert ledger["debits_minor"] == ledger["credits_minor"] > 0
    chain = run_cli(monkeypatch, restored_url, "audit", "verify")
    assert chain["intact"] is True
    assert chain["rows_checked"] == before["audit_log"]

    # The restored database is a working engine: its schema is at the latest migration.
    restored = make_runtime(restored_url)
    try:
        with restored.database.transaction(read_only=True) as session:
            assert session.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    finally:
        restored.database.dispose()
