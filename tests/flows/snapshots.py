"""Whole-database snapshots compared across two runs of the same work on the same book: rows
as text with the ids, ciphertext and hashes each run makes afresh replaced, so that two runs
that did the same thing compare equal and any other difference shows."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from usefirst.kit.db import Base

NEW_ID = re.compile(r"\b[a-z]{2,4}_[0-9A-HJKMNP-TV-Z]{26}\b")
# Made afresh by each run: ciphertext (a random nonce each time) and the audit chain's hashes
# (over rows that hold new ids).
CIPHERTEXT = re.compile(r"v1:k\d+:[A-Za-z0-9_=-]+")
CHAIN_HASH = re.compile(r"\b[0-9a-f]{64}\b")
# The id of the request or job that wrote an outbox message: each run's own.
REQUEST_ID = re.compile(r"'[0-9a-f]{32}'")


def dump(session: Session) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, without sequence-made keys (PostgreSQL does not give back the
    numbers a rolled-back transaction took)."""
    rows_by_table: dict[str, list[tuple[Any, ...]]] = {}
    for name, table in sorted(Base.metadata.tables.items()):
        order = list(table.primary_key.columns) or list(table.columns)
        columns = [column for column in table.columns if column is not table.autoincrement_column]
        query = select(*columns).order_by(*order)
        rows_by_table[name] = [tuple(row) for row in session.execute(query)]
    return rows_by_table


def known_ids(dump: dict[str, list[tuple[Any, ...]]]) -> set[str]:
    return {match for rows in dump.values() for row in rows for match in NEW_ID.findall(repr(row))}


def normalised(dump: dict[str, list[tuple[Any, ...]]], known: set[str]) -> dict[str, list[str]]:
    """Rows as text with the ids not in ``known`` replaced (they differ from run to run), in a
    stable order."""

    def text(row: tuple[Any, ...]) -> str:
        shown = NEW_ID.sub(lambda m: m.group(0) if m.group(0) in known else "<new id>", repr(row))
        shown = CHAIN_HASH.sub("<hash>", CIPHERTEXT.sub("<ciphertext>", shown))
        return REQUEST_ID.sub("'<request id>'", shown)

    return {name: sorted(text(row) for row in rows) for name, rows in dump.items()}
