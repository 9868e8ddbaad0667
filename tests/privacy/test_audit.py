"""The PII audit log: append-only in the database, hash-chained, and verified end to end."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from usefirst.cli.main import app
from usefirst.kit.settings import get_settings
from usefirst.privacy import audit
from usefirst.privacy.models import AuditChainHead, AuditEntry
from usefirst.runtime import Runtime

NOW = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)


def record(runtime: Runtime, count: int, *, subject: str = "shp_A") -> None:
    with runtime.work() as work:
        for index in range(count):
            audit.record_access(
                work.session,
                actor=f"op_{index}",
                action="shopper.read_unmasked",
                subject_shopper_id=subject,
                fields=["name", "national_id"],
                purpose=f"test read {index}",
                now=NOW + timedelta(seconds=index),
            )


def tamper(runtime: Runtime, statement: str) -> None:
    """Change the log as an attacker with database access would: past the append-only trigger."""
    with runtime.database.engine.begin() as connection:
        if runtime.database.is_postgresql:
            connection.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
            connection.execute(text(statement))
            connection.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only"))
        else:
            connection.execute(text("DROP TRIGGER IF EXISTS audit_log_no_update"))
            connection.execute(text("DROP TRIGGER IF EXISTS audit_log_no_delete"))
            connection.execute(text(statement))


def test_records_form_a_chain_of_sha256_links(runtime: Runtime) -> None:
    record(runtime, 3)
    with runtime.work(read_only=True) as work:
        rows = [
            (row.seq, row.id, row.occurred_at, row.previous_hash, row.row_hash)
            for row in work.session.scalars(select(AuditEntry).order_by(AuditEntry.seq))
        ]
        head = work.session.get(AuditChainHead, 1)
        assert head is not None
        head_link = (head.last_seq, head.last_hash)
        report = audit.verify_chain(work.session)
    assert [row[0] for row in rows] == [1, 2, 3]
    assert rows[0][3] == "0" * 64
    assert [row[3] for row in rows[1:]] == [row[4] for row in rows[:2]]
    expected = hashlib.sha256(
        (
            '["usefirst-audit-v1",1,"' + rows[0][1] + '","2026-03-02T09:30:15.123456Z","op_0",'
            '"shopper.read_unmasked","shp_A",["name","national_id"],"test read 0",null,"'
            + "0" * 64
            + '"]'
        ).encode()
    ).hexdigest()
    assert rows[0][4] == expected
    assert rows[0][2] == NOW
    assert head_link == (3, rows[2][4])
    assert report.is_intact and report.rows_checked == 3 and report.head_seq == 3


def test_the_database_refuses_updates_and_deletes(runtime: Runtime) -> None:
    record(runtime, 2)
    for statement in (
        "UPDATE audit_log SET actor = 'op_nobody' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 2",
        "DELETE FROM audit_chain_head",
        "UPDATE audit_chain_head SET last_seq = 1",
    ):
        with (
            pytest.raises(DBAPIError, match=r"append-only|cannot be removed|only moves forward"),
            runtime.database.engine.begin() as connection,
        ):
            connection.execute(text(statement))
    with runtime.work(read_only=True) as work:
        actors = list(work.session.scalars(select(AuditEntry.actor).order_by(AuditEntry.seq)))
        report = audit.verify_chain(work.session)
    assert actors == ["op_0", "op_1"]
    assert report.is_intact and report.rows_checked == 2


def test_verify_reports_the_first_altered_row(runtime: Runtime) -> None:
    record(runtime, 5)
    tamper(runtime, "UPDATE audit_log SET purpose = 'nothing to see' WHERE seq = 3")
    with runtime.work(read_only=True) as work:
        report = audit.verify_chain(work.session)
        third_id = work.session.scalars(select(AuditEntry.id).where(AuditEntry.seq == 3)).one()
    assert report.first_break is not None
    assert (report.first_break.seq, report.first_break.entry_id) == (3, third_id)
    assert report.first_break.reason == "row content does not match its hash (the row was altered)"
    assert report.rows_checked == 2


def test_verify_catches_a_rehashed_row_by_the_next_link(runtime: Runtime) -> None:
    record(runtime, 4)
    with runtime.work(read_only=True) as work:
        second = work.session.scalars(select(AuditEntry).where(AuditEntry.seq == 2)).one()
        second.actor = "op_forged"
        forged_hash = audit.hash_of(second)
    tamper(
        runtime,
        f"UPDATE audit_log SET actor = 'op_forged', row_hash = '{forged_hash}' WHERE seq = 2",
    )
    with runtime.work(read_only=True) as work:
        report = audit.verify_chain(work.session)
    assert report.first_break is not None and report.first_break.seq == 3
    assert report.first_break.reason == (
        "previous_hash does not match the hash of the row before it"
    )


def test_verify_catches_removed_rows_in_the_middle_and_at_the_end(runtime: Runtime) -> None:
    record(runtime, 5)
    tamper(runtime, "DELETE FROM audit_log WHERE seq = 5")
    with runtime.work(read_only=True) as work:
        report = audit.verify_chain(work.session)
    assert report.first_break is not None and report.first_break.seq == 5
    assert report.first_break.entry_id is None
    assert "the chain head names row 5 but the log ends at row 4" in report.first_break.reason
    tamper(runtime, "DELETE FROM audit_log WHERE seq = 2")
    with runtime.work(read_only=True) as work:
        report = audit.verify_chain(work.session)
    assert report.first_break is not None and report.first_break.seq == 3
    assert report.first_break.reason == "row 2 is missing (next row is 3)"


def test_a_rolled_back_read_leaves_no_gap(runtime: Runtime) -> None:
    record(runtime, 1)
    with pytest.raises(RuntimeError), runtime.work() as work:
        audit.record_access(
            work.session,
            actor="op_x",
            action="shopper.read_unmasked",
            subject_shopper_id="shp_A",
            fields=["phone"],
            purpose="failed request",
            now=NOW,
        )
        raise RuntimeError("the request failed after the read")
    record(runtime, 1)
    with runtime.work(read_only=True) as work:
        seqs = list(work.session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)))
        assert audit.verify_chain(work.session).is_intact
    assert seqs == [1, 2]


@pytest.mark.postgresql
def test_concurrent_appends_on_postgresql_keep_one_chain(postgres_url: str) -> None:
    from tests.conftest import make_runtime

    runtime = make_runtime(postgres_url)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            record(runtime, 5, subject=f"shp_{index}")
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        with runtime.work(read_only=True) as work:
            report = audit.verify_chain(work.session)
            seqs = list(work.session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)))
        assert seqs == list(range(1, 41))
        assert report.is_intact and report.rows_checked == 40
    finally:
        runtime.database.dispose()


def test_cli_audit_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import make_runtime
    from usefirst.kit.migrate import upgrade

    database = tmp_path / "cli.db"
    url = f"sqlite:///{database}"
    upgrade(url)
    monkeypatch.setenv("USEFIRST_DATABASE_URL", url)
    monkeypatch.setenv("USEFIRST_KEYS_FILE", str(tmp_path / "keys.json"))
    for name in ("USEFIRST_ENCRYPTION_KEYS", "USEFIRST_BLIND_INDEX_KEY", "USEFIRST_SANDBOX"):
        monkeypatch.delenv(name, raising=False)
    runtime = make_runtime(url)
    record(runtime, 3)
    get_settings.cache_clear()
    try:
        intact = CliRunner().invoke(app, ["audit", "verify"], catch_exceptions=False)
        assert intact.exit_code == 0, intact.output
        assert intact.stdout.splitlines() == [
            "audit rows checked: 3; chain head: 3",
            "audit chain intact: yes",
        ]
        intact_json = CliRunner().invoke(app, ["audit", "verify", "--json"])
        assert intact_json.exit_code == 0, intact_json.output
        assert json.loads(intact_json.stdout) == {
            "first_break": None,
            "head_seq": 3,
            "intact": True,
            "rows_checked": 3,
        }
        tamper(runtime, "UPDATE audit_log SET subject_shopper_id = 'shp_B' WHERE seq = 2")
        broken = CliRunner().invoke(app, ["audit", "verify"], catch_exceptions=False)
        broken_json = CliRunner().invoke(app, ["audit", "verify", "--json"])
        with runtime.work(read_only=True) as work:
            altered = work.session.scalars(select(AuditEntry.id).where(AuditEntry.seq == 2)).one()
    finally:
        get_settings.cache_clear()
        runtime.database.dispose()
    assert broken.exit_code == 1
    altered_reason = "row content does not match its hash (the row was altered)"
    assert broken.stdout.splitlines() == [
        "audit rows checked: 1; chain head: 3",
        f"audit chain broken at row 2 ({altered}): {altered_reason}",
    ]
    assert broken_json.exit_code == 1
    assert json.loads(broken_json.stdout) == {
        "first_break": {"entry_id": altered, "reason": altered_reason, "seq": 2},
        "head_seq": 3,
        "intact": False,
        "rows_checked": 1,
    }
