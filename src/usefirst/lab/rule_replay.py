"""Rules and thresholds chosen on training worlds only: a rule set replayed over the recorded
checkout features of the evaluation suite's training worlds (``usefirst risk evaluate --suite
--split train --data-dir``), each row scored by a fraud model fitted on the *other* training
worlds (``out_of_world_scores``: how the shipped model will score a world it never saw).

Per world: the share of honest orders the rules would touch at checkout (step-up, review or
decline) and the share of fraud money they would stop there; per rule: how many honest and fraud
orders it hits and how many it alone decides. A replay counts risk's outcome only: credit
declines and what happens after checkout are the evaluation's business, so the figures are a
guide for choosing rules, and the held-out evaluation is the measure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from usefirst.lab.fraud_model_training import out_of_world_scores, suite_rows
from usefirst.risk.features import FEATURE_NAMES
from usefirst.risk.rules import RuleSet

TOUCHED = ("step_up", "review", "declined")
# Log-odds offsets tried for the model's operating point: 0 down to -6 in quarters.
OFFSETS = tuple(-step / 4 for step in range(25))


@dataclass
class WorldReplay:
    world: str
    honest: int = 0
    honest_touched: int = 0
    fraud_minor: int = 0
    fraud_stopped_minor: int = 0

    @property
    def honest_touched_share(self) -> float:
        return self.honest_touched / self.honest if self.honest else 0.0

    @property
    def fraud_stopped_share(self) -> float:
        return self.fraud_stopped_minor / self.fraud_minor if self.fraud_minor else 1.0


@dataclass
class Replay:
    worlds: list[WorldReplay]
    honest_hits: Counter[str] = field(default_factory=Counter)
    fraud_hits: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        return {
            "honest_touched_worst": max(w.honest_touched_share for w in self.worlds),
            "honest_touched_mean": float(np.mean([w.honest_touched_share for w in self.worlds])),
            "fraud_stopped_worst": min(w.fraud_stopped_share for w in self.worlds),
            "fraud_stopped_mean": float(np.mean([w.fraud_stopped_share for w in self.worlds])),
            "worlds": {
                w.world: {
                    "honest_touched": w.honest_touched_share,
                    "fraud_stopped": w.fraud_stopped_share,
                }
                for w in self.worlds
            },
            "rule_hits_honest": dict(self.honest_hits.most_common()),
            "rule_hits_fraud": dict(self.fraud_hits.most_common()),
        }


def training_scores(rows: Sequence[Mapping[str, Any]], *, seed: int = 7) -> np.ndarray[Any, Any]:
    """Out-of-world model scores of the training rows (in ``rows`` order, training rows only)."""
    train = [row for row in rows if row["split"] == "train"]
    labelled = suite_rows(train, feature_names=FEATURE_NAMES)
    return out_of_world_scores(labelled, [str(row["world"]) for row in train], seed=seed)


@dataclass(frozen=True)
class OperatingPoint:
    offset: float  # added to the calibrated log-odds
    honest_touched: float  # pooled over the training worlds
    model_honest_touched: float  # of those, touched only because of the model's score
    fraud_stopped: float  # pooled share of the fraud money
    feasible: bool  # the model's own honest touches within the budget


def _pooled(result: Replay) -> tuple[int, int, int, int]:
    return (
        sum(world.honest for world in result.worlds),
        sum(world.honest_touched for world in result.worlds),
        sum(world.fraud_minor for world in result.worlds),
        sum(world.fraud_stopped_minor for world in result.worlds),
    )


def choose_offset(
    rows: Sequence[Mapping[str, Any]],
    rule_set: RuleSet,
    scores: np.ndarray[Any, Any],
    *,
    budget: float = 0.005,
    offsets: Sequence[float] = OFFSETS,
) -> OperatingPoint:
    """The model's operating point for fixed rules, on the training worlds only: of the log-odds
    offsets tried (``scores`` are the training rows' calibrated out-of-world scores), the one
    that stops the most fraud money (pooled) while the model itself touches at most ``budget``
    of the honest orders (pooled: honest orders touched that the rules with a zero score leave
    alone; a higher score only adds points, so those are the model's). When none does, the one
    whose model touches fewest honest orders (ties: most money)."""
    _, floor, _, _ = _pooled(replay(rows, rule_set, [0.0] * len(scores)))
    logits = np.log(np.clip(scores, 1e-12, 1 - 1e-12) / np.clip(1 - scores, 1e-12, 1))
    points = []
    for offset in offsets:
        moved = 1 / (1 + np.exp(-(logits + offset)))
        honest, touched, fraud, stopped = _pooled(
            replay(rows, rule_set, [float(score) for score in moved])
        )
        own = (touched - floor) / honest if honest else 0.0
        points.append(
            OperatingPoint(
                offset,
                touched / honest if honest else 0.0,
                own,
                stopped / fraud if fraud else 1.0,
                own <= budget,
            )
        )
    feasible = [point for point in points if point.feasible]
    if feasible:
        return max(feasible, key=lambda point: (point.fraud_stopped, point.offset))
    return min(points, key=lambda point: (point.model_honest_touched, -point.fraud_stopped))


def replay(
    rows: Sequence[Mapping[str, Any]],
    rule_set: RuleSet,
    scores: Sequence[float] | None,
    *,
    split: str = "train",
) -> Replay:
    """``rule_set`` over the rows of ``split`` with their ``scores`` (``training_scores`` for
    the training rows; a shipped model's scores to measure on held-out rows; None: no model)."""
    train = [row for row in rows if row["split"] == split]
    worlds: dict[str, WorldReplay] = {}
    result = Replay(worlds=[])
    for index, row in enumerate(train):
        world = worlds.setdefault(str(row["world"]), WorldReplay(str(row["world"])))
        values = {name: float(row[name]) for name in FEATURE_NAMES}
        evaluation = rule_set.evaluate(
            values, model_score=None if scores is None else float(scores[index])
        )
        touched = evaluation.outcome in TOUCHED
        hits = [hit.rule_id for hit in evaluation.hits]
        if int(row["is_fraud"]):
            world.fraud_minor += int(row["amount_minor"])
            world.fraud_stopped_minor += int(row["amount_minor"]) if touched else 0
            result.fraud_hits.update(hits)
        else:
            world.honest += 1
            world.honest_touched += int(touched)
            if touched:
                result.honest_hits.update(hits or ["(score)"])
    result.worlds = [worlds[name] for name in sorted(worlds)]
    return result
