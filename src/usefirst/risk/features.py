"""Checkout features, read inside the checkout transaction by key from one indexed statement
(one round trip on PostgreSQL) over risk's counters (``risk/counters.py``): one row with the
shopper's own history (the shopper's order facts, a short per-key event list), the merchant's
window (its day counters and the facts of the window's edge day), the merchant's top buyer
(among the few highest window bounds), late instalments, known fraud, and the other shoppers
seen with this checkout's device, IP, address or phone, each with whether it is known fraud.

Every feature is a float so the rules and the model read one flat mapping. ``FEATURE_NAMES`` is
the fixed order the model is trained and served with.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import JSON, Date, Row, TextualSelect, bindparam, column, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from usefirst.credit.repository import CreditRepository
from usefirst.identity.validation import normalise_address
from usefirst.kit.crypto import FieldCipher, link_hash
from usefirst.kit.db import UTCDateTime, first_row_prepared, on_citus
from usefirst.risk import signal_repository, signals
from usefirst.risk.counters import (
    MERCHANT_WINDOW,
    TOP_BUYER_CANDIDATES,
    top_buyer_orders,
    utc_day,
)

FEATURE_NAMES: tuple[str, ...] = (
    # the order
    "order_amount_minor",
    "items_quantity_total",
    "items_resellable_share",
    # the shopper
    "shopper_account_age_days",
    "shopper_limit_use_after",
    "shopper_prior_orders",
    "shopper_amount_vs_average",
    "shopper_amount_vs_max",
    "shopper_orders_1h",
    "shopper_orders_24h",
    "shopper_orders_7d",
    "shopper_amount_24h_minor",
    "shopper_distinct_merchants_7d",
    "shopper_late_instalments",
    "shopper_new_device",
    # the merchant
    "merchant_age_days",
    "merchant_orders_90d",
    "merchant_amount_vs_average",
    "merchant_default_rate",
    "merchant_refund_rate",
    "merchant_top_buyer_share",
    "merchant_resellable_category",
    "merchant_on_watch",
    "merchant_known_fraud",
    # the pair
    "pair_prior_orders",
    # links
    "link_device_shoppers",
    "link_ip_shoppers",
    "link_phone_shoppers",
    "link_address_shoppers",
    "link_merchant_own",
    "link_known_fraud",
    # online signals (risk/signals.py)
    *signals.SIGNAL_NAMES,
)

DEFAULT_RESELLABLE_CATEGORIES: frozenset[str] = frozenset(
    {
        "phones",
        "mobile_phones",
        "smartphones",
        "gold",
        "precious_metals",
        "jewelry_gold",
        "gift_cards",
        "top_up_cards",
        "prepaid_cards",
        "game_cards",
        "手机",
        "黄金",
        "礼品卡",
        "充值卡",
    }
)

LINK_KINDS = ("device", "ip", "phone", "address")
LINKED_SHOPPERS_SHOWN = 20


@dataclass(frozen=True)
class Link:
    """An identifier of this checkout also seen elsewhere."""

    kind: str  # device | ip | phone | address
    shopper_count: int  # other shoppers seen with it
    shopper_ids: list[str]  # the first of them, for the analyst
    shared_with_merchant: bool
    with_known_fraud: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "shopper_count": self.shopper_count,
            "shopper_ids": self.shopper_ids,
            "shared_with_merchant": self.shared_with_merchant,
            "with_known_fraud": self.with_known_fraud,
        }


@dataclass(frozen=True)
class CheckoutFeatures:
    values: dict[str, float]
    links: list[Link]
    # kind -> keyed hash of this checkout's identifiers, to be recorded as observations.
    link_hashes: dict[str, str] = field(default_factory=dict)
    # kind -> keyed hash of the online signals' keys (device, IP block, address cluster).
    signal_keys: dict[str, str] = field(default_factory=dict)

    def vector(self) -> list[float]:
        return [self.values[name] for name in FEATURE_NAMES]


def identifier_hash(cipher: FieldCipher, kind: str, value: str) -> str:
    return link_hash(cipher, kind, value)


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0


def _days_between(earlier: datetime, later: datetime) -> float:
    return max((later - earlier).total_seconds(), 0.0) / 86_400.0


def compute_checkout_features(
    session: Session,
    *,
    shopper_id: str,
    merchant_id: str,
    amount_minor: int,
    items: Sequence[Mapping[str, Any]],
    device_id: str | None,
    ip: str | None,
    shipping_address: str | None,
    cipher: FieldCipher,
    now: datetime,
    credit_limit_minor: int | None = None,
    credit_used_minor: int | None = None,
    resellable_categories: frozenset[str] = DEFAULT_RESELLABLE_CATEGORIES,
) -> CheckoutFeatures:
    """Features of a checkout about to be decided. The order itself must not be stored yet: every
    history feature counts what happened before it. ``credit_used_minor`` is what the shopper
    used before this order (read from the credit line when not given)."""
    # The identifiers' hashes are bound into the one statement below.
    link_hashes: dict[str, str] = {}
    if device_id and device_id.strip():
        link_hashes["device"] = identifier_hash(cipher, "device", device_id)
    if ip and ip.strip():
        link_hashes["ip"] = identifier_hash(cipher, "ip", ip)
    normalised_address = normalise_address(shipping_address) if shipping_address else ""
    if normalised_address:
        link_hashes["address"] = cipher.blind_index(normalised_address, field="address")
    signal_keys = signals.signal_keys(
        cipher, device_hash=link_hashes.get("device"), ip=ip, shipping_address=shipping_address
    )
    # The statement runs on the connection (no ORM layer: the budget is a few ms), so pending
    # changes must reach the database first.
    session.flush()
    connection = session.connection()
    since = now - MERCHANT_WINDOW
    edge_day = utc_day(since)
    params = {
        "shopper_id": shopper_id,
        "merchant_id": merchant_id,
        "device_id": device_id,
        "hour_ago": now - _HOUR,
        "day_ago": now - _DAY,
        "week_ago": now - _WEEK,
        "since": since,
        "edge_day": edge_day,
        "edge_end": datetime.combine(edge_day + _DAY, datetime.min.time(), tzinfo=UTC),
        "device": link_hashes.get("device"),
        "ip": link_hashes.get("ip"),
        "address": link_hashes.get("address"),
        **signals.read_params(now, signal_keys),
    }
    history: Any
    if on_citus(connection):
        history = _cluster_features(connection, params)
    else:
        history = first_row_prepared(session, _FEATURES_STATEMENTS[connection.dialect.name], params)
    if history is None:
        raise LookupError("features need an existing shopper and merchant")
    if credit_limit_minor is None or credit_used_minor is None:
        line = CreditRepository(session).get(shopper_id)
        credit_limit_minor = line.limit_minor if line is not None else 0
        credit_used_minor = line.used_minor if line is not None else 0

    values = _order_features(amount_minor, items, resellable_categories)
    values.update(
        _shopper_features(
            history,
            amount_minor=amount_minor,
            device_id=device_id,
            credit_limit_minor=credit_limit_minor,
            credit_used_minor=credit_used_minor,
            now=now,
        )
    )
    top_buyer = top_buyer_orders(
        sorted(((int(b), int(e)) for b, e in history.top_candidates or ()), reverse=True),
        session=session,
        merchant_id=merchant_id,
        since=since,
    )
    values.update(
        _merchant_features(
            history,
            top_buyer_orders=top_buyer,
            amount_minor=amount_minor,
            resellable_categories=resellable_categories,
            now=now,
        )
    )
    link_hashes = {"phone": history.shopper_phone_hash, **link_hashes}
    links = _links(
        history.links or (),
        merchant_hashes={
            "phone": history.merchant_phone_hash,
            "address": history.merchant_address_hash,
        },
        link_hashes=link_hashes,
    )
    by_kind = {link.kind: link for link in links}
    for kind in LINK_KINDS:
        link = by_kind.get(kind)
        values[f"link_{kind}_shoppers"] = float(link.shopper_count) if link else 0.0
    values["link_merchant_own"] = float(sum(link.shared_with_merchant for link in links))
    values["link_known_fraud"] = float(sum(link.with_known_fraud for link in links))
    values["merchant_known_fraud"] = 1.0 if history.merchant_known_fraud else 0.0
    if history.shopper_known_fraud:
        # The shopper was in a confirmed-fraud case: the strongest link of all.
        values["link_known_fraud"] += 1.0
    values.update(
        signals.signal_values(
            signal_repository.read_of(history),
            shopper_id=shopper_id,
            merchant_id=merchant_id,
            amount_minor=amount_minor,
        )
    )
    missing = set(FEATURE_NAMES) - set(values)
    if missing:
        raise AssertionError(f"features not computed: {sorted(missing)}")
    return CheckoutFeatures(
        values={name: values[name] for name in FEATURE_NAMES},
        links=links,
        link_hashes=link_hashes,
        signal_keys=signal_keys,
    )


def _order_features(
    amount_minor: int, items: Sequence[Mapping[str, Any]], resellable: frozenset[str]
) -> dict[str, float]:
    quantity = 0
    resellable_minor = 0
    total_minor = 0
    for item in items:
        line_minor = int(item["quantity"]) * int(item["unit_price_minor"])
        quantity += int(item["quantity"])
        total_minor += line_minor
        if str(item["category"]).strip().casefold() in resellable:
            resellable_minor += line_minor
    return {
        "order_amount_minor": float(amount_minor),
        "items_quantity_total": float(quantity),
        "items_resellable_share": _ratio(resellable_minor, total_minor),
    }


# --- the statement ----------------------------------------------------------------------------
#
# Plain SQL, written once: no expression building, no "expanding" IN parameters, and
# SQLAlchemy caches the compiled form. SQLite and PostgreSQL
# run the same text but for the JSON aggregate of the links.


def _compact(statement: str) -> str:
    """One line, single spaces: shorter to send and to parse."""
    return " ".join(statement.split())


_HOUR, _DAY, _WEEK = timedelta(hours=1), timedelta(days=1), timedelta(days=7)
# The bound times (typed, so both databases compare them as stored).
_TIME_PARAMS = (
    "hour_ago",
    "day_ago",
    "week_ago",
    "since",
    "edge_end",
    *signal_repository.TIME_PARAMS,
)


# The statement's columns, in the order of its SELECT list: the result maps them by position.
_FEATURES_COLUMNS = (
    "shopper_created_at",
    "shopper_phone_hash",
    "merchant_created_at",
    "merchant_category",
    "merchant_status",
    "merchant_phone_hash",
    "merchant_address_hash",
    "lent_orders",
    "lent_amount_minor",
    "lent_max_minor",
    "orders_1h",
    "orders_24h",
    "orders_7d",
    "amount_24h_minor",
    "merchants_7d",
    "pair_lent_orders",
    "device_orders",
    "orders_seen",
    "book_lent_orders",
    "book_lent_amount_minor",
    "book_delivered",
    "book_defaulted",
    "book_shipped",
    "book_refunded",
    "edge_lent_orders",
    "edge_lent_amount",
    "edge_delivered",
    "edge_defaulted",
    "edge_shipped",
    "edge_refunded",
    "late_instalments",
    "top_candidates",
    "shopper_known_fraud",
    "merchant_known_fraud",
    "links",
    *signal_repository.COLUMNS,
)

# The statement's subqueries that also run alone on a Citus cluster: the three aggregates it
# cross joins (``h``, ``b``, ``e`` below) and the shoppers seen with the checkout's identifiers.
_SHOPPER_HISTORY = """
    SELECT sum(f.is_lent), sum(f.is_lent * f.amount_minor),
        max(CASE WHEN f.is_lent = 1 THEN f.amount_minor END),
        sum(CASE WHEN f.created_at >= :hour_ago THEN 1 ELSE 0 END),
        sum(CASE WHEN f.created_at >= :day_ago THEN 1 ELSE 0 END),
        sum(CASE WHEN f.created_at >= :week_ago THEN 1 ELSE 0 END),
        sum(CASE WHEN f.created_at >= :day_ago THEN f.is_amount_counted * f.amount_minor
            ELSE 0 END),
        count(DISTINCT CASE WHEN f.created_at >= :week_ago THEN f.merchant_id END),
        sum(CASE WHEN f.merchant_id = :merchant_id THEN f.is_lent ELSE 0 END),
        sum(CASE WHEN f.device_id = :device_id THEN 1 ELSE 0 END),
        count(*)
    FROM risk_order_facts f WHERE f.shopper_id = :shopper_id
