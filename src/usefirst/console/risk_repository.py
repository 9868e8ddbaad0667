"""Read models for the risk review pages: held orders, a merchant's recent orders and the link
observations that tie a ring's shoppers to the identifiers they share."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from usefirst.orders.models import Order
from usefirst.risk.models import LinkObservation

HELD_STATUSES = ("review", "step_up")


class RiskReviewRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def held_orders(self, *, limit: int) -> list[Order]:
        """Orders waiting on risk (review or step-up), oldest first, then largest."""
        return list(
            self.session.scalars(
                select(Order)
                .where(Order.status.in_(HELD_STATUSES))
                .order_by(Order.decided_at, Order.amount_minor.desc(), Order.id)
                .limit(limit)
            )
        )

    def recent_orders_of_merchant(self, merchant_id: str, *, limit: int) -> list[Order]:
        return list(
            self.session.scalars(
                select(Order)
                .where(Order.merchant_id == merchant_id)
                .order_by(Order.decided_at.desc(), Order.id.desc())
                .limit(limit)
            )
        )

    def observations_of(self, shopper_ids: list[str]) -> list[LinkObservation]:
        if not shopper_ids:
            return []
        return list(
            self.session.scalars(
                select(LinkObservation)
                .where(LinkObservation.shopper_id.in_(shopper_ids))
                .order_by(
                    LinkObservation.shopper_id, LinkObservation.order_id, LinkObservation.kind
                )
            )
        )
