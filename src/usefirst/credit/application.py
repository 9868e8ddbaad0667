"""What the marketplace tells the engine about its own shopper when enrolling them.

These are facts the platform holds about the shopper's account on the marketplace itself, plus age
(read from the national ID, never sent). Gender, ethnicity and region of birth are never features,
even though a national ID encodes some of them: the scorecard is trained and served without them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Reason texts, in words the shopper can act on, for each feature a scorecard may use.
REASON_TEXTS: dict[str, str] = {
    "age_years": "Applicants of this age have repaid less reliably so far.",
    "marketplace_account_age_days": "The marketplace account is new.",
    "orders_12m": "Few completed orders on the marketplace in the last 12 months.",
    "spend_12m_minor": "Low spending on the marketplace in the last 12 months.",
    "returns_12m": "Many returns on the marketplace in the last 12 months.",
    "failed_payments_12m": "Payments on the marketplace failed in the last 12 months.",
    "has_verified_bank_card": "No verified bank card on the marketplace account.",
}


@dataclass(frozen=True)
class Application:
    """Marketplace facts about the shopper; any of them may be unknown (``None``)."""

    marketplace_account_age_days: int | None = None
    orders_12m: int | None = None
    spend_12m_minor: int | None = None
    returns_12m: int | None = None
    failed_payments_12m: int | None = None
    has_verified_bank_card: bool | None = None

    def as_dict(self) -> dict[str, int | bool | None]:
        return asdict(self)


APPLICATION_FIELDS: tuple[str, ...] = tuple(Application.__dataclass_fields__)


def scorecard_features(
    application: Application, *, age_years: int
) -> dict[str, int | float | None]:
    """The row a scorecard scores: the application facts and the age from the ID."""
    row: dict[str, int | float | None] = {"age_years": age_years}
    for name, value in application.as_dict().items():
        row[name] = int(value) if isinstance(value, bool) else value
    return row
