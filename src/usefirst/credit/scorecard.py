"""Serving a credit scorecard from its exported points table: no training library, no numpy.

A scorecard artefact is one JSON document. Each feature has bins and integer points per bin:

- numerical: ``edges`` ``[e0, …, ek]`` make ``k + 1`` bins ``(-inf, e0), [e0, e1), …, [ek, inf)``
  (a value on an edge belongs to the bin to its right, as ``numpy.digitize(…, right=False)``);
- categorical: ``categories`` is a list of category sets, one per bin; categories are compared as
  strings;
- every feature also has ``special_points`` (values listed in ``special_codes``) and
  ``missing_points`` (absent, ``None`` or NaN). A category never seen in training scores the
  missing points too, exactly as the training library does.

The score is ``base_points`` plus the points of the bin each feature falls in: an integer, higher
is safer. Reason codes name the features that cost the applicant most points compared with the
best bin of that feature.
"""

from __future__ import annotations

import hashlib
import json
import math
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

ARTEFACT_FORMAT = "usefirst.scorecard/1"
DEFAULT_ARTEFACT = "scorecard-default.json"

FeatureValue = float | int | str | bool | None


class ScorecardArtefactInvalid(ValueError):
    """The artefact is not a well-formed points table; it is refused rather than half-used."""


@dataclass(frozen=True)
class ReasonCode:
    code: str
    message: str
    feature: str
    points: int
    shortfall: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "feature": self.feature,
            "points": self.points,
            "shortfall": self.shortfall,
        }


@dataclass(frozen=True)
class ScoreResult:
    score: int
    points_by_feature: dict[str, int]
    reasons: list[ReasonCode]


@dataclass(frozen=True)
class _Feature:
    name: str
    kind: str
    edges: tuple[float, ...]
    points_by_category: Mapping[str, int]
    bin_points: tuple[int, ...]
    special_codes: frozenset[Any]
    special_points: int
    missing_points: int
    best_points: int
    reason_code: str
    reason_text: str

    def points_for(self, value: FeatureValue) -> int:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return self.missing_points
        if self.special_codes and value in self.special_codes:
            return self.special_points
        if self.kind == "numerical":
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    return self.missing_points
                if math.isnan(value):
                    return self.missing_points
            return self.bin_points[bisect_right(self.edges, float(value))]
        return self.points_by_category.get(str(value), self.missing_points)


