"""Checkout counters: what the checkout features need of the book, kept up to date as orders
change, so that a checkout reads them by key instead of aggregating every order of its merchant.

Three tables (``risk/models.py``):

- ``risk_order_facts``: one row per order with the flags the features count (lent, shipped,
  delivered, defaulted, refunded, amount counted). It is the snapshot each change is diffed
  against, the per-shopper event list (a shopper's features read the shopper's own rows), and
  the exact edge of a merchant's sliding window;
- ``risk_merchant_days``: per merchant, UTC creation day and stripe, the sums of those flags.
  The 90-day window is the days after the one holding its start, plus the facts of that edge day
  from its start on: exact at any instant, read in O(90 day rows + one day's orders);
- ``risk_merchant_buyers``: per merchant and shopper, an upper bound of the lent orders in the
  window, from which the top buyer is found exactly (see
  :func:`top_buyer_orders`);
- ``risk_merchant_buyer_days``: per merchant, shopper and UTC creation day, the lent orders:
  with the facts of the window's edge day, a candidate top buyer's exact count in the window,
  read in O(90 day rows + one day's orders of the pair), like the merchant's days;
- ``risk_shopper_merchant_hours``: per shopper, merchant and clock hour (UTC), the orders and
  their amount (every order, as its fact): the shopper's own orders at the merchant in the
  last 6 hours (the splitting signal), read in O(7 hour rows + the edge hours' orders).

Every change of an order reaches :func:`observe_orders` from the flow that made it (checkout
calls :func:`record_new_order`): the order's flags are computed afresh, compared with its fact,
and only the difference moves the counters. The daily sweep's set-based steps pass all their
orders at once, and :func:`refresh_window_bounds` makes the top-buyer bounds exact each night.
``usefirst risk rebuild-counters`` (and migration 0027) builds everything from the orders.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from usefirst.kit.db import AnySelect, Part
from usefirst.orders.models import Order
from usefirst.risk.counter_repository import (
    DEFAULTED_STATUSES,
    DELIVERED_STATUSES,
    LENT_STATUSES,
    NOT_COUNTED_STATUSES,
    SHIPPED_STATUSES,
    STRIPES,
    CounterRepository,
    FactFlags,
)
from usefirst.risk.repository import RiskRepository
from usefirst.risk.signals import SPLIT_WINDOW, clock_hour

MERCHANT_WINDOW = timedelta(days=90)


def flags_of(*, status: str, refunded_minor: int, is_ever_delinquent: bool) -> FactFlags:
    """What an order in this state counts for."""
    is_delivered = status in DELIVERED_STATUSES
    is_shipped = status in SHIPPED_STATUSES
    return FactFlags(
        is_lent=int(status in LENT_STATUSES),
        is_amount_counted=int(status not in NOT_COUNTED_STATUSES),
        is_shipped=int(is_shipped),
        is_delivered=int(is_delivered),
        is_defaulted=int(is_delivered and (status in DEFAULTED_STATUSES or is_ever_delinquent)),
        is_refunded=int(is_shipped and refunded_minor > 0),
    )


def stripe_of(shopper_id: str) -> int:
    # The code of the id's last character: random in generated ids, and computable in SQL for
    # the set-based rebuild (``CounterRepository.rebuild``).
    return ord(shopper_id[-1]) % STRIPES


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


@dataclass(frozen=True)
class OrderState:
    """An order as the counters see it."""

    shopper_id: str
    order_id: str
    merchant_id: str
    created_at: datetime
    amount_minor: int
    device_id: str | None
    flags: FactFlags


def _state(order: Order, *, is_ever_delinquent: bool) -> OrderState:
    return OrderState(
        shopper_id=order.shopper_id,
        order_id=order.id,
        merchant_id=order.merchant_id,
        created_at=order.created_at,
        amount_minor=order.amount_minor,
        device_id=order.device_id,
        flags=flags_of(
            status=order.status,
            refunded_minor=order.refunded_minor,
            is_ever_delinquent=is_ever_delinquent,
        ),
    )


def record_new_order(session: Session, *, order: Order, now: datetime) -> None:
    """Count an order just created at checkout (its fact, its merchant's day and its buyer)."""
    CounterRepository(session).record_new(_new_order_params(order, now=now))


def new_order_writes(*, order: Order, now: datetime) -> list[Part]:
    """``record_new_order`` as parts of the checkout's one PostgreSQL write statement."""
    return CounterRepository.new_order_writes(_new_order_params(order, now=now))


def _new_order_params(order: Order, *, now: datetime) -> dict[str, Any]:
    state = _state(order, is_ever_delinquent=False)
    return CounterRepository.new_order_params(
        state.shopper_id,
        state.order_id,
        state.merchant_id,
        state.created_at,
        state.amount_minor,
        state.device_id,
        state.flags,
        day=utc_day(state.created_at),
        hour=clock_hour(state.created_at),
        stripe=stripe_of(state.shopper_id),
        counts_in_window=state.created_at >= now - MERCHANT_WINDOW,
    )


def observe_orders(session: Session, *, orders: Sequence[Order], now: datetime) -> None:
    """Orders changed (status, refunds): move the counters by what changed. Idempotent; an
    order without a fact yet is counted whole. Set-based: a handful of statements for any
    number of orders."""
    if not orders:
        return
    session.flush()
    repository = CounterRepository(session)
    keys = sorted({(order.shopper_id, order.id) for order in orders})
    previous, delinquent = repository.facts(keys)
    changed = _changes(orders, previous, delinquent)
    if changed:
        repository.apply_changes(*_change_rows(changed, now=now))


def _changes(
    orders: Sequence[Order],
    previous: dict[tuple[str, str], FactFlags],
    delinquent: set[tuple[str, str]],
) -> list[tuple[OrderState, FactFlags | None]]:
    """The orders whose flags differ from their facts (or that have none), in key order, with
    the flags their facts had (None: no fact yet)."""
    by_key = {(order.shopper_id, order.id): order for order in orders}
    changed: list[tuple[OrderState, FactFlags | None]] = []
    for key in sorted(by_key):
        state = _state(by_key[key], is_ever_delinquent=key in delinquent)
        before = previous.get(key)
        if before is None or before != state.flags:
            changed.append((state, before))
    return changed


def observed_writes(
    orders: Sequence[Order], rows: Sequence[dict[str, Any]], *, now: datetime
) -> list[Part]:
    """``observe_orders`` of these orders (as they are now) as parts of a larger PostgreSQL
    statement, from the rows of ``facts_reading`` of their keys read in the same transaction
    (no parts when nothing moves). PostgreSQL runs a statement's unreferenced data-modifying
    parts last to first: these come buyers, days, facts, so that they run in the order of
    ``observe_orders``' statement (facts, the merchant's day, the buyer)."""
    previous, delinquent = CounterRepository.read_facts([tuple(row.values()) for row in rows])
    changed = _changes(orders, previous, delinquent)
    if not changed:
        return []
    return CounterRepository.change_parts(*_change_rows(changed, now=now))


def facts_reading(keys: Sequence[tuple[str, str]]) -> AnySelect:
    """What ``observe_orders`` reads of the orders, as a statement to send with other reads
    (``kit.db.rows_together``); ``observes_a_change`` tells from its rows whether observing
    the orders would move a counter."""
    return CounterRepository.facts_statement(sorted(set(keys)))


def shopper_facts_reading(shopper_id: str, *, statuses: Sequence[str], order_id: str) -> AnySelect:
    """``facts_reading`` of the shopper's orders in ``statuses`` and of one more order of
    theirs, whose keys are not known before the read."""
    return CounterRepository.shopper_facts_statement(shopper_id, statuses, order_id)


def observes_a_change(orders: Sequence[Order], rows: Sequence[dict[str, Any]]) -> bool:
    """Whether ``observe_orders`` of these orders (as they are) would write anything, from the
    rows of ``facts_reading`` of their keys read in the same transaction."""
    previous, delinquent = CounterRepository.read_facts([tuple(row.values()) for row in rows])
    return bool(_changes(orders, previous, delinquent))


ChangeRows = tuple[
    list[tuple[Any, ...]],
    list[tuple[tuple[str, date, int], Counter[str]]],
    list[tuple[tuple[str, str], Counter[str]]],
    list[tuple[tuple[str, str, date], Counter[str]]],
    list[tuple[tuple[str, str, datetime], Counter[str]]],
]


def _change_rows(
    changed: Iterable[tuple[OrderState, FactFlags | None]], *, now: datetime
) -> ChangeRows:
    """What the changes write (``CounterRepository.apply_changes``' arguments): the facts, and
    the deltas of the merchants' days, buyers and buyers' days, and the shoppers' hours of the
    facts new here, in key order."""
    window_start = now - MERCHANT_WINDOW
    days: dict[tuple[str, date, int], Counter[str]] = {}
    buyers: dict[tuple[str, str], Counter[str]] = {}
    buyer_days: dict[tuple[str, str, date], Counter[str]] = {}
    pair_hours: dict[tuple[str, str, datetime], Counter[str]] = {}
    facts: list[OrderState] = []
    for state, found in changed:
        facts.append(state)
        if found is None:
            # A fact new here: its order counts in its shopper's hour at the merchant.
            hour_key = (state.shopper_id, state.merchant_id, clock_hour(state.created_at))
            hour = pair_hours.setdefault(hour_key, Counter())
            hour["orders"] += 1
            hour["amount_minor"] += state.amount_minor
        before = found if found is not None else FactFlags.none()
        delta = state.flags.minus(before)
        day_key = (state.merchant_id, utc_day(state.created_at), stripe_of(state.shopper_id))
        day = days.setdefault(day_key, Counter())
        day["lent_orders"] += delta.is_lent
        day["lent_amount_minor"] += delta.is_lent * state.amount_minor
        day["shipped_orders"] += delta.is_shipped
        day["delivered_orders"] += delta.is_delivered
        day["defaulted_orders"] += delta.is_defaulted
        day["refunded_orders"] += delta.is_refunded
        buyer = buyers.setdefault((state.merchant_id, state.shopper_id), Counter())
        # An order that left the window before now never counts again: the bound keeps it
        # only while it may still be in a window (see MerchantBuyerCounter).
        if state.created_at >= window_start:
            buyer["window_lent_bound"] += delta.is_lent
            # Likewise its day: a day before the window's start is never read again.
            buyer_day_key = (state.merchant_id, state.shopper_id, utc_day(state.created_at))
            buyer_days.setdefault(buyer_day_key, Counter())["lent_orders"] += delta.is_lent
    return (
        [
            (
                s.shopper_id,
                s.order_id,
                s.merchant_id,
                s.created_at,
                s.amount_minor,
                s.device_id,
                *s.flags.as_tuple(),
            )
            for s in facts
        ],
        sorted(days.items()),
        sorted(buyers.items()),
        sorted(buyer_days.items()),
        sorted(pair_hours.items()),
    )


def refresh_window_bounds(session: Session, *, now: datetime) -> int:
    """Set every top-buyer bound to the exact count of the window ending now (the nightly
    step); the number of bounds that changed."""
    return CounterRepository(session).refresh_window_bounds(now - MERCHANT_WINDOW)


def rebuild(session: Session, *, now: datetime) -> int:
    """Build every counter afresh from the orders (a book that had none, or a check), and the
    distinct link values from the link observations; the number of orders counted."""
    RiskRepository(session).rebuild_link_values()
    return CounterRepository(session).rebuild(
        window_start=now - MERCHANT_WINDOW, hours_from=clock_hour(now - SPLIT_WINDOW)
    )


def top_buyer_orders(
    candidates: Sequence[tuple[int, int]], *, session: Session, merchant_id: str, since: datetime
) -> int:
    """The most lent orders one shopper placed at the merchant since ``since``.

    ``candidates`` are (bound, exact count) of the buyers with the highest bounds, highest
    first, at most ``TOP_BUYER_CANDIDATES``. A bound is never below its buyer's exact count, so
    when the best exact count reaches the lowest bound read, no buyer left out can beat it.
    Otherwise (bounds gone stale within a day, rare) the merchant's window is counted."""
    best = max((exact for _bound, exact in candidates), default=0)
    if len(candidates) < TOP_BUYER_CANDIDATES or best >= candidates[-1][0]:
        return best
    return CounterRepository(session).top_buyer_exact(merchant_id, since)


TOP_BUYER_CANDIDATES = 5