"""
_MERCHANT_DAYS = """
    SELECT sum(d.lent_orders), sum(d.lent_amount_minor), sum(d.delivered_orders),
        sum(d.defaulted_orders), sum(d.shipped_orders), sum(d.refunded_orders)
    FROM risk_merchant_days d WHERE d.merchant_id = :merchant_id AND d.day > :edge_day
"""
_MERCHANT_EDGE = """
    SELECT sum(f.is_lent), sum(f.is_lent * f.amount_minor), sum(f.is_delivered),
        sum(f.is_defaulted), sum(f.is_shipped), sum(f.is_refunded)
    FROM risk_order_facts f
    WHERE f.merchant_id = :merchant_id AND f.created_at >= :since AND f.created_at < :edge_end
"""
# The other shoppers seen with the checkout's device, IP and address: one primary-key range of
# ``risk_link_values`` each (a shopper once per identifier, however many orders), at most
# LINKED_SHOPPERS_READ in all, so a hot key (a carrier NAT IP, a household device) costs no
# more than that whatever its history.
LINKED_SHOPPERS_READ = 1000
_LINK_VALUE_RANGE = """
    SELECT * FROM (SELECT kind, shopper_id FROM risk_link_values
        WHERE kind = '{kind}' AND value_hash = :{kind} AND shopper_id <> :shopper_id
        LIMIT {limit}) v_{kind}
