"""The oracle of the online signals (``usefirst.risk.signals``): each signal as a straightforward
aggregate over the orders table (every order placed before the checkout, its raw device, IP and
decrypted shipping address, its outcome at checkout), following the definitions in the module's
docstring; no counter is read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from usefirst.kit.crypto import FieldCipher
from usefirst.orders.repository import CHECKOUT_COLUMNS
from usefirst.risk.signals import (
    EVENTS_PER_KEY,
    HELD_AT_CHECKOUT,
    address_cluster_key,
    clock_hour,
    ip_block,
)


@dataclass(frozen=True)
class Past:
    order_id: str
    shopper_id: str
    merchant_id: str
    amount_minor: int
    created_at: datetime
    keys: dict[str, str]
    held: bool


def _keys(device_id: str | None, ip: str | None, address: str | None) -> dict[str, str]:
    keys: dict[str, str] = {}
    if device_id and device_id.strip():
        keys["device"] = device_id.strip().casefold()
    block = ip_block(ip)
    if block:
        keys["ip_block"] = block
    cluster = address_cluster_key(address) if address else ""
    if cluster:
        keys["cluster"] = cluster
    return keys


def history(session: Session, cipher: FieldCipher) -> list[Past]:
    rows = session.execute(select(*CHECKOUT_COLUMNS)).all()
    return [
        Past(
            order_id=row[0],
            shopper_id=row[1],
            merchant_id=row[2],
            amount_minor=int(row[3]),
            created_at=row[4],
            keys=_keys(
                row[5], row[6], cipher.decrypt(row[7], field="shipping_address") if row[7] else None
            ),
            held=row[8] in HELD_AT_CHECKOUT,
        )
        for row in rows
    ]


def _share(part: float, whole: float) -> float:
    return float(part) / float(whole) if whole else 0.0


def signals(
    past: Sequence[Past],
    *,
    shopper_id: str,
    merchant_id: str,
    amount_minor: int,
    device_id: str | None,
    ip: str | None,
    shipping_address: str | None,
    now: datetime,
) -> dict[str, float]:
    keys = _keys(device_id, ip, shipping_address)
    earlier = [order for order in past if order.created_at < now]
    windows = {
        "device": timedelta(days=30),
        "cluster": timedelta(days=30),
        "ip_block": timedelta(1),
    }
    seen: dict[str, list[Past]] = {}
    for kind, window in windows.items():
        under = sorted(
            (
                order
                for order in earlier
                if kind in keys
                and order.keys.get(kind) == keys[kind]
                and order.created_at >= now - window
            ),
            key=lambda order: (order.created_at, order.order_id),
            reverse=True,
        )
        seen[kind] = under[:EVENTS_PER_KEY]
    others = {
        kind: {order.shopper_id for order in orders} - {shopper_id} for kind, orders in seen.items()
    }
    neighbours = others["device"] | others["ip_block"] | others["cluster"]
    neighbour_orders = {
        order.order_id: order
        for orders in seen.values()
        for order in orders
        if order.shopper_id != shopper_id
    }
    week = [o for o in neighbour_orders.values() if o.created_at >= now - timedelta(days=7)]
    split_since = now - timedelta(hours=6)
    split = [
        o
        for o in earlier
        if o.merchant_id == merchant_id
        and o.created_at >= split_since
        and (o.shopper_id == shopper_id or o.order_id in neighbour_orders)
    ]
    hour_now = clock_hour(now)
    day_start = hour_now - timedelta(hours=23)
    week_start = day_start - timedelta(days=7)

    def hours(orders: Sequence[Past], start: datetime, end: datetime) -> list[Past]:
        # Whole clock hours from ``start`` up to, not including, ``end`` (every order of them).
        return [o for o in orders if start <= clock_hour(o.created_at) < end]

    at_merchant = [o for o in past if o.merchant_id == merchant_id]
    next_hour = hour_now + timedelta(hours=1)
    market_24h = hours(past, day_start, next_hour)
    market_before = hours(past, week_start, day_start)
    merchant_24h = hours(at_merchant, day_start, next_hour)
    merchant_before = hours(at_merchant, week_start, day_start)

    def last_day(orders: Sequence[Past]) -> int:
        return sum(o.created_at >= now - timedelta(days=1) for o in orders)

    return {
        "device_orders_24h": float(last_day(seen["device"])),
        "ip_block_orders_24h": float(last_day(seen["ip_block"])),
        "address_cluster_orders_24h": float(last_day(seen["cluster"])),
        "device_shoppers_30d": float(len(others["device"])),
        "ip_block_shoppers_24h": float(len(others["ip_block"])),
        "address_cluster_shoppers_30d": float(len(others["cluster"])),
        "neighbourhood_size": float(len(neighbours)),
        "neighbour_held_share_7d": _share(sum(o.held for o in week), len(week)),
        "neighbour_merchant_share": _share(
            sum(o.merchant_id == merchant_id for o in neighbour_orders.values()),
            len(neighbour_orders),
        ),
        "linked_orders_same_merchant_6h": float(len(split)),
        "linked_amount_same_merchant_6h": float(sum(o.amount_minor for o in split) + amount_minor),
        "merchant_orders_2h": float(
            len(hours(at_merchant, hour_now - timedelta(hours=1), next_hour))
        ),
        "merchant_burst_24h": len(merchant_24h) / (len(merchant_before) / 7 + 1),
        "market_day_ratio": len(market_24h) / (len(market_before) / 7 + 1),
        "amount_vs_market_average_24h": _share(
            amount_minor * len(market_24h), sum(o.amount_minor for o in market_24h)
        ),
    }
