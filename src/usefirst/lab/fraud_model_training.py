"""Training the fraud model: LightGBM on labelled checkout history, exported to ONNX.

Rows are the feature vectors every checkout decision recorded (``risk_decisions.features``), so
the model learns from exactly what it will be served. Labels come from one of two places:

* production: analysts' case resolutions (``risk_labels``: confirmed fraud = 1, legitimate = 0),
  then orders repaid (0) that no analyst labelled. A charged-off order no analyst confirmed is
  left out, like an open one: an unpaid debt is credit loss or fraud, and teaching the model
  that honest defaulters are fraudsters would send them to review (the credit scorecard prices
  default risk);
* the simulator's ground truth (every order a fraud actor placed as part of its scheme = 1,
  every other order = 0): how the shipped default model is trained.

The export is checked before it is written: the ONNX graph must give LightGBM's own
probabilities (within 1e-5) on every training row.

Trained on the evaluation suite's worlds (``usefirst risk train --suite-data``), the model reads
nothing from the features whose values depend on the world (``WORLD_SPECIFIC_FEATURES``: absolute
amounts, the merchant's age and order counts, given as 0 in training), and its probabilities
are calibrated on scores the training worlds get from models fitted on the *other* training
worlds (Platt scaling of the trees' log-odds, folded into the trees, so the ONNX export serves
calibrated probabilities with no extra step).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
from onnxmltools import convert_lightgbm
from onnxmltools.convert.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sqlalchemy import select
from sqlalchemy.orm import Session

from usefirst.collections.repository import charged_off
from usefirst.orders.models import Order
from usefirst.risk.features import FEATURE_NAMES
from usefirst.risk.fraud_model import METADATA_FILE, MODEL_FILE, ModelMetadata, load_model
from usefirst.risk.models import RiskDecision, RiskLabel

PARITY_TOLERANCE = 1e-5
DEFAULT_PARAMETERS: dict[str, Any] = {
    "n_estimators": 300,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 10,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
}


# Features whose values depend on the world rather than on the order: absolute amounts (a
# marketplace's prices and credit lines set their scale), the merchant's age and order count
# (every simulated merchant opens when its world starts; a larger world gives larger counts) and
# the market's order pace. Their relative forms stay: the amount against the shopper's history,
# limit and the merchant's and market's typical order, velocities as ratios.
WORLD_SPECIFIC_FEATURES: tuple[str, ...] = (
    "order_amount_minor",
    "shopper_amount_24h_minor",
    "linked_amount_same_merchant_6h",
    "merchant_age_days",
    "merchant_orders_90d",
    "merchant_orders_2h",
)


class NotEnoughLabels(ValueError):
    """Training needs both classes, with enough rows of each to hold some out."""


@dataclass(frozen=True)
class LabelledRows:
    order_ids: list[str]
    matrix: np.ndarray[Any, np.dtype[np.float64]]
    labels: np.ndarray[Any, np.dtype[np.int64]]
    feature_names: tuple[str, ...]
    label_source: str

    @property
    def positives(self) -> int:
        return int(self.labels.sum())

    def summary(self) -> dict[str, Any]:
        return {
            "rows": len(self.order_ids),
            "fraud_rows": self.positives,
            "legitimate_rows": len(self.order_ids) - self.positives,
            "label_source": self.label_source,
        }


@dataclass
class TrainedModel:
    # Thresholds rounded down to float32 values (see ``float32_safe``): this booster and its
    # ONNX export take the same branch for every float32 row.
    booster: lightgbm.Booster
    rows: LabelledRows
    auc_holdout: float
    holdout_rows: int
    parameters: dict[str, Any]
    seed: int
    calibration: Calibration | None = None


@dataclass(frozen=True)
class Calibration:
    """Platt scaling of the trees' log-odds: the served probability is
    ``sigmoid(scale * raw + shift)`` where ``raw`` is the uncalibrated trees' log-odds."""

    scale: float
    shift: float

    def apply(self, probabilities: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
        return _sigmoid(self.scale * _logit(probabilities) + self.shift)

    def shifted(self, offset: float) -> Calibration:
        return Calibration(scale=self.scale, shift=self.shift + offset)

    def as_dict(self) -> dict[str, float]:
        return {"scale": round(self.scale, 6), "shift": round(self.shift, 6)}


def _logit(probabilities: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
    clipped = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1 - 1e-12)
    return np.asarray(np.log(clipped / (1 - clipped)), dtype=np.float64)


def _sigmoid(values: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.asarray(1 / (1 + np.exp(-np.asarray(values, dtype=np.float64))), dtype=np.float64)


def platt_calibration(scores: np.ndarray[Any, Any], labels: np.ndarray[Any, Any]) -> Calibration:
    """A logistic fit of the labels on the scores' log-odds. Fit it on scores the model did not
    train on (``out_of_world_scores``): in-sample scores are near 0 and 1 and teach nothing."""
    regression = LogisticRegression(C=1e6, max_iter=1000)
    regression.fit(_logit(scores).reshape(-1, 1), np.asarray(labels))
    return Calibration(scale=float(regression.coef_[0][0]), shift=float(regression.intercept_[0]))


def calibrated(booster: lightgbm.Booster, calibration: Calibration) -> lightgbm.Booster:
    """The same trees giving calibrated probabilities: every leaf value times ``scale`` and the
    first tree's leaves plus ``shift`` (every row lands in exactly one leaf of each tree, so the
    log-odds become ``scale * raw + shift``). Split thresholds are untouched."""
    text = booster.model_to_string()
    if "objective=binary sigmoid:1\n" not in text:
        raise ValueError("calibration folds into a binary model with sigmoid:1 only")
    first = True

    def rescale(match: re.Match[str]) -> str:
        nonlocal first
        offset, first = (calibration.shift if first else 0.0), False
        values = (
            repr(float(value) * calibration.scale + offset) for value in match.group(1).split(" ")
        )
        return "leaf_value=" + " ".join(values)

    text = re.sub(r"^leaf_value=(.*)$", rescale, text, flags=re.MULTILINE)
    text = re.sub(r"^tree_sizes=.*\n", "", text, flags=re.MULTILINE)
    return lightgbm.Booster(model_str=text)


def train_suite_model(
    rows: LabelledRows,
    worlds: Sequence[str],
    *,
    seed: int = 7,
    parameters: Mapping[str, Any] | None = None,
    offset: float = 0.0,
) -> TrainedModel:
    """Train on every training world and calibrate on out-of-world scores (Platt); ``offset``
    moves the calibrated log-odds (the operating point chosen on the training worlds, see
    ``usefirst.lab.rule_replay.choose_offset``)."""
    scores = out_of_world_scores(rows, worlds, seed=seed, parameters=parameters)
    calibration = platt_calibration(scores, rows.labels).shifted(offset)
    trained = train_model(rows, seed=seed, parameters=parameters)
    return replace(
        trained, booster=calibrated(trained.booster, calibration), calibration=calibration
    )


def production_labels(session: Session) -> dict[str, int]:
    """Analysts' labels first; then repaid orders are legitimate (0). Charged-off orders nobody
    confirmed as fraud carry no label."""
    labels: dict[str, int] = {}
    for order_id, label in session.execute(select(RiskLabel.order_id, RiskLabel.label)):
        labels[order_id] = 1 if label == "fraud" else 0
    for order_id in session.scalars(
        select(Order.id).where(Order.status == "repaid", ~charged_off(Order.shopper_id, Order.id))
    ):
        labels.setdefault(order_id, 0)
    return labels


def labelled_rows(
    session: Session,
    *,
    labels: Mapping[str, int],
    label_source: str,
    feature_names: Sequence[str] = FEATURE_NAMES,
) -> LabelledRows:
    """Recorded checkout features of the labelled orders, oldest first."""
    order_ids: list[str] = []
    vectors: list[list[float]] = []
    targets: list[int] = []
    rows = session.execute(
        select(RiskDecision.order_id, RiskDecision.features).order_by(
            RiskDecision.decided_at, RiskDecision.order_id
        )
    )
    for order_id, features in rows:
        if order_id not in labels:
            continue
        order_ids.append(order_id)
        vectors.append([float(features.get(name, 0.0)) for name in feature_names])
        targets.append(int(labels[order_id]))
    return LabelledRows(
        order_ids=order_ids,
        matrix=np.array(vectors, dtype=np.float64).reshape(len(vectors), len(feature_names)),
        labels=np.array(targets, dtype=np.int64),
        feature_names=tuple(feature_names),
        label_source=label_source,
    )


def suite_rows(
    study_rows: Sequence[Mapping[str, Any]],
    *,
    split: str = "train",
    feature_names: Sequence[str] = FEATURE_NAMES,
    ignored: Sequence[str] = (),
) -> LabelledRows:
    """The recorded checkout features of the evaluation suite's worlds of ``split`` (what
    ``usefirst risk evaluate --suite --data-dir`` writes), labelled by each world's ground truth.
    Only training worlds may train the shipped model: held-out worlds score it. The ``ignored``
    features are given as 0 on every row: a constant is never split on, so the model keeps the
    engine's feature order (its contract) while reading nothing from them."""
    chosen = [row for row in study_rows if row["split"] == split]
    dropped = set(ignored)
    return LabelledRows(
        order_ids=[str(row["order_id"]) for row in chosen],
        matrix=np.array(
            [
                [0.0 if name in dropped else float(row[name]) for name in feature_names]
                for row in chosen
            ],
            dtype=np.float64,
        ).reshape(len(chosen), len(feature_names)),
        labels=np.array([int(row["is_fraud"]) for row in chosen], dtype=np.int64),
        feature_names=tuple(feature_names),
        label_source=f"suite_{split}_worlds_ground_truth",
    )


def out_of_world_scores(
    rows: LabelledRows,
    worlds: Sequence[str],
    *,
    seed: int = 7,
    parameters: Mapping[str, Any] | None = None,
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Each row's score by a model fitted on the other worlds only: how the model will score a
    world it never saw, to choose thresholds on (in-sample scores are near-perfect)."""
    parameters = dict(parameters or DEFAULT_PARAMETERS)
    matrix = _as_float32(rows.matrix)
    names = np.array(worlds)
    scores = np.zeros(len(names), dtype=np.float64)
    for world in sorted(set(worlds)):
        inside = names == world
        model = _classifier(parameters, seed).fit(matrix[~inside], rows.labels[~inside])
        scores[inside] = np.asarray(model.predict_proba(matrix[inside]))[:, 1]
    return scores


def _classifier(parameters: Mapping[str, Any], seed: int) -> lightgbm.LGBMClassifier:
    return lightgbm.LGBMClassifier(
        **parameters,
        random_state=seed,
        n_jobs=1,
        deterministic=True,
        force_col_wise=True,
        verbose=-1,
    )


def _as_float32(matrix: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
    # Served rows are float32: train on the same values so split thresholds agree exactly.
    return matrix.astype(np.float32).astype(np.float64)


def train_model(
    rows: LabelledRows,
    *,
    seed: int = 7,
    holdout_fraction: float = 0.25,
    parameters: Mapping[str, Any] | None = None,
) -> TrainedModel:
    """Fit on a stratified split to measure AUC on the held-out part, then refit on every row."""
    parameters = dict(parameters or DEFAULT_PARAMETERS)
    positives = rows.positives
    negatives = len(rows.order_ids) - positives
    if min(positives, negatives) < 8:
        raise NotEnoughLabels(
            f"training needs at least 8 fraud and 8 legitimate labelled orders; "
            f"have {positives} and {negatives}"
        )
    matrix = _as_float32(rows.matrix)
    train_x, test_x, train_y, test_y = train_test_split(
        matrix, rows.labels, test_size=holdout_fraction, stratify=rows.labels, random_state=seed
    )
    trial = _classifier(parameters, seed).fit(train_x, train_y)
    auc = float(roc_auc_score(test_y, np.asarray(trial.predict_proba(test_x))[:, 1]))
    final = _classifier(parameters, seed).fit(matrix, rows.labels)
    return TrainedModel(
        booster=float32_safe(final.booster_),
        rows=rows,
        auc_holdout=auc,
        holdout_rows=len(test_y),
        parameters=parameters,
        seed=seed,
    )


def _floor_float32(value: float) -> float:
    rounded = np.float32(value)
    if float(rounded) > value:
        rounded = np.nextafter(rounded, np.float32(-np.inf))
    return float(rounded)


def float32_safe(booster: lightgbm.Booster) -> lightgbm.Booster:
    """The same trees with every split threshold rounded down to a float32 value.

    ONNX tree ensembles compare float32 inputs with float32 thresholds; LightGBM keeps doubles.
    A float32 input ``x`` satisfies ``x <= t`` exactly when ``x <= floor32(t)``, so on float32
    rows (all the engine serves) the rounded trees decide exactly as the originals do, and the
    export decides exactly as the rounded trees — instead of flipping a branch whenever a value
    equals a threshold's float32 neighbour."""

    def round_thresholds(match: re.Match[str]) -> str:
        values = (repr(_floor_float32(float(text))) for text in match.group(1).split(" "))
        return "threshold=" + " ".join(values)

    text = booster.model_to_string()
    text = re.sub(r"^threshold=(.*)$", round_thresholds, text, flags=re.MULTILINE)
    # Tree byte sizes change with the new numbers; without them LightGBM parses sequentially.
    text = re.sub(r"^tree_sizes=.*\n", "", text, flags=re.MULTILINE)
    return lightgbm.Booster(model_str=text)


def predict(trained: TrainedModel, matrix: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """LightGBM's own fraud probabilities for float32 rows."""
    return np.asarray(trained.booster.predict(_as_float32(matrix)), dtype=np.float64)


def to_onnx(trained: TrainedModel) -> bytes:
    width = len(trained.rows.feature_names)
    onnx_model = convert_lightgbm(
        trained.booster,
        initial_types=[("features", FloatTensorType([None, width]))],
        zipmap=False,
        target_opset=15,
    )
    return bytes(onnx_model.SerializeToString())


def export_model(
    trained: TrainedModel,
    directory: Path,
    *,
    now: datetime,
    extra_summary: Mapping[str, Any] | None = None,
) -> ModelMetadata:
    """Write ``model.onnx`` and ``metadata.json``; refuses an export that disagrees with
    LightGBM on the training rows."""
    payload = to_onnx(trained)
    # Named after the trees and features (the ONNX bytes carry generated node names).
    fingerprint = hashlib.sha256(
        (trained.booster.model_to_string() + "|".join(trained.rows.feature_names)).encode()
    ).hexdigest()
    version = f"fraud-{now:%Y%m%d}-{fingerprint[:10]}"
    metadata = ModelMetadata(
        version=version,
        feature_names=trained.rows.feature_names,
        trained_at=now.isoformat(),
        auc=round(trained.auc_holdout, 6),
        training_summary={
            **trained.rows.summary(),
            "holdout_rows": trained.holdout_rows,
            **dict(extra_summary or {}),
        },
        parameters={
            **trained.parameters,
            "seed": trained.seed,
            **({"calibration": trained.calibration.as_dict()} if trained.calibration else {}),
        },
    )
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / MODEL_FILE
    model_path.write_bytes(payload)
    (directory / METADATA_FILE).write_text(
        json.dumps(metadata.as_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    served = load_model(directory)
    difference = parity_difference(trained, served.score_matrix(trained.rows.matrix))
    if difference > PARITY_TOLERANCE:
        model_path.unlink()
        raise ValueError(f"the ONNX export differs from LightGBM by {difference:.2e}")
    return metadata


def parity_difference(trained: TrainedModel, served_scores: np.ndarray[Any, Any]) -> float:
    expected = predict(trained, trained.rows.matrix)
    return float(np.max(np.abs(expected - served_scores))) if len(expected) else 0.0