"""
_OBSERVED_LINKS = (
    "SELECT kind, shopper_id FROM ("
    + " UNION ALL ".join(
        _LINK_VALUE_RANGE.format(kind=kind, limit=LINKED_SHOPPERS_READ)
        for kind in ("device", "ip", "address")
    )
    + f") linked LIMIT {LINKED_SHOPPERS_READ}\n"
)

# A buyer's lent orders at the merchant in its window (from ``since`` on): its day counts after
# the edge day, plus its facts of the edge day from the window's start on (one range of
# ``ix_risk_order_facts_merchant_shopper``). O(90 day rows + one day's orders), not one row per
# order; the same count as the facts' ``created_at >= :since AND is_lent = 1``.
_BUYER_DAYS = """
    SELECT coalesce(sum(d.lent_orders), 0) FROM risk_merchant_buyer_days d
    WHERE d.merchant_id = :merchant_id AND d.shopper_id = {buyer} AND d.day > :edge_day
"""
_BUYER_EDGE = """
    SELECT count(*) FROM risk_order_facts f
    WHERE f.merchant_id = :merchant_id AND f.shopper_id = {buyer} AND f.created_at >= :since
        AND f.created_at < :edge_end AND f.is_lent = 1
"""
_BUYER_WINDOW = f"({_BUYER_DAYS}) + ({_BUYER_EDGE})"

# One statement, one round trip, one row, every part read by key:
# - ``h``: the shopper's order facts (its primary key range: a short per-shopper event list);
# - ``b``: the merchant's day counters after the day the window starts in (at most 90 days of
#   at most STRIPES rows), ``e``: the facts of that edge day from the window's start on (one
#   range of ``ix_risk_order_facts_merchant_created``), so the window is exact to the instant;
# - the top buyer's candidates: the highest window bounds of the merchant's buyers, each with
#   its exact count (``counters.top_buyer_orders`` says why that suffices; ``_BUYER_WINDOW``);
# - late instalments, known fraud, and the linked shoppers folded into one JSON array of
#   ``[kind, shopper_id, known_fraud]`` (``risk_link_values``' primary key, one bounded range per
#   identifier; an absent identifier binds NULL and matches nothing), and other shoppers with
#   the shopper's phone;
# - the online signals: the events under the checkout's keys counted (``q1``), the shopper's
#   own orders at the merchant in the last 6 hours (``q3``), the hour counts (``q2``).
# ``h.*``, ``b.*``, ``e.*``, ``q1.*``, ``q3.*`` and ``q2.*`` are in the order written; the
# result maps by position.
# No row when the shopper or the merchant does not exist.
_FEATURES_SQL = f"""
SELECT s.created_at, s.phone_hash, m.created_at, m.category, m.status, m.phone_hash,
    m.address_hash, h.*, b.*, e.*,
    (SELECT count(*) FROM instalments i WHERE i.shopper_id = :shopper_id AND i.was_overdue),
    (SELECT {{links}}(c.window_lent_bound, ({_BUYER_WINDOW.format(buyer="c.shopper_id")})))
        FROM (SELECT shopper_id, window_lent_bound FROM risk_merchant_buyers
            WHERE merchant_id = :merchant_id AND window_lent_bound > 0
            ORDER BY window_lent_bound DESC LIMIT {TOP_BUYER_CANDIDATES}) c),
    EXISTS (SELECT 1 FROM risk_known_fraud k WHERE k.subject_id = :shopper_id),
    EXISTS (SELECT 1 FROM risk_known_fraud k WHERE k.subject_id = :merchant_id),
    (SELECT {{links}}(l.kind, l.shopper_id,
        EXISTS (SELECT 1 FROM risk_known_fraud k WHERE k.subject_id = l.shopper_id)))
    FROM (
        SELECT observed.kind, observed.shopper_id FROM (
{_OBSERVED_LINKS}        ) observed
        UNION ALL
        SELECT 'phone', phone.id FROM (
            SELECT id FROM shoppers WHERE phone_hash = s.phone_hash AND id <> :shopper_id
            LIMIT 200
        ) phone
    ) l), {{signals}}
