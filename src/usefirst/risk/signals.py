"""Online checkout signals (issue 19): velocity, neighbourhood, order splitting and the market's
pace, read at checkout by key from two counters kept by the checkout's own write
(``risk/models.py``):

- ``risk_signal_events``: one row per checkout under each of its keys (its device, its IP block,
  its address cluster; keyed hashes), with its shopper, merchant, amount and whether it was held
  (review, step-up) or declined. A key's recent rows are one primary-key range, at most
  ``EVENTS_PER_KEY`` of them (the most recent) are read;
- ``risk_hour_counts``: orders and amount per clock hour (UTC) of each merchant and of the whole
  platform, in stripes.

Definitions (every count is of checkouts placed strictly before ``now``; "others" leaves out the
shopper checking out; the clock-hour windows count whole UTC hours, the current one included):

- ``device_orders_24h``, ``ip_block_orders_24h``, ``address_cluster_orders_24h``: checkouts seen
  with the key in the last 24 h (any shopper): the key's velocity;
- ``device_shoppers_30d``, ``address_cluster_shoppers_30d``, ``ip_block_shoppers_24h``: distinct
  other shoppers seen with the key (30 d; 24 h for an IP block, which carrier NAT shares widely);
- ``neighbourhood_size``: distinct other shoppers of the three (the neighbours);
- ``neighbour_held_share_7d``: of the neighbours' checkouts seen under those keys in the last
  7 days, the share held or declined;
- ``neighbour_merchant_share``: of all the neighbours' checkouts read, the share at this merchant;
- ``linked_orders_same_merchant_6h``: orders at this merchant in the last 6 h by the shopper (its
  order facts) or by a neighbour (seen under a shared key); ``linked_amount_same_merchant_6h``:
  their amount plus this order's (an order split under a threshold);
- ``merchant_orders_2h``: the merchant's orders in the current and the previous clock hour;
- ``merchant_burst_24h``: the merchant's orders in the last 24 clock hours over (its orders in
  the 168 clock hours before them ÷ 7 + 1);
- ``market_day_ratio``: the same for the whole platform (a sale day lifts every order at once);
- ``amount_vs_market_average_24h``: this order's amount over the platform's mean order amount in
  the last 24 clock hours (0 when there was none).
"""

from __future__ import annotations

import functools
import ipaddress
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from usefirst.kit.crypto import FieldCipher

SIGNAL_NAMES: tuple[str, ...] = (
    "device_orders_24h",
    "ip_block_orders_24h",
    "address_cluster_orders_24h",
    "device_shoppers_30d",
    "ip_block_shoppers_24h",
    "address_cluster_shoppers_30d",
    "neighbourhood_size",
    "neighbour_held_share_7d",
    "neighbour_merchant_share",
    "linked_orders_same_merchant_6h",
    "linked_amount_same_merchant_6h",
    "merchant_orders_2h",
    "merchant_burst_24h",
    "market_day_ratio",
    "amount_vs_market_average_24h",
)
SIGNAL_GROUPS: dict[str, tuple[str, ...]] = {
    "link_velocity": SIGNAL_NAMES[0:6],
    "neighbourhood": SIGNAL_NAMES[6:9],
    "splitting": SIGNAL_NAMES[9:11],
    "merchant_velocity": SIGNAL_NAMES[11:13],
    "market_pace": SIGNAL_NAMES[13:15],
}

EVENT_KINDS = ("device", "ip_block", "cluster")
# How far back each kind's events are read, and the windows of the signals.
KEY_WINDOWS = {
    "device": timedelta(days=30),
    "cluster": timedelta(days=30),
    "ip_block": timedelta(hours=24),
}
EVENTS_PER_KEY = 500
SPLIT_WINDOW = timedelta(hours=6)
HELD_WINDOW = timedelta(days=7)
VELOCITY_WINDOW = timedelta(hours=24)
HELD_AT_CHECKOUT = ("review", "step_up", "declined")
MARKET_KEY = ""
HOUR_STRIPES = 4
HOUR = timedelta(hours=1)


def ip_block(ip: str | None) -> str | None:
    """The IPv4 /24 or IPv6 /48 an address is in (None for none or a malformed one)."""
    if not ip or not ip.strip():
        return None
    return _ip_block(ip)


