"""The fraud model artefact round trip: what onnxruntime serves equals LightGBM's predict_proba
(within 1e-5) on a fixed set of rows, and the artefact says what it is."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from usefirst.lab.fraud_model_training import (
    LabelledRows,
    NotEnoughLabels,
    export_model,
    predict,
    train_model,
)
from usefirst.risk.features import FEATURE_NAMES
from usefirst.risk.fraud_model import load_default_model, load_model

TRAINED_AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _rows(count: int, seed: int) -> LabelledRows:
    rng = np.random.default_rng(seed)
    width = len(FEATURE_NAMES)
    matrix = rng.gamma(2.0, 2.0, size=(count, width)).round(2)
    amount = FEATURE_NAMES.index("order_amount_minor")
    resellable = FEATURE_NAMES.index("items_resellable_share")
    device = FEATURE_NAMES.index("link_device_shoppers")
    matrix[:, amount] = rng.integers(1_000, 200_000, size=count)
    matrix[:, resellable] = rng.integers(0, 2, size=count)
    matrix[:, device] = rng.integers(0, 6, size=count)
    risk = (matrix[:, resellable] == 1) & (matrix[:, device] >= 3) & (matrix[:, amount] > 60_000)
    noise = rng.random(count) < 0.03
    labels = (risk ^ noise).astype(np.int64)
    return LabelledRows(
        order_ids=[f"ord_{index}" for index in range(count)],
        matrix=matrix,
        labels=labels,
        feature_names=FEATURE_NAMES,
        label_source="crafted",
    )


def test_onnx_scores_equal_lightgbm_probabilities(tmp_path: Path) -> None:
    trained = train_model(_rows(600, seed=3), seed=11)
    metadata = export_model(trained, tmp_path, now=TRAINED_AT)
    served = load_model(tmp_path)

    fixed = _rows(200, seed=99).matrix.astype(np.float32).astype(np.float64)
    expected = predict(trained, fixed)
    assert np.max(np.abs(served.score_matrix(fixed) - expected)) <= 1e-5
    # Row by row through the mapping interface a checkout uses.
    for row, probability in zip(fixed[:25], expected[:25], strict=True):
        features = dict(zip(FEATURE_NAMES, row.tolist(), strict=True))
        assert abs(served.score(features) - probability) <= 1e-5

    assert served.version == metadata.version
    assert metadata.version.startswith("fraud-20261123-")
    assert served.feature_names == FEATURE_NAMES
    written = json.loads((tmp_path / "metadata.json").read_text(encoding="utf-8"))
    assert written["feature_names"] == list(FEATURE_NAMES)
    assert written["training_summary"]["rows"] == 600
    assert written["training_summary"]["fraud_rows"] == int(trained.rows.labels.sum())
    assert written["training_summary"]["holdout_rows"] == 150
    assert written["auc"] == metadata.auc
    assert metadata.auc > 0.85  # learnt the crafted rule despite 3 % label noise


def test_same_data_and_seed_give_the_same_artefact(tmp_path: Path) -> None:
    first = export_model(train_model(_rows(300, seed=5), seed=2), tmp_path / "a", now=TRAINED_AT)
    second = export_model(train_model(_rows(300, seed=5), seed=2), tmp_path / "b", now=TRAINED_AT)
    assert first.version == second.version
    rows = _rows(50, seed=6).matrix
    scores_a = load_model(tmp_path / "a").score_matrix(rows)
    assert np.array_equal(scores_a, load_model(tmp_path / "b").score_matrix(rows))


def test_a_missing_feature_counts_as_zero(tmp_path: Path) -> None:
    trained = train_model(_rows(300, seed=8), seed=1)
    export_model(trained, tmp_path, now=TRAINED_AT)
    served = load_model(tmp_path)
    zeros = np.zeros((1, len(FEATURE_NAMES)))
    assert served.score({}) == pytest.approx(predict(trained, zeros)[0], abs=1e-5)


def test_training_refuses_too_few_labels() -> None:
    rows = _rows(40, seed=1)
    only_negatives = LabelledRows(
        order_ids=rows.order_ids,
        matrix=rows.matrix,
        labels=np.zeros(40, dtype=np.int64),
        feature_names=rows.feature_names,
        label_source="crafted",
    )
    with pytest.raises(NotEnoughLabels, match="have 0 and 40"):
        train_model(only_negatives)


def test_the_shipped_model_serves_the_engine_feature_order() -> None:
    model = load_default_model()
    assert model is not None
    assert model.feature_names == FEATURE_NAMES
    assert model.version == model.metadata.version
    score = model.score(dict.fromkeys(FEATURE_NAMES, 0.0))
    assert 0.0 <= score <= 1.0
    assert load_default_model() is model  # one session per process
