"""Enrolment with marketplace application facts: the scorecard sets the starting limit by band,
declines below the lowest band with reasons, and records score, band and version."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.conftest import make_runtime
from tests.credit.conftest import hand_made_document
from tests.factories import enrol, national_id, phone
from usefirst.api.app import create_app
from usefirst.credit.application import Application, scorecard_features
from usefirst.credit.models import CreditLine, CreditLineChange
from usefirst.credit.scorecard import load_default_scorecard
from usefirst.credit.service import policy_from_settings
from usefirst.identity.models import Shopper
from usefirst.identity.service import create_api_key
from usefirst.runtime import Runtime

BANDS = "A:620:300000,B:580:150000,C:540:50000"


@pytest.fixture
def scorecard_runtime(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    path = tmp_path / "scorecard.json"
    path.write_text(json.dumps(hand_made_document()))
    runtime = make_runtime(database_url, credit_scorecard_file=path, credit_score_bands=BANDS)
    yield runtime
    runtime.database.dispose()


@pytest.fixture
def scorecard_client(scorecard_runtime: Runtime) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with scorecard_runtime.work() as work:
        key = create_api_key(work.session, kind="platform", now=work.now)
    with TestClient(create_app(scorecard_runtime)) as client:
        yield client, {"Authorization": f"Bearer {key}"}


def body(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "external_id": f"u-{national_id()}",
        "name": "张三",
        "national_id": national_id(),
        "phone": phone(),
        "consent": {"privacy_policy_version": "2026-01", "credit_report_authorized": True},
    }
    values.update(overrides)
    return values


def changes_of(runtime: Runtime, shopper_id: str) -> list[CreditLineChange]:
    with runtime.work(read_only=True) as work:
        rows = list(
            work.session.scalars(
                select(CreditLineChange).where(CreditLineChange.shopper_id == shopper_id)
            )
        )
        work.session.expunge_all()
        return rows


def test_application_facts_set_the_starting_limit_by_band(
    scorecard_runtime: Runtime, scorecard_client: tuple[TestClient, dict[str, str]]
) -> None:
    client, headers = scorecard_client
    application = {
        "marketplace_account_age_days": 30,
        "orders_12m": 3,
        "spend_12m_minor": 45_000,
        "returns_12m": 0,
        "failed_payments_12m": 0,
        "has_verified_bank_card": True,
    }
    response = client.post("/v1/shoppers", headers=headers, json=body(application=application))
    assert response.status_code == 201, response.text
    shopper = response.json()
    assert shopper["status"] == "active"
    # 500 base + 30 (3 orders) + 40 (bank card) + 0 (new account) + 15 (age 36)
    credit = shopper["credit"]
    assert {
        key: value for key, value in credit.items() if key not in ("reasons", "reviewed_at")
    } == {
        "limit_minor": 150_000,
        "used_minor": 0,
        "available_minor": 150_000,
        "currency": "CNY",
        "status": "active",
        "score": 585,
        "band": "B",
        "scorecard_version": "scorecard-test-1",
    }
    assert [reason["code"] for reason in shopper["credit"]["reasons"]] == [
        "credit_score_band",
        "scorecard_orders_12m",
        "scorecard_marketplace_account_age_days",
    ]
    (change,) = changes_of(scorecard_runtime, shopper["id"])
    assert (change.score, change.band, change.scorecard_version) == (585, "B", "scorecard-test-1")
    assert (change.new_limit_minor, change.new_status, change.reason_code) == (
        150_000,
        "active",
        "credit_score_band",
    )
    assert change.scorecard_inputs["points"] == {
        "orders_12m": 30,
        "has_verified_bank_card": 40,
        "marketplace_account_age_days": 0,
        "age_years": 15,
    }
    assert change.scorecard_inputs["features"]["spend_12m_minor"] == 45_000
    assert change.scorecard_inputs["features"]["has_verified_bank_card"] == 1


def test_a_score_below_the_lowest_band_declines_with_reasons(
    scorecard_runtime: Runtime, scorecard_client: tuple[TestClient, dict[str, str]]
) -> None:
    client, headers = scorecard_client
    response = client.post(
        "/v1/shoppers",
        headers=headers,
        json=body(application={"marketplace_account_age_days": 2, "orders_12m": 0}),
    )
    assert response.status_code == 201, response.text
    shopper = response.json()
    assert shopper["status"] == "rejected"
    credit = shopper["credit"]
    assert (credit["status"], credit["limit_minor"], credit["available_minor"]) == ("closed", 0, 0)
    assert (credit["score"], credit["band"]) == (515, "declined")
    assert credit["reasons"] == [
        {
            "code": "credit_score_too_low",
            "message": "The credit score 515 is below the lowest band (540).",
        },
        {"code": "scorecard_orders_12m", "message": "Few orders."},
        {"code": "scorecard_has_verified_bank_card", "message": "No verified bank card."},
        {"code": "scorecard_marketplace_account_age_days", "message": "The account is new."},
    ]
    (change,) = changes_of(scorecard_runtime, shopper["id"])
    assert (change.new_status, change.reason_code, change.score, change.band) == (
        "closed",
        "credit_score_too_low",
        515,
        "declined",
    )


def test_without_application_facts_the_cold_start_limit_applies(
    scorecard_runtime: Runtime, scorecard_client: tuple[TestClient, dict[str, str]]
) -> None:
    client, headers = scorecard_client
    shopper = enrol(client, headers)
    assert shopper["credit"]["limit_minor"] == 100_000
    assert (shopper["credit"]["score"], shopper["credit"]["band"]) == (None, "new")
    assert shopper["credit"]["scorecard_version"] is None
    (change,) = changes_of(scorecard_runtime, shopper["id"])
    assert (change.score, change.band, change.scorecard_version, change.scorecard_inputs) == (
        None,
        "new",
        None,
        None,
    )


def row_counts(runtime: Runtime) -> dict[str, int]:
    with runtime.work(read_only=True) as work:
        return {
            model.__tablename__: int(
                work.session.scalar(select(func.count()).select_from(model)) or 0
            )
            for model in (Shopper, CreditLine, CreditLineChange)
        }


@pytest.mark.parametrize(
    "application",
    [
        {"orders_12m": -1},
        {"marketplace_account_age_days": 40_000},
        {"spend_12m_minor": "lots"},
        {"gender": "female"},
        {"region_of_birth": "110105"},
        {"has_verified_bank_card": "maybe"},
    ],
)
def test_an_invalid_application_is_rejected_and_nothing_changes(
    scorecard_runtime: Runtime,
    scorecard_client: tuple[TestClient, dict[str, str]],
    application: dict[str, Any],
) -> None:
    client, headers = scorecard_client
    before = row_counts(scorecard_runtime)
    response = client.post("/v1/shoppers", headers=headers, json=body(application=application))
    assert response.status_code == 422, response.text
    assert (
        row_counts(scorecard_runtime)
        == before
        == {
            "shoppers": 0,
            "credit_lines": 0,
            "credit_line_changes": 0,
        }
    )


def test_the_default_policy_scores_with_the_shipped_scorecard(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    application = {
        "marketplace_account_age_days": 900,
        "orders_12m": 24,
        "spend_12m_minor": 480_000,
        "returns_12m": 1,
        "failed_payments_12m": 0,
        "has_verified_bank_card": True,
    }
    response = client.post(
        "/v1/shoppers", headers=platform_headers, json=body(application=application)
    )
    assert response.status_code == 201, response.text
    credit = response.json()["credit"]
    scorecard = load_default_scorecard()
    age_years = credit_age(response.json())
    expected = scorecard.score(scorecard_features(Application(**application), age_years=age_years))
    assert credit["score"] == expected
    assert credit["scorecard_version"] == scorecard.version
    policy = policy_from_settings(runtime.settings)
    expected_band = next(band for band in policy.bands if expected >= band.min_score)  # type: ignore[attr-defined]
    assert (credit["band"], credit["limit_minor"]) == (
        expected_band.band,
        expected_band.starting_limit_minor,
    )


def credit_age(shopper: dict[str, Any]) -> int:
    # tests.factories.national_id() uses 1990-01-15 as the birth date.
    from datetime import date

    from usefirst.identity.validation import age_on

    today = date.fromisoformat(shopper["created_at"][:10])
    return age_on(date(1990, 1, 15), today)


def test_the_cold_start_setting_never_scores(database_url: str) -> None:
    runtime = make_runtime(database_url, credit_policy="cold_start")
    try:
        with runtime.work() as work:
            key = create_api_key(work.session, kind="platform", now=work.now)
        with TestClient(create_app(runtime)) as client:
            response = client.post(
                "/v1/shoppers",
                headers={"Authorization": f"Bearer {key}"},
                json=body(application={"orders_12m": 0, "marketplace_account_age_days": 1}),
            )
        assert response.status_code == 201
        assert response.json()["credit"]["band"] == "new"
        assert response.json()["credit"]["score"] is None
    finally:
        runtime.database.dispose()
