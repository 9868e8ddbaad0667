"""Credit policy: a replaceable component that decides starting limits and limit growth.

The cold-start policy knows nothing but verified identity, consent and repayment behaviour. A
trained scorecard can replace it by implementing :class:`CreditPolicy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

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


@dataclass(frozen=True)
class Assessment:
    is_approved: bool
    limit_minor: int
    reasons: list[Reason] = field(default_factory=list)
    score: int | None = None
    band: str | None = None


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
