"""A small scorecard trained once per test module on a seeded synthetic data set."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from usefirst.credit.scorecard import ARTEFACT_FORMAT
from usefirst.lab.scorecard_training import TrainedScorecard, TrainingOptions, train_scorecard

SPECIAL_CODE = -1.0


def synthetic_applications(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Numerical, categorical, missing and special values, with a known risk structure."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 70, rows).astype(float)
    orders = rng.poisson(5, rows).astype(float)
    orders[rng.random(rows) < 0.06] = np.nan
    account_age = rng.exponential(600, rows)
    spend = rng.gamma(2, 50_000, rows)
    spend[rng.random(rows) < 0.05] = SPECIAL_CODE
    channel = rng.choice(["app", "web", "mini_program", "tv"], rows).astype(object)
    channel[rng.random(rows) < 0.03] = np.nan
    logit = (
        -2.2
        - 0.03 * (age - 40)
        - 0.25 * np.nan_to_num(orders, nan=1.0)
        - 0.001 * account_age
        + 0.9 * (channel == "web")
        + 0.6 * (spend == SPECIAL_CODE)
    )
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(
        {
            "age_years": age,
            "orders_12m": orders,
            "marketplace_account_age_days": account_age,
            "spend_12m_minor": spend,
            "channel": channel,
        }
    )
    return frame, y


OPTIONS = TrainingOptions(
    target="defaulted",
    special_codes=(SPECIAL_CODE,),
    reason_texts={"orders_12m": "Few completed orders on the marketplace in the last 12 months."},
)
CREATED_AT = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def training_data() -> tuple[pd.DataFrame, np.ndarray]:
    return synthetic_applications(4_000, seed=3)


@pytest.fixture(scope="session")
def trained(training_data: tuple[pd.DataFrame, np.ndarray]) -> TrainedScorecard:
    X, y = training_data
    return train_scorecard(X, y, OPTIONS, created_at=CREATED_AT)


def nan_free(row: dict[str, Any]) -> dict[str, Any]:
    return {
        key: (None if isinstance(value, float) and np.isnan(value) else value)
        for key, value in row.items()
    }


def feature(
    name: str, edges: list[float], points: list[int], text: str, missing: int = 0
) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "numerical",
        "edges": edges,
        "bin_points": points,
        "special_codes": [],
        "special_points": 0,
        "missing_points": missing,
        "reason_code": f"scorecard_{name}",
        "reason_text": text,
    }


def hand_made_document() -> dict[str, Any]:
    """Four features with round points, for exact expectations."""
    return {
        "format": ARTEFACT_FORMAT,
        "version": "scorecard-test-1",
        "created_at": "2026-11-23T00:00:00+00:00",
        "target": "defaulted",
        "scaling": {"method": "pdo_odds", "pdo": 20.0, "odds": 50.0, "scorecard_points": 600.0},
        "base_points": 500,
        "features": [
            feature("orders_12m", [1, 5], [0, 30, 60], "Few orders.", missing=10),
            feature("has_verified_bank_card", [0.5], [0, 40], "No verified bank card."),
            feature("marketplace_account_age_days", [90], [0, 20], "The account is new."),
            feature("age_years", [25], [5, 15], "Age band repays less reliably."),
        ],
    }
