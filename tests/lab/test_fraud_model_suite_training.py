"""The fraud model trained on the evaluation suite's training worlds: only training worlds are read,
and thresholds are chosen on scores each world gets from models fitted on the other worlds."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from usefirst.lab.fraud_model_training import (
    out_of_world_scores,
    predict,
    suite_rows,
    train_model,
)
from usefirst.risk.features import FEATURE_NAMES


def _study_rows() -> list[dict[str, Any]]:
    """Three training worlds and one held-out world; fraud is a large order of resellable goods
    by a young account (with noise, so the model has something to learn)."""
    rng = random.Random(3)
    rows = []
    for world, split in (("w/1", "train"), ("w/2", "train"), ("w/3", "train"), ("w/9", "held_out")):
        for index in range(60):
            is_fraud = index % 4 == 0
            features = dict.fromkeys(FEATURE_NAMES, 0.0)
            features["order_amount_minor"] = (
                rng.uniform(150_000, 400_000) if is_fraud else rng.uniform(5_000, 200_000)
            )
            features["items_resellable_share"] = 1.0 if is_fraud or index % 5 == 0 else 0.0
            features["shopper_account_age_days"] = (
                rng.uniform(0, 5) if is_fraud else rng.uniform(0, 900)
            )
            rows.append(
                {
                    "world": world,
                    "split": split,
                    "order_id": f"{world}/{index}",
                    "is_fraud": int(is_fraud),
                    **features,
                }
            )
    return rows


def test_only_the_training_worlds_become_training_rows() -> None:
    rows = suite_rows(_study_rows())
    assert len(rows.order_ids) == 180
    assert all(not order_id.startswith("w/9/") for order_id in rows.order_ids)
    assert rows.positives == 45
    assert rows.label_source == "suite_train_worlds_ground_truth"
    assert rows.feature_names == FEATURE_NAMES
    amount = FEATURE_NAMES.index("order_amount_minor")
    first = _study_rows()[0]
    assert rows.matrix[0, amount] == first["order_amount_minor"]


def test_out_of_world_scores_come_from_models_that_never_saw_the_world() -> None:
    study = _study_rows()
    rows = suite_rows(study)
    worlds = [str(row["world"]) for row in study if row["split"] == "train"]
    parameters = {"n_estimators": 20, "num_leaves": 4, "min_child_samples": 5}
    scores = out_of_world_scores(rows, worlds, seed=7, parameters=parameters)
    assert scores.shape == (180,)
    # World w/1 is scored by a model fitted on w/2 and w/3 alone: fitting that model by hand
    # gives the very same scores.
    inside = np.array([world == "w/1" for world in worlds])
    others = suite_rows([row for row in study if row["world"] in ("w/2", "w/3")])
    by_hand = train_model(others, seed=7, parameters=parameters)
    assert by_hand.rows.positives == 30
    assert np.allclose(predict(by_hand, rows.matrix[inside]), scores[inside], rtol=0, atol=1e-12)
    # The learnt separation carries over to the unseen world.
    fraud = rows.labels == 1
    assert float(scores[inside & fraud].mean()) > float(scores[inside & ~fraud].mean())
