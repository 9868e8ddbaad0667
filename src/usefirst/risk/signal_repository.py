"""All SQL of the online signals (``risk/signals.py``): the parts of the checkout's features
statement that read them by key, and the writes of the two counters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import astuple
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from usefirst.kit.db import Part, rows_part
from usefirst.risk.models import HourCounter, SignalEvent
from usefirst.risk.signals import (
    EVENT_COUNT_NAMES,
    EVENTS_PER_KEY,
    KeyEventCounts,
    SignalRead,
    count_events,
)

# One kind's most recent events under the checkout's key (a primary-key range, newest first).
_KEY_EVENTS = """
    SELECT * FROM (SELECT kind, shopper_id, order_id, merchant_id, amount_minor, is_held,
        created_at FROM risk_signal_events
        WHERE kind = '{kind}' AND key_hash = :signal_{kind} AND created_at >= :{since}
            AND created_at < :now
        ORDER BY created_at DESC, order_id DESC LIMIT {limit}) k_{kind}
"""
_EVENT_WINDOWS = {"device": "month_ago", "cluster": "month_ago", "ip_block": "day_ago"}
_EVENTS = " UNION ALL ".join(
    _KEY_EVENTS.format(kind=kind, since=since, limit=EVENTS_PER_KEY)
    for kind, since in _EVENT_WINDOWS.items()
)
# The events counted (``signals.KeyEventCounts``, in its order): first per order (one order is
# seen under up to three keys; its shopper, merchant, amount and outcome are the same under
# each), then over the orders, the neighbours' (other shoppers') once each. One row of numbers
# instead of up to 3 x EVENTS_PER_KEY rows built into JSON and parsed again.
_NEIGHBOUR = "o.shopper_id <> :shopper_id"
EVENT_COUNTS = f"""
    SELECT sum(o.device_24h), sum(o.ip_block_24h), sum(o.cluster_24h),
        count(DISTINCT CASE WHEN o.on_device = 1 AND {_NEIGHBOUR} THEN o.shopper_id END),
        count(DISTINCT CASE WHEN o.on_ip_block = 1 AND {_NEIGHBOUR} THEN o.shopper_id END),
        count(DISTINCT CASE WHEN o.on_cluster = 1 AND {_NEIGHBOUR} THEN o.shopper_id END),
        count(DISTINCT CASE WHEN {_NEIGHBOUR} THEN o.shopper_id END),
        sum(CASE WHEN {_NEIGHBOUR} THEN 1 ELSE 0 END),
        sum(CASE WHEN {_NEIGHBOUR} AND o.merchant_id = :merchant_id THEN 1 ELSE 0 END),
        sum(CASE WHEN {_NEIGHBOUR} AND o.in_7d = 1 THEN 1 ELSE 0 END),
        sum(CASE WHEN {_NEIGHBOUR} AND o.in_7d = 1 THEN o.is_held ELSE 0 END),
        sum(CASE WHEN {_NEIGHBOUR} AND o.in_6h = 1 AND o.merchant_id = :merchant_id
            THEN 1 ELSE 0 END),
        sum(CASE WHEN {_NEIGHBOUR} AND o.in_6h = 1 AND o.merchant_id = :merchant_id
            THEN o.amount_minor ELSE 0 END)
    FROM (
        SELECT ev.order_id, ev.shopper_id, max(ev.merchant_id) AS merchant_id,
            max(ev.amount_minor) AS amount_minor, max(ev.is_held) AS is_held,
            sum(CASE WHEN ev.kind = 'device' AND ev.created_at >= :day_ago THEN 1 ELSE 0 END)
                AS device_24h,
            sum(CASE WHEN ev.kind = 'ip_block' AND ev.created_at >= :day_ago THEN 1 ELSE 0 END)
                AS ip_block_24h,
            sum(CASE WHEN ev.kind = 'cluster' AND ev.created_at >= :day_ago THEN 1 ELSE 0 END)
                AS cluster_24h,
            max(CASE WHEN ev.kind = 'device' THEN 1 ELSE 0 END) AS on_device,
            max(CASE WHEN ev.kind = 'ip_block' THEN 1 ELSE 0 END) AS on_ip_block,
            max(CASE WHEN ev.kind = 'cluster' THEN 1 ELSE 0 END) AS on_cluster,
            max(CASE WHEN ev.created_at >= :six_hours_ago THEN 1 ELSE 0 END) AS in_6h,
            max(CASE WHEN ev.created_at >= :week_ago THEN 1 ELSE 0 END) AS in_7d
        FROM ({_EVENTS}) ev
        GROUP BY ev.order_id, ev.shopper_id
    ) o
