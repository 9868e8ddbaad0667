"""All SQL of the ledger."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Insert,
    Select,
    String,
    Table,
    UpdateBase,
    case,
    column,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from usefirst.kit.db import AnySelect, insert_rows, on_citus, rows_where
from usefirst.kit.models import subject_shard_key
from usefirst.kit.personal_data import ShopperRecords, tables_of
from usefirst.ledger import models
from usefirst.ledger.accounts import AccountKind, code_sql
from usefirst.ledger.models import JournalEntry, LedgerAccount, LedgerOpenItem, LedgerPosting

# Bulk lists go to PostgreSQL as one delimited string each, split by the server: psycopg turns a
# list into an array literal element by element (a few microseconds each), and a day's late fees
# are ~1.8 million values. The delimiter (ASCII unit separator) does not occur in ids, account
# codes or currencies; a list that holds it, or an empty string, goes as an array as before.
_DELIMITER = "\x1f"
# Accounts a cluster opens in one INSERT at most (five bound values each, under the driver's
# limit of 65,535 parameters a statement).
_OPENED_AT_ONCE = 10_000


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


def _shard_key_of(entry: dict[str, object]) -> str:
    """The shard an entry and its postings are stored on (usefirst.distribution)."""
    return subject_shard_key(entry.get("shopper_id"), entry.get("merchant_id"))


def _entry_of_posting() -> ColumnElement[bool]:
    """The join of a posting to its entry, by the shard key too (stored on one shard)."""
    return (JournalEntry.shard_key == LedgerPosting.shard_key) & (
        JournalEntry.id == LedgerPosting.entry_id
    )


def _accounts_made(accounts: Sequence[dict[str, object]]) -> UpdateBase:
    """The accounts inserted where missing (PostgreSQL), as a part of a larger statement."""
    account_table = cast(Table, LedgerAccount.__table__)
    return (
        postgresql_insert(account_table)
        .from_select(list(accounts[0]), rows_where(account_table, accounts, None))
        .on_conflict_do_nothing()
    )


class LedgerRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def _accounts_to_write(self, rows: Sequence[dict[str, object]]) -> list[dict[str, object]]:
        """The accounts to insert (with ON CONFLICT DO NOTHING): all of ``rows``, except on
        Citus, where only the missing ones, inserted here (and [] returned).

        On Citus ``ledger_accounts`` is a reference table, and an upsert into it takes a
        cluster-wide ExclusiveLock on its shard until the transaction ends, even when every
        row exists, while each posting's insert takes a RowExclusiveLock on it (the foreign
        key to the accounts): two money calls that posted an entry and then upserted accounts
        each waited for the other's lock (a deadlock Citus detects and breaks by cancelling
        one). So on Citus the accounts are read first (a read takes no lock); an account that
        exists is not written at all; the missing ones are inserted as a commutative
        modification (a RowExclusiveLock, and the placements written one after the other).
        Two transactions opening the same account (the platform's cash, by two shoppers' first
        payments) could still wait for each other on two placements taken in different orders:
        each missing account is first locked on the coordinator (an advisory lock on its code,
        codes in order, held to the end of the transaction), so the second waits there for the
        first to commit and then finds the account, as on one PostgreSQL, where it waits on the
        key. The same rows are written as elsewhere."""
        if not rows or not on_citus(self.session.connection()):
            return list(rows)
        by_code = {cast(str, row["code"]): row for row in rows}
        existing = set(
            self.session.scalars(
                text("SELECT code FROM ledger_accounts WHERE code = ANY(CAST(:codes AS text[]))"),
                {"codes": sorted(by_code)},
            )
        )
        self._open_on_citus([by_code[code] for code in sorted(by_code) if code not in existing])
        return []

    def _open_on_citus(self, missing: Sequence[dict[str, object]]) -> None:
        """Citus: insert these accounts, read as missing, without the cluster-wide lock of an
        upsert into the reference table: each code locked on the coordinator first (an advisory
        lock, codes in order, to the end of the transaction), then the rows inserted as a
        commutative modification (a RowExclusiveLock), at most ``_OPENED_AT_ONCE`` a statement.
        A second opener of the same account waits at its advisory lock for the first to
        commit, then inserts nothing (ON CONFLICT DO NOTHING)."""
        if not missing:
            return
        missing = sorted(missing, key=lambda row: cast(str, row["code"]))
        self.session.execute(
            text(
                "SELECT count(pg_advisory_xact_lock(hashtextextended(k.key, 0)))"
                " FROM (SELECT 'ledger_accounts:' || code AS key"
                " FROM unnest(CAST(:codes AS text[])) AS c(code) ORDER BY code) AS k"
            ),
            {"codes": [row["code"] for row in missing]},
        )
        self._set_citus_commutative(True)
        for start in range(0, len(missing), _OPENED_AT_ONCE):
            chunk = list(missing[start : start + _OPENED_AT_ONCE])
            self.session.execute(
                postgresql_insert(LedgerAccount).values(chunk).on_conflict_do_nothing()
            )
        self._set_citus_commutative(False)

    def _set_citus_commutative(self, is_on: bool) -> None:
        """Citus: treat this transaction's next modifications as commutative, or not (the
        default): only around an insert that never changes a row it finds (ON CONFLICT DO
        NOTHING), so the placements cannot come to differ."""
        self.session.execute(
            text("SELECT set_config('citus.all_modifications_commutative', :value, true)"),
            {"value": "on" if is_on else "off"},
        )

    def ensure_accounts(self, rows: Sequence[dict[str, object]]) -> None:
        rows = self._accounts_to_write(rows)
        if not rows:
            return
        dialect = self.session.get_bind().dialect.name
        builder = postgresql_insert if dialect == "postgresql" else sqlite_insert
        statement = builder(LedgerAccount).values(list(rows)).on_conflict_do_nothing()
        self.session.execute(statement)

    @staticmethod
    def postings_statement(
        *,
        accounts: Sequence[dict[str, object]],
        entry: dict[str, object],
        postings: Sequence[dict[str, object]],
    ) -> AnySelect:
        """The accounts (made when missing) and one entry's postings as one statement
        (PostgreSQL), to be followed by ``entry_insert`` in a later statement: the postings'
        guards (the account exists, the entry is not sealed yet) run at the end of this one
        and see the accounts, and the entry's balance guard, at the end of the later one,
        sees its postings. Postings before the header, as ``insert_entry`` writes them."""
        shard_key = _shard_key_of(entry)
        made = _accounts_made(accounts)
        posted = insert_rows(
            cast(Table, LedgerPosting.__table__),
            [{**posting, "shard_key": shard_key} for posting in postings],
        )
        return select(literal(True).label("posted")).add_cte(
            made.cte("made_accounts"), posted.cte("posted")
        )

    @staticmethod
    def entry_insert(entry: dict[str, object]) -> Insert:
        """The entry's header (after ``postings_statement``), as a part of a larger statement."""
        return insert_rows(
            cast(Table, JournalEntry.__table__), [{**entry, "shard_key": _shard_key_of(entry)}]
        )

    @staticmethod
    def open_items_part(rows: Sequence[dict[str, object]]) -> UpdateBase | None:
        """The open items of entries written as parts (``transfers_parts``), as one more part
        of the same statements (PostgreSQL); None when there are none."""
        if not rows:
            return None
        return insert_rows(cast(Table, LedgerOpenItem.__table__), list(rows))

    @staticmethod
    def transfers_parts(
        *,
        accounts: Sequence[dict[str, object]],
        entries: Sequence[dict[str, object]],
        postings: Sequence[dict[str, object]],
    ) -> tuple[UpdateBase, UpdateBase, UpdateBase]:
        """Many entries' accounts (made when missing), postings and headers as three parts
        (PostgreSQL): the accounts and postings of one statement, the headers of a later one
        (the guards, as in ``postings_statement``). The rows ``insert_entries`` writes."""
        shard_keys = {cast(str, entry["id"]): _shard_key_of(entry) for entry in entries}
        made = _accounts_made(accounts)
        posted = insert_rows(
            cast(Table, LedgerPosting.__table__),
            [
                {**posting, "shard_key": shard_keys[cast(str, posting["entry_id"])]}
                for posting in postings
            ],
        )
        headers = insert_rows(
            cast(Table, JournalEntry.__table__),
            [{**entry, "shard_key": shard_keys[cast(str, entry["id"])]} for entry in entries],
        )
        return made, posted, headers

    def insert_entry(
        self, *, entry: dict[str, object], postings: Sequence[dict[str, object]], now: datetime
    ) -> None:
        # Postings first, then the header: the header's insert trigger checks that the entry it
        # seals balances, and later postings to a sealed entry are rejected by another trigger.
        shard_key = _shard_key_of(entry)
        self.session.execute(
            insert(LedgerPosting), [{**posting, "shard_key": shard_key} for posting in postings]
        )
        self.session.execute(insert(JournalEntry), [{**entry, "shard_key": shard_key}])

    def ensure_accounts_many(self, rows: Sequence[dict[str, object]]) -> None:
        """``ensure_accounts`` for any number of accounts (PostgreSQL: one statement over arrays,
        free of the driver's parameter limit; SQLite: an executemany)."""
        rows = self._accounts_to_write(rows)
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
        self,
        *,
        entries: Sequence[dict[str, object]],
        postings: Sequence[dict[str, object]],
        open_items: Sequence[dict[str, object]] = (),
    ) -> None:
        """Many entries at once, postings before headers as in ``insert_entry`` (PostgreSQL: one
        statement each over arrays, the open items written by the postings' statement; SQLite:
        executemany). Every entry is stamped alike."""
        if not entries:
            return
        shard_keys = {cast(str, entry["id"]): _shard_key_of(entry) for entry in entries}
        entries = [{**entry, "shard_key": shard_keys[cast(str, entry["id"])]} for entry in entries]
        postings = [
            {**posting, "shard_key": shard_keys[cast(str, posting["entry_id"])]}
            for posting in postings
        ]
        if self.session.get_bind().dialect.name != "postgresql":
            self.session.execute(insert(LedgerPosting), postings)
            self.session.execute(insert(JournalEntry), entries)
            self.insert_open_items(open_items)
            return
        if on_citus(self.session.connection()):
            # A data-modifying CTE on another distributed table (the open items are keyed by
            # merchant, the postings by subject) is not for a cluster: a statement of its own.
            self.insert_open_items(open_items)
            open_items = ()
        items_sql, parameters = self._open_items_cte(open_items)
        arrays, posting_parameters = _unnest(
            [
                ("shard_keys", "text", [row["shard_key"] for row in postings]),
                ("entry_ids", "text", [row["entry_id"] for row in postings]),
                ("seqs", "integer", [row["seq"] for row in postings]),
                ("codes", "text", [row["account_code"] for row in postings]),
                ("currencies", "text", [row["currency"] for row in postings]),
                ("amounts", "bigint", [row["amount_minor"] for row in postings]),
            ]
        )
        self.session.execute(
            text(
                f"{items_sql}INSERT INTO ledger_postings"
                " (shard_key, entry_id, seq, account_code, currency, amount_minor)"
                f" SELECT * FROM {arrays}"
            ),
            {**parameters, **posting_parameters},
        )
        arrays, parameters = _unnest(
            [
                ("shard_keys", "text", [row["shard_key"] for row in entries]),
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
                "INSERT INTO journal_entries (shard_key, id, kind, shopper_id, merchant_id,"
                " order_id, reference_id, posting_count, memo, created_at)"
                " SELECT shard_key, id, kind, shopper_id, merchant_id, order_id, reference_id,"
                " posting_count, memo, CAST(:created_at AS timestamptz)"
                f" FROM {arrays}"
                " AS e(shard_key, id, kind, shopper_id, merchant_id, order_id, reference_id,"
                " posting_count, memo)"
            ),
            {**parameters, "created_at": entries[0]["created_at"]},
        )

    # --- charges built on the server from a query (see ``service.post_receivable_charges``) --

    def charges_of(self, charges_sql: str) -> list[tuple[str, str, str, int]]:
        """The rows (shopper_id, order_id, currency, amount_minor) of ``charges_sql`` by shopper
        and order."""
        rows = self.session.execute(
            text(
                "SELECT c.shopper_id, c.order_id, c.currency, c.amount_minor"
                f" FROM ({charges_sql}) AS c ORDER BY c.shopper_id, c.order_id"
            )
        ).all()
        return [(row[0], row[1], row[2], int(row[3])) for row in rows]

    def stage_charges(self, charges_sql: str) -> tuple[int, int, int | None]:
        """PostgreSQL: number the non-zero rows of ``charges_sql`` by shopper and order into the
        temporary table ``ledger_charge_batch``; return (rows, total, smallest amount)."""
        self.session.execute(
            text(
                "CREATE TEMPORARY TABLE ledger_charge_batch ON COMMIT DROP AS"
                " SELECT row_number() OVER (ORDER BY c.shopper_id, c.order_id) AS n,"
                " c.shopper_id, c.order_id, c.currency, c.amount_minor"
                f" FROM ({charges_sql}) AS c WHERE c.amount_minor <> 0"
            )
        )
        count, total, smallest = self.session.execute(
            text(
                "SELECT count(*), coalesce(sum(amount_minor), 0), min(amount_minor)"
                " FROM ledger_charge_batch"
            )
        ).one()
        return int(count), int(total), None if smallest is None else int(smallest)

    def insert_staged_charges(
        self,
        *,
        entry_ids: Sequence[str],
        kind: str,
        credit_kind: AccountKind,
        memo: str,
        now: datetime,
    ) -> None:
        """PostgreSQL: one entry per row of ``ledger_charge_batch`` (row n gets ``entry_ids[n-1]``):
        the shopper's receivable debited, the unowned ``credit_kind`` account credited. Accounts
        first, then postings before headers, as ``insert_entries`` does."""
        ids_sql, parameters = _bulk_text("entry_ids", entry_ids)
        receivable = AccountKind.SHOPPER_RECEIVABLE
        debit_code = code_sql(receivable, owner_column="b.shopper_id", currency_column="b.currency")
        credit_code = code_sql(credit_kind, owner_column=None, currency_column="b.currency")
        batch = (
            f"ledger_charge_batch AS b JOIN unnest({ids_sql}) WITH ORDINALITY AS e(id, n)"
            " ON e.n = b.n"
        )
        parameters |= {
            "kind": kind,
            "memo": memo,
            "now": now,
            "receivable": AccountKind.SHOPPER_RECEIVABLE.value,
            "credit_kind": credit_kind.value,
        }
        # The accounts that are missing (nearly all exist: a shopper's receivable is opened by
        # the order's activation), found by one anti-join: ON CONFLICT alone tried to insert every
        # one of them (~70,000) and took twice as long. It stays for a racing insert.
        missing = (
            f"SELECT c.code, c.kind, c.owner_id, c.currency FROM (SELECT DISTINCT {debit_code}"
            " AS code, CAST(:receivable AS text) AS kind, b.shopper_id AS owner_id, b.currency"
            f" FROM ledger_charge_batch AS b UNION SELECT DISTINCT {credit_code},"
            " CAST(:credit_kind AS text), NULL, b.currency FROM ledger_charge_batch AS b) AS c"
            " WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts AS a WHERE a.code = c.code)"
        )
        if on_citus(self.session.connection()):
            # On a cluster an INSERT into the accounts (a reference table) that is not
            # commutative takes a cluster-wide ExclusiveLock on its shard until the sweep's step
            # commits, stalling every payment and checkout that posts meanwhile, even when it
            # inserts nothing: the missing accounts are read (a read locks nothing; usually
            # none is missing) and only those opened, as a money call opens its accounts.
            self._open_on_citus(
                [
                    {**row, "created_at": now}
                    for row in self.session.execute(text(missing), parameters).mappings()
                ]
            )
        else:
            self.session.execute(
                text(
                    "INSERT INTO ledger_accounts (code, kind, owner_id, currency, created_at)"
                    " SELECT m.code, m.kind, m.owner_id, m.currency, CAST(:now AS timestamptz)"
                    f" FROM ({missing}) AS m ON CONFLICT DO NOTHING"
                ),
                parameters,
            )
        self.session.execute(
            text(
                "INSERT INTO ledger_postings"
                " (shard_key, entry_id, seq, account_code, currency, amount_minor)"
                f" SELECT b.shopper_id, e.id, leg.seq, CASE leg.seq WHEN 1 THEN {debit_code}"
                f" ELSE {credit_code} END, b.currency,"
                " CASE leg.seq WHEN 1 THEN b.amount_minor ELSE -b.amount_minor"
                f" END FROM {batch} CROSS JOIN (VALUES (1), (2)) AS leg(seq)"
            ),
            parameters,
        )
        self.session.execute(
            text(
                "INSERT INTO journal_entries (shard_key, id, kind, shopper_id, merchant_id,"
                " order_id, reference_id, posting_count, memo, created_at)"
                " SELECT b.shopper_id, e.id, CAST(:kind AS text), b.shopper_id, NULL, b.order_id,"
                " NULL, 2,"
                f" CAST(:memo AS text), CAST(:now AS timestamptz) FROM {batch}"
            ),
            parameters,
        )

    # --- open items: postings to accounts kept item by item, until cleared -------------------

    def insert_open_items(self, rows: Sequence[dict[str, object]]) -> None:
        if rows:
            self.session.execute(insert(LedgerOpenItem), list(rows))

    @staticmethod
    def _open_items_cte(rows: Sequence[dict[str, object]]) -> tuple[str, dict[str, object]]:
        """PostgreSQL: ``WITH`` a data-modifying CTE writing the open items, to prefix the
        postings' INSERT (no statement of their own; bound names prefixed ``item_``)."""
        if not rows:
            return "", {}
        arrays, parameters = _unnest(
            [
                (f"item_{column}", sql_type, [row[column] for row in rows])
                for column, sql_type in (
                    ("owner_id", "text"),
                    ("account_code", "text"),
                    ("entry_id", "text"),
                    ("account_kind", "text"),
                    ("currency", "text"),
                    ("entry_kind", "text"),
                    ("order_id", "text"),
                    ("amount_minor", "bigint"),
                )
            ]
        )
        created = {row["created_at"] for row in rows}
        if len(created) != 1:
            raise ValueError("open items written together are stamped alike")
        return (
            "WITH open_items AS (INSERT INTO ledger_open_items (owner_id, account_code, entry_id,"
            " account_kind, currency, entry_kind, order_id, amount_minor, created_at)"
            " SELECT i.*, CAST(:item_created_at AS timestamptz)"
            f" FROM {arrays} AS i) ",
            {**parameters, "item_created_at": created.pop()},
        )

    def clear_open_items(self, owner_entries: Sequence[tuple[str, str]]) -> None:
        """Close the open items of these (owner, entry) pairs: their entries are settled. Pairs
        without an open item (a payout's own entries written the same way) change nothing."""
        if not owner_entries:
            return
        connection = self.session.connection()
        if connection.dialect.name == "postgresql" and not on_citus(connection):
            pairs, parameters = _unnest(
                [
                    ("owner_ids", "text", [owner for owner, _ in owner_entries]),
                    ("entry_ids", "text", [entry for _, entry in owner_entries]),
                ]
            )
            self.session.execute(
                text(
                    f"DELETE FROM ledger_open_items AS o USING {pairs} AS c(owner_id, entry_id)"
                    " WHERE o.owner_id = c.owner_id AND o.entry_id = c.entry_id"
                ),
                parameters,
            )
            return
        # SQLite, or a cluster (a plain filter each shard applies): a statement per 500 pairs.
        for start in range(0, len(owner_entries), 500):
            self.session.execute(
                delete(LedgerOpenItem).where(
                    tuple_(LedgerOpenItem.owner_id, LedgerOpenItem.entry_id).in_(
                        owner_entries[start : start + 500]
                    )
                )
            )

    def open_items_of_account(self, owner_id: str, account_code: str) -> dict[str, int]:
        """The open items of one account (of ``owner_id``): amount (debit-positive) by entry."""
        rows = self.session.execute(
            select(LedgerOpenItem.entry_id, LedgerOpenItem.amount_minor).where(
                LedgerOpenItem.owner_id == owner_id,
                LedgerOpenItem.account_code == account_code,
            )
        ).all()
        return {row[0]: int(row[1]) for row in rows}

    def open_items_of_owners(
        self, kind: str, owner_ids: Sequence[str], *, created_before: datetime
    ) -> dict[tuple[str, str], list[AccountPosting]]:
        """The open items of the accounts of ``kind`` of many owners made before
        ``created_before``, by (owner, currency), each list oldest first (then by entry id):
        the postings nothing has cleared, read without the rest of the account's history."""
        found: dict[tuple[str, str], list[AccountPosting]] = {}
        for start in range(0, len(owner_ids), 1000):
            statement = (
                select(
                    LedgerOpenItem.owner_id,
                    LedgerOpenItem.currency,
                    LedgerOpenItem.entry_id,
                    LedgerOpenItem.entry_kind,
                    LedgerOpenItem.order_id,
                    LedgerOpenItem.amount_minor,
                    LedgerOpenItem.created_at,
                )
                .where(
                    LedgerOpenItem.account_kind == kind,
                    LedgerOpenItem.owner_id.in_(owner_ids[start : start + 1000]),
                    LedgerOpenItem.created_at < created_before,
                )
                .order_by(
                    LedgerOpenItem.owner_id,
                    LedgerOpenItem.currency,
                    LedgerOpenItem.created_at,
                    LedgerOpenItem.entry_id,
                )
            )
            for row in self.session.execute(statement):
                found.setdefault((str(row[0]), row[1]), []).append(AccountPosting.of(row[2:]))
        return found

    def drop_staged_charges(self) -> None:
        self.session.execute(text("DROP TABLE ledger_charge_batch"))

    @staticmethod
    def balance_statement(account_code: str) -> AnySelect:
        """``balance_of`` as a statement to send with other reads (its one row's
        ``balance_minor``)."""
        return select(
            func.coalesce(func.sum(LedgerPosting.amount_minor), 0).label("balance_minor")
        ).where(LedgerPosting.account_code == account_code)

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
            # The shard key first: an entry's postings live on one shard, so each shard groups
            # its own (Citus pushes the whole aggregate down).
            .group_by(LedgerPosting.shard_key, LedgerPosting.entry_id, LedgerPosting.currency)
            .having(func.sum(LedgerPosting.amount_minor) != 0)
        ).all()
        return [(r[0], r[1], int(r[2])) for r in rows]

    def entries_with_wrong_posting_count(self) -> list[str]:
        counts = (
            select(LedgerPosting.shard_key, LedgerPosting.entry_id, func.count().label("n"))
            .group_by(LedgerPosting.shard_key, LedgerPosting.entry_id)
            .subquery()
        )
        rows = self.session.execute(
            select(JournalEntry.id)
            .outerjoin(
                counts,
                (counts.c.shard_key == JournalEntry.shard_key)
                & (counts.c.entry_id == JournalEntry.id),
            )
            .where(func.coalesce(counts.c.n, 0) != JournalEntry.posting_count)
        ).all()
        orphans = self.session.execute(
            select(LedgerPosting.entry_id)
            .outerjoin(
                JournalEntry,
                (JournalEntry.shard_key == LedgerPosting.shard_key)
                & (JournalEntry.id == LedgerPosting.entry_id),
            )
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

    def order_receivables(
        self,
        order_ids: Sequence[str],
        *,
        before: datetime,
        left_out_kinds: Sequence[str],
        cut_kinds: Sequence[str],
    ) -> dict[str, tuple[int, int]]:
        """Order id -> (the receivable postings of the order's entries made before ``before``,
        the receivable credits of its ``cut_kinds`` entries made at or after it, positive),
        leaving out ``left_out_kinds``: one statement for all the orders. The ids go as one
        bound value (a JSON array on SQLite, a delimited string on PostgreSQL), so a list of
        any length is a single parameter."""
        if not order_ids:
            return {}
        if self.session.get_bind().dialect.name == "postgresql":
            array, parameters = _bulk_text("order_ids", sorted(set(order_ids)))
            wanted = text(f"SELECT unnest({array})").bindparams(**parameters)
        else:
            wanted = text("SELECT value FROM json_each(:order_ids)").bindparams(
                order_ids=json.dumps(sorted(set(order_ids)))
            )
        receivable = LedgerPosting.account_code.like(f"{AccountKind.SHOPPER_RECEIVABLE.value}:%")
        made_before = JournalEntry.created_at < before
        rows = self.session.execute(
            select(
                JournalEntry.order_id,
                func.sum(case((made_before, LedgerPosting.amount_minor), else_=0)),
                func.sum(
                    case(
                        (
                            ~made_before & JournalEntry.kind.in_(cut_kinds),
                            -LedgerPosting.amount_minor,
                        ),
                        else_=0,
                    )
                ),
            )
            .join(LedgerPosting, _entry_of_posting())
            .where(
                JournalEntry.order_id.in_(wanted.columns(column("value", String))),
                JournalEntry.kind.not_in(left_out_kinds),
                receivable,
            )
            .group_by(JournalEntry.order_id)
        ).all()
        return {str(order_id): (int(debt), int(cut)) for order_id, debt, cut in rows}

    def entries_for_order(self, order_id: str) -> list[JournalEntry]:
        return list(
            self.session.scalars(
                select(JournalEntry)
                .where(JournalEntry.order_id == order_id)
                .order_by(JournalEntry.id)
            )
        )

    # Reads for other domains (a merchant's payable, for its settlements and statements).

    def account_owners(self, kind: str) -> list[str]:
        """The owners of accounts of ``kind`` (in any currency), in id order."""
        return list(
            self.session.scalars(
                select(LedgerAccount.owner_id)
                .where(LedgerAccount.kind == kind)
                .distinct()
                .order_by(LedgerAccount.owner_id)
            )
        )

    def account_currencies(self, kind: str, owner_id: str) -> list[str]:
        """The currencies of ``owner_id``'s accounts of ``kind``."""
        return list(
            self.session.scalars(
                select(LedgerAccount.currency)
                .where(LedgerAccount.kind == kind, LedgerAccount.owner_id == owner_id)
                .order_by(LedgerAccount.currency)
            )
        )

    def account_currencies_of_owners(
        self, kind: str, owner_ids: Sequence[str]
    ) -> dict[str, list[str]]:
        """The currencies of each owner's accounts of ``kind`` (one query per thousand owners)."""
        found: dict[str, list[str]] = {}
        for start in range(0, len(owner_ids), 1000):
            for owner_id, currency in self.session.execute(
                select(LedgerAccount.owner_id, LedgerAccount.currency)
                .where(
                    LedgerAccount.kind == kind,
                    LedgerAccount.owner_id.in_(owner_ids[start : start + 1000]),
                )
                .order_by(LedgerAccount.owner_id, LedgerAccount.currency)
            ):
                found.setdefault(str(owner_id), []).append(currency)
        return found

    def account_postings(
        self,
        account_code: str,
        *,
        created_before: datetime | None = None,
        order_id: str | None = None,
        excluding_entries: Select[str] | None = None,
    ) -> list[AccountPosting]:
        """The postings to one account with their entries, oldest first. ``excluding_entries``
        (a query of entry ids, such as the entries a merchant's payouts already settled) leaves
        those entries out."""
        statement = (
            select(
                LedgerPosting.entry_id,
                JournalEntry.kind,
                JournalEntry.order_id,
                LedgerPosting.amount_minor,
                JournalEntry.created_at,
            )
            .join(JournalEntry, _entry_of_posting())
            .where(LedgerPosting.account_code == account_code)
        )
        if created_before is not None:
            statement = statement.where(JournalEntry.created_at < created_before)
        if order_id is not None:
            statement = statement.where(JournalEntry.order_id == order_id)
        if excluding_entries is not None:
            excluded = excluding_entries.subquery()
            statement = statement.where(
                ~exists(select(excluded).where(excluded.c[0] == LedgerPosting.entry_id))
            )
        rows = self.session.execute(
            statement.order_by(JournalEntry.created_at, LedgerPosting.entry_id)
        ).all()
        return [AccountPosting.of(row) for row in rows]

    def postings_of_owner(self, owner_id: str) -> list[dict[str, Any]]:
        """Every posting to an account ``owner_id`` owns (a shopper's, say), with its entry."""
        rows = self.session.execute(
            select(
                LedgerAccount.code,
                LedgerAccount.kind,
                LedgerPosting.entry_id,
                LedgerPosting.seq,
                LedgerPosting.currency,
                LedgerPosting.amount_minor,
                JournalEntry.kind.label("entry_kind"),
                JournalEntry.order_id,
                JournalEntry.memo,
                JournalEntry.created_at,
            )
            .join(LedgerPosting, LedgerPosting.account_code == LedgerAccount.code)
            .join(JournalEntry, _entry_of_posting())
            .where(LedgerAccount.owner_id == owner_id)
            .order_by(LedgerAccount.code, JournalEntry.created_at, LedgerPosting.entry_id)
        )
        return [dict(row._mapping) for row in rows]

    def shopper_records(self) -> ShopperRecords:
        """The ledger's rows keyed by shopper (journal entries), for the privacy flow."""
        return ShopperRecords.of(self.session, tables_of(models))


@dataclass(frozen=True)
class AccountPosting:
    """One posting to an account (debit-positive) and what its entry was."""

    entry_id: str
    entry_kind: str
    order_id: str | None
    amount_minor: int
    created_at: datetime

    @classmethod
    def of(cls, row: Sequence[Any]) -> AccountPosting:
        """From the columns (entry id, entry kind, order id, amount, created at) of a row."""
        return cls(
            entry_id=row[0],
            entry_kind=row[1],
            order_id=row[2],
            amount_minor=int(row[3]),
            created_at=row[4],
        )
