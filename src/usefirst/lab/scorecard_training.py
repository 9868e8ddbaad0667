"""Training a credit scorecard: monotonic WOE binning, logistic regression, integer points.

Training needs the optional ``train`` extra (pandas, scikit-learn, optbinning), imported lazily so
that serving (``usefirst.credit.scorecard``) never loads them. The result is exported as a points
table that the serving code reads; a test proves the two give the same points for every row.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from usefirst.credit.application import DERIVED_FEATURES, derived_features
from usefirst.credit.scorecard import ARTEFACT_FORMAT, Scorecard, artefact_version

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from optbinning import Scorecard as OptimalScorecard

# Points double the good:bad odds every 20 points; 600 points are odds of 50:1.
DEFAULT_SCALING: dict[str, float] = {"pdo": 20, "odds": 50, "scorecard_points": 600}
DEFAULT_MIN_INFORMATION_VALUE = 0.02
PSI_BINS = 10

# Attributes a credit decision must never use (fair lending): refused by name, whatever the data.
PROTECTED_ATTRIBUTE_WORDS = frozenset(
    {
        "gender",
        "sex",
        "ethnic",
        "ethnicity",
        "race",
        "religion",
        "birthplace",
        "nationality",
        "foreign",
        "marital",
    }
)
PROTECTED_ATTRIBUTE_PHRASES = ("place_of_birth", "region_of_birth", "personal_status")


class TrainingDataInvalid(ValueError):
    """The training data cannot give a trustworthy scorecard (said why, in words)."""


@dataclass(frozen=True)
class TrainingOptions:
    target: str
    categorical: Sequence[str] = ()
    exclude: Sequence[str] = ()
    special_codes: Sequence[float] = ()
    reason_texts: Mapping[str, str] = field(default_factory=dict)
    min_information_value: float = DEFAULT_MIN_INFORMATION_VALUE
    scaling: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SCALING))
    test_size: float = 0.3
    seed: int = 7


@dataclass(frozen=True)
class Metrics:
    rows: int
    events: int
    auc: float
    ks: float
    gini: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "rows": self.rows,
            "events": self.events,
            "auc": round(self.auc, 4),
            "ks": round(self.ks, 4),
            "gini": round(self.gini, 4),
        }


@dataclass(frozen=True)
class TrainingReport:
    version: str
    target: str
    features: list[str]
    dropped_features: list[str]
    train: Metrics
    test: Metrics
    psi_train_test: float
    score_range: tuple[int, int]
    information_values: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "target": self.target,
            "features": self.features,
            "dropped_features": self.dropped_features,
            "train": self.train.as_dict(),
            "test": self.test.as_dict(),
            "psi_train_test": round(self.psi_train_test, 4),
            "score_range": list(self.score_range),
            "information_values": {
                name: round(value, 4) for name, value in self.information_values.items()
            },
        }

    def as_text(self) -> str:
        lines = [
            f"scorecard {self.version}",
            f"target: {self.target}",
            f"features ({len(self.features)}): {', '.join(self.features)}",
        ]
        if self.dropped_features:
            lines.append(
                f"dropped (information value < threshold): {', '.join(self.dropped_features)}"
            )
        lines.append(f"score range: {self.score_range[0]} .. {self.score_range[1]}")
        lines.append("")
        lines.append(f"{'sample':<8}{'rows':>8}{'events':>8}{'AUC':>8}{'KS':>8}{'Gini':>8}")
        for name, metrics in (("train", self.train), ("test", self.test)):
            lines.append(
                f"{name:<8}{metrics.rows:>8}{metrics.events:>8}{metrics.auc:>8.4f}"
                f"{metrics.ks:>8.4f}{metrics.gini:>8.4f}"
            )
        lines.append("")
        stability = (
            "stable"
            if self.psi_train_test < 0.1
            else "some shift"
            if self.psi_train_test < 0.25
            else "major shift"
        )
        lines.append(f"PSI train vs test: {self.psi_train_test:.4f} ({stability})")
        lines.append("")
        lines.append("information value by feature:")
        for name, value in sorted(self.information_values.items(), key=lambda item: -item[1]):
            lines.append(f"  {name:<40}{value:>8.4f}")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class TrainedScorecard:
    model: OptimalScorecard
    document: dict[str, Any]
    features: list[str]
    dropped_features: list[str]
    information_values: dict[str, float]

    @property
    def scorecard(self) -> Scorecard:
        return Scorecard(self.document)


def read_training_data(
    paths: Sequence[Path], options: TrainingOptions
) -> tuple[pd.DataFrame, np.ndarray]:
    """Read CSVs with the same columns: the target (0/1, true/false), every other column a
    feature."""
    # A heavy optional dependency (the train extra): imported only when training.
    import pandas as pd

    frames = []
    first_header: list[str] | None = None
    for path in paths:
        header = pd.read_csv(path, nrows=0).columns.tolist()
        if first_header is not None and header != first_header:
            raise TrainingDataInvalid(f"{path} has other columns than {paths[0]}")
        first_header = header
        if options.target not in header:
            raise TrainingDataInvalid(f"the target column {options.target!r} is not in {path}")
        derivable = DERIVED_FEATURES if _can_derive(header) else ()
        unknown = [
            name
            for name in (*options.categorical, *options.exclude)
            if name not in header and name not in derivable
        ]
        if unknown:
            raise TrainingDataInvalid(f"unknown column(s): {', '.join(unknown)}")
        frames.append(pd.read_csv(path, dtype={name: "string" for name in options.categorical}))
    if not frames:
        raise TrainingDataInvalid("no training data given")
    return prepare_frame(with_derived_features(pd.concat(frames, ignore_index=True)), options)


DERIVED_FROM = ("orders_12m", "spend_12m_minor", "returns_12m")


def _can_derive(columns: Sequence[str] | pd.Index) -> bool:
    return all(name in columns for name in DERIVED_FROM)


def with_derived_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the ratios of the marketplace facts (``usefirst.credit.application.derived_features``,
    the function serving uses) when the facts are columns of the data and the ratios are not."""
    missing = [name for name in DERIVED_FEATURES if name not in frame.columns]
    if not missing or not _can_derive(frame.columns):
        return frame
    rows = [
        derived_features(orders, spend, returns)
        for orders, spend, returns in zip(
            *(frame[name].tolist() for name in DERIVED_FROM), strict=True
        )
    ]
    frame = frame.copy()
    for name in missing:
        frame[name] = [float("nan") if row[name] is None else row[name] for row in rows]
    return frame


