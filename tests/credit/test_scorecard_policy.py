"""Starting limits by score band, declines below the lowest band with reasons, and fallbacks."""

from __future__ import annotations

from typing import Any

import pytest

from tests.credit.conftest import hand_made_document
from usefirst.credit.application import Application
from usefirst.credit.policy import (
    Applicant,
    ColdStartCreditPolicy,
    Reason,
    ScoreBand,
    ScoreBandsInvalid,
    ScorecardCreditPolicy,
    parse_score_bands,
)
from usefirst.credit.scorecard import Scorecard

HAND_MADE = Scorecard(hand_made_document())
BANDS = (
    ScoreBand("A", 620, 300_000),
    ScoreBand("B", 580, 150_000),
    ScoreBand("C", 540, 50_000),
)
COLD_START = ColdStartCreditPolicy(starting_limit_minor=100_000, limit_cap_minor=500_000)
POLICY = ScorecardCreditPolicy(scorecard=HAND_MADE, fallback=COLD_START, bands=BANDS)


def applicant(
    application: Application | None, *, age_years: int = 30, **overrides: Any
) -> Applicant:
    values: dict[str, Any] = {
        "identity_verified": True,
        "privacy_policy_version": "2026-01",
        "credit_report_authorized": True,
        "age_years": age_years,
        "application": application,
    }
    values.update(overrides)
    return Applicant(**values)


def test_top_band_gets_the_top_limit_without_feature_reasons() -> None:
    application = Application(
        marketplace_account_age_days=400, orders_12m=12, has_verified_bank_card=True
    )
    assessment = POLICY.assess(applicant(application))
    # 500 + 60 + 40 + 20 + 15
    assert assessment.score == 635
    assert assessment.is_approved
    assert assessment.band == "A"
    assert assessment.limit_minor == 300_000
    assert assessment.scorecard_version == "scorecard-test-1"
    assert assessment.reasons == [
        Reason(
            "credit_score_band",
            "Credit score 635 is in band A, which sets the starting limit; it grows with orders "
            "repaid on time.",
        )
    ]
    assert assessment.scorecard_inputs == {
        "features": {
            "age_years": 30,
            "marketplace_account_age_days": 400,
            "orders_12m": 12,
            "spend_12m_minor": None,
            "returns_12m": None,
            "failed_payments_12m": None,
            "has_verified_bank_card": 1,
        },
        "points": {
            "orders_12m": 60,
            "has_verified_bank_card": 40,
            "marketplace_account_age_days": 20,
            "age_years": 15,
        },
    }


def test_a_lower_band_says_what_held_the_limit_back() -> None:
    application = Application(
        marketplace_account_age_days=30, orders_12m=3, has_verified_bank_card=True
    )
    assessment = POLICY.assess(applicant(application, age_years=22))
    # 500 + 30 + 40 + 0 + 5
    assert assessment.score == 575
    assert assessment.band == "C"
    assert assessment.limit_minor == 50_000
    assert [reason.code for reason in assessment.reasons] == [
        "credit_score_band",
        "scorecard_orders_12m",
        "scorecard_marketplace_account_age_days",
        "scorecard_age_years",
    ]
    assert assessment.reasons[1].message == "Few orders."


def test_below_the_lowest_band_declines_with_the_top_reasons() -> None:
    application = Application(
        marketplace_account_age_days=10, orders_12m=0, has_verified_bank_card=False
    )
    assessment = POLICY.assess(applicant(application))
    # 500 + 0 + 0 + 0 + 15
    assert assessment.score == 515
    assert not assessment.is_approved
    assert assessment.limit_minor == 0
    assert assessment.band == "declined"
    assert assessment.reasons == [
        Reason("credit_score_too_low", "The credit score 515 is below the lowest band (540)."),
        Reason("scorecard_orders_12m", "Few orders."),
        Reason("scorecard_has_verified_bank_card", "No verified bank card."),
        Reason("scorecard_marketplace_account_age_days", "The account is new."),
    ]


def test_unknown_facts_score_their_missing_points() -> None:
    assessment = POLICY.assess(applicant(Application()))
    # 500 + 10 (orders missing) + 0 + 0 + 15
    assert assessment.score == 525
    assert assessment.band == "declined"


def test_without_application_facts_the_cold_start_policy_decides() -> None:
    assessment = POLICY.assess(applicant(None))
    assert assessment == COLD_START.assess(applicant(None))
    assert assessment.limit_minor == 100_000
    assert assessment.band == "new"
    assert assessment.score is None
    assert assessment.scorecard_version is None


def test_identity_and_consent_are_checked_before_any_score() -> None:
    application = Application(orders_12m=50, has_verified_bank_card=True)
    not_consented = POLICY.assess(applicant(application, credit_report_authorized=False))
    assert not not_consented.is_approved
    assert not_consented.score is None
    assert [reason.code for reason in not_consented.reasons] == ["credit_report_not_authorized"]


def test_growth_follows_the_cold_start_policy() -> None:
    assert POLICY.after_on_time_repayment(limit_minor=100_000, on_time_orders=1) == (
        COLD_START.after_on_time_repayment(limit_minor=100_000, on_time_orders=1)
    )


def test_score_bands_parse_and_validate() -> None:
    assert parse_score_bands("B:580:150000, A:620:300000") == (
        ScoreBand("A", 620, 300_000),
        ScoreBand("B", 580, 150_000),
    )
    for text, message in [
        ("A:620", "NAME:MIN_SCORE:LIMIT_MINOR"),
        ("A:high:100", "integers"),
        ("A:620:100,A:600:50", "unique"),
        ("A:620:100,B:620:50", "same score"),
        ("A:620:100,B:600:200", "grow with the score"),
        ("A:620:0", "positive"),
    ]:
        with pytest.raises(ScoreBandsInvalid, match=message):
            parse_score_bands(text)
    with pytest.raises(ScoreBandsInvalid, match="limit cap"):
        ScorecardCreditPolicy(
            scorecard=HAND_MADE,
            fallback=COLD_START,
            bands=(ScoreBand("A", 600, 600_000),),
        )


def test_implied_probability_of_default_follows_the_scaling() -> None:
    assert HAND_MADE.probability_of_default(600) == pytest.approx(1 / 51)
    assert HAND_MADE.probability_of_default(580) == pytest.approx(1 / 26)
