"""Cash-out detection measured on a suite of marketplaces, so that it cannot be tuned to one world.

``usefirst risk evaluate --suite`` runs several worlds through the real engine, each in a fresh
sandbox, from two generators:

* ``typology``: the project's simulator (:mod:`usefirst.lab.sim.fraud`) with scenarios of
  different shapes: many small rings, a few large ones, bust-out heavy, family and big-spender
  heavy;
* ``independent``: :mod:`usefirst.lab.sim.independent`, written from the issue's description of a
  marketplace rather than from the typologies the rules were tuned on, its shape (ring size and
  tempo, split orders, device/IP rotation, address variants, mule reuse, household and NAT
  sharing, the sale day, the bust-outs' clean weeks) drawn at random from each world's seed.

Worlds are split into **training** worlds (the only ones rules, thresholds and models may be
chosen on) and **held-out** worlds (the only ones the report scores). Every figure is given for
each held-out world, as the worst world and the mean, and pooled over the held-out worlds with a
95 % bootstrap confidence interval (orders resampled within each world; rings resampled). The
goals of issue 19 are judged on the worst held-out world.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from sqlalchemy import select

from usefirst.kit.clock import TestClock
from usefirst.lab.risk_evaluation import (
    RISK_FLAGS,
    DecidedOrder,
    SimulationSize,
    decided_orders,
    isolation_forest_scores,
    sandbox_runtime,
    simulate_history,
)
from usefirst.lab.signal_study import (
    point_in_time_signals,
    recorded_orders,
    study_rows,
    write_rows,
)
from usefirst.lab.sim.fraud import FraudScenario, GroundTruth
from usefirst.lab.sim.independent import simulate_independent
from usefirst.orders.models import Order
from usefirst.risk.actions import FREEZE_LIMIT
from usefirst.risk.decision import default_model
from usefirst.risk.graph import DECIDED_BY as GRAPH
from usefirst.risk.repository import RiskRepository
from usefirst.runtime import Runtime

TRAIN, HELD_OUT = "train", "held_out"
SPLITS = (HELD_OUT, TRAIN, "all")
ENGINE = "engine"
BASELINES = ("amount rules", "isolation forest")
CHECKOUT_STOPS = ("declined", "review")
# A ring must be surfaced within this long of its burst (its first cash-out order).
RING_SURFACE_WITHIN = timedelta(days=2)
RING_MIN_MULES = 5
RING_MEMBER_SHARE = 0.8
BUST_OUT_TYPOLOGIES = ("bust_out", "synthetic_bust_out")

# The typology simulator's shapes: (name, honest shoppers, merchants, days, scenario).
TYPOLOGY_SHAPES: dict[str, tuple[int, int, int, FraudScenario]] = {
    "small-rings": (
        70,
        4,
        28,
        FraudScenario(
            rings=3,
            mules_per_ring=5,
            bust_outs=3,
            synthetic_clusters=1,
            identities_per_cluster=4,
            big_spenders=10,
            families=4,
            family_size=3,
        ),
    ),
    "large-rings": (
        70,
        5,
        28,
        FraudScenario(
            rings=2,
            mules_per_ring=9,
            bust_outs=2,
            synthetic_clusters=1,
            identities_per_cluster=5,
            big_spenders=8,
            families=3,
            family_size=4,
        ),
    ),
    "bust-out-heavy": (
        80,
        5,
        32,
        FraudScenario(
            rings=1,
            mules_per_ring=6,
            bust_outs=8,
            synthetic_clusters=2,
            identities_per_cluster=3,
            big_spenders=12,
            families=4,
            family_size=2,
        ),
    ),
    "crowded-households": (
        80,
        4,
        28,
        FraudScenario(
            rings=2,
            mules_per_ring=6,
            bust_outs=3,
            synthetic_clusters=1,
            identities_per_cluster=4,
            big_spenders=15,
            families=10,
            family_size=4,
        ),
    ),
}


@dataclass(frozen=True)
class WorldSpec:
    name: str
    generator: str  # typology | independent
    seed: int
    split: str  # train | held_out
    shape: str | None = None  # the typology simulator's shape; None for the independent one


def default_suite() -> list[WorldSpec]:
    """The suite's worlds: every typology shape and the independent generator, some seeds to
    train on and others held out. Held-out seeds are never used for training."""
    worlds: list[WorldSpec] = []
    shapes = len(TYPOLOGY_SHAPES)
    for index, shape in enumerate(TYPOLOGY_SHAPES):
        # Two training seeds per shape (101-104, then 105-108): a model fitted on one world of
        # each shape learnt that world's absolute sizes.
        for seed in (101 + index, 101 + shapes + index):
            worlds.append(WorldSpec(f"typology/{shape}/{seed}", "typology", seed, TRAIN, shape))
        worlds.append(
            WorldSpec(f"typology/{shape}/{901 + index}", "typology", 901 + index, HELD_OUT, shape)
        )
    for seed in (111, 112, 113, 114, 115, 116):
        worlds.append(WorldSpec(f"independent/{seed}", "independent", seed, TRAIN))
    for seed in (911, 912, 913, 914):
        worlds.append(WorldSpec(f"independent/{seed}", "independent", seed, HELD_OUT))
    return worlds


# -- one world ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RingOutcome:
    ring: str
    mules: int  # mules that placed a cash-out order
    burst_at: datetime | None
    # The largest share of its mules one ring case took in, each within RING_SURFACE_WITHIN of
    # its own first cash-out order (a mule the case caught up with only later does not count).
    best_member_share: float
    surfaced_after_hours: float | None  # when that ring was first seen, after the burst

    @property
    def is_eligible(self) -> bool:
        return self.mules >= RING_MIN_MULES and self.burst_at is not None

    @property
    def is_surfaced(self) -> bool:
        return (
            self.surfaced_after_hours is not None
            and self.surfaced_after_hours <= RING_SURFACE_WITHIN.total_seconds() / 3600
            and self.best_member_share >= RING_MEMBER_SHARE
        )


@dataclass
class WorldRun:
    spec: WorldSpec
    orders: list[DecidedOrder]
    rings: list[RingOutcome]
    wall_seconds: float
    cpu_seconds: float


def _ring_outcomes(runtime: Runtime, truth: GroundTruth) -> list[RingOutcome]:
    """For each true ring: its burst (first cash-out order of its mules at its merchant), and the
    engine's ring case that took in most of those mules, each in time (when the graph froze it
    for that case, within ``RING_SURFACE_WITHIN`` of the mule's own first cash-out order there),
    and when the engine first saw that ring."""
    with runtime.work(read_only=True) as work:
        risk = RiskRepository(work.session)
        rings = [(ring.case_id, ring.first_seen_at) for ring in risk.rings()]
        joined = risk.first_actions_by_case(action=FREEZE_LIMIT, decided_by=GRAPH)
        fraud_ids = list(truth.fraud_orders)
        placed = work.session.execute(
            select(Order.shopper_id, Order.merchant_id, Order.created_at).where(
                Order.id.in_(fraud_ids)
            )
        ).all()
    outcomes = []
    for name, ring in sorted(truth.rings.items()):
        merchant_id = ring["merchant_id"]
        mule_set = set(ring["mules"])
        first_order: dict[str, datetime] = {}
        for shopper, merchant, created in placed:
            if merchant == merchant_id and shopper in mule_set:
                first_order[shopper] = min(created, first_order.get(shopper, created))
        acted = set(first_order)
        burst = min(first_order.values()) if first_order else None
        best_share, seen_at = 0.0, None
        for case_id, first_seen_at in rings:
            members = joined.get(case_id, {}) if case_id else {}
            in_time = {
                mule
                for mule in acted & set(members)
                if members[mule] - first_order[mule] <= RING_SURFACE_WITHIN
            }
            share = len(in_time) / len(acted) if acted else 0.0
            if share > best_share:
                best_share, seen_at = share, first_seen_at
        after = (seen_at - burst).total_seconds() / 3600 if seen_at and burst else None
        outcomes.append(RingOutcome(name, len(acted), burst, best_share, after))
    return outcomes


# The first day of every world. A world that started when it was run (the sandbox clock's
# default) gave other figures at another hour of the day: its checkouts fell on other sides of
# the nightly graph run, the sweep and quiet hours (held-out world 904's first ring surfaced
# 24.5 h after its burst when run at 15:30 UTC, 89.7 h when run at 22:20). Pinned, a world is
# the same world on every run, and before and after a change compare.
SUITE_FIRST_DAY = datetime(2026, 11, 2, tzinfo=UTC)


def world_start(spec: WorldSpec) -> datetime:
    """When ``spec``'s world begins: ``SUITE_FIRST_DAY`` at an hour and minute drawn from the
    world's seed, so the suite's worlds start at different times of day (a rule tuned to one
    hour's timing does not pass the suite), each at the same time on every run."""
    drawn = random.Random(f"{spec.generator}/{spec.seed}").randrange(24 * 60)
    return SUITE_FIRST_DAY + timedelta(minutes=drawn)


def run_world(
    spec: WorldSpec,
    *,
    scale: float = 1.0,
    days: int | None = None,
    console: Console | None = None,
    data_dir: Path | None = None,
) -> WorldRun:
    """Simulate one world in a throw-away sandbox and read back every order's fate (``days``
    overrides the world's length: tests run short worlds). With ``data_dir``, each order's
    recorded features, lab signals and label are written there for a signal study."""
    started, started_cpu = time.monotonic(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="usefirst-suite-") as scratch:
        runtime = sandbox_runtime(Path(scratch))
        try:
            if not isinstance(runtime.clock, TestClock):
                raise AssertionError("a suite world runs on the sandbox's test clock")
            with runtime.work() as work:
                runtime.clock.set(work.session, world_start(spec))
            if spec.generator == "independent":
                summary = simulate_independent(runtime, seed=spec.seed, scale=scale, days=days)
                if not summary.ledger_balanced:
                    raise AssertionError(f"ledger does not balance: {summary.ledger_problems}")
                truth = summary.truth
            else:
                assert spec.shape is not None
                shoppers, merchants, shape_days, scenario = TYPOLOGY_SHAPES[spec.shape]
                size = SimulationSize(
                    shoppers=max(4, round(shoppers * scale)),
                    merchants=merchants,
                    days=days or shape_days,
                    scenario=scenario.scaled(scale) if scale != 1.0 else scenario,
                )
                truth = simulate_history(runtime, seed=spec.seed, size=size, console=None)
            orders = decided_orders(runtime, truth)
            rings = _ring_outcomes(runtime, truth)
            if data_dir is not None:
                signals = point_in_time_signals(recorded_orders(runtime))
                data_dir.mkdir(parents=True, exist_ok=True)
                write_rows(
                    data_dir / f"{spec.name.replace('/', '_')}.csv",
                    study_rows(spec.name, spec.split, orders, signals),
                )
        finally:
            runtime.database.dispose()
    run = WorldRun(
        spec, orders, rings, time.monotonic() - started, time.process_time() - started_cpu
    )
    if console is not None:
        console.print(
            f"{spec.name}: {len(orders)} orders, {sum(o.is_fraud for o in orders)} fraud, "
            f"{run.wall_seconds:.0f} s wall, {run.cpu_seconds:.0f} s CPU"
        )
    return run


# -- scoring -------------------------------------------------------------------------------------


def is_stopped_at_checkout(order: DecidedOrder) -> bool:
    """Stopped by the checkout decision itself (declined, or held in review and never let
    through); a step-up the shopper confirmed went through."""
    return order.risk_outcome in CHECKOUT_STOPS or order.status in ("review", "step_up", "declined")


def is_honest_touched(order: DecidedOrder) -> bool:
    """Reviewed, stepped up or declined for risk at checkout (issue 19's "touched")."""
    return order.risk_outcome in ("review", "step_up", "declined") or order.status in (
        "review",
        "step_up",
        "declined",
    )


def is_held_after_checkout(order: DecidedOrder) -> bool:
    """Let through at checkout, then its merchant's payout for it held by a risk case: the
    shopper is not stopped, but an honest merchant waits for its money."""
    return order.is_risk_held and not is_honest_touched(order)


@dataclass(frozen=True)
class SystemRule:
    """How one system (the engine or a baseline) treats an order."""

    before_payout: Callable[[DecidedOrder], bool]
    at_checkout: Callable[[DecidedOrder], bool]
    touched: Callable[[DecidedOrder], bool]
    held_later: Callable[[DecidedOrder], bool]


def system_rules(orders: Sequence[DecidedOrder], *, seed: int) -> dict[str, SystemRule]:
    """The engine by its real outcomes; each baseline holds at checkout as many orders as the
    engine held or declined there (the same review budget), its highest-scored ones."""
    budget = sum(order.risk_outcome in RISK_FLAGS for order in orders)

    def top(scores: Sequence[float]) -> set[str]:
        ranked = sorted(
            zip(scores, (order.order_id for order in orders), strict=True),
            key=lambda pair: (-pair[0], pair[1]),
        )
        return {order_id for _, order_id in ranked[:budget]}

    rules = {
        ENGINE: SystemRule(
            before_payout=lambda order: order.is_stopped_by_engine,
            at_checkout=is_stopped_at_checkout,
            touched=is_honest_touched,
            held_later=is_held_after_checkout,
        )
    }
    chosen = {
        "amount rules": top([float(order.amount_minor) for order in orders]),
        "isolation forest": top(isolation_forest_scores(orders, seed=seed))
        if len(orders) > 1
        else set(),
    }
    for name, held in chosen.items():
        rules[name] = SystemRule(
            before_payout=lambda order, held=held: order.order_id in held,  # type: ignore[misc]
            at_checkout=lambda order, held=held: order.order_id in held,  # type: ignore[misc]
            touched=lambda order, held=held: order.order_id in held,  # type: ignore[misc]
            held_later=lambda order: False,
        )
    return rules


@dataclass(frozen=True)
class Ratio:
    """A share: what was hit over what there was (amounts in minor units, or counts)."""

    hit: float
    total: float

    @property
    def value(self) -> float | None:
        return self.hit / self.total if self.total else None


# One world's arrays for a measure: per unit (order or ring), its weight and whether it was hit.
Arrays = tuple[np.ndarray, np.ndarray]


@dataclass
class MeasureResult:
    per_world: dict[str, float | None]
    pooled: float | None
    low: float | None
    high: float | None

    @property
    def known(self) -> list[float]:
        return [value for value in self.per_world.values() if value is not None]

    def worst(self, *, higher_is_better: bool) -> float | None:
        known = self.known
        if not known:
            return None
        return min(known) if higher_is_better else max(known)

    @property
    def mean(self) -> float | None:
        known = self.known
        return sum(known) / len(known) if known else None

    def as_dict(self, *, higher_is_better: bool) -> dict[str, Any]:
        return {
            "per_world": self.per_world,
            "pooled": self.pooled,
            "ci95": [self.low, self.high],
            "worst": self.worst(higher_is_better=higher_is_better),
            "mean": self.mean,
        }


def bootstrap_measure(
    per_world: dict[str, Arrays], *, replicates: int = 1000, seed: int = 0
) -> MeasureResult:
    """Each world's share, and the pooled share with a 95 % percentile bootstrap interval
    (units resampled with replacement within each world)."""
    values: dict[str, float | None] = {}
    for name, (weights, hits) in per_world.items():
        total = float(weights.sum())
        values[name] = float((weights * hits).sum()) / total if total else None
    weights_all = [weights for weights, _ in per_world.values() if len(weights)]
    if not weights_all or not sum(float(w.sum()) for w in weights_all):
        return MeasureResult(values, None, None, None)
    pooled_hit = sum(float((w * h).sum()) for w, h in per_world.values())
    pooled_total = sum(float(w.sum()) for w, _ in per_world.values())
    generator = np.random.default_rng(seed)
    hit_samples = np.zeros(replicates)
    total_samples = np.zeros(replicates)
    for weights, hits in per_world.values():
        if not len(weights):
            continue
        picks = generator.integers(0, len(weights), size=(replicates, len(weights)))
        hit_samples += (weights * hits)[picks].sum(axis=1)
        total_samples += weights[picks].sum(axis=1)
    shares = np.divide(
        hit_samples, total_samples, out=np.zeros_like(hit_samples), where=total_samples > 0
    )
    low, high = np.percentile(shares, [2.5, 97.5])
    return MeasureResult(values, pooled_hit / pooled_total, float(low), float(high))


def _order_arrays(
    orders: Sequence[DecidedOrder],
    include: Callable[[DecidedOrder], bool],
    hit: Callable[[DecidedOrder], bool],
    *,
    by_amount: bool,
) -> Arrays:
    chosen = [order for order in orders if include(order)]
    weights = np.array(
        [float(order.amount_minor) if by_amount else 1.0 for order in chosen], dtype=np.float64
    )
    hits = np.array([1.0 if hit(order) else 0.0 for order in chosen], dtype=np.float64)
    return weights, hits


@dataclass(frozen=True)
class Goal:
    key: str
    text: str
    measure: str  # the measure (of the engine) the goal is judged on, on the worst world
    threshold: float
    higher_is_better: bool

    def passes(self, worst: float | None) -> bool | None:
        if worst is None:
            return None
        return worst >= self.threshold if self.higher_is_better else worst <= self.threshold


GOALS = (
    Goal(
        "cash_out_before_payout",
        "cash-out money stopped before payout ≥ 95 %",
        "cash_out_before_payout",
        0.95,
        True,
    ),
    Goal(
        "cash_out_at_checkout",
        "cash-out money stopped at checkout ≥ 90 %",
        "cash_out_at_checkout",
        0.90,
        True,
    ),
    Goal(
        "honest_touched",
        "honest orders reviewed, stepped up or declined ≤ 0.5 %",
        "honest_touched",
        0.005,
        False,
    ),
    Goal(
        "rings_surfaced",
        "every ring of ≥ 5 mules surfaced within 2 days with ≥ 80 % of them",
        "rings_surfaced",
        1.0,
        True,
    ),
    Goal(
        "bust_out_stopped",
        "bust-out money stopped before payout ≥ 80 %",
        "bust_out_stopped",
        0.80,
        True,
    ),
)
HIGHER_IS_BETTER = {
    "cash_out_before_payout": True,
    "cash_out_at_checkout": True,
    "honest_touched": False,
    "rings_surfaced": True,
    "bust_out_stopped": True,
    # Reported beside the goals, not one of them: the issue counts what the shopper meets.
    "honest_held_after_checkout": False,
}


@dataclass
class SuiteReport:
    split: str
    worlds: list[dict[str, Any]]
    model_version: str | None
    # system -> measure -> result
    systems: dict[str, dict[str, MeasureResult]]
    # typology -> result (engine, money stopped before payout) and at checkout
    typologies: dict[str, dict[str, MeasureResult]]
    wall_seconds: float
    cpu_seconds: float
    goals: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "model_version": self.model_version,
            "worlds": self.worlds,
            "goals": self.goals,
            "systems": {
                system: {
                    measure: result.as_dict(higher_is_better=HIGHER_IS_BETTER[measure])
                    for measure, result in measures.items()
                }
                for system, measures in self.systems.items()
            },
            "typologies": {
                typology: {
                    measure: result.as_dict(higher_is_better=True)
                    for measure, result in measures.items()
                }
                for typology, measures in self.typologies.items()
            },
            "wall_seconds": self.wall_seconds,
            "cpu_seconds": self.cpu_seconds,
        }


