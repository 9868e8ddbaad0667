"""Upkeep of the online signals' two counters (``risk/signals.py``): pruning what no checkout
reads any more, and a backfill that builds them from the orders of a book that predates them
(migration 0041), equal to what the checkout's own write keeps.

- **Prune** (``usefirst risk prune-signals``): each kind's events older than its window
  (``KEY_WINDOWS``: 30 days for a device or an address cluster, 24 hours for an IP block) and
  the hour counts before the first hour the checkout's read covers (``read_params``'
  ``week_start``: the current clock hour, the 23 before it and 7 days before those). Set-based
  (one DELETE per kind and one for the hours) and idempotent: a second run at the same time
  deletes nothing. The shoppers' hours at a merchant (``risk_shopper_merchant_hours``, the
  splitting signal's own orders, kept with the order facts) before the first hour a 6-hour
  window starting now covers go too.
- **Backfill** (``usefirst risk backfill-signals``): from the orders (every checkout stores its
  order, whatever the outcome) placed within what the checkout reads, the events each would have
  written (its keys from its device, IP and decrypted shipping address; held if its checkout's
  outcome was) and the hour counts of every *whole* clock hour before the current one. Events
  already there are kept (insert-or-skip by primary key); an hour's counts are set to those of
  all its orders, so a hour that live checkouts had partly counted is completed, and a second run
  writes the same. The current clock hour is left to the live checkouts, which add to it
  concurrently. An erased shopper's orders hold no device, IP or address: they add no event.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from usefirst.kit.crypto import FieldCipher
from usefirst.orders.repository import OrderRepository
from usefirst.risk.features import identifier_hash
from usefirst.risk.signal_upkeep_repository import SignalUpkeepRepository
from usefirst.risk.signals import (
    KEY_WINDOWS,
    SPLIT_WINDOW,
    clock_hour,
    event_rows,
    hour_rows,
    read_params,
    signal_keys,
)


@dataclass(frozen=True)
class PruneSummary:
    events_deleted: int
    hours_deleted: int
    events_before: dict[str, datetime]
    hours_before: datetime
    shopper_hours_deleted: int = 0


@dataclass(frozen=True)
class BackfillSummary:
    orders_read: int
    events_added: int
    hours_written: int
    hours_from: datetime
    hours_until: datetime


def prune_cutoffs(now: datetime) -> tuple[dict[str, datetime], datetime]:
    """Per kind, the oldest event time a checkout at ``now`` or later reads; and the oldest hour."""
    events_before = {kind: now - window for kind, window in KEY_WINDOWS.items()}
    hours_before: datetime = read_params(now, {})["week_start"]
    return events_before, hours_before


def prune(session: Session, *, now: datetime) -> PruneSummary:
    events_before, hours_before = prune_cutoffs(now)
    repository = SignalUpkeepRepository(session)
    return PruneSummary(
        events_deleted=repository.prune_events(events_before),
        hours_deleted=repository.prune_hours(hours_before),
        events_before=events_before,
        hours_before=hours_before,
        shopper_hours_deleted=repository.prune_shopper_hours(clock_hour(now - SPLIT_WINDOW)),
    )


def backfill(session: Session, *, cipher: FieldCipher, now: datetime) -> BackfillSummary:
    events_before, hours_from = prune_cutoffs(now)
    since = min(min(events_before.values()), hours_from)
    hours_until = clock_hour(now)
    repository = SignalUpkeepRepository(session)
    events: list[dict[str, Any]] = []
    hours: dict[tuple[str, str, datetime, int], list[int]] = defaultdict(lambda: [0, 0])
    read = 0
    # A checkout stores its order whatever the outcome, so the orders are the checkouts.
    for order in OrderRepository(session).placed_between(since=since, until=now):
        read += 1
        keys = _keys(order, cipher=cipher)
        events.extend(
            row
            for row in event_rows(
                keys=keys,
                shopper_id=order.shopper_id,
                order_id=order.id,
                merchant_id=order.merchant_id,
                amount_minor=int(order.amount_minor),
                status=order.decision_outcome,
                created_at=order.created_at,
            )
            if row["created_at"] >= events_before[row["kind"]]
        )
        if hours_from <= order.created_at < hours_until:
            for row in hour_rows(
                shopper_id=order.shopper_id,
                merchant_id=order.merchant_id,
                amount_minor=int(order.amount_minor),
                created_at=order.created_at,
            ):
                counts = hours[(row["scope"], row["key"], row["hour"], row["stripe"])]
                counts[0] += row["orders"]
                counts[1] += row["amount_minor"]
    hour_list = [
        {
            "scope": scope,
            "key": key,
            "hour": hour,
            "stripe": stripe,
            "orders": counts[0],
            "amount_minor": counts[1],
        }
        for (scope, key, hour, stripe), counts in sorted(hours.items())
    ]
    return BackfillSummary(
        orders_read=read,
        events_added=repository.add_events(events),
        hours_written=repository.set_hours(hour_list),
        hours_from=hours_from,
        hours_until=hours_until,
    )


def _keys(order: Any, *, cipher: FieldCipher) -> dict[str, str]:
    """The keys the order's checkout had (``features.checkout_features`` makes them)."""
    device_id = order.device_id
    device_hash = (
        identifier_hash(cipher, "device", device_id) if device_id and device_id.strip() else None
    )
    address = (
        cipher.decrypt(order.shipping_address_encrypted, field="shipping_address")
        if order.shipping_address_encrypted
        else None
    )
    return signal_keys(cipher, device_hash=device_hash, ip=order.ip, shipping_address=address)