class Scorecard:
    """A loaded points table. Build it with :func:`load_scorecard`."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document: dict[str, Any] = json.loads(json.dumps(document))
        _validate(self.document)
        self.version: str = self.document["version"]
        self.created_at: str = self.document["created_at"]
        self.base_points: int = self.document["base_points"]
        self.scaling: dict[str, Any] = self.document["scaling"]
        self.features: tuple[_Feature, ...] = tuple(
            _build_feature(feature) for feature in self.document["features"]
        )
        self.feature_names: tuple[str, ...] = tuple(feature.name for feature in self.features)

    def to_json(self) -> str:
        return json.dumps(self.document, ensure_ascii=False, indent=2, sort_keys=True) + "\n"

    def save(self, path: Path) -> None:
        path.write_text(self.to_json(), encoding="utf-8")

    @property
    def min_score(self) -> int:
        return self.base_points + sum(min(_all_points(feature)) for feature in self.features)

    @property
    def max_score(self) -> int:
        return self.base_points + sum(max(_all_points(feature)) for feature in self.features)

    def score(self, row: Mapping[str, FeatureValue]) -> int:
        total = self.base_points
        for feature in self.features:
            total += feature.points_for(row.get(feature.name))
        return total

    def explain(self, row: Mapping[str, FeatureValue], *, max_reasons: int = 4) -> ScoreResult:
        total = self.base_points
        points_by_feature: dict[str, int] = {}
        shortfalls: list[tuple[int, int, _Feature]] = []
        for position, feature in enumerate(self.features):
            points = feature.points_for(row.get(feature.name))
            points_by_feature[feature.name] = points
            total += points
            shortfall = feature.best_points - points
            if shortfall > 0:
                shortfalls.append((shortfall, position, feature))
        # Largest shortfall first; ties keep the artefact's feature order so reasons are stable.
        shortfalls.sort(key=lambda item: (-item[0], item[1]))
        reasons = [
            ReasonCode(
                code=feature.reason_code,
                message=feature.reason_text,
                feature=feature.name,
                points=points_by_feature[feature.name],
                shortfall=shortfall,
            )
            for shortfall, _, feature in shortfalls[:max_reasons]
        ]
        return ScoreResult(score=total, points_by_feature=points_by_feature, reasons=reasons)

    def probability_of_default(self, score: int) -> float | None:
        """Implied probability of default at a score, from the pdo/odds scaling (if used)."""
        if self.scaling.get("method") != "pdo_odds":
            return None
        pdo = float(self.scaling["pdo"])
        odds = float(self.scaling["odds"])
        anchor = float(self.scaling["scorecard_points"])
        good_to_bad_odds = odds * 2 ** ((score - anchor) / pdo)
        return 1.0 / (1.0 + good_to_bad_odds)


def _all_points(feature: _Feature) -> list[int]:
    return [*feature.bin_points, feature.special_points, feature.missing_points]


def _build_feature(document: Mapping[str, Any]) -> _Feature:
    kind = document["kind"]
    bin_points = tuple(int(points) for points in document["bin_points"])
    edges: tuple[float, ...] = ()
    points_by_category: dict[str, int] = {}
    if kind == "numerical":
        edges = tuple(float(edge) for edge in document["edges"])
    else:
        for categories, points in zip(document["categories"], bin_points, strict=True):
            for category in categories:
                points_by_category[str(category)] = points
    return _Feature(
        name=document["name"],
        kind=kind,
        edges=edges,
        points_by_category=points_by_category,
        bin_points=bin_points,
        special_codes=frozenset(document.get("special_codes") or ()),
        special_points=int(document["special_points"]),
        missing_points=int(document["missing_points"]),
        best_points=max(bin_points),
        reason_code=document["reason_code"],
        reason_text=document["reason_text"],
    )


def _validate(document: Mapping[str, Any]) -> None:
    def fail(message: str) -> None:
        raise ScorecardArtefactInvalid(message)

    if document.get("format") != ARTEFACT_FORMAT:
        fail(f"format must be {ARTEFACT_FORMAT!r}")
    for key in ("version", "created_at"):
        if not isinstance(document.get(key), str) or not document[key]:
            fail(f"{key} must be a non-empty string")
    if not _is_integer(document.get("base_points")):
        fail("base_points must be an integer")
    if not isinstance(document.get("scaling"), dict):
        fail("scaling must be an object")
    features = document.get("features")
    if not isinstance(features, list) or not features:
        fail("features must be a non-empty list")
        return
    names: set[str] = set()
    for feature in features:
        name = feature.get("name")
        if not isinstance(name, str) or not name or name in names:
            fail(f"feature names must be unique non-empty strings (got {name!r})")
        names.add(name)
        points = feature.get("bin_points")
        if not isinstance(points, list) or not points or not all(map(_is_integer, points)):
            fail(f"{name}: bin_points must be a non-empty list of integers")
        for key in ("special_points", "missing_points"):
            if not _is_integer(feature.get(key)):
                fail(f"{name}: {key} must be an integer")
        for key in ("reason_code", "reason_text"):
            if not isinstance(feature.get(key), str) or not feature[key]:
                fail(f"{name}: {key} must be a non-empty string")
        if feature.get("kind") == "numerical":
            edges = feature.get("edges")
            if not isinstance(edges, list) or len(edges) + 1 != len(points):
                fail(f"{name}: a numerical feature needs len(edges) + 1 bins")
            elif any(not isinstance(edge, int | float) for edge in edges) or edges != sorted(edges):
                fail(f"{name}: edges must be ascending numbers")
        elif feature.get("kind") == "categorical":
            categories = feature.get("categories")
            if not isinstance(categories, list) or len(categories) != len(points):
                fail(f"{name}: a categorical feature needs one category set per bin")
        else:
            fail(f"{name}: kind must be numerical or categorical")


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def artefact_version(document: Mapping[str, Any]) -> str:
    """A version that names the content: the same points table always gets the same version."""
    content = {key: value for key, value in document.items() if key not in ("version", "report")}
    digest = hashlib.sha256(
        json.dumps(content, sort_keys=True, ensure_ascii=False).encode("utf-8")
    ).hexdigest()
    return f"scorecard-{str(document['created_at'])[:10].replace('-', '')}-{digest[:10]}"


def load_scorecard(path: Path) -> Scorecard:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ScorecardArtefactInvalid(f"cannot read scorecard {path}: {error}") from error
    return Scorecard(document)


@lru_cache(maxsize=1)
def load_default_scorecard() -> Scorecard:
    """The scorecard shipped with the package (trained on the simulator's history)."""
    text = (
        resources.files("usefirst.credit")
        .joinpath("artefacts", DEFAULT_ARTEFACT)
        .read_text(encoding="utf-8")
    )
    return Scorecard(json.loads(text))
