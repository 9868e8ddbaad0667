"""Read models for the merchant portal: one merchant's orders and the early warnings risk sent it.
Every query is filtered by the merchant's id; pages never see another merchant's rows."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from usefirst.console.listing import ListPage, Search, SortKey, keyset_page
from usefirst.disputes.models import Dispute
from usefirst.merchants.models import Settlement
from usefirst.orders.models import Order
from usefirst.risk.models import RiskAction

ORDER_SORTS: dict[str, tuple[SortKey, ...]] = {
    "newest": (SortKey(Order.created_at, descending=True), SortKey(Order.id, descending=True)),
    "largest": (SortKey(Order.amount_minor, descending=True), SortKey(Order.id, descending=True)),
}
DISPUTE_SORTS: dict[str, tuple[SortKey, ...]] = {
    # The nearest deadline to answer first, or the newest first.
    "deadline": (SortKey(Dispute.respond_by), SortKey(Dispute.id)),
    "newest": (SortKey(Dispute.opened_at, descending=True), SortKey(Dispute.id, descending=True)),
}
SETTLEMENT_SORT = (
    SortKey(Settlement.settled_on, descending=True),
    SortKey(Settlement.id, descending=True),
)


@dataclass(frozen=True)
class PortalFilter:
    status: str | None = None
    min_amount_minor: int | None = None
    search: Search | None = None  # an order or dispute id, a shopper's phone


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

    def orders_page(
        self, *, filters: PortalFilter, sort: str, after: str | None, limit: int
    ) -> ListPage[Order]:
        conditions: list[ColumnElement[bool]] = [Order.merchant_id == self.merchant_id]
        if filters.status:
            conditions.append(Order.status == filters.status)
        if filters.min_amount_minor is not None:
            conditions.append(Order.amount_minor >= filters.min_amount_minor)
        if filters.search is not None:
            conditions.append(filters.search.condition(ids=[Order.id], shopper=Order.shopper_id))
        return keyset_page(
            self.session,
            Order,
            conditions=conditions,
            sort=ORDER_SORTS[sort],
            after=after,
            limit=limit,
        )

    def disputes_page(
        self, *, filters: PortalFilter, sort: str, after: str | None, limit: int
    ) -> ListPage[Dispute]:
        conditions: list[ColumnElement[bool]] = [Dispute.merchant_id == self.merchant_id]
        if filters.status:
            conditions.append(Dispute.status == filters.status)
        if filters.min_amount_minor is not None:
            conditions.append(Dispute.disputed_minor >= filters.min_amount_minor)
        if filters.search is not None:
            conditions.append(
                filters.search.condition(
                    ids=[Dispute.id, Dispute.order_id], shopper=Dispute.shopper_id
                )
            )
        return keyset_page(
            self.session,
            Dispute,
            conditions=conditions,
            sort=DISPUTE_SORTS[sort],
            after=after,
            limit=limit,
        )

    def settlements_page(self, *, after: str | None, limit: int) -> ListPage[Settlement]:
        return keyset_page(
            self.session,
            Settlement,
            conditions=[Settlement.merchant_id == self.merchant_id],
            sort=SETTLEMENT_SORT,
            after=after,
            limit=limit,
        )