def prepare_frame(frame: pd.DataFrame, options: TrainingOptions) -> tuple[pd.DataFrame, np.ndarray]:
    # A heavy optional dependency (the train extra): imported only when training.
    import numpy as np
    import pandas as pd

    target = frame[options.target]
    mapping = {"1": 1, "0": 0, "true": 1, "false": 0, "yes": 1, "no": 0}
    labels = target.map(lambda value: mapping.get(str(value).strip().lower()))
    if labels.isna().any():
        raise TrainingDataInvalid(
            f"the target column {options.target!r} must hold 0/1 (or true/false) in every row"
        )
    y = labels.astype(int).to_numpy()
    if len(set(y.tolist())) != 2:
        raise TrainingDataInvalid("the target needs both outcomes (0 and 1) to learn from")
    features = [
        name for name in frame.columns if name != options.target and name not in options.exclude
    ]
    protected = [name for name in features if is_protected_attribute(name)]
    if protected:
        raise TrainingDataInvalid(
            "protected attributes must not be scorecard features: "
            f"{', '.join(protected)} (drop them from the data or pass --exclude)"
        )
    if not features:
        raise TrainingDataInvalid("no feature columns left to train on")
    X = frame[features].copy()
    for name in features:
        column = X[name]
        if name in options.categorical or not pd.api.types.is_numeric_dtype(column):
            X[name] = pd.Series(
                [np.nan if pd.isna(value) else str(value) for value in column],
                index=X.index,
                dtype=object,
            )
        else:
            X[name] = column.astype(float)
    return X, y


def is_protected_attribute(name: str) -> bool:
    lowered = name.lower()
    words = set(re.split(r"[^a-z0-9]+", lowered))
    return bool(words & PROTECTED_ATTRIBUTE_WORDS) or any(
        phrase in lowered for phrase in PROTECTED_ATTRIBUTE_PHRASES
    )


def categorical_columns(X: pd.DataFrame) -> list[str]:
    # A heavy optional dependency (the train extra): imported only when training.
    import pandas as pd

    return [name for name in X.columns if not pd.api.types.is_numeric_dtype(X[name])]


