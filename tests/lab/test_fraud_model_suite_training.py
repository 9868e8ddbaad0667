"""The fraud model trained on the evaluation suite's training worlds: only training worlds are read,
and thresholds are chosen on scores each world gets from models fitted on the other worlds."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tests.cli.test_cli import run
from usefirst.lab.fraud_model_training import (
    WORLD_SPECIFIC_FEATURES,
    Calibration,
    calibrated,
    export_model,
    out_of_world_scores,
    platt_calibration,
    predict,
    suite_rows,
    train_model,
    train_suite_model,
)
from usefirst.lab.signal_study import LAB_ONLY_NAMES, write_rows
from usefirst.risk.features import FEATURE_NAMES
from usefirst.risk.fraud_model import load_model
from usefirst.risk.rules import active_rule_set


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


def test_calibration_folds_into_the_trees_and_the_onnx_export(tmp_path: Path) -> None:
    study = _study_rows()
    rows = suite_rows(study)
    parameters = {"n_estimators": 20, "num_leaves": 4, "min_child_samples": 5}
    trained = train_model(rows, seed=7, parameters=parameters)
    calibration = Calibration(scale=0.5, shift=-1.25)
    folded = replace(
        trained, booster=calibrated(trained.booster, calibration), calibration=calibration
    )
    raw = predict(trained, rows.matrix)
    expected = 1 / (1 + np.exp(-(0.5 * np.log(raw / (1 - raw)) - 1.25)))
    assert np.allclose(predict(folded, rows.matrix), expected, rtol=0, atol=1e-9)
    assert np.allclose(calibration.apply(raw), expected, rtol=0, atol=1e-12)
    # The export serves the calibrated probabilities (export_model refuses a disagreement).
    metadata = export_model(folded, tmp_path, now=datetime(2026, 12, 7, tzinfo=UTC))
    assert metadata.parameters["calibration"] == {"scale": 0.5, "shift": -1.25}
    served = load_model(tmp_path).score_matrix(rows.matrix)
    assert np.allclose(served, expected, rtol=0, atol=1e-5)


def test_platt_calibration_recovers_a_known_miscalibration() -> None:
    rng = np.random.default_rng(5)
    truth = rng.normal(0.0, 2.0, 20_000)
    labels = (rng.random(20_000) < 1 / (1 + np.exp(-truth))).astype(np.int64)
    # Overconfident scores: twice the true log-odds, shifted by one.
    scores = 1 / (1 + np.exp(-(2 * truth + 1)))
    calibration = platt_calibration(scores, labels)
    assert abs(calibration.scale - 0.5) < 0.03
    assert abs(calibration.shift - -0.5) < 0.06


def test_a_suite_model_is_calibrated_on_out_of_world_scores_and_shifted_by_the_offset() -> None:
    study = _study_rows()
    rows = suite_rows(study)
    worlds = [str(row["world"]) for row in study if row["split"] == "train"]
    parameters = {"n_estimators": 20, "num_leaves": 4, "min_child_samples": 5}
    scores = out_of_world_scores(rows, worlds, seed=7, parameters=parameters)
    expected = platt_calibration(scores, rows.labels)
    model = train_suite_model(rows, worlds, seed=7, parameters=parameters, offset=-2.0)
    assert model.calibration == Calibration(expected.scale, expected.shift - 2.0)
    plain = train_model(rows, seed=7, parameters=parameters)
    assert np.allclose(
        predict(model, rows.matrix),
        model.calibration.apply(predict(plain, rows.matrix)),
        rtol=0,
        atol=1e-9,
    )


def test_ignored_features_are_given_as_zero_so_the_model_never_reads_them(tmp_path: Path) -> None:
    assert set(WORLD_SPECIFIC_FEATURES) < set(FEATURE_NAMES)
    assert "order_amount_minor" in WORLD_SPECIFIC_FEATURES
    study = _study_rows()
    rows = suite_rows(study, ignored=WORLD_SPECIFIC_FEATURES)
    amount = FEATURE_NAMES.index("order_amount_minor")
    age = FEATURE_NAMES.index("shopper_account_age_days")
    assert rows.feature_names == FEATURE_NAMES
    assert not rows.matrix[:, amount].any()
    assert rows.matrix[0, age] == study[0]["shopper_account_age_days"]
    parameters = {"n_estimators": 20, "num_leaves": 4, "min_child_samples": 5}
    export_model(
        train_model(rows, seed=7, parameters=parameters),
        tmp_path,
        now=datetime(2026, 12, 7, tzinfo=UTC),
    )
    served = load_model(tmp_path)
    assert served.feature_names == FEATURE_NAMES
    # The served model takes the engine's every feature and reads nothing from the ignored ones.
    order = {**dict.fromkeys(FEATURE_NAMES, 0.0), "shopper_account_age_days": 2.0}
    assert served.score(order) == served.score({**order, "order_amount_minor": 9e6})
    assert served.score(order) != served.score({**order, "shopper_account_age_days": 800.0})


def test_risk_train_suite_data_writes_a_calibrated_model_with_its_operating_point(
    tmp_path: Path,
) -> None:
    study = [
        {**row, "typology": "", "amount_minor": 10_000, **dict.fromkeys(LAB_ONLY_NAMES, 0.0)}
        for row in _study_rows()
    ]
    data = tmp_path / "suite"
    data.mkdir()
    write_rows(data / "worlds.csv", study)
    output = tmp_path / "model"
    result = run("risk", "train", "--suite-data", str(data), "--output", str(output), "--seed", "7")
    assert result.exit_code == 0, result.output
    metadata = json.loads((output / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["feature_names"] == list(FEATURE_NAMES)
    summary = metadata["training_summary"]
    assert (summary["rows"], summary["fraud_rows"]) == (180, 45)  # held-out w/9 never read
    assert summary["suite_training_worlds"] == ["w/1", "w/2", "w/3"]
    assert summary["ignored_features"] == list(WORLD_SPECIFIC_FEATURES)
    point = summary["operating_point"]
    assert point["rules"] == active_rule_set().version
    # The calibration is Platt on the out-of-world scores, moved by the chosen offset.
    rows = suite_rows(study, ignored=WORLD_SPECIFIC_FEATURES)
    worlds = [str(row["world"]) for row in study if row["split"] == "train"]
    platt = platt_calibration(out_of_world_scores(rows, worlds, seed=7), rows.labels)
    assert metadata["parameters"]["calibration"] == platt.shifted(point["offset"]).as_dict()
    served = load_model(output)
    assert served.score(dict.fromkeys(FEATURE_NAMES, 0.0)) == served.score(
        {**dict.fromkeys(FEATURE_NAMES, 0.0), "order_amount_minor": 9e6}
    )