FROM shoppers s
JOIN merchants m ON m.id = :merchant_id
CROSS JOIN (
{_SHOPPER_HISTORY}) h
CROSS JOIN (
{_MERCHANT_DAYS}) b
CROSS JOIN (
{_MERCHANT_EDGE}) e
CROSS JOIN (
{signal_repository.EVENT_COUNTS}) q1
CROSS JOIN (
{signal_repository.OWN_SPLIT}) q3
CROSS JOIN (
{signal_repository.HOURS}) q2
WHERE s.id = :shopper_id
"""

# The JSON aggregate of the link rows, per database (SQLite's gives "[]" for none, PostgreSQL's
# NULL).
_LINKS_AGGREGATE = {
    "postgresql": "json_agg(json_build_array",
    "sqlite": "json_group_array(json_array",
}


def _features_statement(links_aggregate: str) -> TextualSelect:
    return (
        text(
            _compact(
                _FEATURES_SQL.format(
                    links=links_aggregate,
                    signals=signal_repository.select_list(),
                )
            )
        )
        .bindparams(
            *(bindparam(name, type_=UTCDateTime()) for name in _TIME_PARAMS),
            bindparam("edge_day", type_=Date()),
        )
        # Every column, in order: the result then maps by position and its metadata is cached
        # with the compiled statement instead of being matched by name on each execution.
        .columns(
            *(
                column(name, UTCDateTime())
                if name.endswith("_created_at")
                else column(name, JSON())
                if name in ("links", "top_candidates")
                else column(name)
                for name in _FEATURES_COLUMNS
            )
        )
    )


_FEATURES_STATEMENTS: dict[str, TextualSelect] = {
    dialect: _features_statement(aggregate) for dialect, aggregate in _LINKS_AGGREGATE.items()
}


# --- on a Citus cluster -----------------------------------------------------------------------
#
# The one statement joins rows of different shards (the shopper's and the merchant's) with
# correlated subqueries, which Citus does not plan. There the same values are read by parts,
# each routed to one shard or fanned out as one simple query, and put in the statement's row.

_CLUSTER_COLUMNS_TYPES = {"created_at": UTCDateTime()}
_SIGNAL_EVENT_COLUMNS = (
    "kind",
    "shopper_id",
    "order_id",
    "merchant_id",
    "amount_minor",
    "is_held",
    "created_at",
)


def _part(statement: str, *columns: str) -> TextualSelect:
    names = set(_bound_names(statement))
    return (
        text(_compact(statement))
        .bindparams(
            *(bindparam(name, type_=UTCDateTime()) for name in _TIME_PARAMS if name in names),
            *((bindparam("edge_day", type_=Date()),) if "edge_day" in names else ()),
        )
        .columns(*(column(name, _CLUSTER_COLUMNS_TYPES.get(name)) for name in columns))
    )


def _bound_names(statement: str) -> list[str]:
    return [word.split()[0].rstrip(")") for word in statement.split(":")[1:]]


_CLUSTER_PARTS = {
    "shopper": _part(
        "SELECT created_at, phone_hash FROM shoppers WHERE id = :shopper_id",
        "created_at",
        "phone_hash",
    ),
    "merchant": _part(
        "SELECT created_at, category, status, phone_hash, address_hash FROM merchants"
        " WHERE id = :merchant_id",
        "created_at",
        "category",
        "status",
        "phone_hash",
        "address_hash",
    ),
    "history": _part(_SHOPPER_HISTORY),
    "days": _part(_MERCHANT_DAYS),
    "edge": _part(_MERCHANT_EDGE),
    "late": _part(
        "SELECT count(*) FROM instalments WHERE shopper_id = :shopper_id AND was_overdue"
    ),
    "candidates": _part(
        "SELECT shopper_id, window_lent_bound FROM risk_merchant_buyers"
        " WHERE merchant_id = :merchant_id AND window_lent_bound > 0"
        f" ORDER BY window_lent_bound DESC LIMIT {TOP_BUYER_CANDIDATES}"
    ),
    "candidate_days": _part(
        "SELECT shopper_id, sum(lent_orders) FROM risk_merchant_buyer_days"
        " WHERE merchant_id = :merchant_id AND shopper_id IN :candidates AND day > :edge_day"
        " GROUP BY shopper_id"
    ).bindparams(bindparam("candidates", expanding=True)),
    "candidate_edge": _part(
        "SELECT shopper_id, count(*) FROM risk_order_facts"
        " WHERE merchant_id = :merchant_id AND shopper_id IN :candidates"
        " AND created_at >= :since AND created_at < :edge_end AND is_lent = 1"
        " GROUP BY shopper_id"
    ).bindparams(bindparam("candidates", expanding=True)),
    "observed": _part(_OBSERVED_LINKS),
    "phone": _part(
        "SELECT id FROM shoppers WHERE phone_hash = :phone AND id <> :shopper_id LIMIT 200"
    ),
    "known_fraud": _part(
        "SELECT subject_id FROM risk_known_fraud WHERE subject_id IN :subjects"
    ).bindparams(bindparam("subjects", expanding=True)),
    **{
        name: _part(statement, *(_SIGNAL_EVENT_COLUMNS if name.startswith("events_") else ()))
        for name, statement in signal_repository.cluster_statements().items()
    },
}


def _cluster_features(connection: Connection, params: Mapping[str, Any]) -> Any:
    """The one statement's row (None without the shopper or the merchant), read by parts."""
    parts = _CLUSTER_PARTS
    shopper = connection.execute(parts["shopper"], params).first()
    merchant = connection.execute(parts["merchant"], params).first()
    if shopper is None or merchant is None:
        return None
    history = connection.execute(parts["history"], params).one()
    days = connection.execute(parts["days"], params).one()
    edge = connection.execute(parts["edge"], params).one()
    late = connection.execute(parts["late"], params).scalar()
    candidates = connection.execute(parts["candidates"], params).all()
    exact: Counter[str] = Counter()
    if candidates:
        chosen = {**params, "candidates": [row[0] for row in candidates]}
        for name in ("candidate_days", "candidate_edge"):
            for shopper_id, count in connection.execute(parts[name], chosen).all():
                exact[shopper_id] += int(count or 0)
    links = [tuple(row) for row in connection.execute(parts["observed"], params).all()]
    if shopper.phone_hash is not None:
        links += [
            ("phone", row[0])
            for row in connection.execute(
                parts["phone"], {**params, "phone": shopper.phone_hash}
            ).all()
        ]
    subjects = {params["shopper_id"], params["merchant_id"], *(other for _, other in links)}
    known = set(connection.execute(parts["known_fraud"], {"subjects": sorted(subjects)}).scalars())
    values = (
        shopper.created_at,
        shopper.phone_hash,
        *merchant,
        *history,
        *days,
        *edge,
        late,
        [(row[1], exact.get(row[0], 0)) for row in candidates] or None,
        params["shopper_id"] in known,
        params["merchant_id"] in known,
        [(kind, other, other in known) for kind, other in links] or None,
        *signal_repository.cluster_values(connection, parts, params),
    )
    return SimpleNamespace(**dict(zip(_FEATURES_COLUMNS, values, strict=True)))


