"""All SQL of the checkout counters (``risk/counters.py``): the order facts, the merchant day
counters, the merchant buyer counters, the buyers' days and the shoppers' hours at a merchant."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from datetime import UTC, date, datetime
from typing import Any, cast

from sqlalchemy import (
    Date,
    Table,
    bindparam,
    delete,
    func,
    literal_column,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from usefirst.collections.repository import ever_delinquent, ever_delinquent_sql
from usefirst.kit.db import (
    AnySelect,
    Part,
    UTCDateTime,
    in_chunks,
    on_citus,
    pairs_in,
    rows_part,
    unnest_insert,
)
from usefirst.orders.models import Order
from usefirst.orders.repository import order_states_sql
from usefirst.risk.models import (
    MerchantBuyerCounter,
    MerchantBuyerDayCounter,
    MerchantDayCounter,
    OrderFact,
    ShopperMerchantHourCounter,
)

CHUNK = 500
# Orders the engine lent on (approved at some point), as opposed to held, declined or cancelled.
LENT_STATUSES = ("approved", "shipped", "delivered", "overdue", "repaid", "refunded", "charged_off")
# Orders whose repayment clock started: the base of a merchant's buyers' default rate.
DELIVERED_STATUSES = ("delivered", "overdue", "repaid", "refunded", "charged_off")
SHIPPED_STATUSES = ("shipped", *DELIVERED_STATUSES)
NOT_COUNTED_STATUSES = ("declined", "cancelled")
DEFAULTED_STATUSES = ("overdue", "charged_off")
# Rows one merchant's day is spread over (by shopper): concurrent checkouts at one merchant
# update different rows.
STRIPES = 4
DAY_COUNTS = (
    "lent_orders",
    "lent_amount_minor",
    "shipped_orders",
    "delivered_orders",
    "defaulted_orders",
    "refunded_orders",
)
BUYER_COUNTS = ("window_lent_bound",)
BUYER_DAY_COUNTS = ("lent_orders",)
PAIR_HOUR_COUNTS = ("orders", "amount_minor")


@dataclass(frozen=True)
class FactFlags:
    is_lent: int
    is_amount_counted: int
    is_shipped: int
    is_delivered: int
    is_defaulted: int
    is_refunded: int

    @classmethod
    def none(cls) -> FactFlags:
        return cls(0, 0, 0, 0, 0, 0)

    def minus(self, other: FactFlags) -> FactFlags:
        return FactFlags(*(a - b for a, b in zip(astuple(self), astuple(other), strict=True)))

    def as_tuple(self) -> tuple[int, ...]:
        return astuple(self)


FLAG_NAMES = tuple(field.name for field in fields(FactFlags))
FACT_COLUMNS = (
    "shopper_id",
    "order_id",
    "merchant_id",
    "created_at",
    "amount_minor",
    "device_id",
    *FLAG_NAMES,
)


class CounterRepository:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    def _insert(self, table: Any) -> Any:
        # Both dialects' inserts have on_conflict_do_update and excluded.
        module = postgresql if self.dialect == "postgresql" else sqlite
        return module.insert(table)

    # --- reads ------------------------------------------------------------------------------

    def facts(
        self, keys: Sequence[tuple[str, str]]
    ) -> tuple[dict[tuple[str, str], FactFlags], set[tuple[str, str]]]:
        """The orders' facts (those that have one), and which of the orders collections ever
        counted delinquent: one read."""
        found: dict[tuple[str, str], FactFlags] = {}
        delinquent: set[tuple[str, str]] = set()
        for chunk in in_chunks(self.session, keys, size=CHUNK):
            rows = self.session.execute(self.facts_statement(chunk, session=self.session)).all()
            more_found, more_delinquent = self.read_facts([tuple(row) for row in rows])
            found.update(more_found)
            delinquent.update(more_delinquent)
        return found, delinquent

    @staticmethod
    def facts_statement(
        keys: Sequence[tuple[str, str]], *, session: Session | None = None
    ) -> AnySelect:
        """``facts`` of the orders as a statement: by default with the keys as a literal list
        (a few orders, sent with other reads); with ``session``, as ``kit.db.pairs_in`` lists
        them on that session's database (two bound arrays on PostgreSQL), for any number of
        keys (``in_chunks`` of them elsewhere)."""
        if session is not None:
            return _facts_select().where(pairs_in(session, Order.shopper_id, Order.id, keys))
        return _facts_select().where(tuple_(Order.shopper_id, Order.id).in_(keys))

    @staticmethod
    def shopper_facts_statement(
        shopper_id: str, statuses: Sequence[str], order_id: str
    ) -> AnySelect:
        """``facts`` of the shopper's orders in ``statuses`` and of the order ``order_id`` (the
        shopper's), as a statement to send with other reads."""
        return _facts_select().where(
            Order.shopper_id == shopper_id, Order.status.in_(statuses) | (Order.id == order_id)
        )

    @staticmethod
    def read_facts(
        rows: Sequence[Sequence[Any]],
    ) -> tuple[dict[tuple[str, str], FactFlags], set[tuple[str, str]]]:
        """What ``facts_statement`` found, as ``facts`` gives it."""
        found: dict[tuple[str, str], FactFlags] = {}
        delinquent: set[tuple[str, str]] = set()
        for row in rows:
            key = (row[0], row[1])
            if row[2]:
                delinquent.add(key)
            if row[3] is not None:
                found[key] = FactFlags(*row[4:])
        return found, delinquent

    def top_buyer_exact(self, merchant_id: str, since: datetime) -> int:
        """The most lent orders of one shopper at the merchant since ``since``, counted."""
        count = func.count().label("orders")
        value = self.session.scalar(
            select(count)
            .where(
                OrderFact.merchant_id == merchant_id,
                OrderFact.created_at >= since,
                OrderFact.is_lent == 1,
            )
            .group_by(OrderFact.shopper_id)
            .order_by(count.desc())
            .limit(1)
        )
        return int(value or 0)

    # --- writes -----------------------------------------------------------------------------

    @staticmethod
    def new_order_params(
        shopper_id: str,
        order_id: str,
        merchant_id: str,
        created_at: datetime,
        amount_minor: int,
        device_id: str | None,
        flags: FactFlags,
        *,
        day: date,
        hour: datetime,
        stripe: int,
        counts_in_window: bool,
    ) -> dict[str, Any]:
        """What counting a new order writes: its fact's columns, and what it adds to its
        merchant's day and to its buyer."""
        params: dict[str, Any] = dict(
            zip(
                FACT_COLUMNS,
                (
                    shopper_id,
                    order_id,
                    merchant_id,
                    created_at,
                    amount_minor,
                    device_id,
                    *flags.as_tuple(),
                ),
                strict=True,
            )
        )
        params.update(
            day=day,
            hour=hour,
            stripe=stripe,
            lent_amount_minor=flags.is_lent * amount_minor,
            window_lent=flags.is_lent if counts_in_window else 0,
        )
        return params

    def record_new(self, params: dict[str, Any]) -> None:
        """An order's fact, its merchant's day and its buyer (``new_order_params``), on
        PostgreSQL in one statement."""
        if self.dialect == "postgresql":
            self.session.execute(_RECORD_NEW_POSTGRESQL, params)
            return
        for statement in _RECORD_NEW_SQLITE:
            self.session.execute(statement, params)

    @staticmethod
    def new_order_writes(params: dict[str, Any]) -> list[Part]:
        """``record_new`` as parts of a larger PostgreSQL statement (the checkout's one write,
        ``kit.db.write_prepared``)."""
        day_row = {
            "merchant_id": params["merchant_id"],
            "day": params["day"],
            "stripe": params["stripe"],
            **dict(
                zip(
                    DAY_COUNTS,
                    (
                        params["is_lent"],
                        params["lent_amount_minor"],
                        params["is_shipped"],
                        params["is_delivered"],
                        params["is_defaulted"],
                        params["is_refunded"],
                    ),
                    strict=True,
                )
            ),
        }
        buyer_row = {
            "merchant_id": params["merchant_id"],
            "shopper_id": params["shopper_id"],
            "window_lent_bound": params["window_lent"],
        }
        buyer_day = [
            {
                "merchant_id": params["merchant_id"],
                "shopper_id": params["shopper_id"],
                "day": params["day"],
                "lent_orders": params["window_lent"],
            }
        ]
        return [
            rows_part(
                cast(Table, OrderFact.__table__), [{name: params[name] for name in FACT_COLUMNS}]
            ),
            rows_part(cast(Table, MerchantDayCounter.__table__), [day_row], finish=_add_to_day),
            rows_part(
                cast(Table, MerchantBuyerCounter.__table__), [buyer_row], finish=_add_to_buyer
            ),
            rows_part(_PAIR_HOURS_TABLE, [_pair_hour_row(params)], finish=_add_to_pair_hour),
            # Only an order lent in the window counts in its buyer's day.
            *(
                [rows_part(_BUYER_DAYS_TABLE, buyer_day, finish=_add_to_buyer_day)]
                if params["window_lent"]
                else []
            ),
        ]

    def apply_changes(
        self,
        facts: Sequence[tuple[Any, ...]],
        days: Sequence[tuple[tuple[str, date, int], Counter[str]]],
        buyers: Sequence[tuple[tuple[str, str], Counter[str]]],
        buyer_days: Sequence[tuple[tuple[str, str, date], Counter[str]]],
        pair_hours: Sequence[tuple[tuple[str, str, datetime], Counter[str]]],
    ) -> None:
        """Write the changed facts and add the deltas to the day and buyer counters (rows in
        key order, so concurrent writers lock them in the same order). On PostgreSQL one
        statement (data-modifying CTEs): each table's rows as one array per column, so the
        statement is compiled once whatever the rows (the sweep's thousands of orders spent most
        of a second compiling and binding one parameter per value); on a Citus coordinator and
        on SQLite, rows of at most ``CHUNK`` to a statement."""
        fact_rows, day_rows, buyer_rows, buyer_day_rows = _change_tables(
            facts, days, buyers, buyer_days
        )
        hour_rows = _pair_hour_rows(pair_hours)
        if self.dialect == "postgresql" and not on_citus(self.session.connection()):
            statements = [
                unnest_insert(cast(Table, model.__table__), rows, finish=finish)
                for model, rows, finish in (
                    (OrderFact, fact_rows, _update_flags),
                    (MerchantDayCounter, day_rows, _add_to_day),
                    (MerchantBuyerCounter, buyer_rows, _add_to_buyer),
                    (MerchantBuyerDayCounter, buyer_day_rows, _add_to_buyer_day),
                    (ShopperMerchantHourCounter, hour_rows, _add_to_pair_hour),
                )
                if rows
            ]
        else:
            statements = [
                *self._fact_upserts(fact_rows),
                *self._additions(MerchantDayCounter, day_rows, ["merchant_id", "day", "stripe"]),
                *self._additions(MerchantBuyerCounter, buyer_rows, ["merchant_id", "shopper_id"]),
                *self._additions(MerchantBuyerDayCounter, buyer_day_rows, _BUYER_DAY_KEY),
                *self._additions(ShopperMerchantHourCounter, hour_rows, _PAIR_HOUR_KEY),
            ]
        if self.dialect == "postgresql" and len(statements) > 1:
            # Every CTE is read by the outer SELECT: SQLAlchemy renders only CTEs in use.
            parts = [
                statement.returning(literal_column("1")).cte(f"write_{index}")
                for index, statement in enumerate(statements)
            ]
            self.session.execute(
                select(
                    *(select(func.count()).select_from(part).scalar_subquery() for part in parts)
                )
            )
            return
        for statement in statements:
            self.session.execute(statement)

    @staticmethod
    def change_parts(
        facts: Sequence[tuple[Any, ...]],
        days: Sequence[tuple[tuple[str, date, int], Counter[str]]],
        buyers: Sequence[tuple[tuple[str, str], Counter[str]]],
        buyer_days: Sequence[tuple[tuple[str, str, date], Counter[str]]],
        pair_hours: Sequence[tuple[tuple[str, str, datetime], Counter[str]]],
    ) -> list[Part]:
        """``apply_changes`` (a few rows: one chunk) as parts of a larger PostgreSQL statement,
        in the reverse of its order (pair hours, buyer days, buyers, days, facts):
        unreferenced parts run last to first."""
        fact_rows, day_rows, buyer_rows, buyer_day_rows = _change_tables(
            facts, days, buyers, buyer_days
        )
        hour_rows = _pair_hour_rows(pair_hours)
        if max(len(fact_rows), len(day_rows), len(buyer_rows), len(buyer_day_rows)) > CHUNK:
            raise ValueError("change_parts writes one chunk; apply_changes writes more")
        parts: list[Part] = []
        if hour_rows:
            parts.append(rows_part(_PAIR_HOURS_TABLE, hour_rows, finish=_add_to_pair_hour))
        if buyer_day_rows:
            parts.append(rows_part(_BUYER_DAYS_TABLE, buyer_day_rows, finish=_add_to_buyer_day))
        if buyer_rows:
            parts.append(
                rows_part(
                    cast(Table, MerchantBuyerCounter.__table__), buyer_rows, finish=_add_to_buyer
                )
            )
        if day_rows:
            parts.append(
                rows_part(cast(Table, MerchantDayCounter.__table__), day_rows, finish=_add_to_day)
            )
        if fact_rows:
            parts.append(
                rows_part(cast(Table, OrderFact.__table__), fact_rows, finish=_update_flags)
            )
        return parts

    def _fact_upserts(self, rows: list[dict[str, Any]]) -> list[Any]:
        statements = []
        for start in range(0, len(rows), CHUNK):
            statements.append(
                _update_flags(self._insert(OrderFact).values(rows[start : start + CHUNK]))
            )
        return statements

    def _additions(self, table: Any, rows: list[dict[str, Any]], key: list[str]) -> list[Any]:
        counts = [name for name in rows[0] if name not in key] if rows else []
        statements = []
        for start in range(0, len(rows), CHUNK):
            insert = self._insert(table).values(rows[start : start + CHUNK])
            statements.append(
                insert.on_conflict_do_update(
                    index_elements=key,
                    set_={n: getattr(table, n) + insert.excluded[n] for n in counts},
                )
            )
        return statements

    def refresh_window_bounds(self, window_start: datetime) -> int:
        # The buyers' days the window has left (its edge day included: read from the facts)
        # are never read again.
        self.session.execute(
            delete(MerchantBuyerDayCounter).where(
                MerchantBuyerDayCounter.day <= window_start.astimezone(UTC).date()
            )
        )
        if on_citus(self.session.connection()):
            return self._refresh_window_bounds_by_parts(window_start)
        exact = (
            select(func.count())
            .where(
                OrderFact.merchant_id == MerchantBuyerCounter.merchant_id,
                OrderFact.shopper_id == MerchantBuyerCounter.shopper_id,
                OrderFact.created_at >= window_start,
                OrderFact.is_lent == 1,
            )
            .scalar_subquery()
        )
        result = self.session.execute(
            update(MerchantBuyerCounter)
            .where(MerchantBuyerCounter.window_lent_bound > 0)
            .where(MerchantBuyerCounter.window_lent_bound != exact)
            .values(window_lent_bound=exact)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def _refresh_window_bounds_by_parts(self, window_start: datetime) -> int:
        """``refresh_window_bounds`` on a Citus cluster, which does not plan its correlated
        count (buyer counters are sharded by merchant, facts by shopper): the bounds and the
        exact counts read apart, each changed bound written by its key (one shard each)."""
        exact = {
            (merchant_id, shopper_id): int(count)
            for merchant_id, shopper_id, count in self.session.execute(
                select(OrderFact.merchant_id, OrderFact.shopper_id, func.count())
                .where(OrderFact.created_at >= window_start, OrderFact.is_lent == 1)
                .group_by(OrderFact.merchant_id, OrderFact.shopper_id)
            )
        }
        changes = [
            {
                "merchant": merchant_id,
                "shopper": shopper_id,
                "bound": exact.get((merchant_id, shopper_id), 0),
            }
            for merchant_id, shopper_id, bound in self.session.execute(
                select(
                    MerchantBuyerCounter.merchant_id,
                    MerchantBuyerCounter.shopper_id,
                    MerchantBuyerCounter.window_lent_bound,
                ).where(MerchantBuyerCounter.window_lent_bound > 0)
            )
            if bound != exact.get((merchant_id, shopper_id), 0)
        ]
        if changes:
            # Core (not the ORM's bulk update by primary key): one statement, many parameter sets.
            table = cast(Table, MerchantBuyerCounter.__table__)
            self.session.connection().execute(
                update(table)
                .where(
                    table.c.merchant_id == bindparam("merchant"),
                    table.c.shopper_id == bindparam("shopper"),
                )
                .values(window_lent_bound=bindparam("bound")),
                changes,
            )
        return len(changes)

    def rebuild(self, *, window_start: datetime, hours_from: datetime) -> int:
        """Every counter afresh from the orders, in five set-based statements (the shoppers'
        hours from ``hours_from`` on: the older ones are never read)."""
        for table in (
            ShopperMerchantHourCounter,
            MerchantBuyerDayCounter,
            MerchantBuyerCounter,
            MerchantDayCounter,
            OrderFact,
        ):
            self.session.execute(delete(table))
        statements = _REBUILD[self.dialect]
        inserted = self.session.execute(statements[0])
        self.session.execute(statements[1])
        self.session.execute(statements[2], {"window_start": window_start})
        # The days after the window's edge day (the ones read).
        self.session.execute(statements[3], {"edge_day": window_start.astimezone(UTC).date()})
        self.session.execute(statements[4], {"hours_from": hours_from})
        return int(inserted.rowcount or 0)  # type: ignore[attr-defined]


def _sql_list(values: Sequence[str]) -> str:
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"


def _flags_sql() -> str:
    # The same classification as counters.flags_of, over the orders' states (``o``).
    delivered, shipped = _sql_list(DELIVERED_STATUSES), _sql_list(SHIPPED_STATUSES)
    return (
        f"CASE WHEN o.status IN {_sql_list(LENT_STATUSES)} THEN 1 ELSE 0 END,"
        f" CASE WHEN o.status IN {_sql_list(NOT_COUNTED_STATUSES)} THEN 0 ELSE 1 END,"
        f" CASE WHEN o.status IN {shipped} THEN 1 ELSE 0 END,"
        f" CASE WHEN o.status IN {delivered} THEN 1 ELSE 0 END,"
        f" CASE WHEN o.status IN {delivered} AND (o.status IN {_sql_list(DEFAULTED_STATUSES)}"
        f" OR {ever_delinquent_sql('o')}) THEN 1 ELSE 0 END,"
        f" CASE WHEN o.status IN {shipped} AND o.refunded_minor > 0 THEN 1 ELSE 0 END"
    )


def _rebuild_statements(
    *, day_of: str, stripe_of: str, hour_of: str
) -> tuple[Any, Any, Any, Any, Any]:
    facts = text(
        f"INSERT INTO risk_order_facts ({', '.join(FACT_COLUMNS)})"
        " SELECT o.shopper_id, o.id, o.merchant_id, o.created_at, o.amount_minor, o.device_id,"
        f" {_flags_sql()} FROM {order_states_sql()} o"
    )
    days = text(
        f"INSERT INTO risk_merchant_days (merchant_id, day, stripe, {', '.join(DAY_COUNTS)})"
        f" SELECT f.merchant_id, {day_of}, {stripe_of}, sum(f.is_lent),"
        " sum(f.is_lent * f.amount_minor), sum(f.is_shipped), sum(f.is_delivered),"
        " sum(f.is_defaulted), sum(f.is_refunded)"
        f" FROM risk_order_facts f GROUP BY f.merchant_id, {day_of}, {stripe_of}"
    )
    buyers = text(
        "INSERT INTO risk_merchant_buyers (merchant_id, shopper_id, window_lent_bound)"
        " SELECT f.merchant_id, f.shopper_id, count(*) FROM risk_order_facts f"
        " WHERE f.created_at >= :window_start AND f.is_lent = 1"
        " GROUP BY f.merchant_id, f.shopper_id"
    ).bindparams(bindparam("window_start", type_=UTCDateTime()))
    buyer_days = text(
        "INSERT INTO risk_merchant_buyer_days (merchant_id, shopper_id, day, lent_orders)"
        f" SELECT f.merchant_id, f.shopper_id, {day_of}, count(*) FROM risk_order_facts f"
        f" WHERE f.is_lent = 1 AND {day_of} > :edge_day"
        f" GROUP BY f.merchant_id, f.shopper_id, {day_of}"
    ).bindparams(bindparam("edge_day", type_=Date()))
    pair_hours = text(
        "INSERT INTO risk_shopper_merchant_hours (shopper_id, merchant_id, hour, orders,"
        f" amount_minor) SELECT f.shopper_id, f.merchant_id, {hour_of}, count(*),"
        " sum(f.amount_minor) FROM risk_order_facts f WHERE f.created_at >= :hours_from"
        f" GROUP BY f.shopper_id, f.merchant_id, {hour_of}"
    ).bindparams(bindparam("hours_from", type_=UTCDateTime()))
    return facts, days, buyers, buyer_days, pair_hours


_REBUILD = {
    "postgresql": _rebuild_statements(
        day_of="CAST(f.created_at AT TIME ZONE 'UTC' AS date)",
        stripe_of=f"ascii(right(f.shopper_id, 1)) % {STRIPES}",
        hour_of="date_trunc('hour', f.created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    ),
    "sqlite": _rebuild_statements(
        day_of="date(f.created_at)",
        stripe_of=f"unicode(substr(f.shopper_id, -1)) % {STRIPES}",
        # SQLite stores UTC times as text, "YYYY-MM-DD HH:MM:SS.ffffff".
        hour_of="strftime('%Y-%m-%d %H:00:00.000000', f.created_at)",
    ),
}

_FACT_VALUES = ", ".join(f":{name}" for name in FACT_COLUMNS)
_DAY_INSERT = (
    f"INSERT INTO risk_merchant_days (merchant_id, day, stripe, {', '.join(DAY_COUNTS)})"
    " VALUES (:merchant_id, :day, :stripe, :is_lent, :lent_amount_minor, :is_shipped,"
    " :is_delivered, :is_defaulted, :is_refunded)"
    " ON CONFLICT (merchant_id, day, stripe) DO UPDATE SET "
    + ", ".join(f"{n} = risk_merchant_days.{n} + excluded.{n}" for n in DAY_COUNTS)
)
_BUYER_INSERT = (
    "INSERT INTO risk_merchant_buyers (merchant_id, shopper_id, window_lent_bound)"
    " VALUES (:merchant_id, :shopper_id, :window_lent)"
    " ON CONFLICT (merchant_id, shopper_id) DO UPDATE SET"
    " window_lent_bound = risk_merchant_buyers.window_lent_bound + excluded.window_lent_bound"
)
# Only an order lent in the window counts in its buyer's day (SELECT … WHERE: no row else).
_BUYER_DAY_INSERT = (
    "INSERT INTO risk_merchant_buyer_days (merchant_id, shopper_id, day, lent_orders)"
    " SELECT :merchant_id, :shopper_id, :day, :window_lent WHERE :window_lent > 0"
    " ON CONFLICT (merchant_id, shopper_id, day) DO UPDATE SET"
    " lent_orders = risk_merchant_buyer_days.lent_orders + excluded.lent_orders"
)
_PAIR_HOUR_INSERT = (
    "INSERT INTO risk_shopper_merchant_hours (shopper_id, merchant_id, hour, orders,"
    " amount_minor) VALUES (:shopper_id, :merchant_id, :hour, 1, :amount_minor)"
    " ON CONFLICT (shopper_id, merchant_id, hour) DO UPDATE SET"
    " orders = risk_shopper_merchant_hours.orders + excluded.orders,"
    " amount_minor = risk_shopper_merchant_hours.amount_minor + excluded.amount_minor"
)
_FACT_INSERT = f"INSERT INTO risk_order_facts ({', '.join(FACT_COLUMNS)}) VALUES ({_FACT_VALUES})"


def _bound(statement: str, *names: str) -> Any:
    return text(statement).bindparams(
        *(
            bindparam(name, type_=UTCDateTime() if name in ("created_at", "hour") else Date())
            for name in names
        )
    )


_RECORD_NEW_SQLITE = (
    _bound(_FACT_INSERT, "created_at"),
    _bound(_DAY_INSERT, "day"),
    text(_BUYER_INSERT),
    _bound(_BUYER_DAY_INSERT, "day"),
    _bound(_PAIR_HOUR_INSERT, "hour"),
)
# One statement: the five inserts as data-modifying CTEs (so a later fold of the checkout's
# writes into one round trip can take it whole).
_RECORD_NEW_POSTGRESQL = _bound(
    f"WITH fact AS ({_FACT_INSERT}), day AS ({_DAY_INSERT}), buyer AS ({_BUYER_INSERT}),"
    f" buyer_day AS ({_BUYER_DAY_INSERT}) {_PAIR_HOUR_INSERT}",
    "created_at",
    "day",
    "hour",
)


def _facts_select() -> AnySelect:
    """Orders with their facts (``read_facts`` reads the rows), for a ``where`` to come."""
    flag_columns = [getattr(OrderFact, name) for name in FLAG_NAMES]
    return select(
        Order.shopper_id,
        Order.id,
        ever_delinquent(Order.shopper_id, Order.id).label("is_ever_delinquent"),
        OrderFact.order_id.label("fact_order_id"),
        *flag_columns,
    ).outerjoin(
        OrderFact,
        (OrderFact.shopper_id == Order.shopper_id) & (OrderFact.order_id == Order.id),
    )


def _change_tables(
    facts: Sequence[tuple[Any, ...]],
    days: Sequence[tuple[tuple[str, date, int], Counter[str]]],
    buyers: Sequence[tuple[tuple[str, str], Counter[str]]],
    buyer_days: Sequence[tuple[tuple[str, str, date], Counter[str]]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """``apply_changes``' arguments as rows of the four tables (days, buyers and buyer days
    whose deltas are all zero left out)."""
    day_rows = [
        {"merchant_id": m, "day": d, "stripe": s, **{n: delta[n] for n in DAY_COUNTS}}
        for (m, d, s), delta in days
        if any(delta[n] for n in DAY_COUNTS)
    ]
    buyer_rows = [
        {"merchant_id": m, "shopper_id": s, **{n: delta[n] for n in BUYER_COUNTS}}
        for (m, s), delta in buyers
        if any(delta[n] for n in BUYER_COUNTS)
    ]
    buyer_day_rows = [
        {"merchant_id": m, "shopper_id": s, "day": d, **{n: delta[n] for n in BUYER_DAY_COUNTS}}
        for (m, s, d), delta in buyer_days
        if any(delta[n] for n in BUYER_DAY_COUNTS)
    ]
    fact_rows = [dict(zip(FACT_COLUMNS, row, strict=True)) for row in facts]
    return fact_rows, day_rows, buyer_rows, buyer_day_rows


def _update_flags(statement: Any) -> Any:
    """An order's fact written afresh: its flags replaced (or the row created)."""
    return statement.on_conflict_do_update(
        index_elements=["shopper_id", "order_id"],
        set_={name: statement.excluded[name] for name in FLAG_NAMES},
    )


def _add_to_day(statement: postgresql.Insert) -> postgresql.Insert:
    """A new order's merchant-day counts added to the day's row (or the row created)."""
    table = cast(Table, MerchantDayCounter.__table__)
    return statement.on_conflict_do_update(
        index_elements=["merchant_id", "day", "stripe"],
        set_={n: table.c[n] + statement.excluded[n] for n in DAY_COUNTS},
    )


def _add_to_buyer(statement: postgresql.Insert) -> postgresql.Insert:
    """A new order's buyer count added to the merchant's buyer row (or the row created)."""
    table = cast(Table, MerchantBuyerCounter.__table__)
    return statement.on_conflict_do_update(
        index_elements=["merchant_id", "shopper_id"],
        set_={n: table.c[n] + statement.excluded[n] for n in BUYER_COUNTS},
    )


_BUYER_DAYS_TABLE = cast(Table, MerchantBuyerDayCounter.__table__)
_BUYER_DAY_KEY = ["merchant_id", "shopper_id", "day"]


def _add_to_buyer_day(statement: postgresql.Insert) -> postgresql.Insert:
    """Lent orders added to a buyer's day row (or the row created)."""
    return statement.on_conflict_do_update(
        index_elements=_BUYER_DAY_KEY,
        set_={n: _BUYER_DAYS_TABLE.c[n] + statement.excluded[n] for n in BUYER_DAY_COUNTS},
    )


_PAIR_HOURS_TABLE = cast(Table, ShopperMerchantHourCounter.__table__)
_PAIR_HOUR_KEY = ["shopper_id", "merchant_id", "hour"]


def _pair_hour_row(params: dict[str, Any]) -> dict[str, Any]:
    """A new order's hour at its merchant (``new_order_params``)."""
    return {
        "shopper_id": params["shopper_id"],
        "merchant_id": params["merchant_id"],
        "hour": params["hour"],
        "orders": 1,
        "amount_minor": params["amount_minor"],
    }


def _pair_hour_rows(
    pair_hours: Sequence[tuple[tuple[str, str, datetime], Counter[str]]],
) -> list[dict[str, Any]]:
    return [
        {"shopper_id": s, "merchant_id": m, "hour": h, **{n: delta[n] for n in PAIR_HOUR_COUNTS}}
        for (s, m, h), delta in pair_hours
        if any(delta[n] for n in PAIR_HOUR_COUNTS)
    ]


def _add_to_pair_hour(statement: postgresql.Insert) -> postgresql.Insert:
    """Orders and their amount added to a shopper's hour at a merchant (or the row created)."""
    return statement.on_conflict_do_update(
        index_elements=_PAIR_HOUR_KEY,
        set_={n: _PAIR_HOURS_TABLE.c[n] + statement.excluded[n] for n in PAIR_HOUR_COUNTS},
    )