def _of_typology(typology: str) -> Callable[[DecidedOrder], bool]:
    return lambda order: order.typology == typology


def score_suite(runs: Sequence[WorldRun], *, split: str, seed: int = 0) -> SuiteReport:
    """Every measure per world, worst, mean and pooled with its interval; goals judged."""
    systems: dict[str, dict[str, dict[str, Arrays]]] = {}
    typologies: dict[str, dict[str, dict[str, Arrays]]] = {}
    world_rows = []
    for run in runs:
        name, orders = run.spec.name, run.orders
        rules = system_rules(orders, seed=run.spec.seed)
        for system, rule in rules.items():
            measures = systems.setdefault(system, {})
            measures.setdefault("cash_out_before_payout", {})[name] = _order_arrays(
                orders, lambda o: o.is_fraud, rule.before_payout, by_amount=True
            )
            measures.setdefault("cash_out_at_checkout", {})[name] = _order_arrays(
                orders, lambda o: o.is_fraud, rule.at_checkout, by_amount=True
            )
            measures.setdefault("honest_touched", {})[name] = _order_arrays(
                orders, lambda o: not o.is_fraud, rule.touched, by_amount=False
            )
            measures.setdefault("honest_held_after_checkout", {})[name] = _order_arrays(
                orders, lambda o: not o.is_fraud, rule.held_later, by_amount=False
            )
            measures.setdefault("bust_out_stopped", {})[name] = _order_arrays(
                orders,
                lambda o: o.typology in BUST_OUT_TYPOLOGIES,
                rule.before_payout,
                by_amount=True,
            )
        eligible = [ring for ring in run.rings if ring.is_eligible]
        systems[ENGINE].setdefault("rings_surfaced", {})[name] = (
            np.ones(len(eligible)),
            np.array([1.0 if ring.is_surfaced else 0.0 for ring in eligible]),
        )
        engine_rule = rules[ENGINE]
        for typology in sorted({o.typology for o in orders if o.typology is not None}):
            table = typologies.setdefault(typology, {})
            table.setdefault("before_payout", {})[name] = _order_arrays(
                orders,
                _of_typology(typology),
                engine_rule.before_payout,
                by_amount=True,
            )
            table.setdefault("at_checkout", {})[name] = _order_arrays(
                orders,
                _of_typology(typology),
                engine_rule.at_checkout,
                by_amount=True,
            )
        world_rows.append(
            {
                "name": name,
                "generator": run.spec.generator,
                "seed": run.spec.seed,
                "orders": len(orders),
                "fraud_orders": sum(order.is_fraud for order in orders),
                "honest_orders": sum(not order.is_fraud for order in orders),
                "rings": [
                    {
                        "ring": ring.ring,
                        "mules": ring.mules,
                        "best_member_share": ring.best_member_share,
                        "surfaced_after_hours": ring.surfaced_after_hours,
                        "surfaced": ring.is_surfaced,
                    }
                    for ring in run.rings
                ],
                "wall_seconds": run.wall_seconds,
                "cpu_seconds": run.cpu_seconds,
            }
        )
    # Worlds without a typology score None there (not zero) and drop out of worst and mean.
    for measures in systems.values():
        for per_world in measures.values():
            for run in runs:
                per_world.setdefault(run.spec.name, (np.zeros(0), np.zeros(0)))
    scored = {
        system: {
            measure: bootstrap_measure(per_world, seed=seed)
            for measure, per_world in measures.items()
        }
        for system, measures in systems.items()
    }
    scored_typologies = {
        typology: {
            measure: bootstrap_measure(per_world, seed=seed)
            for measure, per_world in measures.items()
        }
        for typology, measures in typologies.items()
    }
    model = default_model()
    report = SuiteReport(
        split=split,
        worlds=world_rows,
        model_version=model.version if model is not None else None,
        systems=scored,
        typologies=scored_typologies,
        wall_seconds=sum(run.wall_seconds for run in runs),
        cpu_seconds=sum(run.cpu_seconds for run in runs),
    )
    report.goals = judge_goals(scored)
    return report


