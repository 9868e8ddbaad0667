"""The evaluation suite: the split, the per-world and pooled figures with their intervals, the
rings, the goals' pass/fail, and one tiny world through the whole machinery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, update
from typer.testing import CliRunner

from tests.factories import checkout_in_work, enrol_in_work, merchant_in_work
from usefirst.cli.main import app
from usefirst.cli.risk_models import print_suite_report
from usefirst.kit import clock
from usefirst.lab.evaluation_suite import (
    ENGINE,
    GOALS,
    HELD_OUT,
    SUITE_FIRST_DAY,
    TRAIN,
    MeasureResult,
    RingOutcome,
    WorldRun,
    WorldSpec,
    _ring_outcomes,
    bootstrap_measure,
    default_suite,
    is_held_after_checkout,
    is_honest_touched,
    is_stopped_at_checkout,
    judge_goals,
    run_suite,
    run_world,
    score_suite,
    shuffled_worlds,
    world_start,
)
from usefirst.lab.risk_evaluation import DecidedOrder
from usefirst.lab.signal_study import read_rows
from usefirst.lab.sim.fraud import GroundTruth
from usefirst.orders.models import Order
from usefirst.risk.actions import FREEZE_LIMIT, log_action
from usefirst.risk.models import Ring, RiskAction
from usefirst.runtime import Runtime

BURST = datetime(2026, 11, 1, 12, tzinfo=UTC)


def _order(
    order_id: str,
    amount_minor: int,
    *,
    typology: str | None = None,
    risk_outcome: str = "approved",
    status: str = "delivered",
    is_settled: bool = False,
    is_risk_held: bool = False,
) -> DecidedOrder:
    return DecidedOrder(
        order_id=order_id,
        amount_minor=amount_minor,
        is_fraud=typology is not None,
        typology=typology,
        risk_outcome=risk_outcome,
        outcome=risk_outcome,
        status=status,
        risk_score=0,
        model_score=None,
        is_settled=is_settled,
        is_risk_held=is_risk_held,
        features=(float(amount_minor), 1.0 if typology else 0.0),
    )


def test_training_and_held_out_worlds_never_share_a_seed() -> None:
    worlds = default_suite()
    train = {(spec.generator, spec.seed) for spec in worlds if spec.split == TRAIN}
    held_out = {(spec.generator, spec.seed) for spec in worlds if spec.split == HELD_OUT}
    assert train and held_out and not train & held_out
    assert {spec.generator for spec in worlds if spec.split == HELD_OUT} == {
        "typology",
        "independent",
    }
    # every typology shape is held out at least once
    shapes = {spec.shape for spec in worlds if spec.generator == "typology"}
    assert shapes == {spec.shape for spec in worlds if spec.split == HELD_OUT} - {None}
    drawn = shuffled_worlds(7, 3)
    assert drawn == shuffled_worlds(7, 3)
    assert all(spec.split == HELD_OUT and spec.seed >= 10_000 for spec in drawn)
    assert len({spec.seed for spec in drawn}) == 3


def test_checkout_stops_and_honest_touches() -> None:
    assert is_stopped_at_checkout(_order("a", 1, risk_outcome="declined", status="declined"))
    assert is_stopped_at_checkout(_order("b", 1, risk_outcome="review", status="review"))
    # a step-up the shopper confirmed went through; one never confirmed did not
    assert not is_stopped_at_checkout(_order("c", 1, risk_outcome="step_up"))
    assert is_stopped_at_checkout(_order("d", 1, risk_outcome="step_up", status="step_up"))
    # held after checkout stops before payout, not at checkout
    assert not is_stopped_at_checkout(_order("e", 1, is_risk_held=True))
    assert is_honest_touched(_order("f", 1, risk_outcome="step_up"))
    assert is_honest_touched(_order("f2", 1, risk_outcome="review", status="review"))
    # a payout held after checkout is reported apart: the shopper met no friction
    assert not is_honest_touched(_order("g", 1, is_risk_held=True))
    assert is_held_after_checkout(_order("g", 1, is_risk_held=True))
    assert not is_held_after_checkout(
        _order("g2", 1, risk_outcome="review", status="review", is_risk_held=True)
    )
    assert not is_honest_touched(_order("h", 1))


def test_a_ring_is_surfaced_within_two_days_with_most_of_its_mules() -> None:
    assert RingOutcome("r", 5, BURST, 0.8, 48.0).is_surfaced
    assert not RingOutcome("r", 5, BURST, 0.8, 48.5).is_surfaced
    assert not RingOutcome("r", 5, BURST, 0.79, 1.0).is_surfaced
    assert not RingOutcome("r", 5, BURST, 1.0, None).is_surfaced
    assert RingOutcome("r", 5, BURST, 1.0, 0.0).is_eligible
    assert not RingOutcome("r", 4, BURST, 1.0, 0.0).is_eligible
    assert not RingOutcome("r", 6, None, 0.0, None).is_eligible


def test_bootstrap_gives_each_world_the_pool_and_an_interval() -> None:
    per_world = {
        "w1": (np.array([100.0, 300.0]), np.array([1.0, 0.0])),
        "w2": (np.array([50.0, 50.0]), np.array([1.0, 1.0])),
        "w3": (np.zeros(0), np.zeros(0)),
    }
    result = bootstrap_measure(per_world, seed=3)
    assert result.per_world == {"w1": 0.25, "w2": 1.0, "w3": None}
    assert result.pooled == pytest.approx(200 / 500)
    assert result.low is not None and result.high is not None
    assert 0.0 <= result.low <= result.pooled <= result.high <= 1.0
    assert result.worst(higher_is_better=True) == 0.25
    assert result.worst(higher_is_better=False) == 1.0
    assert result.mean == pytest.approx(0.625)
    again = bootstrap_measure(per_world, seed=3)
    assert (again.low, again.high) == (result.low, result.high)
    empty = bootstrap_measure({"w": (np.zeros(0), np.zeros(0))})
    assert (empty.pooled, empty.low, empty.worst(higher_is_better=True)) == (None, None, None)


def _measure(**per_world: float | None) -> MeasureResult:
    known = [value for value in per_world.values() if value is not None]
    pooled = sum(known) / len(known) if known else None
    return MeasureResult(dict(per_world), pooled, pooled, pooled)


def test_goals_pass_only_on_the_worst_world() -> None:
    scored = {
        ENGINE: {
            "cash_out_before_payout": _measure(a=0.99, b=0.95),  # worst exactly at the goal
            "cash_out_at_checkout": _measure(a=0.99, b=0.89),  # mean 0.94, worst fails
            "honest_touched": _measure(a=0.0, b=0.006),  # worst above 0.5 %
            "rings_surfaced": _measure(a=1.0, b=None),  # a world without rings does not count
            "bust_out_stopped": _measure(a=None, b=None),  # no bust-out anywhere: not judged
        },
        "amount rules": {
            "cash_out_before_payout": _measure(a=0.5, b=0.6),
            "cash_out_at_checkout": _measure(a=0.5, b=0.6),
            "honest_touched": _measure(a=0.004, b=0.001),
            "bust_out_stopped": _measure(a=0.9, b=0.85),
        },
    }
    judged = {row["goal"]: row for row in judge_goals(scored)}
    assert [goal.key for goal in GOALS] == list(judged)
    assert {key: row["passes"] for key, row in judged.items()} == {
        "cash_out_before_payout": True,
        "cash_out_at_checkout": False,
        "honest_touched": False,
        "rings_surfaced": True,
        "bust_out_stopped": None,
    }
    assert judged["cash_out_at_checkout"][ENGINE]["worst"] == 0.89
    assert judged["cash_out_at_checkout"][ENGINE]["mean"] == pytest.approx(0.94)
    assert judged["honest_touched"]["amount rules"]["passes"] is True
    assert judged["rings_surfaced"]["amount rules"]["passes"] is None
    assert judged["bust_out_stopped"]["amount rules"] == {
        "worst": 0.85,
        "mean": pytest.approx(0.875),
        "pooled": pytest.approx(0.875),
        "ci95": [pytest.approx(0.875), pytest.approx(0.875)],
        "passes": True,
    }


def test_scoring_worlds_per_world_worst_and_typology(capsys: pytest.CaptureFixture[str]) -> None:
    first = WorldRun(
        WorldSpec("w1", "independent", 1, HELD_OUT),
        [
            _order(
                "r1", 80_000, typology="ring_cash_out", risk_outcome="declined", status="declined"
            ),
            _order("r2", 20_000, typology="ring_cash_out", is_risk_held=True),
            _order("b1", 10_000, typology="bust_out", is_settled=True),
            *[_order(f"h{index}", 5_000 + index) for index in range(9)],
            _order("h9", 5_000, risk_outcome="step_up"),
            _order("h10", 5_000, is_risk_held=True),
        ],
        [RingOutcome("ring-1", 6, BURST, 1.0, 10.0), RingOutcome("ring-2", 3, BURST, 0.0, None)],
        1.0,
        1.0,
    )
    second = WorldRun(
        WorldSpec("w2", "typology", 2, HELD_OUT, "small-rings"),
        [
            _order("s1", 50_000, typology="ring_cash_out", is_settled=True),
            _order("s2", 50_000, typology="ring_cash_out", risk_outcome="review", status="review"),
            *[_order(f"g{index}", 4_000) for index in range(10)],
        ],
        [RingOutcome("ring-1", 5, BURST, 0.6, 5.0)],
        2.0,
        1.5,
    )
    report = score_suite([first, second], split=HELD_OUT)
    engine = report.systems[ENGINE]
    assert engine["cash_out_before_payout"].per_world == {"w1": 100_000 / 110_000, "w2": 0.5}
    assert engine["cash_out_at_checkout"].per_world == {"w1": 80_000 / 110_000, "w2": 0.5}
    assert engine["honest_touched"].per_world == {"w1": 1 / 11, "w2": 0.0}
    assert engine["honest_held_after_checkout"].per_world == {"w1": 1 / 11, "w2": 0.0}
    assert engine["bust_out_stopped"].per_world == {"w1": 0.0, "w2": None}
    # ring-2 has too few mules to count; w2's ring holds only 60 % of its mules in one case
    assert engine["rings_surfaced"].per_world == {"w1": 1.0, "w2": 0.0}
    assert engine["cash_out_before_payout"].pooled == pytest.approx(150_000 / 210_000)
    goals = {row["goal"]: row for row in report.goals}
    assert goals["cash_out_before_payout"][ENGINE]["worst"] == 0.5
    assert goals["rings_surfaced"]["passes"] is False
    assert goals["honest_touched"][ENGINE]["worst"] == 1 / 11
    # the baselines hold as many orders as the engine held or declined at checkout (w1: 1)
    assert report.systems["amount rules"]["cash_out_at_checkout"].per_world["w1"] == (
        80_000 / 110_000
    )
    assert report.typologies["ring_cash_out"]["before_payout"].per_world == {
        "w1": 1.0,
        "w2": 0.5,
    }
    assert report.typologies["bust_out"]["before_payout"].per_world == {"w1": 0.0}
    assert (report.wall_seconds, report.cpu_seconds) == (3.0, 2.5)
    document = report.as_dict()
    assert document["systems"][ENGINE]["honest_touched"]["worst"] == 1 / 11
    assert document["systems"]["amount rules"]["honest_held_after_checkout"]["worst"] == 0.0
    assert [world["name"] for world in document["worlds"]] == ["w1", "w2"]
    print_suite_report(report, held_out=True)
    printed = capsys.readouterr().out
    assert "suite: 2 held-out world(s)" in printed
    goal_lines = {
        line.split("│")[1].strip(): line.split("│")[-2].strip()
        for line in printed.splitlines()
        if line.count("│") > 4 and ("≥" in line or "≤" in line)
    }
    assert goal_lines["cash-out money stopped before payout ≥ 95 %"] == "FAIL"
    assert goal_lines["every ring of ≥ 5 mules surfaced within 2 days with ≥ 80 % of them"] == (
        "FAIL"
    )
    assert "50.0% / 70.5% [" in printed  # engine's worst / mean money stopped before payout


def test_a_tiny_suite_runs_through_the_engine_and_writes_its_study_data(tmp_path: Path) -> None:
    worlds = [
        WorldSpec("independent/5", "independent", 5, HELD_OUT),
        WorldSpec("independent/6", "independent", 6, TRAIN),
    ]
    report = run_suite(split=HELD_OUT, scale=0.12, days=8, worlds=worlds, data_dir=tmp_path)
    assert [world["name"] for world in report.worlds] == ["independent/5"]
    world = report.worlds[0]
    assert world["orders"] == world["fraud_orders"] + world["honest_orders"] > 0
    rows = read_rows(tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["independent_5.csv"]
    assert len(rows) == world["orders"]
    assert sum(row["is_fraud"] for row in rows) == world["fraud_orders"]
    assert {row["split"] for row in rows} == {HELD_OUT}
    assert set(report.systems) == {ENGINE, "amount rules", "isolation forest"}
    assert [row["goal"] for row in report.goals] == [goal.key for goal in GOALS]
    for row in report.goals:
        assert row["passes"] in (True, False, None)


def test_the_cli_refuses_an_unknown_split_before_running_anything() -> None:
    result = CliRunner().invoke(app, ["risk", "evaluate", "--suite", "--split", "everything"])
    assert result.exit_code == 2
    assert "--split: must be one of held_out, train, all" in result.output


def test_a_ring_counts_the_mules_its_case_took_in_within_two_days_of_their_orders(
    runtime: Runtime,
) -> None:
    """Five mules cash out an hour apart; the graph's case takes in four the next night and the
    fifth three days after its order: 80 %, surfaced 20 h after the burst. Had a second mule come
    late, the case would hold 60 % on time: not surfaced, though it ends with all five."""
    with runtime.work() as work:
        merchant = merchant_in_work(runtime, work, name="回收")
        mules = [enrol_in_work(runtime, work, external_id=f"m{i}")[0].id for i in range(5)]
        orders = [
            checkout_in_work(
                runtime, work, shopper_id=mule, merchant_id=merchant.id, amount_minor=60_000
            ).id
            for mule in mules
        ]
        for index, order_id in enumerate(orders):
            work.session.execute(
                update(Order)
                .where(Order.id == order_id)
                .values(created_at=BURST + timedelta(hours=index))
            )
    truth = GroundTruth(
        seed=1,
        fraud_orders=dict.fromkeys(orders, "ring_cash_out"),
        rings={"ring-1": {"merchant_id": merchant.id, "mules": mules}},
    )

    def outcome(late: int) -> RingOutcome:
        with runtime.work() as work:
            work.session.execute(delete(RiskAction))
            work.session.execute(delete(Ring))
            seen = BURST + timedelta(hours=20)
            work.session.add(
                Ring(
                    id="ring_a",
                    anchor_id=mules[0],
                    merchant_id=None,
                    members=mules,
                    member_count=5,
                    score=0.6,
                    evidence={},
                    amount_at_risk_minor=0,
                    case_id="case_a",
                    first_run_id="run_1",
                    last_run_id="run_2",
                    first_seen_at=seen,
                    last_seen_at=seen,
                )
            )
            for index, mule in enumerate(mules):
                joined = BURST + timedelta(hours=index + 72) if index >= 5 - late else seen
                log_action(
                    work.session,
                    action=FREEZE_LIMIT,
                    subject_id=mule,
                    case_id="case_a",
                    decided_by="graph",
                    reason="ring",
                    now=joined,
                )
        [ring] = _ring_outcomes(runtime, truth)
        return ring

    one_late = outcome(late=1)
    assert (one_late.mules, one_late.burst_at) == (5, BURST)
    assert (one_late.best_member_share, one_late.surfaced_after_hours) == (0.8, 20.0)
    assert one_late.is_surfaced
    two_late = outcome(late=2)
    assert (two_late.best_member_share, two_late.surfaced_after_hours) == (0.6, 20.0)
    assert not two_late.is_surfaced


def test_a_world_starts_at_its_own_pinned_time_whenever_it_is_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Held-out world 904's first ring surfaced 24.5 h after its burst when the suite ran at
    15:30 UTC and 89.7 h at 22:20: each world started at the machine's time. Run at two other
    hours of the day, a pinned world decides every order the same."""
    spec = WorldSpec("independent/5", "independent", 5, HELD_OUT)
    assert world_start(spec) == world_start(spec)
    starts = {world_start(WorldSpec(f"x/{seed}", "independent", seed, TRAIN)) for seed in range(40)}
    assert len({start.hour for start in starts}) > 12
    assert all(SUITE_FIRST_DAY <= start < SUITE_FIRST_DAY + timedelta(days=1) for start in starts)

    def fates(machine_time: datetime) -> list[tuple[object, ...]]:
        monkeypatch.setattr(clock, "system_now", lambda: machine_time)
        run = run_world(spec, scale=0.12, days=8)
        return sorted(
            (
                order.amount_minor,
                order.is_fraud,
                order.typology,
                order.risk_outcome,
                order.status,
                order.risk_score,
                order.is_settled,
                order.is_risk_held,
            )
            for order in run.orders
        )

    at_three = fates(datetime(2026, 12, 8, 3, 0, tzinfo=UTC))
    at_fifteen = fates(datetime(2026, 12, 8, 15, 0, tzinfo=UTC))
    assert len(at_three) > 20
    assert at_three == at_fifteen
