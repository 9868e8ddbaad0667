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
    "return_rate_12m": "A large share of marketplace orders was returned in the last 12 months.",
    "average_order_minor": "The usual marketplace order is of a size that has repaid less "
    "reliably so far.",
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


def derived_features(
    orders_12m: float | None, spend_12m_minor: float | None, returns_12m: float | None
) -> dict[str, float | None]:
    """Features a scorecard may read that are ratios of the facts: the share of orders returned
    (a count of returns alone mostly measures how much the shopper buys) and the average order.
    Unknown (``None``) when a fact is unknown or there were no orders. Training computes them
    with this same function, so the served value is the trained one."""

    def known(value: float | None) -> bool:
        return value is not None and value == value  # NaN (a blank CSV cell) is unknown too

    has_orders = known(orders_12m) and orders_12m is not None and orders_12m > 0
    return {
        "return_rate_12m": round(returns_12m / orders_12m, 4)  # type: ignore[operator]
        if has_orders and known(returns_12m)
        else None,
        "average_order_minor": round(spend_12m_minor / orders_12m)  # type: ignore[operator]
        if has_orders and known(spend_12m_minor)
        else None,
    }


DERIVED_FEATURES: tuple[str, ...] = ("return_rate_12m", "average_order_minor")


def scorecard_features(
    application: Application, *, age_years: int
) -> dict[str, int | float | None]:
    """The row a scorecard scores: the application facts, the age from the ID and the ratios of
    the facts that are known (an unknown ratio is left out: a scorecard scores an absent feature
    as missing, as it does ``None``)."""
    row: dict[str, int | float | None] = {"age_years": age_years}
    for name, value in application.as_dict().items():
        row[name] = int(value) if isinstance(value, bool) else value
    ratios = derived_features(
        application.orders_12m, application.spend_12m_minor, application.returns_12m
    )
    row.update({name: value for name, value in ratios.items() if value is not None})
    return row
