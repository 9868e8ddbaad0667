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