def train_scorecard(
    X: pd.DataFrame, y: np.ndarray, options: TrainingOptions, *, created_at: datetime
) -> TrainedScorecard:
    # A heavy optional dependency (the train extra): imported only when training.
    from optbinning import BinningProcess
    from optbinning import Scorecard as OptimalScorecard
    from sklearn.linear_model import LogisticRegression

    names = list(X.columns)
    categorical = categorical_columns(X)
    # Numerical bins are monotonic in risk (ascending or descending, whichever fits); categories
    # are ordered by their event rate, so their bins are monotonic by construction.
    fit_params = {
        name: {"monotonic_trend": "auto_asc_desc"} for name in names if name not in categorical
    }
    binning = BinningProcess(
        variable_names=names,
        categorical_variables=categorical or None,
        special_codes=list(options.special_codes) or None,
        selection_criteria={"iv": {"min": options.min_information_value}},
        binning_fit_params=fit_params,
    )
    model = OptimalScorecard(
        binning_process=binning,
        estimator=LogisticRegression(max_iter=1000),
        scaling_method="pdo_odds",
        scaling_method_params=dict(options.scaling),
        intercept_based=True,
        rounding=True,
    )
    with warnings.catch_warnings():
        # optbinning trips pandas deprecation warnings inside its own code; nothing to act on here.
        warnings.filterwarnings("ignore", module=r"optbinning(\.|$)")
        model.fit(X, y)
        table = model.table(style="detailed")
        summary = model.binning_process_.summary()
    selected = [str(name) for name in model.binning_process_.get_support(names=True)]
    if not selected:
        raise TrainingDataInvalid(
            "no feature reached the minimum information value; nothing predicts the target"
        )
    information_values = {
        str(row["name"]): float(row["iv"]) for _, row in summary.iterrows() if row["selected"]
    }
    document = export_points_table(
        model, table=table, options=options, created_at=created_at, features=selected
    )
    return TrainedScorecard(
        model=model,
        document=document,
        features=selected,
        dropped_features=[name for name in names if name not in selected],
        information_values=information_values,
    )


def export_points_table(
    model: OptimalScorecard,
    *,
    table: pd.DataFrame,
    options: TrainingOptions,
    created_at: datetime,
    features: list[str],
) -> dict[str, Any]:
    """The fitted scorecard as a JSON points table (see ``usefirst.credit.scorecard``)."""
    exported = []
    for name in features:
        binned = model.binning_process_.get_binned_variable(name)
        points = [_integer_points(value) for value in table[table.Variable == name].Points]
        feature: dict[str, Any] = {
            "name": name,
            "kind": binned.dtype,
            "reason_code": f"scorecard_{name}",
            "reason_text": options.reason_texts.get(
                name, f"{name.replace('_', ' ')} scored below its best band."
            ),
            "special_codes": list(options.special_codes),
        }
        if binned.dtype == "numerical":
            edges = [float(edge) for edge in binned.splits]
            regular = len(edges) + 1
            feature["edges"] = edges
        else:
            categories = [sorted(str(value) for value in group) for group in binned.splits]
            regular = len(categories)
            feature["categories"] = categories
        # Rows per feature: the regular bins, one special bin, one missing bin.
        if len(points) != regular + 2:
            raise TrainingDataInvalid(
                f"{name}: expected {regular + 2} rows in the points table, got {len(points)}"
            )
        feature["bin_points"] = points[:regular]
        feature["special_points"] = points[regular]
        feature["missing_points"] = points[regular + 1]
        exported.append(feature)
    document: dict[str, Any] = {
        "format": ARTEFACT_FORMAT,
        "created_at": created_at.isoformat(),
        "target": options.target,
        "scaling": {"method": "pdo_odds", **{k: float(v) for k, v in options.scaling.items()}},
        "base_points": _integer_points(model.intercept_),
        "features": exported,
    }
    document["version"] = artefact_version(document)
    return document


def _integer_points(value: Any) -> int:
    number = float(value)
    if not math.isfinite(number) or number != round(number):
        raise TrainingDataInvalid(f"points must be integers after rounding, got {number}")
    return round(number)