# A checkout's IP is parsed into a network by ``ipaddress`` (some fifteen Python calls); the
# same addresses come back checkout after checkout, and the answer is a function of the text.
@functools.lru_cache(maxsize=4096)
def _ip_block(ip: str) -> str | None:
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def address_cluster_key(address: str) -> str:
    """One key for the ways people write one address: width folded, traditional 號 and 棟 as
    their simplified forms, 幢 as 栋, the room suffix 室 and all spaces and punctuation dropped."""
    folded = unicodedata.normalize("NFKC", address).casefold()
    folded = folded.replace("號", "号").replace("棟", "栋").replace("幢", "栋").replace("室", "")
    return "".join(
        character
        for character in folded
        if not unicodedata.category(character).startswith(("P", "Z", "C", "S"))
    )


def signal_keys(
    cipher: FieldCipher,
    *,
    device_hash: str | None,
    ip: str | None,
    shipping_address: str | None,
) -> dict[str, str]:
    """kind -> keyed hash of the checkout's keys (``device_hash`` is the link hash of the
    device: the same identifier)."""
    keys: dict[str, str] = {}
    if device_hash:
        keys["device"] = device_hash
    block = ip_block(ip)
    if block:
        keys["ip_block"] = cipher.blind_index(block, field="signal_ip_block")
    cluster = address_cluster_key(shipping_address) if shipping_address else ""
    if cluster:
        keys["cluster"] = cipher.blind_index(cluster, field="signal_address_cluster")
    return keys


def clock_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def read_params(now: datetime, keys: Mapping[str, str]) -> dict[str, Any]:
    """The bound values of the signals' read (``signal_repository``)."""
    hour_now = clock_hour(now)
    day_start = hour_now - 23 * HOUR
    return {
        "now": now,
        "six_hours_ago": now - SPLIT_WINDOW,
        # The splitting window's first clock hour, and the hour after the current one.
        "split_hour": clock_hour(now - SPLIT_WINDOW),
        "hour_after": hour_now + HOUR,
        "day_ago": now - VELOCITY_WINDOW,
        "week_ago": now - HELD_WINDOW,
        "month_ago": now - KEY_WINDOWS["device"],
        "signal_device": keys.get("device"),
        "signal_cluster": keys.get("cluster"),
        "signal_ip_block": keys.get("ip_block"),
        "hour_now": hour_now,
        "hour_before": hour_now - HOUR,
        "day_start": day_start,
        "week_start": day_start - timedelta(days=7),
    }


@dataclass(frozen=True)
class KeyEventCounts:
    """The checkout's events read under its keys (at most ``EVENTS_PER_KEY`` of each kind, the
    most recent), counted: what the signals need of them. One order is seen under up to three
    keys; the neighbours' orders (other shoppers') are counted once each. Counted in SQL by the
    features statement (``signal_repository.EVENT_COUNTS``), from the rows by ``count_events``
    where the statement is read in parts (a Citus cluster)."""

    # events in the last 24 h under each key (any shopper)
    device_orders_24h: int
    ip_block_orders_24h: int
    cluster_orders_24h: int
    # distinct other shoppers under each key, and under any of them
    device_shoppers: int
    ip_block_shoppers: int
    cluster_shoppers: int
    neighbours: int
    # the neighbours' orders: all, at this merchant, of the last 7 days, of those held
    neighbour_orders: int
    neighbour_orders_here: int
    neighbour_orders_7d: int
    neighbour_held_7d: int
    # the neighbours' orders at this merchant in the last 6 hours, and their amount
    neighbour_split_orders_6h: int
    neighbour_split_amount_6h: int


EVENT_COUNT_NAMES = tuple(field.name for field in fields(KeyEventCounts))


