"""The nightly run prunes the online signals (its step ``usefirst.risk.signal_upkeep:prune``):
exactly the rows ``usefirst risk prune-signals`` deletes when run at the sweep's instant, once per
business date (a second sweep of the date, or a second go at the step, deletes nothing)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.risk.test_signal_upkeep import _event, _events, _hour, _hours
from usefirst.flows import daily_sweep
from usefirst.kit.clock import business_day_start
from usefirst.risk import signal_upkeep
from usefirst.runtime import Runtime

SWEPT_ON = date(2026, 12, 7)


class _RollBack(Exception):
    pass


def _signals(session: Session) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    return _events(session), _hours(session)


def test_the_sweep_prunes_what_the_command_would_once_per_date(runtime: Runtime) -> None:
    settings = runtime.settings
    start = business_day_start(SWEPT_ON, settings.time_zone)
    events_before, hours_before = signal_upkeep.prune_cutoffs(start)
    tick = timedelta(microseconds=1)
    with runtime.work() as work:
        work.session.add_all(
            [
                _event("device", "d1", events_before["device"] - tick, "ord_1"),
                _event("device", "d1", events_before["device"], "ord_2"),
                _event("cluster", "c1", events_before["cluster"] - timedelta(days=3), "ord_3"),
                _event("cluster", "c1", start - timedelta(days=29), "ord_4"),
                _event("ip_block", "i1", events_before["ip_block"] - tick, "ord_2"),
                _event("ip_block", "i1", events_before["ip_block"], "ord_5"),
                _event("ip_block", "i2", start - timedelta(days=2), "ord_4"),
                _hour("market", "", hours_before - timedelta(hours=1)),
                _hour("market", "", hours_before),
                _hour("merchant", "mer_1", hours_before - timedelta(days=2), stripe=3),
                _hour("merchant", "mer_1", start, stripe=1),
            ]
        )

    # What the command deletes when run at the sweep's instant (rolled back).
    with pytest.raises(_RollBack), runtime.database.transaction() as session:
        command = signal_upkeep.prune(session, now=start)
        session.flush()
        commanded = _signals(session)
        raise _RollBack
    assert (command.events_deleted, command.hours_deleted) == (4, 2)

    def sweep() -> daily_sweep.SweepSummary:
        return daily_sweep.run_stepped_sweep(
            runtime.database,
            business_on=SWEPT_ON,
            today=SWEPT_ON,
            settings=settings,
            cipher=runtime.cipher,
        )

    summary = sweep()
    assert summary.jobs[daily_sweep.RISK_SIGNAL_PRUNE] == {"events_deleted": 4, "hours_deleted": 2}
    with runtime.work(read_only=True) as work:
        kept = _signals(work.session)
    assert kept == commanded
    assert [(row[0], row[1], row[3]) for row in kept[0]] == [
        ("cluster", "c1", "ord_4"),
        ("device", "d1", "ord_2"),
        ("ip_block", "i1", "ord_5"),
    ]
    assert [(row[0], row[1], row[2]) for row in kept[1]] == [
        ("market", "", hours_before),
        ("merchant", "mer_1", start),
    ]

    # A row the step would delete, added after the date was swept: a second sweep of the date,
    # and the step itself tried again, are no-ops.
    with runtime.work() as work:
        work.session.add(_event("device", "d2", events_before["device"] - tick, "ord_6"))
    with runtime.work(read_only=True) as work:
        before_again = _signals(work.session)
    assert sweep().already_ran is True
    [step] = [step for step in daily_sweep.STEPS if step.name == daily_sweep.RISK_SIGNAL_PRUNE]
    context = daily_sweep._context(SWEPT_ON, settings, runtime.cipher)
    with runtime.work() as work:
        assert daily_sweep.run_step(work.session, step, context) is None
    with runtime.work(read_only=True) as work:
        assert _signals(work.session) == before_again
