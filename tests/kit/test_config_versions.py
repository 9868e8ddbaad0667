"""Operator-edited configuration saved as versions: numbering, refusals that save nothing, the
per-process cache (a save takes effect here at once, elsewhere within the refresh interval), and
PostgreSQL refusing to edit history."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy.exc
from sqlalchemy import func, select, text

from tests.conftest import make_runtime
from usefirst.flows import config_publishing
from usefirst.kit import config_versions
from usefirst.kit.models import ConfigVersion
from usefirst.risk import decision as risk_decision
from usefirst.risk.rules import DEFAULT_RULES_FILE
from usefirst.runtime import Runtime

NOW = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
DEFAULT_RULES = DEFAULT_RULES_FILE.read_text(encoding="utf-8")


def rules_with_version(version: str) -> str:
    return DEFAULT_RULES.replace('version = "2026-12-07.3"', f'version = "{version}"')


def publish(runtime: Runtime, content: str, *, based_on: int, note: str | None = None) -> int:
    with runtime.work() as work:
        version = config_publishing.publish(
            work.session,
            kind="risk_rules",
            text=content,
            based_on=based_on,
            note=note,
            created_by="op_test",
            settings=runtime.settings,
            now=NOW,
        )
        return version.number


def versions(runtime: Runtime) -> list[tuple[int, str, str | None, str]]:
    with runtime.work(read_only=True) as work:
        return [
            (row.number, row.label, row.note, row.sha256)
            for row in work.session.scalars(
                select(ConfigVersion).order_by(ConfigVersion.kind, ConfigVersion.number)
            )
        ]


def rules_in_force(runtime: Runtime) -> str:
    with runtime.work(read_only=True) as work:
        return risk_decision.rule_set_of(work.session, runtime.settings).version


def test_versions_are_numbered_and_the_newest_is_in_force(runtime: Runtime) -> None:
    assert rules_in_force(runtime) == "2026-12-07.3"  # the shipped file
    assert publish(runtime, rules_with_version("ops-1"), based_on=0, note="first") == 1
    assert rules_in_force(runtime) == "ops-1"
    assert publish(runtime, rules_with_version("ops-2") + "\r\n", based_on=1) == 2
    assert rules_in_force(runtime) == "ops-2"
    assert [(number, label, note) for number, label, note, _ in versions(runtime)] == [
        (1, "ops-1", "first"),
        (2, "ops-2", None),
    ]
    with runtime.work(read_only=True) as work:
        newest = config_versions.newest(work.session, kind="risk_rules")
        assert newest is not None
        # Stored with LF line endings, whatever the browser sent.
        assert newest.content == rules_with_version("ops-2") + "\n"
        assert newest.sha256 == config_versions.digest(newest.content)


def test_refusals_save_nothing(runtime: Runtime) -> None:
    publish(runtime, rules_with_version("ops-1"), based_on=0)
    before = versions(runtime)
    # Started from the file while version 1 was being saved: refused, not overwritten.
    with pytest.raises(config_versions.ConfigVersionStale) as stale:
        publish(runtime, rules_with_version("ops-2"), based_on=0)
    assert stale.value.message == (
        "Version 1 was saved after this edit started from version 0; open the editor again to "
        "see it."
    )
    with pytest.raises(config_versions.ConfigUnchanged):
        publish(runtime, rules_with_version("ops-1"), based_on=1)
    with pytest.raises(config_publishing.ConfigInvalid) as invalid:
        publish(runtime, rules_with_version("ops-2").replace("review_at = 70", "review_at = -1"),
                based_on=1)  # fmt: skip
    assert invalid.value.problems == [
        (17, "thresholds.review_at must be a positive integer"),
    ]
    with pytest.raises(config_publishing.ConfigInvalid) as empty_ladder, runtime.work() as work:
        config_publishing.publish(
            work.session,
            kind="dunning_ladder",
            text="# nothing\n",
            based_on=0,
            note=None,
            created_by="op_test",
            settings=runtime.settings,
            now=NOW,
        )
    assert empty_ladder.value.problems == [(None, "the ladder needs at least one [[step]]")]
    assert versions(runtime) == before
    assert rules_in_force(runtime) == "ops-1"


def test_other_processes_see_a_new_version_within_the_refresh_interval(
    runtime: Runtime, database_url: str
) -> None:
    # Two more runtimes on the same database stand for other processes (API server, worker).
    eager = make_runtime(database_url, config_refresh_seconds=0)
    lazy = make_runtime(database_url, config_refresh_seconds=300)
    try:
        assert rules_in_force(eager) == rules_in_force(lazy) == "2026-12-07.3"
        publish(runtime, rules_with_version("ops-1"), based_on=0)
        assert rules_in_force(runtime) == "ops-1"  # the saving process: at once
        assert rules_in_force(eager) == "ops-1"  # looks every time
        assert rules_in_force(lazy) == "2026-12-07.3"  # within its 300 s, still the old one
    finally:
        eager.database.dispose()
        lazy.database.dispose()


@pytest.mark.postgresql
def test_postgres_refuses_to_edit_or_delete_a_version(postgres_url: str) -> None:
    runtime = make_runtime(postgres_url)
    try:
        publish(runtime, rules_with_version("ops-1"), based_on=0)
        for statement in (
            "UPDATE config_versions SET content = 'x'",
            "DELETE FROM config_versions",
        ):
            with (
                pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"),
                runtime.work() as work,
            ):
                work.session.execute(text(statement))
        with runtime.work(read_only=True) as work:
            assert work.session.scalar(select(func.count()).select_from(ConfigVersion)) == 1
        assert rules_in_force(runtime) == "ops-1"
    finally:
        runtime.database.dispose()
