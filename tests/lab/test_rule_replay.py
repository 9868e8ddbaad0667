"""A rule set replayed over recorded features counts, per world, the honest orders it would touch
and the fraud money it would stop at checkout, and which rules hit what."""

from __future__ import annotations

from typing import Any

import numpy as np

from usefirst.lab.rule_replay import OperatingPoint, choose_offset, replay
from usefirst.risk.features import FEATURE_NAMES
from usefirst.risk.rules import parse_rule_set

RULES = """
version = "test"
[thresholds]
step_up_at = 50
review_at = 70
decline_at = 120
[model]
weight = 60
[[rules]]
id = "big"
when = "order_amount_minor >= 100000"
outcome = "review"
reason = "Big."
[[rules]]
id = "crowd"
when = "neighbourhood_size >= 3"
score = 50
reason = "Crowded."
"""


def row(world: str, split: str, *, fraud: bool, amount: int, neighbours: float) -> dict[str, Any]:
    values = dict.fromkeys(FEATURE_NAMES, 0.0)
    values.update(order_amount_minor=float(amount), neighbourhood_size=neighbours)
    return {"world": world, "split": split, "is_fraud": int(fraud), "amount_minor": amount,
            **values}  # fmt: skip


def test_replay_counts_per_world_and_per_rule() -> None:
    rows = [
        row("a", "train", fraud=True, amount=150_000, neighbours=0),  # review: big
        row("a", "train", fraud=True, amount=50_000, neighbours=0),  # missed
        row("a", "train", fraud=False, amount=10_000, neighbours=4),  # step-up: crowd
        row("a", "train", fraud=False, amount=10_000, neighbours=0),
        row("b", "train", fraud=True, amount=20_000, neighbours=5),  # step-up: crowd
        row("b", "train", fraud=False, amount=10_000, neighbours=0),
        row("c", "held_out", fraud=False, amount=500_000, neighbours=9),  # another split
    ]
    result = replay(rows, parse_rule_set(RULES, source="test"), None).summary()
    assert result["worlds"] == {
        "a": {"honest_touched": 0.5, "fraud_stopped": 150_000 / 200_000},
        "b": {"honest_touched": 0.0, "fraud_stopped": 1.0},
    }
    assert result["honest_touched_worst"] == 0.5
    assert result["fraud_stopped_worst"] == 0.75
    assert result["rule_hits_honest"] == {"crowd": 1}
    assert result["rule_hits_fraud"] == {"big": 1, "crowd": 1}
    # A model's scores add their points: 0.9 × 60 = 54 reaches the step-up.
    scored = replay(rows, parse_rule_set(RULES, source="test"), [0, 0.9, 0, 0, 0, 0, 0])
    assert scored.summary()["worlds"]["a"]["fraud_stopped"] == 1.0
    held_out = replay(rows, parse_rule_set(RULES, source="test"), None, split="held_out")
    assert held_out.summary()["worlds"] == {"c": {"honest_touched": 1.0, "fraud_stopped": 1.0}}


def test_the_operating_point_keeps_the_models_own_honest_touches_within_budget() -> None:
    rules = parse_rule_set(RULES, source="test")
    rows = [row("a", "train", fraud=False, amount=10_000, neighbours=0) for _ in range(200)]
    rows.append(row("a", "train", fraud=False, amount=10_000, neighbours=0))  # scored 0.99
    rows.append(row("a", "train", fraud=False, amount=10_000, neighbours=4))  # the rules' own
    rows.append(row("b", "train", fraud=True, amount=100_000 - 1, neighbours=0))  # scored 0.95
    rows.append(row("b", "train", fraud=True, amount=50_000, neighbours=0))  # scored 0.90
    rows.append(row("c", "held_out", fraud=False, amount=10_000, neighbours=0))  # never read
    scores = np.array([0.1] * 200 + [0.99, 0.1, 0.95, 0.90])
    # 0.99 × 60 = 59 points: a step-up (50) until the offset brings it under 49.5 / 60 (points
    # are rounded).
    loose = choose_offset(rows, rules, scores, budget=0.005)
    assert loose == OperatingPoint(0.0, 2 / 202, 1 / 202, 1.0, True)
    # With a tighter budget the honest 0.99 must go: logit(0.99) = 4.595, minus 3 still rounds
    # to 50 points (1.595 > logit(49.5 / 60) = 1.551), minus 3.25 does not; the fraud orders'
    # 0.95 and 0.90 go with it.
    tight = choose_offset(rows, rules, scores, budget=0.004)
    assert tight == OperatingPoint(-3.25, 1 / 202, 0.0, 0.0, True)
    # No offset tried removes an honest order scored at the very top: the fewest model touches,
    # then the most money.
    stuck = choose_offset(rows, rules, np.array([0.1] * 200 + [1.0, 0.1, 0.95, 0.9]), budget=0)
    assert stuck == OperatingPoint(0.0, 2 / 202, 1 / 202, 1.0, False)