def _shopper_features(
    history: Row[Any],
    *,
    amount_minor: int,
    device_id: str | None,
    credit_limit_minor: int,
    credit_used_minor: int,
    now: datetime,
) -> dict[str, float]:
    prior_orders = int(history.lent_orders or 0)
    prior_amount = int(history.lent_amount_minor or 0)
    prior_max = int(history.lent_max_minor or 0)
    average = prior_amount / prior_orders if prior_orders else 0.0
    orders_seen = int(history.orders_seen or 0)
    limit_use = _ratio(credit_used_minor + amount_minor, credit_limit_minor)
    return {
        "shopper_account_age_days": _days_between(history.shopper_created_at, now),
        "shopper_limit_use_after": limit_use,
        "shopper_prior_orders": float(prior_orders),
        "shopper_amount_vs_average": _ratio(amount_minor, average),
        "shopper_amount_vs_max": _ratio(amount_minor, prior_max),
        "shopper_orders_1h": float(history.orders_1h or 0),
        "shopper_orders_24h": float(history.orders_24h or 0),
        "shopper_orders_7d": float(history.orders_7d or 0),
        "shopper_amount_24h_minor": float(history.amount_24h_minor or 0),
        "shopper_distinct_merchants_7d": float(history.merchants_7d or 0),
        "pair_prior_orders": float(history.pair_lent_orders or 0),
        # A device never used by a shopper who has ordered before (a new shopper has no
        # "usual" device, so this stays 0 for a first order).
        "shopper_new_device": 1.0
        if device_id and orders_seen and not history.device_orders
        else 0.0,
        "shopper_late_instalments": float(history.late_instalments or 0),
    }


