"""How well the engine stops cash-out fraud, measured on a simulated marketplace.

``usefirst risk evaluate --seed S`` runs the simulator (honest shoppers, honest noise and the fraud
typologies of ``usefirst.lab.sim.fraud``) on a fresh sandbox database through the real engine —
checkout decisions with rules, model and links, post-event monitors, the nightly graph,
settlement — and then scores the outcome against the simulator's ground truth, which the engine
never saw. The same orders are scored by two baselines:

* **amount rules**: hold the largest orders (the classic "review everything above ¥X");
* **isolation forest** (PyOD): an unsupervised anomaly detector on the very feature vectors the
  engine recorded at checkout.

Each baseline holds as many orders at checkout as the engine held or declined (the same review
budget), its highest-scored ones. An order counts once it was put to a risk decision that credit
alone did not settle (an order declined for want of credit was never at risk).

For the engine, a fraud order is **stopped before merchant settlement** when it was declined,
held (review or step-up never confirmed), cancelled, or held from settlement by a risk case and
never paid out; for a baseline, when it is among the orders the baseline holds at checkout.
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from sqlalchemy import select

from usefirst.credit.service import FROZEN_FOR_REVIEW
from usefirst.kit.db import Database
from usefirst.kit.migrate import upgrade
from usefirst.kit.settings import Settings
from usefirst.lab.sim.fraud import FraudScenario, GroundTruth
from usefirst.lab.sim.marketplace import simulate
from usefirst.merchants.models import SettlementHold, SettlementLine
from usefirst.orders.models import Order
from usefirst.risk.decision import default_model
from usefirst.risk.features import FEATURE_NAMES
from usefirst.risk.models import RiskDecision
from usefirst.runtime import Runtime

HELD_STATUSES = ("review", "step_up", "declined", "cancelled")
RISK_FLAGS = ("review", "declined")


@dataclass(frozen=True)
class SimulationSize:
    shoppers: int = 150
    merchants: int = 6
    days: int = 36
    scenario: FraudScenario = field(default_factory=lambda: FraudScenario().scaled(0.8))


@dataclass(frozen=True)
class DecidedOrder:
    order_id: str
    amount_minor: int
    is_fraud: bool
    typology: str | None
    risk_outcome: str
    outcome: str
    status: str
    risk_score: int
    model_score: float | None
    is_settled: bool
    is_risk_held: bool
    features: tuple[float, ...]

    @property
    def is_stopped_by_engine(self) -> bool:
        if self.risk_outcome == "declined" or self.status in HELD_STATUSES:
            return True
        return self.is_risk_held and not self.is_settled

    @property
    def is_flagged_by_engine(self) -> bool:
        return self.risk_outcome in RISK_FLAGS or (self.is_risk_held and not self.is_fraud)


@dataclass
class SystemResult:
    name: str
    flagged_orders: int
    fraud_orders: int
    fraud_stopped: int
    cash_out_minor: int
    cash_out_stopped_minor: int
    honest_orders: int
    honest_flagged: int
    precision: float
    recall: float
    # Honest orders asked for a one-time code (friction, not a hold); only the engine steps up.
    honest_stepped_up: int = 0

    @property
    def cash_out_stopped_share(self) -> float:
        return self.cash_out_stopped_minor / self.cash_out_minor if self.cash_out_minor else 0.0

    @property
    def honest_flagged_share(self) -> float:
        return self.honest_flagged / self.honest_orders if self.honest_orders else 0.0

    @property
    def loss_prevented_minor(self) -> int:
        return self.cash_out_stopped_minor

    @property
    def loss_minor(self) -> int:
        return self.cash_out_minor - self.cash_out_stopped_minor


@dataclass
class EvaluationReport:
    seed: int
    size: SimulationSize
    orders: int
    review_budget: int
    model_version: str | None
    systems: list[SystemResult]
    typologies: dict[str, dict[str, int]]

    def system(self, name: str) -> SystemResult:
        return next(system for system in self.systems if system.name == name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "size": asdict(self.size),
            "orders": self.orders,
            "review_budget": self.review_budget,
            "model_version": self.model_version,
            "systems": [
                {
                    **asdict(system),
                    "cash_out_stopped_share": system.cash_out_stopped_share,
                    "honest_flagged_share": system.honest_flagged_share,
                    "loss_prevented_minor": system.loss_prevented_minor,
                }
                for system in self.systems
            ],
            "typologies": self.typologies,
        }


# -- a fresh sandbox --------------------------------------------------------------------------


def sandbox_runtime(directory: Path, *, settings: Settings | None = None) -> Runtime:
    """A new, migrated SQLite sandbox in ``directory`` with its own throw-away keys."""
    directory.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{directory / 'simulation.db'}"
    values: dict[str, Any] = {
        "database_url": url,
        "sandbox": True,
        "encryption_keys": f"sim:{base64.urlsafe_b64encode(os.urandom(32)).decode()}",
        "active_key_id": "sim",
        "blind_index_key": base64.urlsafe_b64encode(os.urandom(64)).decode(),
        "sms_log_path": directory / "sms.jsonl",
        "keys_file": directory / "keys.json",
    }
    base = settings.model_dump() if settings is not None else {}
    merged = Settings(**{**base, **values})
    upgrade(url)
    # One process drives every transaction of a throw-away database: connections are kept
    # rather than opened and closed (with a WAL checkpoint) per transaction, and nothing waits
    # for the disk. Profiled, that was four fifths of a world's wall time (issue 19).
    database = Database(url, keep_sqlite_connections=True, durable=False)
    return Runtime(merged, database=database)


def simulate_history(
    runtime: Runtime, *, seed: int, size: SimulationSize, console: Console | None = None
) -> GroundTruth:
    summary = simulate(
        runtime,
        shoppers=size.shoppers,
        merchants=size.merchants,
        days=size.days,
        seed=seed,
        console=console,
        scenario=size.scenario,
    )
    if not summary.ledger_balanced:
        raise AssertionError(f"the simulated ledger does not balance: {summary.ledger_problems}")
    assert summary.ground_truth is not None
    return summary.ground_truth


# -- scoring ------------------------------------------------------------------------------------


def engine_risk_outcome(
    outcome: str, risk_outcome: str, reasons: list[dict[str, Any]] | None
) -> str | None:
    """What the engine's risk side decided of a checkout; None when credit alone declined it (no
    credit, limit exceeded, frozen for an overdue). Credit a risk case froze is risk's decline."""
    if any(reason.get("code") == FROZEN_FOR_REVIEW.code for reason in reasons or []):
        return "declined"
    if outcome == "declined" and risk_outcome != "declined":
        return None
    return risk_outcome


