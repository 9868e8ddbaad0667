"""Database engine and the one-transaction-per-request/job rule.

Services and repositories never commit: :meth:`Database.transaction` opens a session, commits when
the block ends normally and rolls back when it raises. On SQLite every write transaction starts
with ``BEGIN IMMEDIATE`` so concurrent writers queue instead of failing on lock upgrade.
"""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import (
    Callable,
    Hashable,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    Sequence,
)
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, overload

from psycopg.raw_cursor import RawCursorMixin
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
    String,
    Table,
    TextualSelect,
    TypeDecorator,
    UpdateBase,
    bindparam,
    create_engine,
    exists,
    func,
    insert,
    inspect,
    select,
    text,
    true,
    tuple_,
    union_all,
)
from sqlalchemy import any_ as sql_any
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.types import TypeEngine


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
        value = _utc_bound(value)
        if value is not None and dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return _utc_read(value)


def _utc_bound(value: datetime | None) -> datetime | None:
    """A ``UTCDateTime`` value as bound (PostgreSQL's; SQLite's then drops the zone)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given; usefirst stores UTC-aware datetimes only")
    return value.astimezone(UTC)


def _utc_read(value: datetime | None) -> datetime | None:
    """A ``UTCDateTime`` value as read."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _bind_converter(type_: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """How a value of ``type_`` is converted for the driver, as SQLAlchemy converts it. A
    ``UTCDateTime`` on PostgreSQL, whose driver takes aware datetimes as they are, is converted
    by ``_utc_bound`` itself: the type decorator's processor is a closure that calls its
    method, two calls for each of a checkout's forty-odd timestamps."""
    if isinstance(type_, UTCDateTime) and dialect.name == "postgresql":
        adapted = type_.dialect_impl(dialect)
        impl = adapted.impl_instance if isinstance(adapted, TypeDecorator) else None
        if impl is not None and impl.bind_processor(dialect) is None:
            return _utc_bound
    return type_._cached_bind_processor(dialect)