"""
# The shopper's own orders at the merchant in the last 6 hours, [six_hours_ago, now): the
# pair's clock hours from the one holding the window's start to the current one
# (``risk_shopper_merchant_hours``, at most 7 rows), less the facts of the first hour before the
# window's start and those of the current hour from ``now`` on (two ranges of
# ``ix_risk_order_facts_merchant_shopper``, the second empty but for orders dated ahead).
_PAIR_EDGE = """
    SELECT count(*) AS orders, coalesce(sum(f.amount_minor), 0) AS amount FROM risk_order_facts f
    WHERE f.merchant_id = :merchant_id AND f.shopper_id = :shopper_id
        AND f.created_at >= :{start} AND f.created_at < :{end}
"""
OWN_SPLIT = f"""
    SELECT hc.orders - eb.orders - ea.orders, hc.amount - eb.amount - ea.amount FROM (
        SELECT coalesce(sum(c.orders), 0) AS orders, coalesce(sum(c.amount_minor), 0) AS amount
        FROM risk_shopper_merchant_hours c
        WHERE c.shopper_id = :shopper_id AND c.merchant_id = :merchant_id
            AND c.hour >= :split_hour AND c.hour <= :hour_now
    ) hc
    CROSS JOIN ({_PAIR_EDGE.format(start="split_hour", end="six_hours_ago")}) eb
    CROSS JOIN ({_PAIR_EDGE.format(start="now", end="hour_after")}) ea
"""
# The merchant's and the platform's clock hours of the last 8 days (two key ranges).
HOURS = """
    SELECT
        sum(CASE WHEN q.scope = 'merchant' AND q.hour >= :hour_before THEN q.orders ELSE 0 END),
        sum(CASE WHEN q.scope = 'merchant' AND q.hour >= :day_start THEN q.orders ELSE 0 END),
        sum(CASE WHEN q.scope = 'merchant' AND q.hour < :day_start THEN q.orders ELSE 0 END),
        sum(CASE WHEN q.scope = 'market' AND q.hour >= :day_start THEN q.orders ELSE 0 END),
        sum(CASE WHEN q.scope = 'market' AND q.hour < :day_start THEN q.orders ELSE 0 END),
        sum(CASE WHEN q.scope = 'market' AND q.hour >= :day_start THEN q.amount_minor
            ELSE 0 END)
    FROM risk_hour_counts q
    WHERE ((q.scope = 'merchant' AND q.key = :merchant_id) OR (q.scope = 'market' AND q.key = ''))
        AND q.hour >= :week_start AND q.hour <= :hour_now
