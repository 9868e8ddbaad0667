"""Where every table lives on a Citus cluster: the layout, in one place.

Four kinds of table:

- **distributed**, hash-sharded by a party id and colocated in one group: the shopper-side tables
  by ``shopper_id`` (``shoppers`` by ``id``), the merchant-side tables by ``merchant_id``
  (``merchants`` by ``id``), and the journal by ``shard_key`` (the entry's shopper, or for a
  merchant-only entry its merchant). Merchants share the shoppers' colocation group, so a journal
  entry keyed by a merchant id is stored on the shard of that merchant's rows and an entry keyed
  by a shopper on the shard of the shopper's orders;
- **keyed by its own value**, hash-sharded by the unique value the table exists for and colocated
  with nothing: global uniqueness (one shopper per national ID or per marketplace user id, one
  response per idempotency key) is only enforceable on the value itself;
- **reference**: small tables that change rarely, copied to every node, joinable from any shard;
- **coordinator**: left on the coordinator, each with the reason.

A migration that adds a table adds it here; ``tests/test_distribution.py`` checks the schema (keys,
foreign keys, ``FOR UPDATE`` statements) against these rules on every run, with or without a
cluster, and ``usefirst db distribute`` creates the distribution from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import cast

from sqlalchemy import Connection, MetaData, Table, UniqueConstraint, text

from usefirst.models import metadata


class Placement(StrEnum):
    DISTRIBUTED = "distributed"
    OWN_KEY = "own_key"
    REFERENCE = "reference"
    COORDINATOR = "coordinator"


@dataclass(frozen=True)
class TableLayout:
    table: str
    placement: Placement
    # Distributed tables only: the column hashed to pick the shard.
    column: str | None = None
    # Distributed tables only: the table whose shards this one shares (None: a group of its own).
    colocate_with: str | None = None
    # Coordinator tables only: why the table stays there.
    reason: str | None = None


PARTY_GROUP = "shoppers"


def _shopper(table: str, column: str = "shopper_id") -> TableLayout:
    return TableLayout(table, Placement.DISTRIBUTED, column, PARTY_GROUP)


def _merchant(table: str) -> TableLayout:
    return TableLayout(table, Placement.DISTRIBUTED, "merchant_id", PARTY_GROUP)


def _own_key(table: str, column: str) -> TableLayout:
    return TableLayout(table, Placement.OWN_KEY, column)


def _reference(table: str) -> TableLayout:
    return TableLayout(table, Placement.REFERENCE)


LAYOUT: tuple[TableLayout, ...] = (
    # The anchor of the party group: every colocated table follows its shards.
    TableLayout("shoppers", Placement.DISTRIBUTED, "id", None),
    _shopper("allocations"),
    _shopper("complaint_responses"),
    _shopper("complaints"),
    _shopper("consents"),
    _shopper("contact_attempts"),
    _shopper("credit_line_changes"),
    _shopper("credit_lines"),
    _shopper("delinquent_orders"),
    _shopper("dispute_actions"),
    _shopper("dispute_evidence"),
    _shopper("disputed_orders"),
    _shopper("dispute_pause_closures"),
    _shopper("disputes"),
    _shopper("instalment_changes"),
    _shopper("instalments"),
    _shopper("late_fee_waivers"),
    _shopper("legal_cases"),
    _shopper("orders"),
    _shopper("payment_mandates"),
    _shopper("payments"),
    _shopper("privacy_requests"),
    _shopper("rail_charges"),
    _shopper("refunds"),
    _shopper("risk_decisions"),
    _shopper("risk_labels"),
    _shopper("risk_link_observations"),
    _shopper("risk_graph_members"),
    _shopper("risk_order_facts"),
    _shopper("risk_shopper_merchant_hours"),
    _shopper("hardship_requests"),
    _shopper("risk_step_up_challenges"),
    # Keyed by their subject: the shopper when there is one, else the merchant, else "platform".
    _shopper("events", "shard_key"),
    _shopper("journal_entries", "shard_key"),
    _shopper("ledger_postings", "shard_key"),
    # Beside the event or the change it delivers; claimed shard by shard (kit.outbox).
    _shopper("outbox_messages", "shard_key"),
    # Merchant-side tables, in the same group (merchants are sharded like shoppers).
    TableLayout("merchants", Placement.DISTRIBUTED, "id", PARTY_GROUP),
    _merchant("merchant_appeals"),
    _merchant("merchant_fines"),
    _merchant("merchant_standing_changes"),
    _merchant("risk_merchant_buyers"),
    _merchant("risk_merchant_buyer_days"),
    _merchant("risk_merchant_days"),
    _merchant("settlement_holds"),
    # A merchant payable's postings not settled yet, by the account's owner (the merchant): read
    # and cleared by settlement beside the merchant's settlement lines.
    TableLayout("ledger_open_items", Placement.DISTRIBUTED, "owner_id", PARTY_GROUP),
    _merchant("settlement_lines"),
    _merchant("settlements"),
    # Global uniqueness and look-ups by a value of their own.
    _own_key("shopper_national_id_lookup", "national_id_hash"),
    _own_key("shopper_external_id_lookup", "external_id"),
    # The key, not the principal: one platform key sends most requests.
    _own_key("idempotency_records", "key"),
    _own_key("console_sessions", "token_hash"),
    _own_key("rail_callbacks", "id"),
    # The online signals: read by their key (a device, IP block or address cluster hash; a
    # merchant's or the platform's hours).
    _own_key("risk_signal_events", "key_hash"),
    _own_key("risk_hour_counts", "key"),
    # The shoppers seen with each identifier: read by the identifier's hash at checkout.
    _own_key("risk_link_values", "value_hash"),
    # Small, changed by operators or by daily jobs, read next to any shard.
    _reference("api_keys"),
    _reference("bureau_files"),
    _reference("config_versions"),
    _reference("console_accounts"),
    _reference("ledger_accounts"),
    _reference("operators"),
    _reference("reconciliation_breaks"),
    _reference("risk_graph_runs"),
    _reference("risk_known_fraud"),
    _reference("risk_model_versions"),
    _reference("risk_rings"),
    # Cases are locked by subject (FOR UPDATE), not by id: a reference table locks anywhere.
    _reference("risk_actions"),
    _reference("risk_cases"),
    _reference("sandbox_clock"),
    _reference("sweep_runs"),
    _reference("sweep_steps"),
    TableLayout(
        "audit_log",
        Placement.COORDINATOR,
        reason="a hash chain: each entry seals the one before it, so the log has one total order"
        " and one writer at a time (it is written on unmasked-PII reads, not on the money path)",
    ),
    TableLayout(
        "audit_chain_head",
        Placement.COORDINATOR,
        reason="the single row that serialises appends to audit_log, beside it",
    ),
    TableLayout(
        "auth_throttle_hits",
        Placement.COORDINATOR,
        reason="failed authentications counted before a credential is known: written only when"
        " one is refused, read by the throttle key by every API process at once, short-lived",
    ),
)

BY_TABLE: dict[str, TableLayout] = {layout.table: layout for layout in LAYOUT}


def layout_of(table: Table | str) -> TableLayout:
    name = table if isinstance(table, str) else table.name
    return BY_TABLE[name]


def distributed_tables() -> list[TableLayout]:
    """Tables hashed by a column, anchors of their colocation group before their followers."""
    hashed = [
        layout
        for layout in LAYOUT
        if layout.placement in (Placement.DISTRIBUTED, Placement.OWN_KEY)
    ]
    return sorted(hashed, key=lambda layout: layout.colocate_with is not None)


def reference_tables() -> list[TableLayout]:
    return [layout for layout in LAYOUT if layout.placement is Placement.REFERENCE]


def _distribution_column(layout: TableLayout) -> str | None:
    if layout.placement in (Placement.DISTRIBUTED, Placement.OWN_KEY):
        return layout.column
    return None


def _group(layout: TableLayout) -> str | None:
    """The colocation group of a hashed table (the anchor's name), None for the others."""
    if layout.placement is Placement.DISTRIBUTED:
        return layout.colocate_with or layout.table
    if layout.placement is Placement.OWN_KEY:
        return layout.table
    return None


def schema_violations(
    schema: MetaData = metadata, layout: Sequence[TableLayout] = LAYOUT
) -> list[str]:
    """Every way ``schema`` breaks the Citus rules under ``layout`` (empty when it keeps them):
    each table classified once; a hashed table's column exists, is NOT NULL and is part of its
    primary key and of every unique constraint and unique index; foreign keys only between
    tables of one colocation group (distribution column to distribution column) or to reference
    tables."""
    by_table = {entry.table: entry for entry in layout}
    problems: list[str] = []
    if len(by_table) != len(layout):
        problems.append("a table is classified twice in the layout")
    for name in sorted(set(by_table) - set(schema.tables)):
        problems.append(f"{name}: classified in the layout but not in the schema")
    for table in schema.sorted_tables:
        entry = by_table.get(table.name)
        if entry is None:
            problems.append(f"{table.name}: not classified in usefirst.distribution.LAYOUT")
            continue
        if entry.placement is Placement.COORDINATOR and not entry.reason:
            problems.append(f"{table.name}: left on the coordinator without a reason")
        column = _distribution_column(entry)
        if column is not None:
            problems.extend(_key_violations(table, column))
        problems.extend(_foreign_key_violations(table, entry, by_table))
    return problems


def _key_violations(table: Table, column: str) -> list[str]:
    if column not in table.c:
        return [f"{table.name}: has no distribution column {column}"]
    problems = []
    if table.c[column].nullable:
        problems.append(f"{table.name}.{column}: the distribution column may be NULL")
    keys: list[tuple[str, set[str]]] = [
        ("primary key", {c.name for c in table.primary_key.columns})
    ]
    keys += [
        (f"unique constraint {constraint.name or ''}".strip(), {c.name for c in constraint.columns})
        for constraint in table.constraints
        if isinstance(constraint, UniqueConstraint)
    ]
    keys += [
        (f"unique index {index.name}", {c.name for c in index.columns})
        for index in table.indexes
        if index.unique
    ]
    for label, columns in keys:
        if column not in columns:
            problems.append(
                f"{table.name}: {label} ({', '.join(sorted(columns))}) lacks the distribution"
                f" column {column}"
            )
    return problems


def _foreign_key_violations(
    table: Table, entry: TableLayout, by_table: dict[str, TableLayout]
) -> list[str]:
    problems = []
    for constraint in table.foreign_key_constraints:
        target = by_table.get(constraint.referred_table.name)
        if target is None:
            continue  # reported as unclassified
        label = f"{table.name} -> {target.table}"
        if target.placement is Placement.REFERENCE:
            if entry.placement is Placement.COORDINATOR:
                problems.append(f"{label}: a coordinator table referencing a reference table")
            continue
        if entry.placement is not Placement.DISTRIBUTED or _group(entry) != _group(target):
            problems.append(f"{label}: a foreign key between tables that are not colocated")
            continue
        pairs = {element.parent.name: element.column.name for element in constraint.elements}
        if pairs.get(cast(str, entry.column)) != target.column:
            problems.append(
                f"{label}: the foreign key does not match {entry.column} to {target.column}"
            )
    return problems


# --- the distribution on a Citus cluster (``usefirst db distribute``) ------------------------

# Citus runs a trigger of a distributed table on the shard, where a query that joins the
# statement's transition table to a distributed table cannot be planned. On a cluster the
# journal guards check entry by entry instead: each query names one shard key, so it runs on
# the shard the trigger fires on and reads only the rows of its own entry. A posting's account is
# checked by a foreign key to the reference table instead: an account opened earlier in the same
# transaction went to the workers over other connections than the posting, where a trigger's
# query would not see it; Citus keeps a key's check on the connection that wrote the account.
CITUS_ACCOUNT_FOREIGN_KEY = "fk_ledger_postings_account_code_ledger_accounts"
CITUS_JOURNAL_GUARDS = (
    """CREATE OR REPLACE FUNCTION usefirst_postings_not_sealed() RETURNS trigger AS $$
    DECLARE
        posting record;
    BEGIN
        FOR posting IN SELECT DISTINCT shard_key, entry_id FROM new_postings LOOP
            IF EXISTS (SELECT 1 FROM journal_entries e
                       WHERE e.shard_key = posting.shard_key AND e.id = posting.entry_id) THEN
                RAISE EXCEPTION 'journal entry % is sealed', posting.entry_id
                    USING ERRCODE = 'check_violation';
            END IF;
        END LOOP;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    """CREATE OR REPLACE FUNCTION usefirst_journal_entries_balanced() RETURNS trigger AS $$
    DECLARE
        entry record;
        postings bigint;
        balanced boolean;
    BEGIN
        FOR entry IN SELECT shard_key, id, posting_count FROM new_entries LOOP
            SELECT sum(c.postings), bool_and(c.total = 0) INTO postings, balanced
            FROM (
                SELECT count(*) AS postings, sum(p.amount_minor) AS total
                FROM ledger_postings p
                WHERE p.shard_key = entry.shard_key AND p.entry_id = entry.id
                GROUP BY p.currency
            ) c;
            IF entry.posting_count < 2 OR postings IS DISTINCT FROM entry.posting_count
               OR NOT balanced THEN
                RAISE EXCEPTION 'journal entry % does not balance', entry.id
                    USING ERRCODE = 'check_violation';
            END IF;
        END LOOP;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
)


def has_citus(connection: Connection) -> bool:
    return bool(
        connection.scalar(text("SELECT count(*) FROM pg_extension WHERE extname = 'citus'"))
    )


def _placements(connection: Connection) -> dict[str, tuple[str, str | None]]:
    """Each table Citus knows: (method: h hash, n reference; distribution column)."""
    rows = connection.execute(
        text(
            "SELECT logicalrelid::regclass::text, partmethod,"
            " column_to_column_name(logicalrelid, partkey) FROM pg_dist_partition"
        )
    ).all()
    return {str(name): (str(method), column) for name, method, column in rows}


def distribute(connection: Connection, layout: Sequence[TableLayout] = LAYOUT) -> list[str]:
    """Create the Citus distribution of ``layout`` on a migrated database (tables already
    distributed are left as they are); the names of the tables distributed by this call."""
    done = _placements(connection)
    created: list[str] = []
    # Tables with triggers (the journal's guards, append-only checks) may be distributed: the
    # guards are the shard-local forms above.
    connection.execute(text("SET LOCAL citus.enable_unsafe_triggers TO on"))
    connection.execute(text("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'"))
    for statement in CITUS_JOURNAL_GUARDS:
        connection.execute(text(statement))
    order = {table.name: index for index, table in enumerate(metadata.sorted_tables)}
    # Anchors of colocation groups first, then referenced tables before referencing ones.
    for entry in sorted(
        layout,
        key=lambda entry: (entry.colocate_with is not None, order.get(entry.table, len(order))),
    ):
        if entry.table in done or entry.placement is Placement.COORDINATOR:
            continue
        if entry.placement is Placement.REFERENCE:
            connection.execute(
                text("SELECT create_reference_table(CAST(:table AS regclass))"),
                {"table": entry.table},
            )
        else:
            connection.execute(
                text(
                    "SELECT create_distributed_table(CAST(:table AS regclass), :column,"
                    " colocate_with => :group)"
                ),
                {
                    "table": entry.table,
                    "column": entry.column,
                    "group": entry.colocate_with or "none",
                },
            )
        created.append(entry.table)
    has_account_key = connection.scalar(
        text("SELECT count(*) FROM pg_constraint WHERE conname = :name"),
        {"name": CITUS_ACCOUNT_FOREIGN_KEY},
    )
    if not has_account_key:
        connection.execute(
            text(
                f"ALTER TABLE ledger_postings ADD CONSTRAINT {CITUS_ACCOUNT_FOREIGN_KEY}"
                " FOREIGN KEY (account_code) REFERENCES ledger_accounts (code)"
            )
        )
    # A transaction that read several shards in parallel (over several connections per node)
    # cannot then write a reference table with foreign keys to it (the ledger's accounts, after
    # a checkout's fanned-out risk reads): one connection per node for every session's
    # multi-shard statements keeps them in one transaction's reach.
    database = connection.dialect.identifier_preparer.quote(
        str(connection.scalar(text("SELECT current_database()")))
    )
    connection.execute(
        text(f"ALTER DATABASE {database} SET citus.multi_shard_modify_mode TO 'sequential'")
    )
    return created


def cluster_violations(connection: Connection, layout: Sequence[TableLayout] = LAYOUT) -> list[str]:
    """Where the cluster's distribution differs from ``layout`` (empty when it matches)."""
    found = _placements(connection)
    problems: list[str] = []
    for entry in layout:
        placement = found.get(entry.table)
        if entry.placement is Placement.COORDINATOR:
            if placement is not None:
                problems.append(f"{entry.table}: distributed, the layout keeps it local")
        elif placement is None:
            problems.append(f"{entry.table}: still local to the coordinator")
        elif entry.placement is Placement.REFERENCE and placement[0] != "n":
            problems.append(f"{entry.table}: not a reference table")
        elif entry.placement is not Placement.REFERENCE and placement != ("h", entry.column):
            problems.append(f"{entry.table}: not hash-distributed by {entry.column}")
    groups = dict(
        (str(name), int(group))
        for name, group in connection.execute(
            text("SELECT logicalrelid::regclass::text, colocationid FROM pg_dist_partition")
        ).all()
    )
    for entry in layout:
        anchor = entry.colocate_with
        if (
            anchor
            and anchor in groups
            and groups.get(entry.table, groups[anchor]) != groups[anchor]
        ):
            problems.append(f"{entry.table}: not colocated with {entry.colocate_with}")
    return problems


def drop_schema_objects(connection: Connection) -> None:
    """Drop every table and function of the public schema, for a test or bench run that starts
    again from ``usefirst migrate`` on a coordinator: one by one, since dropping the schema (or
    the database, on the coordinator alone) would drop the citus extension with it."""
    tables = connection.scalars(
        text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    ).all()
    if tables:
        connection.execute(text(f"DROP TABLE {', '.join(tables)} CASCADE"))
    functions = connection.scalars(
        text(
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n"
            " ON n.oid = p.pronamespace WHERE n.nspname = 'public' AND NOT EXISTS"
            " (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')"
        )
    ).all()
    for function in functions:
        connection.execute(text(f"DROP FUNCTION {function} CASCADE"))
