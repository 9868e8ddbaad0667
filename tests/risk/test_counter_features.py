"""The checkout features read from risk's counters equal, value for value, the features of the
old aggregate statement (kept as the oracle in ``tests/risk/reference_features.py``):

- at every checkout of a simulated marketplace (honest shoppers, a cash-out ring, a bust-out,
  synthetic identities, big spenders, a family; reviews, step-ups, declines, cancellations,
  shipments, deliveries, refunds, payments, overdue orders and the nightly run in between);
- afterwards, for every shopper at every merchant, at instants around the edge of the merchant's
  90-day window (a microsecond either side of an order leaving it), where the top buyer's bounds
  have gone stale and the exact count is needed;
- and the counters kept incrementally are the counters built afresh from the orders (the
  buyers' days of the window, once the nightly refresh has deleted those it left).

The online signals (``risk/signals.py``, read from their own counters in the same statement) are
compared at every checkout, and at every instant after the history, with their own oracle
(``tests/risk/reference_signals.py``: an aggregate over the orders)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import make_runtime
from tests.factories import skip_on_citus
from tests.risk import reference_features, reference_signals
from usefirst.flows import daily_sweep
from usefirst.lab.sim.fraud import FraudScenario
from usefirst.lab.sim.marketplace import simulate
from usefirst.orders.models import Order
from usefirst.risk import counters, decision, features, signals
from usefirst.risk.counter_repository import CounterRepository
from usefirst.risk.models import (
    MerchantBuyerCounter,
    MerchantBuyerDayCounter,
    MerchantDayCounter,
    OrderFact,
    ShopperMerchantHourCounter,
)

SCENARIO = FraudScenario(
    rings=1,
    mules_per_ring=4,
    bust_outs=1,
    synthetic_clusters=1,
    identities_per_cluster=3,
    big_spenders=2,
    families=1,
    family_size=3,
)
ITEMS = [{"category": "phones", "quantity": 1, "unit_price_minor": 30_000}]


def _assert_same(served: features.CheckoutFeatures, expected: Any) -> None:
    # The old statement's features; the online signals have their own oracle.
    assert {name: served.values[name] for name in expected.values} == expected.values
    assert set(served.values) == set(expected.values) | set(signals.SIGNAL_NAMES)
    assert [link.as_dict() for link in served.links] == [link.as_dict() for link in expected.links]
    assert served.link_hashes == expected.link_hashes


def test_counter_features_equal_the_aggregate_on_a_simulated_history(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    skip_on_citus(
        database_url,
        "the reference is the one-statement aggregate (correlated subqueries over two shards),"
        " which Citus does not plan; the served features run there",
    )
    runtime = make_runtime(database_url, credit_policy="cold_start")
    compared: list[str] = []
    seen_signals: set[str] = set()

    def served_and_checked(session: Session, **arguments: Any) -> features.CheckoutFeatures:
        served = features.compute_checkout_features(session, **arguments)
        _assert_same(served, reference_features.compute_checkout_features(session, **arguments))
        _assert_same_signals(session, served, arguments)
        compared.append(arguments["merchant_id"])
        seen_signals.update(name for name in signals.SIGNAL_NAMES if served.values[name])
        return served

    exact_counts: list[str] = []
    counted_exactly = CounterRepository.top_buyer_exact

    def top_buyer_exact(self: CounterRepository, merchant_id: str, since: Any) -> int:
        exact_counts.append(merchant_id)
        return counted_exactly(self, merchant_id, since)

    monkeypatch.setattr(decision, "compute_checkout_features", served_and_checked)
    monkeypatch.setattr(CounterRepository, "top_buyer_exact", top_buyer_exact)
    # Checkouts are served again at past instants below, which needs their signals unpruned.
    without_signal_prune(monkeypatch)
    try:
        summary = simulate(runtime, shoppers=14, merchants=2, days=40, seed=3, scenario=SCENARIO)
        assert summary.ledger_balanced
        assert len(compared) == summary.checkouts > 60
        with runtime.work() as work:
            session = work.session
            orders = list(session.scalars(select(Order)))
            statuses = {order.status for order in orders}
            # The history moved orders through every kind of change the counters follow.
            assert {"declined", "delivered", "repaid", "overdue"} <= statuses
            assert any(order.refunded_minor > 0 for order in orders)
            _compare_around_window_edges(runtime, session, orders, now=work.now)
            seen_signals |= _compare_signals_just_after_orders(runtime, session, orders)
            # Every signal was compared away from zero somewhere.
            assert sorted(set(signals.SIGNAL_NAMES) - seen_signals) == []
            assert exact_counts, "the window edges never needed the exact top-buyer count"
            _assert_rebuild_gives_the_same_counters(session, now=work.now)
    finally:
        runtime.database.dispose()


def without_signal_prune(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated nights without the signals' prune (``daily_sweep.RISK_SIGNAL_PRUNE``): the
    events and hour counts stay, as they did before the nightly run pruned them, for tests that
    read the signals as of past instants or out of their windows."""
    monkeypatch.setattr(
        daily_sweep,
        "STEPS",
        tuple(step for step in daily_sweep.STEPS if step.name != daily_sweep.RISK_SIGNAL_PRUNE),
    )