"""
# Columns the features statement gains (after its own), in order.
COLUMNS = (
    *(f"events_{name}" for name in EVENT_COUNT_NAMES),
    "own_orders_6h",
    "own_amount_6h",
    "merchant_2h",
    "merchant_24h",
    "merchant_week_before",
    "market_24h",
    "market_week_before",
    "market_amount_24h",
)
TIME_PARAMS = (
    "now",
    "six_hours_ago",
    "split_hour",
    "hour_after",
    "month_ago",
    "hour_now",
    "hour_before",
    "day_start",
    "week_start",
)


def select_list() -> str:
    """The signals' columns of the features statement's SELECT list: they come from its
    cross-joined subqueries ``q1``, ``q3`` and ``q2`` (``EVENT_COUNTS``, ``OWN_SPLIT``,
    ``HOURS``; the shopper's own orders at the merchant from its hour counts)."""
    return "q1.*, q3.*, q2.*"


def read_of(row: Any) -> SignalRead:
    """The signals' part of the features row."""
    return SignalRead(
        events=KeyEventCounts(
            *(int(getattr(row, f"events_{name}") or 0) for name in EVENT_COUNT_NAMES)
        ),
        own_orders_6h=int(row.own_orders_6h or 0),
        own_amount_6h=int(row.own_amount_6h or 0),
        merchant_2h=int(row.merchant_2h or 0),
        merchant_24h=int(row.merchant_24h or 0),
        merchant_week_before=int(row.merchant_week_before or 0),
        market_24h=int(row.market_24h or 0),
        market_week_before=int(row.market_week_before or 0),
        market_amount_24h=int(row.market_amount_24h or 0),
    )


def cluster_values(
    connection: Connection, parts: Mapping[str, Any], params: Any
) -> tuple[Any, ...]:
    """The signals' columns read by parts (a Citus cluster), in ``COLUMNS`` order."""
    events: list[tuple[Any, ...]] = []
    for kind in _EVENT_WINDOWS:
        for row in connection.execute(parts[f"events_{kind}"], params).all():
            in_6h, in_24h, in_7d = (
                int(row.created_at >= params[name])
                for name in ("six_hours_ago", "day_ago", "week_ago")
            )
            events.append((*tuple(row)[:6], in_6h, in_24h, in_7d))
    counts = count_events(
        events, shopper_id=params["shopper_id"], merchant_id=params["merchant_id"]
    )
    own = connection.execute(parts["own_split"], params).one()
    hours = connection.execute(parts["hours"], params).one()
    return (*astuple(counts), *own, *hours)


def cluster_statements() -> dict[str, str]:
    """The texts of the parts ``cluster_values`` runs."""
    return {
        **{
            f"events_{kind}": _KEY_EVENTS.format(kind=kind, since=since, limit=EVENTS_PER_KEY)
            for kind, since in _EVENT_WINDOWS.items()
        },
        "own_split": OWN_SPLIT,
        "hours": HOURS,
    }


# --- writes -------------------------------------------------------------------------------------


def _insert(dialect: str, table: Table) -> Any:
    return (postgresql if dialect == "postgresql" else sqlite).insert(table)


_EVENTS_TABLE = cast(Table, SignalEvent.__table__)
_HOURS_TABLE = cast(Table, HourCounter.__table__)
_HOUR_KEY = ["scope", "key", "hour", "stripe"]
_HOUR_COUNTS = ("orders", "amount_minor")


def record(
    session: Session, events: Sequence[Mapping[str, Any]], hours: Sequence[Mapping[str, Any]]
) -> None:
    """Write a checkout's events and add its hours (the checkout's unit of work, any database)."""
    dialect = session.get_bind().dialect.name
    if events:
        session.execute(_insert(dialect, _EVENTS_TABLE).values(list(events)))
    if hours:
        # The market's and the merchant's hour: two keys, one statement.
        insert = _insert(dialect, _HOURS_TABLE).values([dict(row) for row in hours])
        session.execute(
            insert.on_conflict_do_update(
                index_elements=_HOUR_KEY,
                set_={n: _HOURS_TABLE.c[n] + insert.excluded[n] for n in _HOUR_COUNTS},
            )
        )


def writes(events: Sequence[Mapping[str, Any]], hours: Sequence[Mapping[str, Any]]) -> list[Part]:
    """``record`` as parts of the checkout's one PostgreSQL write (``kit.db.write_prepared``)."""
    parts: list[Part] = []
    if events:
        parts.append(rows_part(_EVENTS_TABLE, events))
    if hours:
        parts.append(rows_part(_HOURS_TABLE, hours, finish=_add_to_hour))
    return parts


def _add_to_hour(statement: postgresql.Insert) -> postgresql.Insert:
    """A checkout's order and amount added to its hour's row (or the row created)."""
    return statement.on_conflict_do_update(
        index_elements=_HOUR_KEY,
        set_={n: _HOURS_TABLE.c[n] + statement.excluded[n] for n in _HOUR_COUNTS},
    )
