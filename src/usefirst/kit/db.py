"""Database engine and the one-transaction-per-request/job rule.

Services and repositories never commit: :meth:`Database.transaction` opens a session, commits when
the block ends normally and rolls back when it raises. On SQLite every write transaction starts
with ``BEGIN IMMEDIATE`` so concurrent writers queue instead of failing on lock upgrade.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Integer,
    MetaData,
    TypeDecorator,
    create_engine,
    text,
)
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool


def normalize_database_url(url: str) -> str:
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them as naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; usefirst stores UTC-aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONDocument = JSON().with_variant(JSONB(), "postgresql")
# SQLite only makes INTEGER PRIMARY KEY an alias of rowid; BigInteger elsewhere.
BigIntegerKey = BigInteger().with_variant(Integer(), "sqlite")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Database:
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 20,
        echo: bool = False,
        keep_sqlite_connections: bool = False,
        durable: bool = True,
    ) -> None:
        """``keep_sqlite_connections``: pool SQLite connections instead of opening one per
        transaction (opening, configuring and closing a WAL connection costs milliseconds; a
        single-process batch such as the simulator keeps them). ``durable=False``: SQLite never
        waits for the disk (``synchronous=OFF``), for a throw-away sandbox that nobody reads
        after a crash; a production database is always durable."""
        self.url = normalize_database_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.is_postgresql = self.url.startswith("postgresql")
        options: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            options["connect_args"] = {"check_same_thread": False, "timeout": 60}
            if ":memory:" in self.url or self.url in ("sqlite://", "sqlite:///"):
                raise ValueError("use a file for SQLite: every request needs the same database")
            if not keep_sqlite_connections:
                options["poolclass"] = NullPool
        else:
            options["pool_size"] = pool_size
            options["max_overflow"] = pool_size
            # No ping before every check-out from the pool (a round trip per request): a
            # connection the server dropped fails one transaction and is discarded by the pool,
            # and connections are replaced every half hour, before idle timeouts can cut them.
            options["pool_pre_ping"] = False
            options["pool_recycle"] = 1800
        self.engine: Engine = create_engine(self.url, **options)
        if self.is_sqlite:
            _configure_sqlite(self.engine, durable=durable)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=True)
        self._read_sessions = sessionmaker(
            self.engine.execution_options(sqlite_begin="DEFERRED"),
            expire_on_commit=False,
            autoflush=True,
        )

    @contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[Session]:
        session = (self._read_sessions if read_only else self._sessions)()
        try:
            yield session
            if read_only:
                session.rollback()
            else:
                session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def exclusive(self, namespace: int, key: int) -> Iterator[None]:
        """Run the block while holding a PostgreSQL advisory lock on (namespace, key), taken on a
        connection of its own: work that commits in several transactions (the stepped daily
        sweep) excludes a second runner of the same work for its whole length, and a runner that
        dies releases the lock with its connection. SQLite serialises writers by itself, so the
        block runs as it is there."""
        if not self.is_postgresql:
            yield
            return
        with self.engine.connect() as connection:
            connection.execute(
                text("SELECT pg_advisory_lock(:namespace, :key)"),
                {"namespace": namespace, "key": key},
            )
            connection.commit()
            try:
                yield
            finally:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:namespace, :key)"),
                    {"namespace": namespace, "key": key},
                )
                connection.commit()

    def dispose(self) -> None:
        self.engine.dispose()


def _configure_sqlite(engine: Engine, *, durable: bool) -> None:
    @sqlalchemy_event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute(f"PRAGMA synchronous={'NORMAL' if durable else 'OFF'}")
        cursor.close()

    @sqlalchemy_event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")
