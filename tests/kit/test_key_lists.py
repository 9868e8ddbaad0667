"""Reads and writes by long lists of keys (kit.db): ``pairs_in`` and ``in_chunks`` select exactly
the listed pairs on both databases, in one statement on PostgreSQL; ``unnest_insert`` writes
exactly its rows, in order, with its ON CONFLICT clause."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Column, Date, Integer, MetaData, String, Table, select
from sqlalchemy.dialects.postgresql import Insert
from sqlalchemy.schema import CreateTable

from tests.conftest import make_runtime
from usefirst.kit.db import in_chunks, on_citus, pairs_in, unnest_insert

METADATA = MetaData()
PAIRS = Table(
    "key_list_pairs",
    METADATA,
    Column("shopper_id", String(40), primary_key=True),
    Column("order_id", String(40), primary_key=True),
    Column("day", Date, nullable=True),
    Column("count", Integer, nullable=False),
    prefixes=["TEMPORARY"],
)
ROWS = [
    {"shopper_id": f"shp_{n % 3}", "order_id": f"ord_{n}", "day": date(2027, 1, n), "count": n}
    for n in range(1, 8)
]


def _add_counts(statement: Insert) -> Insert:
    return statement.on_conflict_do_update(
        index_elements=["shopper_id", "order_id"],
        set_={"count": PAIRS.c["count"] + statement.excluded["count"]},
    )


def test_pairs_in_selects_exactly_the_listed_pairs(database_url: str) -> None:
    runtime = make_runtime(database_url)
    try:
        with runtime.database.transaction() as session:
            session.execute(CreateTable(PAIRS))
            session.execute(PAIRS.insert(), ROWS)
            wanted = [("shp_1", "ord_1"), ("shp_0", "ord_3"), ("shp_2", "ord_1"), ("x", "y")]
            chunks = list(in_chunks(session, wanted, size=3))
            # One array statement on PostgreSQL; a literal list of ``size`` at a time on SQLite
            # and on a Citus coordinator (kit.db.in_chunks).
            as_arrays = session.get_bind().dialect.name == "postgresql" and not on_citus(
                session.connection()
            )
            assert [len(chunk) for chunk in chunks] == ([4] if as_arrays else [3, 1])
            found = sorted(
                (row.shopper_id, row.order_id)
                for chunk in chunks
                for row in session.execute(
                    select(PAIRS).where(
                        pairs_in(session, PAIRS.c.shopper_id, PAIRS.c.order_id, chunk)
                    )
                )
            )
            # ("shp_2", "ord_1") mixes two rows' halves: a pair matches as a pair, not by parts.
            assert found == [("shp_0", "ord_3"), ("shp_1", "ord_1")]
            assert (
                session.execute(
                    select(PAIRS).where(pairs_in(session, PAIRS.c.shopper_id, PAIRS.c.order_id, []))
                ).all()
                == []
            )
            assert list(in_chunks(session, [], size=3)) == []
    finally:
        runtime.database.dispose()


@pytest.mark.postgresql
def test_unnest_insert_writes_its_rows_and_its_conflict_clause(postgres_url: str) -> None:
    runtime = make_runtime(postgres_url)
    try:
        with runtime.database.transaction() as session:
            session.execute(CreateTable(PAIRS))
            session.execute(unnest_insert(PAIRS, ROWS[:5]))
            again = [{**row, "day": None, "count": 100} for row in ROWS[3:]]
            session.execute(unnest_insert(PAIRS, again, finish=_add_counts))
            rows = session.execute(select(PAIRS).order_by(PAIRS.c.order_id)).all()
            assert [tuple(row) for row in rows] == [
                ("shp_1", "ord_1", date(2027, 1, 1), 1),
                ("shp_2", "ord_2", date(2027, 1, 2), 2),
                ("shp_0", "ord_3", date(2027, 1, 3), 3),
                ("shp_1", "ord_4", date(2027, 1, 4), 104),
                ("shp_2", "ord_5", date(2027, 1, 5), 105),
                ("shp_0", "ord_6", None, 100),
                ("shp_1", "ord_7", None, 100),
            ]
            with pytest.raises(ValueError, match="same columns"):
                unnest_insert(PAIRS, [ROWS[0], {"shopper_id": "shp_9"}])
    finally:
        runtime.database.dispose()
