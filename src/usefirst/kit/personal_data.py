"""Personal data in a domain's tables, found from its models: the rows about one shopper (tables
with a ``shopper_id`` column), their encrypted columns (``*_encrypted``, each bound to the field
named without the suffix), and their erasure.

A domain's repository describes its own tables with :class:`ShopperRecords` (naming the plain
columns that identify a person, erased with the encrypted ones); the privacy flow exports, erases
and counts a shopper's records through every domain's part, so no domain runs SQL on another's
tables, and a table a domain adds to its models is covered without changes elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from usefirst.kit.db import Base

ENCRYPTED_SUFFIX = "_encrypted"
SHOPPER_COLUMN = "shopper_id"
# A subject-keyed table's shard key (kit.models.subject_shard_key: the shopper, when it has one).
SHARD_KEY_COLUMN = "shard_key"


def encrypted_columns(table: Table) -> list[str]:
    return [column.name for column in table.c if column.name.endswith(ENCRYPTED_SUFFIX)]


def table_of(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def tables_of(models: ModuleType) -> list[Table]:
    """The tables a domain's models module defines (not those it imports)."""
    return [
        table_of(value)
        for value in vars(models).values()
        if isinstance(value, type)
        and issubclass(value, Base)
        and value.__module__ == models.__name__
        and hasattr(value, "__table__")
    ]


def in_schema_order(tables: Iterable[Table]) -> list[Table]:
    """Tables in the order of the schema (dependencies first, then by name)."""
    wanted = set(tables)
    return [table for table in Base.metadata.sorted_tables if table in wanted]


def _fitting(tombstone: str, column_type: Any) -> str:
    length = getattr(column_type, "length", None)
    return tombstone if length is None or len(tombstone) <= length else tombstone[:length]


@dataclass(frozen=True)
class ShopperRecords:
    """One domain's rows about shoppers: its tables keyed by ``shopper_id``, read, counted and
    erased one shopper at a time."""

    session: Session
    tables: tuple[Table, ...]
    # Plain (unencrypted) columns that identify a person or their device, by table name.
    plaintext_pii: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Tables that only index identifiers kept elsewhere (lookups by a keyed hash): erasure
    # deletes the shopper's rows there instead of overwriting columns.
    index_only: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        session: Session,
        tables: Iterable[Table],
        *,
        plaintext_pii: Mapping[str, tuple[str, ...]] | None = None,
        index_only: Iterable[str] = (),
    ) -> ShopperRecords:
        return cls(
            session=session,
            tables=tuple(table for table in tables if SHOPPER_COLUMN in table.c),
            plaintext_pii=dict(plaintext_pii or {}),
            index_only=frozenset(index_only),
        )

    def rows(self, table: Table, *, shopper_id: str) -> list[dict[str, Any]]:
        order = [column for column in table.primary_key.columns]
        rows = self.session.execute(
            select(table).where(of_shopper(table, shopper_id)).order_by(*order)
        )
        return [dict(row._mapping) for row in rows]

    def count(self, table: Table, *, shopper_id: str) -> int:
        return int(
            self.session.scalar(
                select(func.count()).select_from(table).where(of_shopper(table, shopper_id))
            )
            or 0
        )

    def erase(self, table: Table, *, shopper_id: str, tombstone: str) -> int:
        """Overwrite the shopper's personal data in ``table`` (encrypted columns and the plain
        ones named): NULL where the column allows it, else the tombstone; an ``index_only``
        table's rows of the shopper are deleted. Returns how many rows held a value there."""
        if table.name in self.index_only:
            result = self.session.execute(
                delete(table)
                .where(table.c[SHOPPER_COLUMN] == shopper_id)
                .execution_options(synchronize_session=False)
            )
            return int(getattr(result, "rowcount", 0) or 0)
        columns = encrypted_columns(table) + list(self.plaintext_pii.get(table.name, ()))
        return _erase_columns(
            self.session, table, shopper_id=shopper_id, columns=columns, tombstone=tombstone
        )


def of_shopper(table: Table, shopper_id: str) -> ColumnElement[bool]:
    """The rows of ``table`` about the shopper. A table keyed by its subject (``shard_key``,
    kit.models) stores a row with a shopper under that shopper's key: the key is filtered too,
    so an index on it finds the rows (the journal's ``ix_journal_entries_shard_key``; it has no
    index on shopper_id) and a cluster reads one shard."""
    condition = table.c[SHOPPER_COLUMN] == shopper_id
    if SHARD_KEY_COLUMN in table.c:
        condition = and_(table.c[SHARD_KEY_COLUMN] == shopper_id, condition)
    return condition


def _erase_columns(
    session: Session, table: Table, *, shopper_id: str, columns: Sequence[str], tombstone: str
) -> int:
    present = [name for name in columns if name in table.c]
    if not present:
        return 0
    values = {
        name: None if table.c[name].nullable else _fitting(tombstone, table.c[name].type)
        for name in present
    }
    holding = or_(
        *[
            and_(table.c[name].is_not(None), table.c[name] != values[name])
            if values[name] is not None
            else table.c[name].is_not(None)
            for name in present
        ]
    )
    whose = (of_shopper(table, shopper_id), holding)
    if any(table.c[name].primary_key for name in present):
        return _replace_rows(session, table, whose=whose, values=values)
    result = session.execute(
        update(table).where(*whose).values(**values).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _replace_rows(
    session: Session, table: Table, *, whose: Sequence[Any], values: Mapping[str, Any]
) -> int:
    """Erase a column of the primary key by replacing each row: an erased copy is inserted, then
    the originals deleted (the copies no longer hold a value, so the delete passes them over).
    A key column may be the column a Citus cluster shards the table by (``risk_signal_events``
    by ``key_hash``), whose value an UPDATE may not change, since the row would move to another
    shard; the same two statements run on SQLite and PostgreSQL. Returns the rows replaced."""
    copies = select(
        *[
            literal(values[column.name], column.type).label(column.name)
            if column.name in values
            else column
            for column in table.c
        ]
    ).where(*whose)
    session.execute(insert(table).from_select([column.name for column in table.c], copies))
    result = session.execute(
        delete(table).where(*whose).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