def _assert_same_signals(
    session: Session, served: features.CheckoutFeatures, arguments: dict[str, Any]
) -> None:
    expected = reference_signals.signals(
        reference_signals.history(session, arguments["cipher"]),
        **{name: arguments[name] for name in SIGNAL_ARGUMENTS},
    )
    assert {name: served.values[name] for name in signals.SIGNAL_NAMES} == expected


SIGNAL_ARGUMENTS = (
    "shopper_id",
    "merchant_id",
    "amount_minor",
    "device_id",
    "ip",
    "shipping_address",
    "now",
)


def _compare_signals_just_after_orders(
    runtime: Any, session: Session, orders: list[Order]
) -> set[str]:
    """Each order's checkout again, a minute after it (its own order, and its neighbours' of
    the hours before, now count: splitting within 6 hours), with its own identifiers."""
    seen: set[str] = set()
    for order in sorted(orders, key=lambda order: (order.created_at, order.id))[::4]:
        address = order.shipping_address_encrypted
        arguments: dict[str, Any] = {
            "shopper_id": order.shopper_id,
            "merchant_id": order.merchant_id,
            "amount_minor": 20_000,
            "items": ITEMS,
            "device_id": order.device_id,
            "ip": order.ip,
            "shipping_address": runtime.cipher.decrypt(address, field="shipping_address")
            if address
            else None,
            "cipher": runtime.cipher,
            "now": order.created_at + timedelta(minutes=1),
        }
        served = features.compute_checkout_features(session, **arguments)
        _assert_same_signals(session, served, arguments)
        seen.update(name for name in signals.SIGNAL_NAMES if served.values[name])
    return seen


def _compare_around_window_edges(
    runtime: Any, session: Session, orders: list[Order], *, now: Any
) -> None:
    shoppers = sorted({order.shopper_id for order in orders})
    merchants = sorted({order.merchant_id for order in orders})
    created = sorted({order.created_at for order in orders})
    window, tick = counters.MERCHANT_WINDOW, timedelta(microseconds=1)
    # The window's start a tick before, at and a tick after orders' creation, early and late in
    # the history; and plain instants after it.
    instants = [now, now + timedelta(days=30), now + timedelta(days=95)]
    for moment in (created[len(created) // 3], created[-len(created) // 4], created[-1]):
        instants += [moment + window - tick, moment + window, moment + window + tick]
    for instant in sorted(set(instants)):
        for merchant_id in merchants:
            for shopper_id in shoppers[::3]:
                arguments: dict[str, Any] = {
                    "shopper_id": shopper_id,
                    "merchant_id": merchant_id,
                    "amount_minor": 30_000,
                    "items": ITEMS,
                    "device_id": None,
                    "ip": None,
                    "shipping_address": None,
                    "cipher": runtime.cipher,
                    "now": max(instant, now),
                }
                _assert_same(
                    features.compute_checkout_features(session, **arguments),
                    reference_features.compute_checkout_features(session, **arguments),
                )


def _rows(session: Session, table: Any, *columns: str) -> list[tuple[Any, ...]]:
    return sorted(
        tuple(getattr(row, column) for column in columns) for row in session.scalars(select(table))
    )


FACT_COLUMNS = [column.key for column in OrderFact.__table__.columns]
DAY_COLUMNS = [column.key for column in MerchantDayCounter.__table__.columns]
BUYER_DAY_COLUMNS = [column.key for column in MerchantBuyerDayCounter.__table__.columns]
PAIR_HOUR_COLUMNS = [column.key for column in ShopperMerchantHourCounter.__table__.columns]


def _assert_rebuild_gives_the_same_counters(session: Session, *, now: Any) -> None:
    counters.refresh_window_bounds(session, now=now)
    kept = (
        _rows(session, OrderFact, *FACT_COLUMNS),
        _rows(session, MerchantDayCounter, *DAY_COLUMNS),
        [
            row
            for row in _rows(
                session, MerchantBuyerCounter, "merchant_id", "shopper_id", "window_lent_bound"
            )
            if row[2] > 0
        ],
        # A day whose lent orders all stopped counting keeps its row, at zero.
        [row for row in _rows(session, MerchantBuyerDayCounter, *BUYER_DAY_COLUMNS) if row[3]],
    )
    # The refresh left no day the window has left (its edge day is read from the facts).
    edge_day = counters.utc_day(now - counters.MERCHANT_WINDOW)
    assert all(row[2] > edge_day for row in kept[3])
    assert kept[3], "the history wrote no buyer day"
    # The shoppers' hours at a merchant that a 6-hour window from now on reads (the rebuild
    # writes those; the signals' nightly prune, left out here, deletes the older ones).
    hours_from = signals.clock_hour(now - signals.SPLIT_WINDOW)
    kept_hours = [
        row
        for row in _rows(session, ShopperMerchantHourCounter, *PAIR_HOUR_COLUMNS)
        if row[2] >= hours_from
    ]
    assert counters.rebuild(session, now=now) == len(kept[0])
    session.expire_all()
    rebuilt = (
        _rows(session, OrderFact, *FACT_COLUMNS),
        _rows(session, MerchantDayCounter, *DAY_COLUMNS),
        _rows(session, MerchantBuyerCounter, "merchant_id", "shopper_id", "window_lent_bound"),
        _rows(session, MerchantBuyerDayCounter, *BUYER_DAY_COLUMNS),
    )
    assert kept == rebuilt
    assert _rows(session, ShopperMerchantHourCounter, *PAIR_HOUR_COLUMNS) == kept_hours