def decided_orders(runtime: Runtime, truth: GroundTruth) -> list[DecidedOrder]:
    """Every order put to a risk decision that credit alone did not settle, with its fate."""
    with runtime.work(read_only=True) as work:
        session = work.session
        settled = set(
            session.scalars(
                select(SettlementLine.order_id).where(SettlementLine.component == "sale")
            )
        )
        held = set(
            session.scalars(
                select(SettlementHold.order_id).where(
                    SettlementHold.released_at.is_(None), SettlementHold.source.like("risk:%")
                )
            )
        )
        rows = session.execute(
            select(RiskDecision, Order.status, Order.decision_reasons)
            .join(
                Order,
                (Order.shopper_id == RiskDecision.shopper_id) & (Order.id == RiskDecision.order_id),
            )
            .order_by(RiskDecision.decided_at, RiskDecision.order_id)
        ).all()
        decided = []
        for decision, status, reasons in rows:
            risk_outcome = engine_risk_outcome(decision.outcome, decision.risk_outcome, reasons)
            if risk_outcome is None:
                continue  # declined for credit: never at risk
            decided.append(
                DecidedOrder(
                    order_id=decision.order_id,
                    amount_minor=decision.amount_minor,
                    is_fraud=truth.is_fraud_order(decision.order_id),
                    typology=truth.fraud_orders.get(decision.order_id),
                    risk_outcome=risk_outcome,
                    outcome=decision.outcome,
                    status=status,
                    risk_score=decision.risk_score,
                    model_score=decision.model_score,
                    is_settled=decision.order_id in settled,
                    is_risk_held=decision.order_id in held,
                    features=tuple(
                        float(decision.features.get(name, 0.0)) for name in FEATURE_NAMES
                    ),
                )
            )
    return decided


