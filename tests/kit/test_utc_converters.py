"""The converters kit.db's prepared statements use for ``UTCDateTime`` on PostgreSQL convert
as the type decorator's own processors do (issue 14: one call per value instead of two)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from usefirst.kit.db import UTCDateTime, _bind_converter, _result_converter

POSTGRESQL = postgresql.psycopg.dialect()  # type: ignore[attr-defined]
SHANGHAI = timezone(timedelta(hours=8))
VALUES = [
    None,
    datetime(2026, 12, 8, 1, 2, 3, 456789, tzinfo=UTC),
    datetime(2026, 12, 8, 9, 2, 3, 456789, tzinfo=SHANGHAI),
]


def test_postgresql_converters_are_the_decorators_own() -> None:
    type_ = UTCDateTime()
    bind = _bind_converter(type_, POSTGRESQL)
    read = _result_converter(type_, POSTGRESQL)
    standard_bind = type_._cached_bind_processor(POSTGRESQL)
    standard_read = type_._cached_result_processor(POSTGRESQL, None)
    assert bind is not None and standard_bind is not None
    assert read is not None and standard_read is not None
    assert bind is not standard_bind and read is not standard_read
    for value in VALUES:
        assert bind(value) == standard_bind(value)
        assert read(value) == standard_read(value)
        if value is not None:
            assert bind(value).tzinfo is UTC  # type: ignore[union-attr]
            assert read(value).tzinfo is UTC  # type: ignore[union-attr]
    naive = datetime(2026, 12, 8, 1, 2, 3)
    assert read(naive) == standard_read(naive) == naive.replace(tzinfo=UTC)
    for convert in (bind, standard_bind):
        with pytest.raises(ValueError, match="naive datetime"):
            convert(naive)


def test_sqlite_keeps_the_decorators_processors() -> None:
    type_ = UTCDateTime()
    dialect = sqlite.dialect()
    assert _bind_converter(type_, dialect) is type_._cached_bind_processor(dialect)
    assert _result_converter(type_, dialect) is type_._cached_result_processor(dialect, None)
