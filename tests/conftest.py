"""Test fixtures: real SQLite and real PostgreSQL, each test on a clean, migrated database.

PostgreSQL tests run when ``USEFIRST_TEST_POSTGRES_URL`` (default: a local ``usefirst`` role and
``usefirst_test`` database) answers; with ``USEFIRST_TEST_CITUS_URL`` set they run against that
Citus coordinator instead, on the migrated schema distributed as ``usefirst.distribution`` says. Without it they are skipped with a reason, except under
``CI=true``, where a missing PostgreSQL fails the run.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from sqlalchemy import create_engine, text

from usefirst.api.app import create_app
from usefirst.distribution import (
    cluster_violations,
    distribute,
    drop_schema_objects,
    has_citus,
)
from usefirst.identity.service import create_api_key
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.db import Database, normalize_database_url
from usefirst.kit.migrate import upgrade
from usefirst.kit.settings import Settings
from usefirst.runtime import Runtime

DEFAULT_POSTGRES_URL = "postgresql://usefirst:usefirst@127.0.0.1:5432/usefirst_test"
# A Citus coordinator (a database with the citus extension, workers added): when set, the
# PostgreSQL tests run there, on the schema distributed by ``usefirst db distribute``.
CITUS_URL = os.environ.get("USEFIRST_TEST_CITUS_URL") or None
BASE_POSTGRES_URL = CITUS_URL or os.environ.get("USEFIRST_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
# Under pytest-xdist (`-n 2`, as CI runs) each worker gets a database of its own, named after the
# configured one with the worker's id (usefirst_test_gw0, …), made on first use: the role needs
# CREATEDB for that, as the CI's has. On a Citus cluster the workers' databases must exist already,
# on every node with the citus extension (docs/operations.md, "Running on Citus"): a database made
# here would be the coordinator's alone.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
IN_CI = os.environ.get("CI", "").lower() == "true"

TEST_KEYS = {"k1": bytes(range(32))}
TEST_BLIND_INDEX_KEY = bytes(range(32, 96))


def _worker_url(base_url: str, worker: str) -> str:
    parts = urlsplit(base_url)
    return urlunsplit(parts._replace(path=f"{parts.path}_{worker}"))


def _postgres_reachable() -> tuple[str, str | None]:
    """The database URL this process tests with, and why PostgreSQL cannot be used (or None)."""
    url = BASE_POSTGRES_URL
    try:
        with psycopg.connect(BASE_POSTGRES_URL, connect_timeout=3, autocommit=True) as connection:
            if XDIST_WORKER is not None:
                url = _worker_url(BASE_POSTGRES_URL, XDIST_WORKER)
                name = urlsplit(url).path.lstrip("/")
                exists = connection.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
                ).fetchone()
                if exists is None and CITUS_URL is not None:
                    return url, (
                        f"under -n, the Citus database {name} must exist on every node with the "
                        "citus extension (or run without -n)"
                    )
                if exists is None:
                    connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return url, None
    except Exception as error:  # any failure means: no PostgreSQL for this run
        return url, f"{type(error).__name__}: {error}".strip()


POSTGRES_URL, POSTGRES_PROBLEM = _postgres_reachable()


def pytest_report_header(config: pytest.Config) -> str:
    if POSTGRES_PROBLEM is None and CITUS_URL is not None:
        return f"PostgreSQL tests: on the Citus coordinator {POSTGRES_URL.split('@')[-1]}"
    if POSTGRES_PROBLEM is None:
        return f"PostgreSQL tests: on ({POSTGRES_URL.split('@')[-1]})"
    return f"PostgreSQL tests: SKIPPED — {POSTGRES_URL.split('@')[-1]}: {POSTGRES_PROBLEM}"


def pytest_sessionstart(session: pytest.Session) -> None:
    if IN_CI and POSTGRES_PROBLEM is not None:
        raise pytest.UsageError(f"CI=true but PostgreSQL is not reachable: {POSTGRES_PROBLEM}")


# The temporary directory is deeper on some machines than on others; a command that prints a path
# must print it whole at any depth (issue 22: rich cut such lines at 80 columns).
LONG_PATH_LENGTH = 250


@pytest.fixture
def long_tmp_path(tmp_path: Path) -> Path:
    """A fresh directory whose path is at least 250 characters long, for the command-line tests."""
    missing = max(LONG_PATH_LENGTH - len(str(tmp_path)) - 1, 8)
    directory = tmp_path / ("a-long-directory-" * 16)[:missing]
    directory.mkdir()
    return directory


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_schema() -> str:
    if POSTGRES_PROBLEM is not None:
        pytest.skip(f"PostgreSQL not available: {POSTGRES_PROBLEM}")
    engine = create_engine(normalize_database_url(POSTGRES_URL))
    with engine.begin() as connection:
        if CITUS_URL is None:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        else:
            drop_schema_objects(connection)
    upgrade(POSTGRES_URL)
    if CITUS_URL is not None:
        with engine.begin() as connection:
            if not has_citus(connection):
                pytest.exit(f"USEFIRST_TEST_CITUS_URL has no citus extension: {CITUS_URL}")
            distribute(connection)
            problems = cluster_violations(connection)
            if problems:
                pytest.exit(f"the cluster does not follow the layout: {problems}")
    engine.dispose()
    return POSTGRES_URL


def _truncate_postgres(url: str) -> None:
    engine = create_engine(normalize_database_url(url))
    with engine.begin() as connection:
        tables = [
            row[0]
            for row in connection.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version'"
                )
            )
        ]
        connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A clean, migrated database of each kind."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "usefirst.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_schema")
    _truncate_postgres(url)
    return url


@pytest.fixture
def postgres_url(postgres_schema: str) -> str:
    """A clean PostgreSQL database only (for concurrency tests)."""
    _truncate_postgres(postgres_schema)
    return postgres_schema


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "sandbox": True,
        "encryption_keys": ",".join(
            f"{key_id}:{base64.urlsafe_b64encode(key).decode()}"
            for key_id, key in TEST_KEYS.items()
        ),
        "active_key_id": "k1",
        "blind_index_key": base64.urlsafe_b64encode(TEST_BLIND_INDEX_KEY).decode(),
        "sms_log_path": Path(tempfile.gettempdir()) / f"usefirst-test-sms-{os.getpid()}.jsonl",
        # The suite's webhook receivers listen on 127.0.0.1 (tests of the guard turn it off).
        "webhook_allow_private_destinations": True,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def make_runtime(database_url: str, **overrides: object) -> Runtime:
    settings = make_settings(database_url, **overrides)
    return Runtime(
        settings,
        database=Database(settings.database_url),
        cipher=FieldCipher(
            keys=TEST_KEYS, active_key_id="k1", blind_index_key=TEST_BLIND_INDEX_KEY
        ),
    )


@pytest.fixture
def runtime(database_url: str) -> Iterator[Runtime]:
    runtime = make_runtime(database_url)
    yield runtime
    runtime.database.dispose()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as test_client:
        yield test_client


@pytest.fixture
def platform_key(runtime: Runtime) -> str:
    with runtime.work() as work:
        return create_api_key(work.session, kind="platform", now=work.now)


@pytest.fixture
def platform_headers(platform_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {platform_key}"}