def _result(
    name: str,
    orders: Sequence[DecidedOrder],
    *,
    stopped: Callable[[DecidedOrder], bool],
    flagged: Callable[[DecidedOrder], bool],
) -> SystemResult:
    fraud = [order for order in orders if order.is_fraud]
    honest = [order for order in orders if not order.is_fraud]
    flagged_orders = [order for order in orders if flagged(order)]
    flagged_fraud = sum(order.is_fraud for order in flagged_orders)
    return SystemResult(
        name=name,
        flagged_orders=len(flagged_orders),
        fraud_orders=len(fraud),
        fraud_stopped=sum(stopped(order) for order in fraud),
        cash_out_minor=sum(order.amount_minor for order in fraud),
        cash_out_stopped_minor=sum(order.amount_minor for order in fraud if stopped(order)),
        honest_orders=len(honest),
        honest_flagged=sum(flagged(order) for order in honest),
        precision=flagged_fraud / len(flagged_orders) if flagged_orders else 0.0,
        recall=flagged_fraud / len(fraud) if fraud else 0.0,
        honest_stepped_up=sum(order.risk_outcome == "step_up" for order in honest)
        if name.startswith("engine")
        else 0,
    )


def _top(orders: Sequence[DecidedOrder], scores: Sequence[float], budget: int) -> set[str]:
    ranked = sorted(
        zip(scores, (order.order_id for order in orders), strict=True),
        key=lambda pair: (-pair[0], pair[1]),
    )
    return {order_id for _, order_id in ranked[:budget]}


def isolation_forest_scores(orders: Sequence[DecidedOrder], *, seed: int) -> list[float]:
    # Imported here: pyod (the training extra) is heavy and only this baseline needs it.
    from pyod.models.iforest import IForest

    matrix = np.array([order.features for order in orders], dtype=np.float64)
    detector = IForest(n_estimators=200, random_state=seed, n_jobs=1)
    detector.fit(matrix)
    return [float(score) for score in detector.decision_scores_]


def score_systems(orders: Sequence[DecidedOrder], *, seed: int) -> tuple[int, list[SystemResult]]:
    engine = _result(
        "engine (rules + model + links + graph)",
        orders,
        stopped=lambda order: order.is_stopped_by_engine,
        flagged=lambda order: order.is_flagged_by_engine,
    )
    budget = sum(order.risk_outcome in RISK_FLAGS for order in orders)
    by_amount = _top(orders, [float(order.amount_minor) for order in orders], budget)
    by_forest = _top(orders, isolation_forest_scores(orders, seed=seed), budget)
    baselines = [
        _result(
            name,
            orders,
            stopped=lambda order, chosen=chosen: order.order_id in chosen,  # type: ignore[misc]
            flagged=lambda order, chosen=chosen: order.order_id in chosen,  # type: ignore[misc]
        )
        for name, chosen in (
            ("baseline: amount rules", by_amount),
            ("baseline: isolation forest", by_forest),
        )
    ]
    return budget, [engine, *baselines]


def _typologies(orders: Sequence[DecidedOrder]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for order in orders:
        if order.typology is None:
            continue
        row = table.setdefault(
            order.typology, {"orders": 0, "stopped": 0, "amount_minor": 0, "stopped_minor": 0}
        )
        row["orders"] += 1
        row["amount_minor"] += order.amount_minor
        if order.is_stopped_by_engine:
            row["stopped"] += 1
            row["stopped_minor"] += order.amount_minor
    return dict(sorted(table.items()))


def evaluate(
    *,
    seed: int,
    size: SimulationSize,
    directory: Path | None = None,
    console: Console | None = None,
    truth_file: Path | None = None,
) -> EvaluationReport:
    """Simulate a marketplace with ``seed`` through the engine and score it against baselines."""
    with tempfile.TemporaryDirectory(prefix="usefirst-evaluate-") as scratch:
        runtime = sandbox_runtime(directory or Path(scratch))
        try:
            truth = simulate_history(runtime, seed=seed, size=size, console=console)
            if truth_file is not None:
                truth.write(truth_file)
            orders = decided_orders(runtime, truth)
        finally:
            runtime.database.dispose()
    budget, systems = score_systems(orders, seed=seed)
    model = default_model()
    return EvaluationReport(
        seed=seed,
        size=size,
        orders=len(orders),
        review_budget=budget,
        model_version=model.version if model is not None else None,
        systems=systems,
        typologies=_typologies(orders),
    )