def _merchant_features(
    history: Row[Any],
    *,
    top_buyer_orders: int,
    amount_minor: int,
    resellable_categories: frozenset[str],
    now: datetime,
) -> dict[str, float]:
    orders = int(history.book_lent_orders or 0) + int(history.edge_lent_orders or 0)
    lent_amount = int(history.book_lent_amount_minor or 0) + int(history.edge_lent_amount or 0)
    average = lent_amount / orders if orders else 0.0
    delivered = int(history.book_delivered or 0) + int(history.edge_delivered or 0)
    defaulted = int(history.book_defaulted or 0) + int(history.edge_defaulted or 0)
    shipped = int(history.book_shipped or 0) + int(history.edge_shipped or 0)
    refunded = int(history.book_refunded or 0) + int(history.edge_refunded or 0)
    top_buyer_orders = top_buyer_orders if orders else 0
    return {
        "merchant_age_days": _days_between(history.merchant_created_at, now),
        "merchant_orders_90d": float(orders),
        "merchant_amount_vs_average": _ratio(amount_minor, average),
        "merchant_default_rate": _ratio(defaulted, delivered),
        "merchant_refund_rate": _ratio(refunded, shipped),
        "merchant_top_buyer_share": _ratio(top_buyer_orders, orders),
        "merchant_resellable_category": 1.0
        if history.merchant_category.casefold() in resellable_categories
        else 0.0,
        "merchant_on_watch": 1.0 if history.merchant_status == "on_watch" else 0.0,
    }


def _links(
    rows: Sequence[Sequence[Any]],
    *,
    merchant_hashes: Mapping[str, str | None],
    link_hashes: Mapping[str, str],
) -> list[Link]:
    """Other shoppers seen with this checkout's identifiers (``rows`` of ``[kind, shopper_id,
    known_fraud]``), whether the merchant registered the same phone or address, and which of
    them are known fraud."""
    shared: dict[str, set[str]] = {kind: set() for kind in link_hashes}
    known: set[str] = set()
    for kind, other, is_known_fraud in rows:
        shared[kind].add(other)
        if is_known_fraud:
            known.add(other)
    links = []
    for kind in LINK_KINDS:
        if kind not in link_hashes:
            continue
        others = shared[kind]
        merchant_hash = merchant_hashes.get(kind)
        with_merchant = merchant_hash is not None and merchant_hash == link_hashes[kind]
        if others or with_merchant:
            links.append(
                Link(
                    kind=kind,
                    shopper_count=len(others),
                    shopper_ids=sorted(others)[:LINKED_SHOPPERS_SHOWN],
                    shared_with_merchant=with_merchant,
                    with_known_fraud=bool(others & known),
                )
            )
    return links