def _result_converter(type_: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """How a column of ``type_`` is converted from the driver (``_bind_converter``'s twin)."""
    if isinstance(type_, UTCDateTime) and dialect.name == "postgresql":
        adapted = type_.dialect_impl(dialect)
        impl = adapted.impl_instance if isinstance(adapted, TypeDecorator) else None
        if impl is not None and impl.result_processor(dialect, None) is None:
            return _utc_read
    return type_._cached_result_processor(dialect, None)


Found = TypeVar("Found")
# A SELECT of any columns.
AnySelect = Select[*tuple[Any, ...]]
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
KeyT = TypeVar("KeyT")

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
    # Values of the statement's named parameters: a statement built once with ``bindparam``
    # placeholders serves every look-up (building and keying a new one costs more than
    # reading the row).
    parameters: Mapping[str, Any] | None = None


@overload
def look_up_together(session: Session, first: Lookup[A], second: Lookup[B], /) -> tuple[A, B]: ...
@overload
def look_up_together(
    session: Session, first: Lookup[A], second: Lookup[B], third: Lookup[C], /
) -> tuple[A, B, C]: ...
def look_up_together(session: Session, *lookups: Lookup[Any]) -> tuple[Any, ...]:
    """Each lookup's result, read in one round trip on PostgreSQL (``first_rows_together``);
    they are read in the order given, so the first missing row is the one reported."""
    rows = first_rows_together(
        session,
        [lookup.statement for lookup in lookups],
        parameters=[lookup.parameters for lookup in lookups],
    )
    return tuple(lookup.read(row) for lookup, row in zip(lookups, rows, strict=True))


def first_rows_together(
    session: Session,
    statements: Sequence[AnySelect],
    *,
    parameters: Sequence[Mapping[str, Any] | None] | None = None,
) -> list[dict[str, Any] | None]:
    """The first row of each SELECT (as a mapping of its column names), None for a statement
    that finds nothing. On PostgreSQL they are sent at once and answered in one round trip
    (psycopg's pipeline mode; a transaction's BEGIN goes with them); elsewhere one by one.
    ``parameters``: values of each statement's named parameters (None: it has none).

    Pending ORM changes are flushed first. Values are converted by the columns' types as the
    ORM would convert them."""
    return [
        rows[0] if rows else None
        for rows in rows_together(session, statements, parameters=parameters)
    ]


def rows_together(
    session: Session,
    statements: Sequence[AnySelect],
    *,
    parameters: Sequence[Mapping[str, Any] | None] | None = None,
) -> list[list[dict[str, Any]]]:
    """Every row of each SELECT, as ``first_rows_together`` reads them (one round trip on
    PostgreSQL). A SELECT may carry data-modifying CTEs (``write_as_one``'s form): statements
    sent together run one after another, each seeing what the ones before it wrote."""
    session.flush()
    connection = session.connection()
    given = list(parameters) if parameters is not None else [None] * len(statements)
    if connection.dialect.name != "postgresql":
        return [
            [dict(row._mapping) for row in connection.execute(statement, dict(values or {}))]
            for statement, values in zip(statements, given, strict=True)
        ]
    dialect = connection.dialect
    driver = connection.connection.driver_connection
    assert driver is not None
    cursors = []
    with driver.pipeline():
        for statement, values in zip(statements, given, strict=True):
            sql, bound, columns = _sql_and_parameters(statement, dialect, values)
            cursor = driver.cursor()
            cursor.execute(sql, bound)
            cursors.append((columns, cursor))
    found: list[list[dict[str, Any]]] = []
    for columns, cursor in cursors:
        rows = [
            {
                key: convert(value) if convert is not None else value
                for (key, convert), value in zip(columns, values, strict=True)
            }
            for values in cursor.fetchall()
        ]
        cursor.close()
        found.append(rows)
    return found


Converters = list[tuple[str, Callable[[Any], Any]]]
ColumnConverters = list[tuple[str, Callable[[Any], Any] | None]]


def _sql_and_parameters(
    statement: AnySelect, dialect: Dialect, given: Mapping[str, Any] | None
) -> tuple[str, Mapping[str, Any], ColumnConverters]:
    """The statement's SQL, its parameters converted by their types for the driver (lists
    bound to ``IN`` expanded as SQLAlchemy expands them when it executes a statement) and its
    columns' keys and converters."""
    compiled, bound = _compiled(statement, dialect, given)
    converters, columns = _converters(compiled, statement, dialect)
    if compiled.post_compile_params or compiled.literal_execute_params:
        expanded = compiled._process_parameters_for_postcompile(bound)
        converted = dict(expanded.parameters)
        for name, processor in expanded.processors.items():
            if name in converted:
                converted[name] = processor(converted[name])
        return expanded.statement, converted, columns
    for name, convert in converters:
        if name in bound:
            bound[name] = convert(bound[name])
    return compiled.string, bound, columns


# Per compiled statement: its parameters' converters, and its columns' keys and converters.
_CONVERTERS: dict[SQLCompiler, tuple[Converters, ColumnConverters]] = {}


def _converters(
    compiled: SQLCompiler, statement: AnySelect, dialect: Dialect
) -> tuple[Converters, ColumnConverters]:
    found = _CONVERTERS.get(compiled)
    if found is not None:
        return found
    binds: Converters = []
    for name, bind in compiled.binds.items():
        # The dialect's own conversion (a variant's, such as JSONB's on PostgreSQL).
        convert = _bind_converter(bind.type, dialect)
        if convert is not None:
            binds.append((name, convert))
    columns: ColumnConverters = []
    for selected in statement.selected_columns:
        assert selected.key is not None
        columns.append((selected.key, _result_converter(selected.type, dialect)))
    if len(_CONVERTERS) >= _COMPILED_KEPT:
        _CONVERTERS.clear()
    _CONVERTERS[compiled] = (binds, columns)
    return binds, columns


_COMPILED: dict[Any, SQLCompiler] = {}
_COMPILED_KEPT = 256


def _compiled(
    statement: AnySelect, dialect: Dialect, given: Mapping[str, Any] | None = None
) -> tuple[SQLCompiler, MutableMapping[str, Any]]:
    """The statement compiled (once per shape, as SQLAlchemy's own statement cache does: its
    cache key leaves the bound values out), and its parameters (``given``: values of its
    named parameters)."""
    cache_key = statement._generate_cache_key()
    if cache_key is None:
        compiled = statement.compile(dialect=dialect)
        return compiled, compiled.construct_params(params=given)
    key = (dialect.name, cache_key.key)
    found = _COMPILED.get(key)
    if found is None:
        if len(_COMPILED) >= _COMPILED_KEPT:
            _COMPILED.clear()
        found = _COMPILED[key] = statement.compile(dialect=dialect, cache_key=cache_key)
    compiled = found
    return compiled, compiled.construct_params(
        params=given, extracted_parameters=cache_key.bindparams
    )


RowT = TypeVar("RowT", bound=Base)


def new_row(model: type[RowT], **values: Any) -> RowT:
    """``model(**values)``, a new object not yet stored, without the constructor's attribute
    events (one per value, some 80 per checkout for objects that are written once and read
    back by nobody): the values are put in its state as a load would put them. Stored as
    usual: by the unit of work (an INSERT of what is set), or by ``row_values``."""
    names = _column_keys(model)
    unknown = values.keys() - names
    if unknown:
        raise TypeError(f"{model.__name__} has no column {sorted(unknown)[0]!r}")
    instance: RowT = model.__mapper__.class_manager.new_instance()
    instance.__dict__.update(values)
    return instance


_COLUMN_KEYS: dict[type[Base], frozenset[str]] = {}


def _column_keys(model: type[Base]) -> frozenset[str]:
    keys = _COLUMN_KEYS.get(model)
    if keys is None:
        keys = _COLUMN_KEYS[model] = frozenset(
            attribute.key for attribute in inspect(model).column_attrs
        )
    return keys


def row_values(instance: Base) -> dict[str, Any]:
    """A mapped object's column values as an INSERT writes them: what is set, else the
    column's constant default (a column with neither is left to the database)."""
    values: dict[str, Any] = {}
    state = instance.__dict__
    for attribute_key, column_key, has_default, default in _row_plan(type(instance)):
        if attribute_key in state:
            values[column_key] = state[attribute_key]
        elif has_default:
            values[column_key] = default
    return values


# Per model: each column attribute's key, its column's key, and the column's constant default
# (whether it has one, and the value), in the mapper's order (what ``row_values`` walks).
_RowPlan = tuple[tuple[str, str, bool, Any], ...]
_ROW_PLANS: dict[type[Base], _RowPlan] = {}


def _row_plan(model: type[Base]) -> _RowPlan:
    plan = _ROW_PLANS.get(model)
    if plan is None:
        entries = []
        for attribute in inspect(model).column_attrs:
            column = attribute.columns[0]
            default = column.default
            scalar = default is not None and bool(default.is_scalar)
            entries.append((attribute.key, column.key, scalar, default.arg if scalar else None))
        plan = _ROW_PLANS[model] = tuple(entries)
    return plan


def insert_rows(
    table: Table, rows: Sequence[Mapping[str, Any]], *, when: ColumnElement[bool] | None = None
) -> Insert:
    """One INSERT of ``rows`` (mappings of column values, all with the same columns); with
    ``when``, only if that condition holds, so that it can be one part of a larger statement
    (a data-modifying CTE that writes or not by what another part did)."""
    return insert(table).from_select(list(rows[0]), rows_where(table, rows, when))


def unnest_insert(
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    finish: Callable[[Any], UpdateBase] | None = None,
) -> UpdateBase:
    """PostgreSQL: one INSERT of ``rows`` (mappings of column values, all with the same columns)
    from ``unnest`` of one bound array per column, in the rows' order. Its text does not grow
    with the rows, so it is compiled once and its parameters are a handful of arrays: an
    ``insert_rows`` of thousands of rows spends most of its time compiling and binding one
    parameter per value. ``finish`` adds what the statement ends with (an ON CONFLICT clause)."""
    columns = list(rows[0])
    if any(len(row) != len(columns) for row in rows):
        raise ValueError("every row of one insert has the same columns")
    source = (
        func.unnest(
            *(
                bindparam(
                    f"{table.name}__{name}",
                    [row[name] for row in rows],
                    type_=ARRAY(table.c[name].type),
                )
                for name in columns
            )
        )
        .table_valued(*columns)
        .render_derived()
    )
    statement = postgresql_insert(table).from_select(
        columns, select(*(source.c[name] for name in columns))
    )
    return statement if finish is None else finish(statement)


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


class Placeholders:
    """The parameters of a prepared write (``Part``), handed out in the order its values come:
    a part's ``build`` takes one per value, in the order of its ``values``."""

    def __init__(self) -> None:
        self.taken: list[BindParameter[Any]] = []

    def take(self, type_: TypeEngine[Any]) -> BindParameter[Any]:
        parameter: BindParameter[Any] = bindparam(f"p{len(self.taken)}", type_=type_)
        self.taken.append(parameter)
        return parameter


# A part's statement, built with a placeholder for each of its values and written only when
# the condition holds (None: always).
BuildPart = Callable[[Placeholders, "ColumnElement[bool] | None"], UpdateBase]


@dataclass(frozen=True)
class Part:
    """One data-modifying part of ``write_prepared``, described by its shape (everything its
    SQL depends on: a table, its columns, a number of rows, a conflict clause) and its values.
    ``build`` makes the statement only the first time a process meets the shape; after that
    a write only binds the values."""

    shape: Hashable
    values: Sequence[Any]
    build: BuildPart
    # Its name in the statement (a CTE's; None: a name by its place).
    name: str | None = None


def rows_part(
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    finish: Callable[[Any], UpdateBase] | None = None,
    name: str | None = None,
) -> Part:
    """``insert_rows`` as a ``Part``: an INSERT of ``rows`` (mappings of column values, all
    with the same columns), each value a parameter typed as its column. ``finish`` (a function
    of the PostgreSQL INSERT, the same for every write of its shape: a module-level function)
    adds what the statement ends with, such as its ON CONFLICT clause."""
    columns = tuple(rows[0])
    values = [row[name] for row in rows for name in columns]
    if len(values) != len(columns) * len(rows):
        raise ValueError("every row of one insert has the same columns")

    def build(placeholders: Placeholders, when: ColumnElement[bool] | None) -> UpdateBase:
        types = [table.c[name].type for name in columns]
        selects = []
        for _row in rows:
            selected = select(
                *[
                    placeholders.take(type_).label(name)
                    for name, type_ in zip(columns, types, strict=True)
                ]
            )
            selects.append(selected if when is None else selected.where(when))
        statement = postgresql_insert(table).from_select(
            list(columns), selects[0] if len(selects) == 1 else union_all(*selects)
        )
        return statement if finish is None else finish(statement)

    return Part(
        shape=(table.name, columns, len(rows), finish), values=values, build=build, name=name
    )


_BUILT: dict[Hashable, list[UpdateBase]] = {}


def parts_bound(parts: Sequence[Part]) -> tuple[list[UpdateBase], dict[str, Any]]:
    """Parts as statements of a larger one sent with others (``one_statement`` sent by
    ``rows_together``, where ``write_prepared``'s statement alone would not do), built once per
    shape as ``write_prepared`` builds them, and the values to send with it (that statement's
    ``parameters``)."""
    shape = tuple((part.name, part.shape) for part in parts)
    built = _BUILT.get(shape)
    if built is None:
        placeholders = Placeholders()
        built = []
        for part in parts:
            before = len(placeholders.taken)
            built.append(part.build(placeholders, None))
            if len(placeholders.taken) - before != len(part.values):
                raise ValueError(f"the part {part.shape!r} took other parameters than its values")
        if len(_BUILT) >= _PREPARED_KEPT:
            _BUILT.clear()
        _BUILT[shape] = built
    values = [value for part in parts for value in part.values]
    return built, {f"p{index}": value for index, value in enumerate(values)}


@dataclass(frozen=True)
class PreparedWrite:
    """A ``write_prepared`` statement of one shape: its SQL with PostgreSQL's own ``$n``
    placeholders and how each value is converted for the driver."""

    sql: str
    converters: tuple[Callable[[Any], Any] | None, ...]


_PREPARED: dict[Hashable, PreparedWrite] = {}
_PREPARED_KEPT = 256
_PLACEHOLDER = re.compile(r"%%|%\(p(\d+)\)s")


@dataclass(frozen=True)
class GuardedWrite:
    """What ``write_prepared`` did: whether the guard's rows came out as expected (the parts
    were written) and whether the claim wrote its row."""

    guarded: bool
    claimed: bool


def write_prepared(
    session: Session,
    parts: Sequence[Part],
    *,
    guard: Part | None = None,
    expect_guarded: bool = True,
    claim: Part | None = None,
) -> GuardedWrite:
    """Data-modifying statements sent as one statement, as ``write_as_one`` does (PostgreSQL
    only), built and compiled once per shape and sent with ``$n`` placeholders (which the
    driver neither parses nor rewrites, and prepares on the server after a few uses).

    ``guard`` (an UPDATE … RETURNING, such as a conditional reservation) runs first; the
    other parts and ``claim`` (an INSERT … ON CONFLICT DO NOTHING RETURNING, such as an
    idempotency record) are written only if the guard returns rows (``expect_guarded``) or
    returns none (not ``expect_guarded``). The answer says how the guard turned out and
    whether the claim wrote its row (both true when there is none)."""
    connection = session.connection()
    dialect = connection.dialect
    shape = (
        (guard.name, guard.shape) if guard is not None else None,
        expect_guarded,
        (claim.name, claim.shape) if claim is not None else None,
        tuple((part.name, part.shape) for part in parts),
    )
    prepared = _PREPARED.get(shape)
    if prepared is None:
        prepared = _prepare(dialect, parts, guard=guard, expect=expect_guarded, claim=claim)
        if len(_PREPARED) >= _PREPARED_KEPT:
            _PREPARED.clear()
        _PREPARED[shape] = prepared
    values: list[Any] = []
    for part in (guard, claim, *parts):
        if part is not None:
            values.extend(part.values)
    parameters = [
        value if convert is None else convert(value)
        for value, convert in zip(values, prepared.converters, strict=True)
    ]
    driver = connection.connection.driver_connection
    assert driver is not None
    with _raw_cursor(driver) as cursor:
        cursor.execute(prepared.sql, parameters)
        row = cursor.fetchone()
    assert row is not None
    return GuardedWrite(guarded=bool(row[0]), claimed=bool(row[1]))


def _prepare(
    dialect: Dialect,
    parts: Sequence[Part],
    *,
    guard: Part | None,
    expect: bool,
    claim: Part | None,
) -> PreparedWrite:
    placeholders = Placeholders()

    def built(part: Part, when: ColumnElement[bool] | None) -> UpdateBase:
        before = len(placeholders.taken)
        statement = part.build(placeholders, when)
        if len(placeholders.taken) - before != len(part.values):
            raise ValueError(f"the part {part.shape!r} took other parameters than its values")
        return statement

    ctes: list[CTE] = []
    guarded: ColumnElement[bool] = true()
    when: ColumnElement[bool] | None = None
    if guard is not None:
        guard_cte = built(guard, None).cte(guard.name or "guarded")
        ctes.append(guard_cte)
        guarded = exists(guard_cte.select())
        when = guarded if expect else ~guarded
    claimed: ColumnElement[bool] = true()
    if claim is not None:
        claim_cte = built(claim, when).cte(claim.name or "claimed")
        ctes.append(claim_cte)
        claimed = exists(claim_cte.select())
    ctes.extend(
        built(part, when).cte(part.name or f"write_{index}") for index, part in enumerate(parts)
    )
    statement = select(guarded.label("guarded"), claimed.label("claimed")).add_cte(*ctes)
    compiled = statement.compile(dialect=dialect)
    binds = compiled.binds
    if sorted(binds) != sorted(placeholder.key for placeholder in placeholders.taken):
        # A value the parts did not give (a column default rendered into an INSERT … SELECT,
        # say) would be left out of the parameters.
        raise ValueError(f"parameters other than the parts' values: {sorted(binds)}")
    converters = [
        _bind_converter(binds[placeholder.key].type, dialect) for placeholder in placeholders.taken
    ]

    def numbered(match: re.Match[str]) -> str:
        return "%" if match.group(1) is None else f"${int(match.group(1)) + 1}"

    return PreparedWrite(
        sql=_PLACEHOLDER.sub(numbered, compiled.string), converters=tuple(converters)
    )


@dataclass(frozen=True)
class _PreparedSelect:
    """A SELECT compiled once for PostgreSQL with ``$n`` placeholders: its SQL, its named
    parameters in placeholder order with their converters, and a row class of its columns with
    their converters."""

    sql: str
    parameters: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    # the columns that have a converter: (their index, the converter)
    converted: tuple[tuple[int, Callable[[Any], Any]], ...]
    # the row, made of its converted values in column order
    row: Callable[[Iterable[Any]], Any]


_PREPARED_SELECTS: dict[tuple[str, int], tuple[Any, _PreparedSelect]] = {}
_NAMED_PLACEHOLDER = re.compile(r"%%|%\((\w+)\)s")


def first_row_prepared(
    session: Session, statement: TextualSelect, parameters: Mapping[str, Any]
) -> Any:
    """The first row of a long SELECT that a process sends many times (a row with its
    columns as attributes; None for no row), as ``connection.execute(statement,
    parameters).first()`` reads it. On PostgreSQL its text is compiled once, with ``$n``
    placeholders the driver sends as they are: psycopg caches its own conversion of a
    statement's text only under 4 kB and would split a longer one at every execution (the
    statement is still prepared on the server after a few executions, as any). Elsewhere
    through SQLAlchemy. ``statement``: a module-level constant (compiled once per process)."""
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name != "postgresql":
        return connection.execute(statement, dict(parameters)).first()
    key = (dialect.name, id(statement))
    found = _PREPARED_SELECTS.get(key)
    if found is None or found[0] is not statement:
        found = _PREPARED_SELECTS[key] = (statement, _prepare_select(statement, dialect))
    prepared = found[1]
    values = [
        parameters[name] if convert is None else convert(parameters[name])
        for name, convert in prepared.parameters
    ]
    driver = connection.connection.driver_connection
    assert driver is not None
    with _raw_cursor(driver) as cursor:
        cursor.execute(prepared.sql, values)
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    for index, convert in prepared.converted:
        values[index] = convert(values[index])
    return prepared.row(values)


def _prepare_select(statement: TextualSelect, dialect: Dialect) -> _PreparedSelect:
    compiled = statement.compile(dialect=dialect)
    order: list[str] = []

    def numbered(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "%"
        if name not in order:
            order.append(name)
        return f"${order.index(name) + 1}"

    sql = _NAMED_PLACEHOLDER.sub(numbered, compiled.string)
    binds = {bind.key: bind for bind in compiled.binds.values()}
    parameters = tuple((name, _bind_converter(binds[name].type, dialect)) for name in order)
    keys = []
    columns = []
    for selected in statement.selected_columns:
        assert selected.key is not None
        keys.append(selected.key)
        columns.append(_result_converter(selected.type, dialect))
    row = namedtuple("Row", keys)  # type: ignore[misc]
    converted = tuple(
        (index, convert) for index, convert in enumerate(columns) if convert is not None
    )
    return _PreparedSelect(sql=sql, parameters=parameters, converted=converted, row=row._make)


_RAW_CURSORS: dict[type[Any], type[Any]] = {}


def _raw_cursor(driver: Any) -> Any:
    """A cursor of the connection's own cursor class (whatever counts or traces statements
    still sees them) that sends ``$n`` placeholders as they are (psycopg's raw queries)."""
    factory = driver.cursor_factory
    raw = _RAW_CURSORS.get(factory)
    if raw is None:
        raw = _RAW_CURSORS[factory] = type(f"Raw{factory.__name__}", (RawCursorMixin, factory), {})
    return raw(driver)


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


def shard_batches(
    connection: Connection, table: str, values: Sequence[str], *, size: int = 1000
) -> list[list[str]]:
    """``values`` (of ``table``'s distribution column) in batches a statement can lock at once:
    on a Citus coordinator grouped by the shard each value hashes to (a ``FOR UPDATE`` runs on
    one shard only), the shards in id order and each batch's values in order, at most ``size``
    to a batch; elsewhere ``values`` as given, ``size`` at a time. Two lockers that take their
    batches in this order take their locks in one order and never deadlock."""
    if not on_citus(connection) or not values:
        return [list(values[start : start + size]) for start in range(0, len(values), size)]
    rows = connection.execute(
        text(
            "SELECT v.value, get_shard_id_for_distribution_column(CAST(:table AS regclass),"
            " v.value) FROM unnest(CAST(:values AS text[])) AS v(value)"
        ),
        {"table": table, "values": sorted(set(values))},
    ).all()
    by_shard: dict[int, list[str]] = {}
    for value, shard in rows:
        by_shard.setdefault(int(shard), []).append(str(value))
    return [
        group[start : start + size]
        for group in (sorted(by_shard[shard]) for shard in sorted(by_shard))
        for start in range(0, len(group), size)
    ]


# Reads by a list of keys (thousands of shoppers or identifiers, the nightly graph's).
# SQLite takes an ``IN`` list a few thousand at a time; PostgreSQL takes the whole list as one
# array parameter, so one statement whose text, compiled form and plan do not grow with the list
# (an ``IN`` list of thousands of parameters is compiled, converted by the driver and planned
# again each time: most of the cost of the statement).
SQLITE_LIST_SIZE = 5000


def list_size(session: Session) -> int | None:
    """How many keys one read by a list takes on ``session``'s database: all of them on
    PostgreSQL (None), :data:`SQLITE_LIST_SIZE` elsewhere."""
    return None if session.get_bind().dialect.name == "postgresql" else SQLITE_LIST_SIZE


def in_list(
    session: Session, column: ColumnElement[Any] | InstrumentedAttribute[Any], values: Sequence[str]
) -> ColumnElement[bool]:
    """``column IN values``: one bound array (``= ANY(:values)``) on PostgreSQL, an ``IN`` list
    elsewhere (of at most :func:`list_size` values: the caller splits longer lists)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == sql_any(bindparam(None, list(values), type_=ARRAY(String)))
    return column.in_(values)


def pairs_in(
    session: Session,
    first: ColumnElement[Any] | InstrumentedAttribute[Any],
    second: ColumnElement[Any] | InstrumentedAttribute[Any],
    pairs: Sequence[tuple[str, str]],
) -> ColumnElement[bool]:
    """``(first, second) IN pairs`` (such as (shopper_id, order_id) keys): on PostgreSQL two
    bound arrays unnested side by side, so the statement's text does not grow with the list; an
    ``IN`` list of pairs elsewhere, and on a Citus coordinator, which prunes the shards a
    statement goes to by a literal list of its distribution column (the caller splits the list:
    see :func:`in_chunks`)."""
    if _pairs_as_arrays(session):
        listed = (
            func.unnest(
                bindparam(None, [pair[0] for pair in pairs], type_=ARRAY(String)),
                bindparam(None, [pair[1] for pair in pairs], type_=ARRAY(String)),
            )
            .table_valued("first", "second")
            .render_derived()
        )
        return tuple_(first, second).in_(select(listed.c.first, listed.c.second))
    return tuple_(first, second).in_(pairs)


def in_chunks(session: Session, keys: Sequence[KeyT], *, size: int) -> Iterator[Sequence[KeyT]]:
    """``keys`` in the lists one statement of ``pairs_in`` or ``in_list`` takes: all at once on
    PostgreSQL, ``size`` at a time elsewhere (SQLite, and a Citus coordinator, where
    ``pairs_in`` is a literal list)."""
    step = len(keys) if _pairs_as_arrays(session) else size
    for start in range(0, len(keys), max(step, 1)):
        yield keys[start : start + step]


def _pairs_as_arrays(session: Session) -> bool:
    connection = session.connection()
    return connection.dialect.name == "postgresql" and not on_citus(connection)
