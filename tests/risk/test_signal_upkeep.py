"""Upkeep of the online signals' counters (``risk/signal_upkeep.py``): pruning leaves exactly the
rows a checkout still reads, twice in a row; the backfill builds from the orders exactly the rows
the checkouts' own writes kept, and running it again (or over the live rows) changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from tests.conftest import make_runtime
from tests.risk.test_counter_features import SCENARIO, without_signal_prune
from usefirst.lab.sim.marketplace import simulate
from usefirst.orders.models import Order
from usefirst.risk import signal_upkeep
from usefirst.risk.models import HourCounter, SignalEvent
from usefirst.runtime import Runtime

NOW = datetime(2026, 12, 7, 14, 30, tzinfo=UTC)


def _event(kind: str, key: str, created_at: datetime, order_id: str) -> SignalEvent:
    return SignalEvent(
        kind=kind,
        key_hash=key,
        created_at=created_at,
        order_id=order_id,
        shopper_id="shp_1",
        merchant_id="mer_1",
        amount_minor=10_000,
        is_held=0,
    )


def _hour(scope: str, key: str, hour: datetime, stripe: int = 0) -> HourCounter:
    return HourCounter(scope=scope, key=key, hour=hour, stripe=stripe, orders=1, amount_minor=500)


def _events(session: Session) -> list[tuple[Any, ...]]:
    rows = session.execute(
        select(
            SignalEvent.kind,
            SignalEvent.key_hash,
            SignalEvent.created_at,
            SignalEvent.order_id,
            SignalEvent.shopper_id,
            SignalEvent.merchant_id,
            SignalEvent.amount_minor,
            SignalEvent.is_held,
        ).order_by(SignalEvent.kind, SignalEvent.key_hash, SignalEvent.order_id)
    )
    return [tuple(row) for row in rows]


def _hours(session: Session) -> list[tuple[Any, ...]]:
    rows = session.execute(
        select(
            HourCounter.scope,
            HourCounter.key,
            HourCounter.hour,
            HourCounter.stripe,
            HourCounter.orders,
            HourCounter.amount_minor,
        ).order_by(HourCounter.scope, HourCounter.key, HourCounter.hour, HourCounter.stripe)
    )
    return [tuple(row) for row in rows]


def test_prune_leaves_exactly_what_a_checkout_reads_and_a_second_run_deletes_nothing(
    runtime: Runtime,
) -> None:
    month, day = timedelta(days=30), timedelta(hours=24)
    # The checkout at NOW reads hours from 14:00 minus 23 hours minus 7 days.
    first_hour_read = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)
    with runtime.work() as work:
        work.session.add_all(
            [
                _event("device", "d1", NOW - month - timedelta(microseconds=1), "ord_1"),
                _event("device", "d1", NOW - month, "ord_2"),
                _event("cluster", "c1", NOW - month - timedelta(days=3), "ord_3"),
                _event("cluster", "c1", NOW - timedelta(days=29), "ord_4"),
                # An IP block is read for 24 hours only.
                _event("ip_block", "i1", NOW - day - timedelta(microseconds=1), "ord_2"),
                _event("ip_block", "i1", NOW - day, "ord_5"),
                _event("ip_block", "i2", NOW - timedelta(days=2), "ord_4"),
                _hour("market", "", first_hour_read - timedelta(hours=1)),
                _hour("market", "", first_hour_read),
                _hour("merchant", "mer_1", first_hour_read - timedelta(days=2), stripe=3),
                _hour("merchant", "mer_1", datetime(2026, 12, 7, 14, 0, tzinfo=UTC), stripe=1),
            ]
        )
    with runtime.work() as work:
        summary = signal_upkeep.prune(work.session, now=NOW)
    assert (summary.events_deleted, summary.hours_deleted) == (4, 2)
    assert summary.hours_before == first_hour_read
    assert summary.events_before == {
        "device": NOW - month,
        "cluster": NOW - month,
        "ip_block": NOW - day,
    }
    with runtime.work(read_only=True) as work:
        kept_events = _events(work.session)
        kept_hours = _hours(work.session)
    assert [(row[0], row[1], row[2], row[3]) for row in kept_events] == [
        ("cluster", "c1", NOW - timedelta(days=29), "ord_4"),
        ("device", "d1", NOW - month, "ord_2"),
        ("ip_block", "i1", NOW - day, "ord_5"),
    ]
    assert kept_hours == [
        ("market", "", first_hour_read, 0, 1, 500),
        ("merchant", "mer_1", datetime(2026, 12, 7, 14, 0, tzinfo=UTC), 1, 1, 500),
    ]
    with runtime.work() as work:
        again = signal_upkeep.prune(work.session, now=NOW)
    assert (again.events_deleted, again.hours_deleted) == (0, 0)
    with runtime.work(read_only=True) as work:
        assert _events(work.session) == kept_events
        assert _hours(work.session) == kept_hours


def test_backfill_builds_what_the_checkouts_wrote_and_is_idempotent(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = make_runtime(database_url, credit_policy="cold_start")
    try:
        # The simulated nights do not prune the signals (as before the nightly run did), so the
        # live rows include some out of their windows, which the backfill must leave out.
        with monkeypatch.context() as unpruned:
            without_signal_prune(unpruned)
            summary = simulate(
                runtime, shoppers=14, merchants=2, days=12, seed=3, scenario=SCENARIO
            )
        assert summary.checkouts > 30
        with runtime.work(read_only=True) as work:
            now = work.now
            orders = work.session.scalar(select(func.count()).select_from(Order))
            live_events = _events(work.session)
            live_hours = _hours(work.session)
        events_before, hours_from = signal_upkeep.prune_cutoffs(now)
        hours_until = now.replace(minute=0, second=0, microsecond=0)
        # What the backfill is asked to make: the live rows still in their windows, and the
        # whole hours among them.
        wanted_events = [row for row in live_events if row[2] >= events_before[row[0]]]
        wanted_hours = [row for row in live_hours if hours_from <= row[2] < hours_until]
        assert {row[0] for row in wanted_events} == {"device", "ip_block", "cluster"}
        assert len(wanted_events) < len(live_events)  # the IP blocks' 24 h window cut some
        assert {row[0] for row in wanted_hours} == {"market", "merchant"}
        assert any(row[4] > 1 for row in wanted_hours)
        assert any(row[7] == 1 for row in wanted_events)  # held at checkout

        # Over the live rows: nothing to add, every hour written with the counts it had.
        with runtime.work() as work:
            over_live = signal_upkeep.backfill(work.session, cipher=runtime.cipher, now=now)
        assert over_live.events_added == 0
        assert over_live.hours_written == len(wanted_hours)
        with runtime.work(read_only=True) as work:
            assert _events(work.session) == live_events
            assert _hours(work.session) == live_hours

        # A book that predates migration 0041: the counters empty, built from the orders.
        with runtime.work() as work:
            work.session.execute(delete(SignalEvent))
            work.session.execute(delete(HourCounter))
        with runtime.work() as work:
            built = signal_upkeep.backfill(work.session, cipher=runtime.cipher, now=now)
        assert built.orders_read == orders
        assert (built.events_added, built.hours_written) == (len(wanted_events), len(wanted_hours))
        assert (built.hours_from, built.hours_until) == (hours_from, hours_until)
        with runtime.work(read_only=True) as work:
            assert _events(work.session) == wanted_events
            assert _hours(work.session) == wanted_hours

        # Again: the same rows.
        with runtime.work() as work:
            again = signal_upkeep.backfill(work.session, cipher=runtime.cipher, now=now)
        assert again.events_added == 0
        with runtime.work(read_only=True) as work:
            assert _events(work.session) == wanted_events
            assert _hours(work.session) == wanted_hours
    finally:
        runtime.database.dispose()