def rows_of(X: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain dictionaries (NaN kept as NaN: the served scorecard reads it as missing)."""
    return [
        {name: (value.item() if hasattr(value, "item") else value) for name, value in row.items()}
        for row in X.to_dict(orient="records")
    ]


def discrimination(scores: Sequence[int] | np.ndarray, y: np.ndarray) -> Metrics:
    """AUC, KS and Gini of a score where higher means safer and ``y == 1`` is the bad outcome."""
    # A heavy optional dependency (the train extra): imported only when training.
    import numpy as np
    from sklearn.metrics import roc_auc_score, roc_curve

    risk = -np.asarray(scores, dtype=float)
    auc = float(roc_auc_score(y, risk))
    false_positive, true_positive, _ = roc_curve(y, risk)
    ks = float(np.max(true_positive - false_positive))
    return Metrics(rows=len(y), events=int(np.sum(y)), auc=auc, ks=ks, gini=2 * auc - 1)


def population_stability_index(
    expected: Sequence[int] | np.ndarray,
    actual: Sequence[int] | np.ndarray,
    *,
    bins: int = PSI_BINS,
) -> float:
    """PSI of ``actual`` against ``expected``, on the expected sample's score deciles."""
    # A heavy optional dependency (the train extra): imported only when training.
    import numpy as np

    expected_array = np.asarray(expected, dtype=float)
    actual_array = np.asarray(actual, dtype=float)
    edges = np.unique(np.quantile(expected_array, np.linspace(0, 1, bins + 1))[1:-1])
    expected_share = np.bincount(
        np.searchsorted(edges, expected_array, side="right"), minlength=len(edges) + 1
    ) / len(expected_array)
    actual_share = np.bincount(
        np.searchsorted(edges, actual_array, side="right"), minlength=len(edges) + 1
    ) / len(actual_array)
    # An empty bin would make the logarithm infinite; a tiny floor keeps PSI finite and honest.
    floor = 1e-4
    expected_share = np.clip(expected_share, floor, None)
    actual_share = np.clip(actual_share, floor, None)
    return float(np.sum((actual_share - expected_share) * np.log(actual_share / expected_share)))


@dataclass(frozen=True)
class TrainingResult:
    trained: TrainedScorecard
    report: TrainingReport
    artefact_path: Path
    report_json_path: Path
    report_text_path: Path


def train_from_csv(
    *,
    data: Sequence[Path],
    options: TrainingOptions,
    output_dir: Path,
    created_at: datetime,
    artefact_path: Path | None = None,
) -> TrainingResult:
    """Split (stratified), train, evaluate on both samples, write the artefact and the report."""
    # A heavy optional dependency (the train extra): imported only when training.
    from sklearn.model_selection import train_test_split

    X, y = read_training_data(data, options)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=options.test_size, stratify=y, random_state=options.seed
    )
    trained = train_scorecard(X_train, y_train, options, created_at=created_at)
    scorecard = trained.scorecard
    train_scores = [scorecard.score(row) for row in rows_of(X_train)]
    test_scores = [scorecard.score(row) for row in rows_of(X_test)]
    report = TrainingReport(
        version=scorecard.version,
        target=options.target,
        features=trained.features,
        dropped_features=trained.dropped_features,
        train=discrimination(train_scores, y_train),
        test=discrimination(test_scores, y_test),
        psi_train_test=population_stability_index(train_scores, test_scores),
        score_range=(scorecard.min_score, scorecard.max_score),
        information_values=trained.information_values,
    )
    document = dict(trained.document)
    document["report"] = report.as_dict()
    if artefact_path is None:
        output_dir.mkdir(parents=True, exist_ok=True)
        artefact_path = output_dir / f"{scorecard.version}.json"
    else:
        artefact_path.parent.mkdir(parents=True, exist_ok=True)
    artefact_path.write_text(
        json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    stem = artefact_path.with_suffix("")
    report_json_path = stem.with_name(stem.name + ".report.json")
    report_text_path = stem.with_name(stem.name + ".report.txt")
    report_json_path.write_text(
        json.dumps(report.as_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    report_text_path.write_text(report.as_text(), encoding="utf-8")
    return TrainingResult(
        trained=trained,
        report=report,
        artefact_path=artefact_path,
        report_json_path=report_json_path,
        report_text_path=report_text_path,
    )


# -- validation on another history ----------------------------------------------------------------


@dataclass(frozen=True)
class BandValidation:
    band: str
    min_score: int | None  # None for the declined band (below the lowest band)
    rows: int
    events: int
    share: float
    reference_share: float | None
    psi: float | None  # this band's term of the population stability index

    @property
    def event_rate(self) -> float | None:
        return self.events / self.rows if self.rows else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "band": self.band,
            "min_score": self.min_score,
            "rows": self.rows,
            "events": self.events,
            "event_rate": None if self.event_rate is None else round(self.event_rate, 4),
            "share": round(self.share, 4),
            "reference_share": None
            if self.reference_share is None
            else round(self.reference_share, 4),
            "psi": None if self.psi is None else round(self.psi, 4),
        }


@dataclass(frozen=True)
class ValidationReport:
    version: str
    metrics: Metrics
    bands: list[BandValidation]

    @property
    def psi(self) -> float | None:
        terms = [band.psi for band in self.bands if band.psi is not None]
        return sum(terms) if len(terms) == len(self.bands) else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            **self.metrics.as_dict(),
            "psi": None if self.psi is None else round(self.psi, 4),
            "bands": [band.as_dict() for band in self.bands],
        }

    def as_text(self) -> str:
        metrics = self.metrics
        lines = [
            f"scorecard {self.version}",
            f"rows {metrics.rows}, events {metrics.events}: AUC {metrics.auc:.4f}, "
            f"KS {metrics.ks:.4f}, Gini {metrics.gini:.4f}",
            "",
            f"{'band':<10}{'from':>6}{'rows':>7}{'share':>8}{'ref.':>8}{'events':>8}"
            f"{'rate':>8}{'PSI':>8}",
        ]
        for band in self.bands:
            lines.append(
                f"{band.band:<10}{'' if band.min_score is None else band.min_score:>6}"
                f"{band.rows:>7}{band.share:>8.1%}"
                f"{'' if band.reference_share is None else f'{band.reference_share:.1%}':>8}"
                f"{band.events:>8}"
                f"{'' if band.event_rate is None else f'{band.event_rate:.1%}':>8}"
                f"{'' if band.psi is None else f'{band.psi:.4f}':>8}"
            )
        if self.psi is not None:
            lines.append(f"PSI over the bands: {self.psi:.4f}")
        return "\n".join(lines) + "\n"


def band_of(score: int, bands: Sequence[tuple[str, int]]) -> str:
    return next((name for name, min_score in bands if score >= min_score), "declined")


def validate_scorecard(
    scorecard: Scorecard,
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    bands: Sequence[tuple[str, int]],
    reference_scores: Sequence[int] | None = None,
) -> ValidationReport:
    """Score a history the scorecard was not trained on: AUC, KS and Gini, and per score band
    (``bands``: (name, lowest score), best first; below the last, "declined") its share, its
    observed event rate and, against ``reference_scores`` (the training sample's scores), its
    term of the population stability index."""
    scores = [scorecard.score(row) for row in rows_of(X)]
    labels = [int(value) for value in y]
    names = [name for name, _ in bands] + ["declined"]
    floors: dict[str, int | None] = {name: min_score for name, min_score in bands}
    floors["declined"] = None
    counted = {name: [0, 0] for name in names}
    for score, label in zip(scores, labels, strict=True):
        row = counted[band_of(score, bands)]
        row[0] += 1
        row[1] += label
    reference: dict[str, float] | None = None
    if reference_scores is not None:
        reference = dict.fromkeys(names, 0.0)
        for score in reference_scores:
            reference[band_of(score, bands)] += 1 / len(reference_scores)
    # An empty band would make the logarithm infinite; the floor PSI deciles use keeps it finite.
    floor = 1e-4
    validated = []
    for name in names:
        rows, events = counted[name]
        share = rows / len(scores)
        psi = None
        if reference is not None:
            actual, expected = max(share, floor), max(reference[name], floor)
            psi = (actual - expected) * math.log(actual / expected)
        validated.append(
            BandValidation(
                band=name,
                min_score=floors[name],
                rows=rows,
                events=events,
                share=share,
                reference_share=None if reference is None else reference[name],
                psi=psi,
            )
        )
    return ValidationReport(
        version=scorecard.version, metrics=discrimination(scores, y), bands=validated
    )
