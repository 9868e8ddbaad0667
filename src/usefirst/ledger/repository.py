"""All SQL of the ledger."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import case, func, insert, select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from usefirst.ledger.models import JournalEntry, LedgerAccount, LedgerPosting

# Bulk lists go to PostgreSQL as one delimited string each, split by the server: psycopg turns a
# list into an array literal element by element (a few microseconds each), and a day's late fees
# are ~1.8 million values. The delimiter (ASCII unit separator) does not occur in ids, account
# codes or currencies; a list that holds it, or an empty string, goes as an array as before.
_DELIMITER = "\x1f"


def _bulk_text(name: str, values: Sequence[object]) -> tuple[str, dict[str, object]]:
    """SQL for a ``text[]`` of ``values`` (None for NULL) and its bound parameters."""
    if (
        len(values) > 1
        and all(isinstance(value, str) or value is None for value in values)
        and "" not in values
    ):
        joined = _DELIMITER.join("" if value is None else cast(str, value) for value in values)
        if joined.count(_DELIMITER) == max(len(values) - 1, 0):
            nulls = ", ''" if None in values else ""
            return (
                f"string_to_array(CAST(:{name} AS text), CAST(:delimiter AS text){nulls})",
                {name: joined, "delimiter": _DELIMITER},
            )
    return f"CAST(:{name} AS text[])", {name: list(values)}


def _bulk_integers(
    name: str, values: Sequence[object], sql_type: str
) -> tuple[str, dict[str, object]]:
    """SQL for an integer array of ``values`` and its bound parameters."""
    if len(values) > 1 and all(type(value) is int for value in values):
        return (
            f"CAST(string_to_array(CAST(:{name} AS text), ',') AS {sql_type}[])",
            {name: ",".join(map(str, values))},
        )
    return f"CAST(:{name} AS {sql_type}[])", {name: list(values)}


def _unnest(columns: Sequence[tuple[str, str, Sequence[object]]]) -> tuple[str, dict[str, object]]:
    """``unnest(...)`` over (name, SQL type, values) columns, and its bound parameters."""
    arrays: list[str] = []
    parameters: dict[str, object] = {}
    for name, sql_type, values in columns:
        if sql_type == "text":
            array, bound = _bulk_text(name, values)
        else:
            array, bound = _bulk_integers(name, values, sql_type)
        arrays.append(array)
        parameters.update(bound)
    return f"unnest({', '.join(arrays)})", parameters


class LedgerRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def ensure_accounts(self, rows: Sequence[dict[str, object]]) -> None:
        dialect = self.session.get_bind().dialect.name
        builder = postgresql_insert if dialect == "postgresql" else sqlite_insert
        statement = builder(LedgerAccount).values(list(rows)).on_conflict_do_nothing()
        self.session.execute(statement)

    def insert_entry(
        self, *, entry: dict[str, object], postings: Sequence[dict[str, object]], now: datetime
    ) -> None:
        # Postings first, then the header: the header's insert trigger checks that the entry it
        # seals balances, and later postings to a sealed entry are rejected by another trigger.
        self.session.execute(insert(LedgerPosting), list(postings))
        self.session.execute(insert(JournalEntry), [entry])

    def ensure_accounts_many(self, rows: Sequence[dict[str, object]]) -> None:
        """``ensure_accounts`` for any number of accounts (PostgreSQL: one statement over arrays,
        free of the driver's parameter limit; SQLite: an executemany)."""
        if not rows:
            return
        if self.session.get_bind().dialect.name == "postgresql":
            arrays, parameters = _unnest(
                [
                    (column, "text", [row[key] for row in rows])
                    for column, key in (
                        ("codes", "code"),
                        ("kinds", "kind"),
                        ("owner_ids", "owner_id"),
                        ("currencies", "currency"),
                    )
                ]
            )
            self.session.execute(
                text(
                    "INSERT INTO ledger_accounts (code, kind, owner_id, currency, created_at)"
                    " SELECT code, kind, owner_id, currency, CAST(:created_at AS timestamptz)"
                    f" FROM {arrays} AS a(code, kind, owner_id, currency)"
                    " ON CONFLICT DO NOTHING"
                ),
                {**parameters, "created_at": rows[0]["created_at"]},
            )
            return
        self.session.execute(sqlite_insert(LedgerAccount).on_conflict_do_nothing(), list(rows))

    def insert_entries(
        self, *, entries: Sequence[dict[str, object]], postings: Sequence[dict[str, object]]
    ) -> None:
        """Many entries at once, postings before headers as in ``insert_entry`` (PostgreSQL: one
        statement each over arrays; SQLite: executemany). Every entry is stamped alike."""
        if not entries:
            return
        if self.session.get_bind().dialect.name != "postgresql":
            self.session.execute(insert(LedgerPosting), list(postings))
            self.session.execute(insert(JournalEntry), list(entries))
            return
        arrays, parameters = _unnest(
            [
                ("entry_ids", "text", [row["entry_id"] for row in postings]),
                ("seqs", "integer", [row["seq"] for row in postings]),
                ("codes", "text", [row["account_code"] for row in postings]),
                ("currencies", "text", [row["currency"] for row in postings]),
                ("amounts", "bigint", [row["amount_minor"] for row in postings]),
            ]
        )
        self.session.execute(
            text(
                "INSERT INTO ledger_postings (entry_id, seq, account_code, currency, amount_minor)"
                f" SELECT * FROM {arrays}"
            ),
            parameters,
        )
        arrays, parameters = _unnest(
            [
                ("ids", "text", [row["id"] for row in entries]),
                ("kinds", "text", [row["kind"] for row in entries]),
                ("shopper_ids", "text", [row["shopper_id"] for row in entries]),
                ("merchant_ids", "text", [row["merchant_id"] for row in entries]),
                ("order_ids", "text", [row["order_id"] for row in entries]),
                ("reference_ids", "text", [row["reference_id"] for row in entries]),
                ("posting_counts", "integer", [row["posting_count"] for row in entries]),
                ("memos", "text", [row["memo"] for row in entries]),
            ]
        )
        self.session.execute(
            text(
                "INSERT INTO journal_entries (id, kind, shopper_id, merchant_id, order_id,"
                " reference_id, posting_count, memo, created_at)"
                " SELECT id, kind, shopper_id, merchant_id, order_id, reference_id, posting_count,"
                " memo, CAST(:created_at AS timestamptz)"
                f" FROM {arrays}"
                " AS e(id, kind, shopper_id, merchant_id, order_id, reference_id, posting_count,"
                " memo)"
            ),
            {**parameters, "created_at": entries[0]["created_at"]},
        )

    def balance_of(self, account_code: str) -> int:
        total = self.session.scalar(
            select(func.coalesce(func.sum(LedgerPosting.amount_minor), 0)).where(
                LedgerPosting.account_code == account_code
            )
        )
        return int(total or 0)

    def balances_of(self, account_codes: Sequence[str]) -> dict[str, int]:
        """Debit-positive balance of each account with postings among ``account_codes``."""
        found: dict[str, int] = {}
        for start in range(0, len(account_codes), 1000):
            rows = self.session.execute(
                select(LedgerPosting.account_code, func.sum(LedgerPosting.amount_minor))
                .where(LedgerPosting.account_code.in_(account_codes[start : start + 1000]))
                .group_by(LedgerPosting.account_code)
            ).all()
            found.update((row[0], int(row[1])) for row in rows)
        return found

    def balances(self) -> list[tuple[str, str, str, int, int]]:
        """(code, kind, currency, debits, credits) for every account with postings."""
        debit = func.sum(
            case((LedgerPosting.amount_minor > 0, LedgerPosting.amount_minor), else_=0)
        )
        credit = func.sum(
            case((LedgerPosting.amount_minor < 0, -LedgerPosting.amount_minor), else_=0)
        )
        rows = self.session.execute(
            select(LedgerAccount.code, LedgerAccount.kind, LedgerAccount.currency, debit, credit)
            .join(LedgerPosting, LedgerPosting.account_code == LedgerAccount.code)
            .group_by(LedgerAccount.code, LedgerAccount.kind, LedgerAccount.currency)
            .order_by(LedgerAccount.code)
        ).all()
        return [(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in rows]

    def balances_by_owner(self, kind: str) -> dict[str, int]:
        rows = self.session.execute(
            select(LedgerAccount.owner_id, func.sum(LedgerPosting.amount_minor))
            .join(LedgerPosting, LedgerPosting.account_code == LedgerAccount.code)
            .where(LedgerAccount.kind == kind)
            .group_by(LedgerAccount.owner_id)
        ).all()
        return {str(owner): int(total) for owner, total in rows}

    def unbalanced_entries(self) -> list[tuple[str, str, int]]:
        rows = self.session.execute(
            select(
                LedgerPosting.entry_id, LedgerPosting.currency, func.sum(LedgerPosting.amount_minor)
            )
            .group_by(LedgerPosting.entry_id, LedgerPosting.currency)
            .having(func.sum(LedgerPosting.amount_minor) != 0)
        ).all()
        return [(r[0], r[1], int(r[2])) for r in rows]

    def entries_with_wrong_posting_count(self) -> list[str]:
        counts = (
            select(LedgerPosting.entry_id, func.count().label("n"))
            .group_by(LedgerPosting.entry_id)
            .subquery()
        )
        rows = self.session.execute(
            select(JournalEntry.id)
            .outerjoin(counts, counts.c.entry_id == JournalEntry.id)
            .where(func.coalesce(counts.c.n, 0) != JournalEntry.posting_count)
        ).all()
        orphans = self.session.execute(
            select(LedgerPosting.entry_id)
            .outerjoin(JournalEntry, JournalEntry.id == LedgerPosting.entry_id)
            .where(JournalEntry.id.is_(None))
            .distinct()
        ).all()
        return [r[0] for r in rows] + [r[0] for r in orphans]

    def totals(self) -> tuple[int, int, int]:
        debit = func.coalesce(
            func.sum(case((LedgerPosting.amount_minor > 0, LedgerPosting.amount_minor), else_=0)), 0
        )
        credit = func.coalesce(
            func.sum(case((LedgerPosting.amount_minor < 0, -LedgerPosting.amount_minor), else_=0)),
            0,
        )
        entries = self.session.scalar(select(func.count()).select_from(JournalEntry)) or 0
        row = self.session.execute(select(debit, credit)).one()
        return int(row[0]), int(row[1]), int(entries)

    def entries_for_order(self, order_id: str) -> list[JournalEntry]:
        return list(
            self.session.scalars(
                select(JournalEntry)
                .where(JournalEntry.order_id == order_id)
                .order_by(JournalEntry.id)
            )
        )
