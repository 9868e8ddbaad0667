"""Read models for the merchant portal: one merchant's orders and the early warnings risk sent it.
Every query is filtered by the merchant's id; pages never see another merchant's rows."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from usefirst.orders.models import Order
from usefirst.risk.models import RiskAction

# How risk's warning records the reasons it sent the merchant (flows.risk_effects.warn_merchant).
WARNING_ACTION = "merchant_warning"
WARNING_SEPARATOR = "; "


class MerchantPortalRepository:
    def __init__(self, session: Session, *, merchant_id: str) -> None:
        self.session = session
        self.merchant_id = merchant_id

    def orders(self, *, status: str | None, limit: int) -> list[Order]:
        query = select(Order).where(Order.merchant_id == self.merchant_id)
        if status is not None:
            query = query.where(Order.status == status)
        return list(self.session.scalars(query.order_by(Order.created_at.desc()).limit(limit)))

    def order_counts(self) -> dict[str, int]:
        rows = self.session.execute(
            select(Order.status, func.count())
            .where(Order.merchant_id == self.merchant_id)
            .group_by(Order.status)
        ).all()
        return {status: count for status, count in rows}

    def warnings(self, order_ids: list[str]) -> dict[str, list[str]]:
        """The reasons each order was held for, in the merchant's own terms."""
        if not order_ids:
            return {}
        rows = self.session.scalars(
            select(RiskAction)
            .where(
                RiskAction.subject_id == self.merchant_id,
                RiskAction.action == WARNING_ACTION,
                RiskAction.order_id.in_(order_ids),
            )
            .order_by(RiskAction.id)
        )
        found: dict[str, list[str]] = {}
        for row in rows:
            assert row.order_id is not None
            reasons = found.setdefault(row.order_id, [])
            for reason in row.reason.split(WARNING_SEPARATOR):
                if reason and reason not in reasons:
                    reasons.append(reason)
        return found
