"""The served points table gives exactly the training library's points, and round-trips."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.credit.conftest import SPECIAL_CODE, nan_free, synthetic_applications
from usefirst.credit.scorecard import (
    ARTEFACT_FORMAT,
    Scorecard,
    ScorecardArtefactInvalid,
    load_default_scorecard,
    load_scorecard,
)
from usefirst.lab.scorecard_training import TrainedScorecard, rows_of


def test_served_points_equal_optbinning_for_every_row(
    trained: TrainedScorecard, training_data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, _ = training_data
    fresh, _ = synthetic_applications(2_000, seed=99)
    # Values training never saw: an unknown category, values beyond every edge, exact edges.
    numerical = [feature for feature in trained.scorecard.features if feature.kind == "numerical"]
    edge_rows = []
    for feature in numerical:
        for edge in feature.edges:
            row = X.iloc[0].to_dict()
            row[feature.name] = edge
            edge_rows.append(row)
    unseen = X.iloc[:3].copy()
    unseen["channel"] = ["satellite", "web", "app"]
    unseen["age_years"] = [-5.0, 1e9, 40.0]
    data = pd.concat([X, fresh, pd.DataFrame(edge_rows), unseen], ignore_index=True)
    data["channel"] = data["channel"].astype(object)

    expected = trained.model.score(data)
    served = [trained.scorecard.score(row) for row in rows_of(data)]

    assert all(float(value).is_integer() for value in expected)
    assert served == [int(value) for value in expected]
    assert len(served) == 6_000 + len(edge_rows) + 3
    # None is read as missing, exactly like NaN.
    assert [trained.scorecard.score(nan_free(row)) for row in rows_of(data)] == served


def test_missing_special_and_unknown_values_take_their_bins(trained: TrainedScorecard) -> None:
    scorecard = trained.scorecard
    by_name = {feature.name: feature for feature in scorecard.features}
    orders = by_name["orders_12m"]
    spend = by_name["spend_12m_minor"]
    channel = by_name["channel"]
    assert orders.points_for(None) == orders.missing_points
    assert orders.points_for(math.nan) == orders.missing_points
    assert spend.points_for(SPECIAL_CODE) == spend.special_points
    assert spend.points_for(int(SPECIAL_CODE)) == spend.special_points
    assert channel.points_for("satellite") == channel.missing_points
    assert channel.points_for(None) == channel.missing_points
    # A value on an edge belongs to the bin on its right.
    first_edge = orders.edges[0]
    assert orders.points_for(first_edge) == orders.bin_points[1]
    assert orders.points_for(math.nextafter(first_edge, -math.inf)) == orders.bin_points[0]


def test_reason_codes_name_the_largest_shortfalls(trained: TrainedScorecard) -> None:
    scorecard = trained.scorecard
    worst = {feature.name: _value_in_worst_bin(feature) for feature in scorecard.features}
    result = scorecard.explain(worst, max_reasons=2)
    shortfalls = sorted(
        (
            (feature.best_points - feature.points_for(worst[feature.name]), index, feature.name)
            for index, feature in enumerate(scorecard.features)
        ),
        key=lambda item: (-item[0], item[1]),
    )
    assert [reason.feature for reason in result.reasons] == [name for _, _, name in shortfalls[:2]]
    assert [reason.shortfall for reason in result.reasons] == [
        shortfall for shortfall, _, _ in shortfalls[:2]
    ]
    assert result.score == scorecard.score(worst) == scorecard.min_score
    orders_reason = next(
        reason
        for reason in scorecard.explain(worst, max_reasons=9).reasons
        if reason.feature == "orders_12m"
    )
    assert orders_reason.code == "scorecard_orders_12m"
    assert orders_reason.message == "Few completed orders on the marketplace in the last 12 months."

    best = {feature.name: _value_in_best_bin(feature) for feature in scorecard.features}
    assert scorecard.explain(best).reasons == []


def _value_in_worst_bin(feature: object) -> object:
    from usefirst.credit.scorecard import _Feature

    assert isinstance(feature, _Feature)
    candidates = [*feature.bin_points, feature.missing_points, feature.special_points]
    lowest = min(candidates)
    if feature.missing_points == lowest:
        return None
    if feature.special_points == lowest:
        return SPECIAL_CODE
    return _value_in_bin(feature, feature.bin_points.index(lowest))


def _value_in_best_bin(feature: object) -> object:
    from usefirst.credit.scorecard import _Feature

    assert isinstance(feature, _Feature)
    return _value_in_bin(feature, feature.bin_points.index(feature.best_points))


def _value_in_bin(feature: object, index: int) -> object:
    from usefirst.credit.scorecard import _Feature

    assert isinstance(feature, _Feature)
    if feature.kind == "numerical":
        edges = [-1e12, *feature.edges]
        return edges[index]
    return next(
        category
        for category, points in feature.points_by_category.items()
        if points == feature.bin_points[index]
    )


def test_artefact_round_trip(trained: TrainedScorecard, tmp_path: Path) -> None:
    scorecard = trained.scorecard
    path = tmp_path / "scorecard.json"
    scorecard.save(path)
    loaded = load_scorecard(path)
    assert loaded.document == scorecard.document
    assert loaded.version == scorecard.version
    assert loaded.version.startswith("scorecard-20261123-")
    assert loaded.created_at == "2026-11-23T08:00:00+00:00"
    assert loaded.document["format"] == ARTEFACT_FORMAT
    X, _ = synthetic_applications(300, seed=5)
    rows = rows_of(X)
    assert [loaded.score(row) for row in rows] == [scorecard.score(row) for row in rows]
    assert json.loads(path.read_text()) == scorecard.document


def test_a_different_points_table_gets_a_different_version(trained: TrainedScorecard) -> None:
    document = json.loads(json.dumps(trained.document))
    document["features"][0]["bin_points"][0] += 1
    from usefirst.credit.scorecard import artefact_version

    assert artefact_version(document) != trained.document["version"]
    assert artefact_version(trained.document) == trained.document["version"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="other/1"), "format must be"),
        (lambda d: d.update(base_points=1.5), "base_points must be an integer"),
        (lambda d: d["features"][0].update(bin_points=[1, 2]), "len(edges) + 1 bins"),
        (
            lambda d: d["features"][0].update(
                edges=[float(n) for n in range(len(d["features"][0]["edges"]), 0, -1)]
            ),
            "ascending numbers",
        ),
        (
            lambda d: d["features"][0].update(missing_points=None),
            "missing_points must be an integer",
        ),
        (
            lambda d: d["features"][0].update(kind="ordinal"),
            "kind must be numerical or categorical",
        ),
        (lambda d: d["features"].append(dict(d["features"][0])), "unique"),
        (lambda d: d.update(features=[]), "non-empty list"),
    ],
)
def test_a_malformed_artefact_is_refused(
    trained: TrainedScorecard, mutate: object, message: str
) -> None:
    document = json.loads(json.dumps(trained.document))
    assert callable(mutate)
    mutate(document)
    with pytest.raises(
        ScorecardArtefactInvalid,
        match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+"),
    ):
        Scorecard(document)


def test_the_shipped_default_scorecard_loads_and_scores_an_application() -> None:
    scorecard = load_default_scorecard()
    assert scorecard.version == scorecard.document["version"]
    assert "gender" not in scorecard.feature_names
    assert scorecard.min_score < scorecard.max_score
    assert scorecard.min_score <= scorecard.score({}) <= scorecard.max_score
    assert set(scorecard.feature_names) <= {
        "age_years",
        "marketplace_account_age_days",
        "orders_12m",
        "spend_12m_minor",
        "returns_12m",
        "failed_payments_12m",
        "has_verified_bank_card",
        # ratios of the facts above (usefirst.credit.application.derived_features)
        "return_rate_12m",
        "average_order_minor",
    }
    for feature in scorecard.features:
        # Monotonic binning: points only rise or only fall across a numeric feature's bins.
        points = list(feature.bin_points)
        assert points in (sorted(points), sorted(points, reverse=True)), feature.name
