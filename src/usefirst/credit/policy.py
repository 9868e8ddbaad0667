"""Credit policy: a replaceable component that decides starting limits and limit growth.

The cold-start policy knows nothing but verified identity, consent and repayment behaviour. The
scorecard policy scores the marketplace facts sent at enrolment and sets the starting limit by
score band; when an enrolment carries no such facts it falls back to the cold-start policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from usefirst.credit.application import Application, scorecard_features
from usefirst.credit.scorecard import Scorecard
from usefirst.kit.money import basis_points_of


@dataclass(frozen=True)
class Reason:
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Applicant:
    identity_verified: bool
    privacy_policy_version: str
    credit_report_authorized: bool
    age_years: int
    application: Application | None = None


@dataclass(frozen=True)
class Assessment:
    is_approved: bool
    limit_minor: int
    reasons: list[Reason] = field(default_factory=list)
    score: int | None = None
    band: str | None = None
    scorecard_version: str | None = None
    # What the score was computed from: the feature values and the points each one earned.
    scorecard_inputs: dict[str, Any] | None = None


@dataclass(frozen=True)
class LimitChange:
    new_limit_minor: int
    reason: Reason


class CreditPolicy(Protocol):
    def assess(self, applicant: Applicant) -> Assessment: ...

    def after_on_time_repayment(self, *, limit_minor: int, on_time_orders: int) -> LimitChange: ...


@dataclass(frozen=True)
class ColdStartCreditPolicy:
    starting_limit_minor: int = 100_000
    limit_cap_minor: int = 500_000
    growth_bps: int = 2_000

    def assess(self, applicant: Applicant) -> Assessment:
        if not applicant.identity_verified:
            return Assessment(
                is_approved=False,
                limit_minor=0,
                reasons=[Reason("identity_not_verified", "Real-name identity is not verified.")],
            )
        if not applicant.credit_report_authorized:
            return Assessment(
                is_approved=False,
                limit_minor=0,
                reasons=[
                    Reason(
                        "credit_report_not_authorized",
                        "The shopper did not authorise a credit report, which a credit line needs.",
                    )
                ],
            )
        return Assessment(
            is_approved=True,
            limit_minor=self.starting_limit_minor,
            reasons=[
                Reason(
                    "cold_start_limit",
                    "Verified identity and consent give the starting limit; it grows with "
                    "orders repaid on time.",
                )
            ],
            band="new",
        )

    def after_on_time_repayment(self, *, limit_minor: int, on_time_orders: int) -> LimitChange:
        grown = min(
            limit_minor + basis_points_of(limit_minor, self.growth_bps), self.limit_cap_minor
        )
        new_limit = max(grown, limit_minor)
        if new_limit == limit_minor:
            return LimitChange(
                limit_minor,
                Reason("limit_at_cap", "The limit is at the policy cap."),
            )
        return LimitChange(
            new_limit,
            Reason(
                "on_time_repayment",
                f"Limit raised after {on_time_orders} order(s) repaid on time.",
            ),
        )


@dataclass(frozen=True)
class ScoreBand:
    band: str
    min_score: int
    starting_limit_minor: int


class ScoreBandsInvalid(ValueError):
    pass


def parse_score_bands(text: str) -> tuple[ScoreBand, ...]:
    """``"A:620:300000,B:590:200000"``: band name, lowest score in the band, starting limit."""
    bands = []
    for item in text.split(","):
        parts = item.strip().split(":")
        if len(parts) != 3:
            raise ScoreBandsInvalid(f"a band is NAME:MIN_SCORE:LIMIT_MINOR, got {item.strip()!r}")
        name, min_score, limit = parts
        try:
            bands.append(ScoreBand(name.strip(), int(min_score), int(limit)))
        except ValueError:
            raise ScoreBandsInvalid(
                f"scores and limits are integers, got {item.strip()!r}"
            ) from None
    return validate_score_bands(bands)


def validate_score_bands(bands: Sequence[ScoreBand]) -> tuple[ScoreBand, ...]:
    ordered = tuple(sorted(bands, key=lambda band: -band.min_score))
    if not ordered:
        raise ScoreBandsInvalid("at least one score band is needed")
    names = [band.band for band in ordered]
    if len(set(names)) != len(names) or any(not 1 <= len(name) <= 8 for name in names):
        raise ScoreBandsInvalid("band names must be unique, 1 to 8 characters")
    if len({band.min_score for band in ordered}) != len(ordered):
        raise ScoreBandsInvalid("two bands start at the same score")
    limits = [band.starting_limit_minor for band in ordered]
    if any(limit <= 0 for limit in limits) or limits != sorted(limits, reverse=True):
        raise ScoreBandsInvalid("starting limits must be positive and grow with the score")
    return ordered


# Bands on the default scorecard's scale (600 points = good:bad odds of 50:1, 20 points double the
# odds). Implied default rates: A < 2 %, B 2-4 %, C 4-8 %, D 8-15 %; below D (about 15 %) declines.
DEFAULT_SCORE_BANDS: tuple[ScoreBand, ...] = (
    ScoreBand("A", 600, 300_000),
    ScoreBand("B", 578, 200_000),
    ScoreBand("C", 556, 100_000),
    ScoreBand("D", 537, 50_000),
)


@dataclass(frozen=True)
class ScorecardCreditPolicy:
    """Starting limits by score band; a score below the lowest band declines, with reasons.

    Limit growth after on-time repayment follows the fallback (cold-start) policy, and so does an
    enrolment without application facts.
    """

    scorecard: Scorecard
    fallback: ColdStartCreditPolicy
    bands: tuple[ScoreBand, ...] = DEFAULT_SCORE_BANDS
    max_reasons: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "bands", validate_score_bands(self.bands))
        if self.bands[0].starting_limit_minor > self.fallback.limit_cap_minor:
            raise ScoreBandsInvalid("a starting limit is above the policy's limit cap")

    @property
    def decline_below_score(self) -> int:
        return self.bands[-1].min_score

    def assess(self, applicant: Applicant) -> Assessment:
        if applicant.application is None:
            return self.fallback.assess(applicant)
        prerequisites = self.fallback.assess(applicant)
        if not prerequisites.is_approved:
            return prerequisites
        features = scorecard_features(applicant.application, age_years=applicant.age_years)
        result = self.scorecard.explain(features, max_reasons=self.max_reasons)
        feature_reasons = [Reason(reason.code, reason.message) for reason in result.reasons]
        inputs = {"features": features, "points": result.points_by_feature}
        if result.score < self.decline_below_score:
            return Assessment(
                is_approved=False,
                limit_minor=0,
                reasons=[
                    Reason(
                        "credit_score_too_low",
                        f"The credit score {result.score} is below the lowest band "
                        f"({self.decline_below_score}).",
                    ),
                    *feature_reasons,
                ],
                score=result.score,
                band="declined",
                scorecard_version=self.scorecard.version,
                scorecard_inputs=inputs,
            )
        band = next(band for band in self.bands if result.score >= band.min_score)
        reasons = [
            Reason(
                "credit_score_band",
                f"Credit score {result.score} is in band {band.band}, which sets the starting "
                "limit; it grows with orders repaid on time.",
            )
        ]
        if band is not self.bands[0]:
            reasons += feature_reasons  # why the limit is not the top band's
        return Assessment(
            is_approved=True,
            limit_minor=band.starting_limit_minor,
            reasons=reasons,
            score=result.score,
            band=band.band,
            scorecard_version=self.scorecard.version,
            scorecard_inputs=inputs,
        )

    def after_on_time_repayment(self, *, limit_minor: int, on_time_orders: int) -> LimitChange:
        return self.fallback.after_on_time_repayment(
            limit_minor=limit_minor, on_time_orders=on_time_orders
        )
