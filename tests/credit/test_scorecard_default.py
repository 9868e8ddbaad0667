"""The shipped default scorecard: reproduced exactly from its recipe (20,000 simulated applicants,
seed 5, the ratios of the marketplace facts as features), served with those ratios, and validated
band by band on a history it was not trained on."""

from __future__ import annotations

import json
from datetime import date, datetime
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from usefirst.credit.application import (
    REASON_TEXTS,
    Application,
    derived_features,
    scorecard_features,
)
from usefirst.credit.scorecard import (
    DEFAULT_ARTEFACT,
    Scorecard,
    artefact_version,
    load_default_scorecard,
)
from usefirst.lab.scorecard_training import (
    TrainingOptions,
    prepare_frame,
    read_training_data,
    train_from_csv,
    validate_scorecard,
    with_derived_features,
)
from usefirst.lab.sim.applicants import write_drawn_applicants


def _shipped() -> dict[str, object]:
    text = resources.files("usefirst.credit").joinpath("artefacts", DEFAULT_ARTEFACT).read_text()
    document: dict[str, object] = json.loads(text)
    return document


def test_the_shipped_scorecard_is_reproduced_from_its_recipe(tmp_path: Path) -> None:
    # The recipe in BENCHMARKS.md: `credit draw-applicants --count 20000 --seed 5` (ages taken on
    # 2026-11-23), then `credit train --data … --target defaulted`.
    data = tmp_path / "drawn.csv"
    drawn = write_drawn_applicants(path=data, count=20_000, seed=5, today=date(2026, 11, 23))
    assert (drawn.exported, drawn.defaulted) == (20_000, 1_341)
    shipped = _shipped()
    result = train_from_csv(
        data=[data],
        options=TrainingOptions(target="defaulted", reason_texts=REASON_TEXTS),
        output_dir=tmp_path,
        created_at=datetime.fromisoformat(str(shipped["created_at"])),
        artefact_path=tmp_path / "scorecard.json",
    )
    report = result.report
    assert (report.train.rows, report.train.events) == (14_000, 939)
    assert (report.test.rows, report.test.events) == (6_000, 402)
    assert round(report.train.auc, 4) == 0.7147
    assert round(report.test.auc, 4) == 0.7208
    assert round(report.test.ks, 4) == 0.3408
    assert round(report.psi_train_test, 4) == 0.0014
    assert report.features == [
        "marketplace_account_age_days",
        "orders_12m",
        "spend_12m_minor",
        "returns_12m",
        "failed_payments_12m",
        "has_verified_bank_card",
        "return_rate_12m",
        "average_order_minor",
    ]
    # Byte for byte the shipped artefact: points, bins, version and report.
    assert json.loads(result.artefact_path.read_text()) == shipped


def test_the_ratios_are_served_as_they_were_trained() -> None:
    assert derived_features(20, 300_000, 3) == {
        "return_rate_12m": 0.15,
        "average_order_minor": 15_000,
    }
    assert derived_features(0, 0, 0) == {"return_rate_12m": None, "average_order_minor": None}
    assert derived_features(None, 10_000, 1) == {
        "return_rate_12m": None,
        "average_order_minor": None,
    }
    assert derived_features(4, float("nan"), 1) == {
        "return_rate_12m": 0.25,
        "average_order_minor": None,
    }
    application = Application(
        marketplace_account_age_days=400,
        orders_12m=8,
        spend_12m_minor=96_000,
        returns_12m=2,
        failed_payments_12m=0,
        has_verified_bank_card=True,
    )
    scorecard = load_default_scorecard()
    row = scorecard_features(application, age_years=35)
    assert (row["return_rate_12m"], row["average_order_minor"]) == (0.25, 12_000)
    # An unknown ratio is left out of the row (and of the recorded inputs): scored as missing.
    unknown = scorecard_features(Application(orders_12m=0), age_years=35)
    assert "return_rate_12m" not in unknown and "average_order_minor" not in unknown
    # The served score equals the one the training frame gives (the frame derives the ratios).
    # (Training data needs both outcomes: the same row twice, labelled each way.)
    frame = pd.DataFrame(
        [{**application.as_dict(), "age_years": 35, "defaulted": label} for label in (0, 1)]
    )
    frame["has_verified_bank_card"] = frame["has_verified_bank_card"].astype(int)
    X, _ = read_training_data_from(frame)
    assert scorecard.score(X.iloc[0].to_dict()) == scorecard.score(row)


def read_training_data_from(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    return prepare_frame(with_derived_features(frame), TrainingOptions(target="defaulted"))


def test_validation_gives_each_band_its_share_rate_and_psi(tmp_path: Path) -> None:
    document = {
        "format": "usefirst.scorecard/1",
        "created_at": "2026-12-07T00:00:00+00:00",
        "target": "defaulted",
        "scaling": {"method": "pdo_odds", "pdo": 20.0, "odds": 50.0, "scorecard_points": 600.0},
        "base_points": 500,
        "features": [
            {
                "name": "orders_12m",
                "kind": "numerical",
                "reason_code": "scorecard_orders_12m",
                "reason_text": "Few orders.",
                "special_codes": [],
                "edges": [2.0, 5.0],
                "bin_points": [40, 70, 110],
                "special_points": 40,
                "missing_points": 40,
            }
        ],
    }
    document["version"] = artefact_version(document)
    scorecard = Scorecard(document)
    path = tmp_path / "history.csv"
    # Scores: 540 (orders 0, 1), 570 (orders 3), 610 (orders 6, 7, 8).
    path.write_text(
        "orders_12m,defaulted\n0,1\n1,0\n3,1\n3,0\n6,0\n7,0\n8,0\n8,0\n", encoding="utf-8"
    )
    X, y = read_training_data([path], TrainingOptions(target="defaulted"))
    bands = [("A", 600), ("B", 578), ("C", 556), ("D", 537)]
    reference = [540] * 4 + [570] * 2 + [610] * 2
    report = validate_scorecard(scorecard, X, y, bands=bands, reference_scores=reference)
    by_band = {band.band: band for band in report.bands}
    assert [(b.band, b.rows, b.events) for b in report.bands] == [
        ("A", 4, 0),
        ("B", 0, 0),
        ("C", 2, 1),
        ("D", 2, 1),
        ("declined", 0, 0),
    ]
    assert by_band["D"].event_rate == 0.5
    assert by_band["B"].event_rate is None
    assert (by_band["A"].share, by_band["A"].reference_share) == (0.5, 0.25)
    assert by_band["A"].psi == pytest.approx((0.5 - 0.25) * np.log(0.5 / 0.25))
    assert by_band["D"].psi == pytest.approx((0.25 - 0.5) * np.log(0.25 / 0.5))
    # Empty in both: the floor keeps the term finite (and zero).
    assert by_band["B"].psi == pytest.approx(0.0)
    assert report.psi == pytest.approx(sum(band.psi or 0.0 for band in report.bands))
    # 2 bads, 6 goods; the bads score 540 and 570, the goods 540, 570, 610 x4: 9 of 12 pairs
    # ranked right, 2 tied (counted half).
    assert report.metrics.auc == pytest.approx((9 + 0.5 * 2) / 12)
    without_reference = validate_scorecard(scorecard, X, y, bands=bands)
    assert without_reference.psi is None
    assert all(band.reference_share is None for band in without_reference.bands)