def count_events(
    events: Sequence[Sequence[Any]], *, shopper_id: str, merchant_id: str
) -> KeyEventCounts:
    """``KeyEventCounts`` of event rows ``[kind, shopper_id, order_id, merchant_id,
    amount_minor, is_held, in 6 h, in 24 h, in 7 d]``."""
    velocity = dict.fromkeys(EVENT_KINDS, 0)
    shoppers: dict[str, set[str]] = {kind: set() for kind in EVENT_KINDS}
    # The neighbours' orders, once each (one order is seen under up to three keys).
    neighbour_orders: dict[str, Sequence[Any]] = {}
    for event in events:
        kind, other, order_id, _merchant, _amount, _held, _in_6h, in_24h, _in_7d = event
        velocity[kind] += int(in_24h)
        if other != shopper_id:
            shoppers[kind].add(other)
            neighbour_orders[order_id] = event
    orders = neighbour_orders.values()
    week = [event for event in orders if event[8]]
    split = [event for event in orders if event[6] and event[3] == merchant_id]
    return KeyEventCounts(
        device_orders_24h=velocity["device"],
        ip_block_orders_24h=velocity["ip_block"],
        cluster_orders_24h=velocity["cluster"],
        device_shoppers=len(shoppers["device"]),
        ip_block_shoppers=len(shoppers["ip_block"]),
        cluster_shoppers=len(shoppers["cluster"]),
        neighbours=len(shoppers["device"] | shoppers["ip_block"] | shoppers["cluster"]),
        neighbour_orders=len(neighbour_orders),
        neighbour_orders_here=sum(event[3] == merchant_id for event in orders),
        neighbour_orders_7d=len(week),
        neighbour_held_7d=sum(int(event[5]) for event in week),
        neighbour_split_orders_6h=len(split),
        neighbour_split_amount_6h=sum(int(event[4]) for event in split),
    )


@dataclass(frozen=True)
class SignalRead:
    """What the checkout's read returns for the signals."""

    events: KeyEventCounts
    own_orders_6h: int
    own_amount_6h: int
    merchant_2h: int
    merchant_24h: int
    merchant_week_before: int
    market_24h: int
    market_week_before: int
    market_amount_24h: int


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0


def signal_values(
    read: SignalRead, *, shopper_id: str, merchant_id: str, amount_minor: int
) -> dict[str, float]:
    """The signals of a checkout from its read (``shopper_id`` and ``merchant_id`` are those
    the read was counted for)."""
    events = read.events
    return {
        "device_orders_24h": float(events.device_orders_24h),
        "ip_block_orders_24h": float(events.ip_block_orders_24h),
        "address_cluster_orders_24h": float(events.cluster_orders_24h),
        "device_shoppers_30d": float(events.device_shoppers),
        "ip_block_shoppers_24h": float(events.ip_block_shoppers),
        "address_cluster_shoppers_30d": float(events.cluster_shoppers),
        "neighbourhood_size": float(events.neighbours),
        "neighbour_held_share_7d": _ratio(events.neighbour_held_7d, events.neighbour_orders_7d),
        "neighbour_merchant_share": _ratio(events.neighbour_orders_here, events.neighbour_orders),
        "linked_orders_same_merchant_6h": float(
            read.own_orders_6h + events.neighbour_split_orders_6h
        ),
        "linked_amount_same_merchant_6h": float(
            read.own_amount_6h + events.neighbour_split_amount_6h + amount_minor
        ),
        "merchant_orders_2h": float(read.merchant_2h),
        "merchant_burst_24h": read.merchant_24h / (read.merchant_week_before / 7 + 1),
        "market_day_ratio": read.market_24h / (read.market_week_before / 7 + 1),
        "amount_vs_market_average_24h": _ratio(
            amount_minor * read.market_24h, read.market_amount_24h
        ),
    }


def event_rows(
    *,
    keys: Mapping[str, str],
    shopper_id: str,
    order_id: str,
    merchant_id: str,
    amount_minor: int,
    status: str,
    created_at: datetime,
) -> list[dict[str, Any]]:
    """The checkout's rows of ``risk_signal_events``, one per key it has."""
    held = int(status in HELD_AT_CHECKOUT)
    return [
        {
            "kind": kind,
            "key_hash": keys[kind],
            "created_at": created_at,
            "order_id": order_id,
            "shopper_id": shopper_id,
            "merchant_id": merchant_id,
            "amount_minor": amount_minor,
            "is_held": held,
        }
        for kind in EVENT_KINDS
        if kind in keys
    ]


def hour_rows(
    *, shopper_id: str, merchant_id: str, amount_minor: int, created_at: datetime
) -> list[dict[str, Any]]:
    """What the checkout adds to ``risk_hour_counts``: its merchant's hour and the platform's."""
    hour = clock_hour(created_at)
    stripe = ord(shopper_id[-1]) % HOUR_STRIPES
    return [
        {
            "scope": scope,
            "key": key,
            "hour": hour,
            "stripe": stripe,
            "orders": 1,
            "amount_minor": amount_minor,
        }
        for scope, key in (("market", MARKET_KEY), ("merchant", merchant_id))
    ]
