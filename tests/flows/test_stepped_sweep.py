"""Issue 21: the nightly run commits step by step. Killed between any two steps (every step in
turn, then just before the date's summary), it resumes where it stopped, never does a step twice,
and ends exactly where the whole run in one transaction ends: the same rows in every table (new
ids aside), the same summary, a balanced ledger; swept again, the date changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.collections.dunning_env import SHIPMENT, Env, local_at, open_env
from tests.collections.test_sweep_idempotency import COMPRESSED_LADDER
from tests.factories import bearer, checkout_body
from tests.flows.snapshots import dump, known_ids, normalised
from usefirst.collections.models import SweepRun, SweepStep
from usefirst.flows import daily_sweep
from usefirst.kit.clock import TestClock
from usefirst.kit.logs import job_scope

SWEPT_ON = date(2027, 4, 1)


class SimulatedCrash(RuntimeError):
    """The process dies here: the step's transaction never commits."""


def _build_book(env: Env) -> None:
    """One order per ladder day (the compressed ladder reaches every collections step on
    SWEPT_ON), one shipped and never confirmed, and sales old enough to be paid out."""
    for days_before in range(5, -2, -1):
        due_on = SWEPT_ON - timedelta(days=days_before)
        env.advance_to_day(due_on - timedelta(days=7))
        env.buy(env.enrol()["id"])
        if days_before == 3:
            unconfirmed = env.client.post(
                "/v1/checkouts",
                headers=env.platform,
                json=checkout_body(env.enrol()["id"], env.merchant()["id"]),
            ).json()["order"]["id"]
            shipped = env.client.post(
                f"/v1/orders/{unconfirmed}/ship",
                headers=bearer(env.merchant()["api_key"]),
                json=SHIPMENT,
            )
            assert shipped.status_code == 200, shipped.text
    env.advance_to_day(SWEPT_ON - timedelta(days=1), 23, 59)
    with env.runtime.work() as work:
        clock = env.runtime.clock
        assert isinstance(clock, TestClock)
        clock.set(work.session, local_at(SWEPT_ON, 0))


class _RollBack(Exception):
    pass


def _one_transaction_end_state(env: Env) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """What the whole run in one transaction makes of the book (rolled back afterwards)."""
    database = env.runtime.database
    with database.transaction(read_only=True) as session:
        known = known_ids(dump(session))
    result: dict[str, Any] = {}
    # As the worker runs a sweep: in a job's scope, whose id the outbox messages it writes carry.
    with pytest.raises(_RollBack), job_scope(), database.transaction() as session:
        summary = daily_sweep.run_sweep(
            session,
            business_on=SWEPT_ON,
            today=SWEPT_ON,
            settings=env.runtime.settings,
            cipher=env.runtime.cipher,
        )
        session.flush()
        result["summary"] = summary.as_dict()
        result["dump"] = normalised(dump(session), known)
        raise _RollBack
    with database.transaction(read_only=True) as session:
        assert session.get(SweepRun, SWEPT_ON) is None
    result["known"] = known
    return result, result["dump"]


@contextmanager
def _crashing_at(monkeypatch: pytest.MonkeyPatch, position: int) -> Iterator[None]:
    """Steps before ``position`` run as they are; the one at ``position`` (or, past the last step,
    the recording of the date's summary) crashes."""

    def crash(*_: Any, **__: Any) -> Any:
        raise SimulatedCrash(f"killed at step {position}")

    with monkeypatch.context() as patch:
        if position < len(daily_sweep.STEPS):
            steps = list(daily_sweep.STEPS)
            steps[position] = daily_sweep.SweepStep(
                steps[position].name, crash, is_job=steps[position].is_job
            )
            patch.setattr(daily_sweep, "STEPS", tuple(steps))
        else:
            patch.setattr(daily_sweep, "_summary_of", crash)
        yield


def _steps_done(env: Env) -> list[str]:
    with env.runtime.database.transaction(read_only=True) as session:
        done = set(session.scalars(select(SweepStep.step).where(SweepStep.business_on == SWEPT_ON)))
        assert session.get(SweepRun, SWEPT_ON) is None
    return [step.name for step in daily_sweep.STEPS if step.name in done]


def test_a_sweep_killed_between_any_two_steps_resumes_to_the_one_transaction_end_state(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ladder = tmp_path / "ladder.toml"
    ladder.write_text(COMPRESSED_LADDER, encoding="utf-8")
    with open_env(database_url, tmp_path, dunning_ladder_file=ladder) as env:
        _build_book(env)
        oracle, expected = _one_transaction_end_state(env)
        # The book reaches every collections step, a risk monitor and the merchant's settlement.
        jobs = oracle["summary"]["jobs"]
        assert oracle["summary"]["charged_off"] == 1
        assert jobs[daily_sweep.FIRST_INSTALMENT_MISSED] == {"first_payment_defaults": 1}
        assert jobs[daily_sweep.MERCHANT_SETTLEMENT]["settlements_carried_forward"] == 1

        names = [step.name for step in daily_sweep.STEPS]
        # Killed at every step in turn: each run does one more step, commits it, and dies.
        for position in range(len(names) + 1):
            with _crashing_at(monkeypatch, position), pytest.raises(SimulatedCrash):
                env.runtime.run_due_sweeps()
            assert _steps_done(env) == names[:position]

        # The worker's next pass finishes the date and reports the whole of it.
        resumed = env.runtime.run_due_sweeps()
        assert [summary.as_dict() for summary in resumed] == [oracle["summary"]]
        with env.runtime.database.transaction(read_only=True) as session:
            after = dump(session)
            recorded = session.get(SweepRun, SWEPT_ON)
            assert recorded is not None and recorded.summary == oracle["summary"]
        assert normalised(after, oracle["known"]) == expected

        # Swept again: a no-op.
        again = env.runtime.sweep(SWEPT_ON)
        assert again.already_ran is True and again.jobs == {}
        with env.runtime.database.transaction(read_only=True) as session:
            assert dump(session) == after
        env.assert_ledger_clean()
