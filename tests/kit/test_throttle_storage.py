"""The failed-authentication throttle counts on PostgreSQL once for every process: the
``limits`` storage over the ``auth_throttle_hits`` table answers as limits' own memory storage
does, takes concurrent failures on one key in turn, forgets what has left the window, and two
engines (two API processes) share one count."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from limits.storage import MemoryStorage
from sqlalchemy import create_engine, func, select

from tests.conftest import make_runtime
from tests.factories import bearer
from usefirst.api.app import create_app
from usefirst.kit.db import Database, normalize_database_url
from usefirst.kit.models import AuthThrottleHit
from usefirst.kit.throttle import DatabaseThrottleStorage, FailureThrottle, throttle_storage
from usefirst.runtime import Runtime

pytestmark = pytest.mark.postgresql


@pytest.fixture
def two_databases(postgres_url: str) -> Iterator[tuple[Database, Database]]:
    """Two engines on one database, as two API processes have."""
    first, second = Database(postgres_url, pool_size=12), Database(postgres_url, pool_size=12)
    yield first, second
    first.dispose()
    second.dispose()


def stored_hits(database: Database) -> int:
    with database.transaction(read_only=True) as session:
        return int(session.scalar(select(func.count()).select_from(AuthThrottleHit)) or 0)


def test_it_answers_as_the_memory_storage_does(two_databases: tuple[Database, Database]) -> None:
    database = DatabaseThrottleStorage(two_databases[0].engine)
    memory = MemoryStorage()
    try:
        for storage in (database, memory):
            acquired = [storage.acquire_entry("k", 3, 600) for _ in range(4)]
            assert acquired == [True, True, True, False]
            assert storage.acquire_entry("k2", 3, 600, amount=4) is False
            assert storage.acquire_entry("k2", 3, 600, amount=2) is True
            assert storage.acquire_entry("k2", 3, 600, amount=2) is False
            start, hits = storage.get_moving_window("k", 3, 600)
            assert hits == 3 and time.time() - 5 < start <= time.time() + 5
            assert storage.get_moving_window("k2", 3, 600)[1] == 2
            unknown_start, unknown_hits = storage.get_moving_window("nobody", 3, 600)
            assert unknown_hits == 0 and abs(unknown_start - time.time()) < 5
            # The fixed-window counter of limits' other strategies.
            assert [storage.incr("c", 60) for _ in range(3)] == [1, 2, 3]
            assert storage.incr("c", 60, amount=2) == 5
            assert storage.get("c") == 5 and storage.get("nothing") == 0
            assert 55 < storage.get_expiry("c") - time.time() <= 60
            storage.clear("k")
            assert storage.get_moving_window("k", 3, 600)[1] == 0
            assert storage.acquire_entry("k", 3, 600) is True
            assert storage.check() is True
        assert database.reset() == 2 + 5 + 1  # rows: k2's two, c's five, k's new one
    finally:
        memory.reset()
    assert stored_hits(two_databases[0]) == 0


def test_two_engines_share_one_count(two_databases: tuple[Database, Database]) -> None:
    first, second = (
        FailureThrottle(
            limit="3/10 minutes", storage=DatabaseThrottleStorage(each.engine), namespace="api-key"
        )
        for each in two_databases
    )
    assert first.record_failure("198.51.100.7") is None
    assert second.record_failure("198.51.100.7") is None
    assert first.retry_after_seconds("198.51.100.7") is None
    third = second.record_failure("198.51.100.7")
    assert third is not None and 595 <= third <= 600
    # Refused in both processes, for that address only.
    assert first.retry_after_seconds("198.51.100.7") is not None
    assert second.retry_after_seconds("203.0.113.9") is None
    assert stored_hits(two_databases[0]) == 3
    first.clear("198.51.100.7")
    assert second.retry_after_seconds("198.51.100.7") is None
    assert stored_hits(two_databases[1]) == 0


def test_concurrent_failures_on_one_key_take_turns(
    two_databases: tuple[Database, Database],
) -> None:
    storages = [DatabaseThrottleStorage(each.engine) for each in two_databases]
    with ThreadPoolExecutor(max_workers=12) as pool:
        acquired = list(
            pool.map(lambda attempt: storages[attempt % 2].acquire_entry("busy", 5, 600), range(24))
        )
    assert acquired.count(True) == 5
    assert stored_hits(two_databases[0]) == 5


def test_hits_out_of_every_window_are_deleted(two_databases: tuple[Database, Database]) -> None:
    storage = DatabaseThrottleStorage(two_databases[0].engine)
    assert storage.acquire_entry("short", 2, 1) is True
    assert storage.acquire_entry("long", 2, 600) is True
    time.sleep(1.2)
    assert storage.get_moving_window("short", 2, 1)[1] == 0
    # The next failure on any key deletes rows whose window has passed.
    assert storage.acquire_entry("other", 2, 600) is True
    with two_databases[0].transaction(read_only=True) as session:
        keys = sorted(session.scalars(select(AuthThrottleHit.throttle_key)))
    assert keys == ["long", "other"]


def test_the_database_setting_counts_in_memory_on_sqlite(tmp_path: Path) -> None:
    engine = create_engine(normalize_database_url(f"sqlite:///{tmp_path / 'x.db'}"))
    assert isinstance(throttle_storage("database", engine), MemoryStorage)
    assert isinstance(throttle_storage("memory://", engine), MemoryStorage)
    engine.dispose()


def _apps(postgres_url: str, storage: str) -> list[tuple[Runtime, TestClient]]:
    runtimes = [
        make_runtime(
            postgres_url,
            api_key_failures_per_address="3/10 minutes",
            auth_throttle_storage=storage,
        )
        for _ in range(2)
    ]
    return [
        (runtime, TestClient(create_app(runtime), client=("198.51.100.7", 40000)))
        for runtime in runtimes
    ]


def test_two_api_processes_refuse_the_fourth_wrong_key_whichever_gets_it(
    postgres_url: str,
) -> None:
    apps = _apps(postgres_url, "database")
    try:
        codes = [
            apps[attempt % 2][1]
            .get("/v1/events", headers=bearer(f"uf_plat_guess{attempt}"))
            .status_code
            for attempt in range(5)
        ]
        assert codes == [401, 401, 401, 429, 429]
    finally:
        for runtime, _ in apps:
            runtime.database.dispose()


def test_in_memory_each_process_counts_alone(postgres_url: str) -> None:
    """What the database storage is for: with memory:// the same five guesses are all 401."""
    apps = _apps(postgres_url, "memory://")
    try:
        codes = [
            apps[attempt % 2][1]
            .get("/v1/events", headers=bearer(f"uf_plat_guess{attempt}"))
            .status_code
            for attempt in range(5)
        ]
        assert codes == [401] * 5
    finally:
        for runtime, _ in apps:
            runtime.database.dispose()
