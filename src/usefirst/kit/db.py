"""Database engine and the one-transaction-per-request/job rule.

Services and repositories never commit: :meth:`Database.transaction` opens a session, commits when
the block ends normally and rolls back when it raises. On SQLite every write transaction starts
with ``BEGIN IMMEDIATE`` so concurrent writers queue instead of failing on lock upgrade.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, overload

from sqlalchemy import (
    CTE,
    JSON,
    BigInteger,
    ColumnElement,
    CompoundSelect,
    DateTime,
    Insert,
    Integer,
    MetaData,
    Row,
    Select,
    Table,
    TypeDecorator,
    UpdateBase,
    bindparam,
    create_engine,
    insert,
    inspect,
    select,
    text,
    union_all,
)
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.compiler import SQLCompiler


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


Found = TypeVar("Found")
# A SELECT of any columns.
AnySelect = Select[*tuple[Any, ...]]
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")

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


@dataclass(frozen=True)
class Lookup(Generic[Found]):
    """One row read by key, and what it becomes (``read`` decides what a missing row means)."""

    statement: AnySelect
    read: Callable[[dict[str, Any] | None], Found]


@overload
def look_up_together(session: Session, first: Lookup[A], second: Lookup[B], /) -> tuple[A, B]: ...
@overload
def look_up_together(
    session: Session, first: Lookup[A], second: Lookup[B], third: Lookup[C], /
) -> tuple[A, B, C]: ...
def look_up_together(session: Session, *lookups: Lookup[Any]) -> tuple[Any, ...]:
    """Each lookup's result, read in one round trip on PostgreSQL (``first_rows_together``);
    they are read in the order given, so the first missing row is the one reported."""
    rows = first_rows_together(session, [lookup.statement for lookup in lookups])
    return tuple(lookup.read(row) for lookup, row in zip(lookups, rows, strict=True))


def first_rows_together(
    session: Session, statements: Sequence[AnySelect]
) -> list[dict[str, Any] | None]:
    """The first row of each SELECT (as a mapping of its column names), None for a statement
    that finds nothing. On PostgreSQL they are sent at once and answered in one round trip
    (psycopg's pipeline mode; a transaction's BEGIN goes with them); elsewhere one by one.

    Pending ORM changes are flushed first. Values are converted by the columns' types as the
    ORM would convert them."""
    return [rows[0] if rows else None for rows in rows_together(session, statements)]


def rows_together(session: Session, statements: Sequence[AnySelect]) -> list[list[dict[str, Any]]]:
    """Every row of each SELECT, as ``first_rows_together`` reads them (one round trip on
    PostgreSQL). A SELECT may carry data-modifying CTEs (``write_as_one``'s form): statements
    sent together run one after another, each seeing what the ones before it wrote."""
    session.flush()
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return [
            [dict(row._mapping) for row in connection.execute(statement)]
            for statement in statements
        ]
    dialect = connection.dialect
    driver = connection.connection.driver_connection
    assert driver is not None
    cursors = []
    with driver.pipeline():
        for statement in statements:
            sql, parameters = _sql_and_parameters(statement, dialect)
            cursor = driver.cursor()
            cursor.execute(sql, parameters)
            cursors.append((statement, cursor))
    found: list[list[dict[str, Any]]] = []
    for statement, cursor in cursors:
        converters = []
        for selected in statement.selected_columns:
            assert selected.key is not None
            converters.append((selected.key, selected.type._cached_result_processor(dialect, None)))
        rows: list[dict[str, Any]] = []
        for values in cursor.fetchall():
            rows.append(
                {
                    key: convert(value) if convert is not None else value
                    for (key, convert), value in zip(converters, values, strict=True)
                }
            )
        cursor.close()
        found.append(rows)
    return found


def _sql_and_parameters(statement: AnySelect, dialect: Dialect) -> tuple[str, Mapping[str, Any]]:
    """The statement's SQL and its parameters converted by their types for the driver, lists
    bound to ``IN`` expanded as SQLAlchemy expands them when it executes a statement."""
    compiled, parameters = _compiled(statement, dialect)
    if compiled.post_compile_params or compiled.literal_execute_params:
        expanded = compiled._process_parameters_for_postcompile(parameters)
        converted = dict(expanded.parameters)
        for name, convert in expanded.processors.items():
            if name in converted:
                converted[name] = convert(converted[name])
        return expanded.statement, converted
    for name, bind in compiled.binds.items():
        # The dialect's own conversion (a variant's, such as JSONB's on PostgreSQL).
        processor = bind.type._cached_bind_processor(dialect)
        if processor is not None and name in parameters:
            parameters[name] = processor(parameters[name])
    return compiled.string, parameters


_COMPILED: dict[Any, SQLCompiler] = {}
_COMPILED_KEPT = 256


def _compiled(
    statement: AnySelect, dialect: Dialect
) -> tuple[SQLCompiler, MutableMapping[str, Any]]:
    """The statement compiled (once per shape, as SQLAlchemy's own statement cache does: its
    cache key leaves the bound values out), and its parameters."""
    cache_key = statement._generate_cache_key()
    if cache_key is None:
        compiled = statement.compile(dialect=dialect)
        return compiled, compiled.construct_params()
    key = (dialect.name, cache_key.key)
    found = _COMPILED.get(key)
    if found is None:
        if len(_COMPILED) >= _COMPILED_KEPT:
            _COMPILED.clear()
        found = _COMPILED[key] = statement.compile(dialect=dialect, cache_key=cache_key)
    compiled = found
    return compiled, compiled.construct_params(extracted_parameters=cache_key.bindparams)


def row_values(instance: Base) -> dict[str, Any]:
    """A mapped object's column values as an INSERT writes them: what is set, else the
    column's constant default (a column with neither is left to the database)."""
    values: dict[str, Any] = {}
    state = instance.__dict__
    for attribute in inspect(type(instance)).column_attrs:
        column = attribute.columns[0]
        if attribute.key in state:
            values[column.key] = state[attribute.key]
        elif column.default is not None and column.default.is_scalar:
            values[column.key] = column.default.arg
    return values


def insert_rows(
    table: Table, rows: Sequence[Mapping[str, Any]], *, when: ColumnElement[bool] | None = None
) -> Insert:
    """One INSERT of ``rows`` (mappings of column values, all with the same columns); with
    ``when``, only if that condition holds, so that it can be one part of a larger statement
    (a data-modifying CTE that writes or not by what another part did)."""
    return insert(table).from_select(list(rows[0]), rows_where(table, rows, when))


def rows_where(
    table: Table, rows: Sequence[Mapping[str, Any]], when: ColumnElement[bool] | None
) -> Select[Any] | CompoundSelect[Any]:
    """``SELECT row WHERE when UNION ALL …``: what ``insert_rows`` inserts. Each value is a
    parameter typed as its column (so that a NULL is a NULL date to a date column), and the
    statement's shape depends only on the columns and the number of rows: SQLAlchemy compiles
    it once (VALUES lists and multi-row ``insert().values()`` would be compiled every time)."""
    selects = []
    for row in rows:
        selected = select(
            *[
                bindparam(name, value, type_=table.c[name].type, unique=True).label(name)
                for name, value in row.items()
            ]
        )
        selects.append(selected if when is None else selected.where(when))
    return selects[0] if len(selects) == 1 else union_all(*selects)


def write_as_one(
    session: Session,
    parts: Sequence[UpdateBase],
    *,
    answer: Sequence[ColumnElement[Any]],
    first: Sequence[CTE] = (),
) -> Row[Any]:
    """Data-modifying statements sent as one statement (PostgreSQL only): ``first`` (CTEs
    that the parts' conditions read, such as a conditional update's returned rows), then each
    part as a CTE of one SELECT of ``answer`` (expressions over ``first``). PostgreSQL runs
    every part on the same snapshot, whether or not the answer refers to it; foreign keys
    between the parts are checked at the end of the statement."""
    return session.execute(one_statement(parts, answer=answer, first=first)).one()


def one_statement(
    parts: Sequence[UpdateBase],
    *,
    answer: Sequence[ColumnElement[Any]],
    first: Sequence[CTE] = (),
) -> Select[Any]:
    """``write_as_one``'s statement, not yet sent (to send it with others, ``rows_together``)."""
    ctes = [*first, *(part.cte(f"write_{index}") for index, part in enumerate(parts))]
    return select(*answer).add_cte(*ctes)


def on_citus(connection: Connection) -> bool:
    """Whether the connection is to a Citus coordinator (a PostgreSQL database with the citus
    extension). Asked once per pooled connection: the answer is kept in its ``info``."""
    if connection.dialect.name != "postgresql":
        return False
    info = connection.connection.info
    if "on_citus" not in info:
        info["on_citus"] = bool(
            connection.exec_driver_sql(
                "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')"
            ).scalar()
        )
    return bool(info["on_citus"])