def judge_goals(scored: dict[str, dict[str, MeasureResult]]) -> list[dict[str, Any]]:
    """Each goal on the engine's worst world, with the baselines' worst world beside it."""
    judged = []
    for goal in GOALS:
        row: dict[str, Any] = {"goal": goal.key, "text": goal.text, "threshold": goal.threshold}
        for system, measures in scored.items():
            result = measures.get(goal.measure)
            worst = result.worst(higher_is_better=goal.higher_is_better) if result else None
            row[system] = {
                "worst": worst,
                "mean": result.mean if result else None,
                "pooled": result.pooled if result else None,
                "ci95": [result.low, result.high] if result else [None, None],
                "passes": goal.passes(worst),
            }
        row["passes"] = row[ENGINE]["passes"]
        judged.append(row)
    return judged


def run_suite(
    *,
    split: str = HELD_OUT,
    scale: float = 1.0,
    worlds: Sequence[WorldSpec] | None = None,
    console: Console | None = None,
    seed: int = 0,
    days: int | None = None,
    data_dir: Path | None = None,
) -> SuiteReport:
    """Run the suite's worlds of ``split`` (train, held_out, all) and score the held-out ones
    (all of them when only training worlds ran: figures to tune on)."""
    chosen = [spec for spec in (worlds or default_suite()) if split in ("all", spec.split)]
    runs = [
        run_world(spec, scale=scale, days=days, console=console, data_dir=data_dir)
        for spec in chosen
    ]
    scored = [run for run in runs if run.spec.split == HELD_OUT] if split == "all" else runs
    return score_suite(scored, split=HELD_OUT if split == "all" else split, seed=seed)


def shuffled_worlds(seed: int, count: int) -> list[WorldSpec]:
    """``count`` extra held-out worlds of the independent generator with seeds drawn at random
    (a run nobody could have tuned for)."""
    rng = random.Random(seed)
    return [
        WorldSpec(f"independent/{drawn}", "independent", drawn, HELD_OUT)
        for drawn in (rng.randrange(10_000, 1_000_000) for _ in range(count))
    ]
