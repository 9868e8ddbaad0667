"""Training: metrics, PSI, refusals, and ``usefirst credit train`` writing artefact and report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.credit.conftest import synthetic_applications
from usefirst.cli.main import app
from usefirst.credit.scorecard import load_scorecard
from usefirst.lab.scorecard_training import (
    TrainingDataInvalid,
    TrainingOptions,
    discrimination,
    is_protected_attribute,
    population_stability_index,
    prepare_frame,
)


def test_discrimination_metrics_on_a_known_ranking() -> None:
    # Higher score = safer; the bad at 670 outranks the goods at 660 and 650.
    scores = [700, 690, 680, 670, 660, 650, 640, 630]
    y = np.array([0, 0, 0, 1, 0, 0, 1, 1])
    metrics = discrimination(scores, y)
    # 15 good/bad pairs, 13 ranked right.
    assert metrics.auc == pytest.approx(13 / 15)
    assert metrics.gini == pytest.approx(2 * 13 / 15 - 1)
    # Below 650: two of three bads and none of five goods.
    assert metrics.ks == pytest.approx(2 / 3)
    assert (metrics.rows, metrics.events) == (8, 3)


def test_population_stability_index() -> None:
    expected = list(range(1000))
    assert population_stability_index(expected, expected) == 0.0
    shifted = [value + 100 for value in expected]
    # Deciles of 100: the shifted sample leaves the first decile empty and doubles the top one.
    floor = 1e-4
    manual = (floor - 0.1) * math.log(floor / 0.1) + (0.2 - 0.1) * math.log(0.2 / 0.1)
    assert population_stability_index(expected, shifted) == pytest.approx(manual)


def test_protected_attributes_are_refused() -> None:
    frame = pd.DataFrame(
        {"orders_12m": [1, 2, 3, 4], "Gender": ["f", "m", "f", "m"], "defaulted": [0, 1, 0, 1]}
    )
    with pytest.raises(TrainingDataInvalid, match=r"protected attributes.*Gender"):
        prepare_frame(frame, TrainingOptions(target="defaulted"))
    X, y = prepare_frame(frame, TrainingOptions(target="defaulted", exclude=("Gender",)))
    assert list(X.columns) == ["orders_12m"]
    assert y.tolist() == [0, 1, 0, 1]
    for name in ("region_of_birth", "personal_status_and_sex", "foreign_worker", "ethnicity"):
        assert is_protected_attribute(name)
    for name in ("grace_days", "orders_12m", "trace_count", "has_verified_bank_card"):
        assert not is_protected_attribute(name)


@pytest.mark.parametrize(
    ("target", "message"),
    [(["yes", "no", "maybe", "no"], "must hold 0/1"), ([0, 0, 0, 0], "both outcomes")],
)
def test_a_bad_target_is_refused(target: list[object], message: str) -> None:
    frame = pd.DataFrame({"orders_12m": [1, 2, 3, 4], "defaulted": target})
    with pytest.raises(TrainingDataInvalid, match=message):
        prepare_frame(frame, TrainingOptions(target="defaulted"))


def test_cli_train_writes_a_versioned_artefact_and_reports(long_tmp_path: Path) -> None:
    X, y = synthetic_applications(3_000, seed=11)
    data = X.assign(defaulted=y)
    csv_path = long_tmp_path / "applications.csv"
    data.to_csv(csv_path, index=False)
    output_dir = long_tmp_path / "scorecards"
    result = CliRunner().invoke(
        app,
        [
            "credit",
            "train",
            "--data",
            str(csv_path),
            "--target",
            "defaulted",
            "--output-dir",
            str(output_dir),
            "--special-code",
            "-1",
        ],
    )
    assert result.exit_code == 0, result.output
    (artefact,) = output_dir.glob("scorecard-*[0-9a-f].json")
    scorecard = load_scorecard(artefact)
    assert artefact.name == f"{scorecard.version}.json"
    assert result.stdout.splitlines()[-2:] == [
        f"artefact: {artefact}",
        f"report:   {output_dir / scorecard.version}.report.json, "
        f"{output_dir / scorecard.version}.report.txt",
    ]
    report = json.loads((output_dir / f"{scorecard.version}.report.json").read_text())
    assert report["version"] == scorecard.version
    assert set(report) == {
        "version",
        "target",
        "features",
        "dropped_features",
        "train",
        "test",
        "psi_train_test",
        "score_range",
        "information_values",
    }
    assert report["train"]["rows"] == 2_100 and report["test"]["rows"] == 900
    assert report["train"]["events"] + report["test"]["events"] == int(y.sum())
    assert report["test"]["gini"] == pytest.approx(2 * report["test"]["auc"] - 1, abs=1e-4)
    assert 0.6 < report["test"]["auc"] < 1
    assert 0 <= report["psi_train_test"] < 0.1
    assert report["score_range"] == [scorecard.min_score, scorecard.max_score]
    assert scorecard.document["report"] == report
    text = (output_dir / f"{scorecard.version}.report.txt").read_text()
    assert f"scorecard {scorecard.version}" in text
    assert "PSI train vs test" in text
    assert f"{report['test']['auc']:.4f}" in text


def test_cli_train_refuses_unusable_data_and_writes_nothing(long_tmp_path: Path) -> None:
    csv_path = long_tmp_path / "applications.csv"
    csv_path.write_text("orders_12m,sex,defaulted\n1,f,0\n2,m,1\n")
    output_dir = long_tmp_path / "scorecards"
    result = CliRunner().invoke(
        app,
        [
            "credit",
            "train",
            "--data",
            str(csv_path),
            "--target",
            "defaulted",
            "--output-dir",
            str(output_dir),
        ],
    )
    assert result.exit_code == 2
    (refusal,) = result.stderr.splitlines()
    assert "protected attributes" in refusal
    assert result.stdout == ""
    assert not output_dir.exists()
    missing = CliRunner().invoke(
        app,
        [
            "credit",
            "train",
            "--data",
            str(csv_path),
            "--target",
            "bad",
            "--output-dir",
            str(output_dir),
        ],
    )
    assert missing.exit_code == 2
    (refusal,) = missing.stderr.splitlines()
    assert "target column 'bad'" in refusal
    assert missing.stdout == ""
