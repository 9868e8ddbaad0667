"""Read models for the risk review pages: held orders, a merchant's recent orders and the link
observations that tie a ring's shoppers to the identifiers they share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from usefirst.console.listing import ListPage, Search, SortKey, keyset_page
from usefirst.orders.models import Order
from usefirst.risk.models import LinkObservation, RiskCase

HELD_STATUSES = ("review", "step_up")
UNRESOLVED = ("open", "assigned")


class RiskReviewRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

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


@dataclass(frozen=True)
class CaseFilter:
    """What an analyst narrows the open-case list to."""

    status: str | None = None  # open | assigned; both when None
    case_type: str | None = None
    assignee: str | None = None  # an operator id, or UNASSIGNED
    min_amount_minor: int | None = None
    min_age_days: int | None = None
    search: Search | None = None  # a case id, a subject's id, phone or merchant


UNASSIGNED = "none"


CASE_SORTS: dict[str, tuple[SortKey, ...]] = {
    # Oldest first (largest first among cases opened together), or largest amount at risk first.
    "oldest": (
        SortKey(RiskCase.opened_at),
        SortKey(RiskCase.amount_at_risk_minor, descending=True),
        SortKey(RiskCase.id),
    ),
    "largest": (
        SortKey(RiskCase.amount_at_risk_minor, descending=True),
        SortKey(RiskCase.opened_at),
        SortKey(RiskCase.id),
    ),
}
SORTS = tuple(CASE_SORTS)


def open_cases_page(
    session: Session,
    *,
    filters: CaseFilter,
    sort: str,
    after: str | None,
    limit: int,
    now: datetime,
) -> ListPage[RiskCase]:
    """One page of unresolved cases (see ``listing.keyset_page``)."""
    conditions: list[ColumnElement[bool]] = [
        RiskCase.status.in_((filters.status,) if filters.status else UNRESOLVED)
    ]
    if filters.case_type:
        conditions.append(RiskCase.case_type == filters.case_type)
    if filters.assignee == UNASSIGNED:
        conditions.append(RiskCase.assignee.is_(None))
    elif filters.assignee:
        conditions.append(RiskCase.assignee == filters.assignee)
    if filters.min_amount_minor is not None:
        conditions.append(RiskCase.amount_at_risk_minor >= filters.min_amount_minor)
    if filters.min_age_days is not None:
        conditions.append(RiskCase.opened_at <= now - timedelta(days=filters.min_age_days))
    if filters.search is not None:
        conditions.append(_case_search(session, filters.search))
    return keyset_page(
        session, RiskCase, conditions=conditions, sort=CASE_SORTS[sort], after=after, limit=limit
    )


# How many of a searched shopper's or merchant's orders the case search looks among.
SEARCHED_ORDERS = 500


def _case_search(session: Session, search: Search) -> ColumnElement[bool]:
    """A case by its id, or by its subject: a case's key names its first subject (an order, a
    shopper, a merchant, a ring's first shopper), so a phone or a merchant is matched through
    the shoppers' and merchants' own orders too."""
    related_orders: list[str] = []
    if search.shopper_ids or search.merchant_ids:
        related_orders = list(
            session.scalars(
                select(Order.id)
                .where(
                    or_(
                        Order.shopper_id.in_(search.shopper_ids),
                        Order.merchant_id.in_(search.merchant_ids),
                    )
                )
                .order_by(Order.decided_at.desc())
                .limit(SEARCHED_ORDERS)
            )
        )
    keys = [
        *(f"order:{order_id}" for order_id in related_orders),
        *(
            f"{kind}:{shopper_id}"
            for shopper_id in search.shopper_ids
            for kind in ("shopper", "ring")
        ),
        *(f"merchant:{merchant_id}" for merchant_id in search.merchant_ids),
    ]
    return or_(
        RiskCase.id == search.text,
        RiskCase.subject_key.contains(search.text, autoescape=True),
        RiskCase.subject_key.in_(keys),
    )


@dataclass(frozen=True)
class HeldFilter:
    """What an analyst narrows the held orders to."""

    status: str | None = None  # review | step_up; both when None
    min_amount_minor: int | None = None
    min_age_days: int | None = None
    search: Search | None = None  # an order id, a shopper's id or phone, a merchant


HELD_SORTS: dict[str, tuple[SortKey, ...]] = {
    "oldest": (
        SortKey(Order.decided_at),
        SortKey(Order.amount_minor, descending=True),
        SortKey(Order.id),
    ),
    "largest": (
        SortKey(Order.amount_minor, descending=True),
        SortKey(Order.decided_at),
        SortKey(Order.id),
    ),
}


def held_orders_page(
    session: Session,
    *,
    filters: HeldFilter,
    sort: str,
    after: str | None,
    limit: int,
    now: datetime,
) -> ListPage[Order]:
    """One page of orders waiting on risk (review or step-up)."""
    conditions: list[ColumnElement[bool]] = [
        Order.status.in_((filters.status,) if filters.status else HELD_STATUSES)
    ]
    if filters.min_amount_minor is not None:
        conditions.append(Order.amount_minor >= filters.min_amount_minor)
    if filters.min_age_days is not None:
        conditions.append(Order.decided_at <= now - timedelta(days=filters.min_age_days))
    if filters.search is not None:
        conditions.append(
            filters.search.condition(
                ids=[Order.id], shopper=Order.shopper_id, merchant=Order.merchant_id
            )
        )
    return keyset_page(
        session, Order, conditions=conditions, sort=HELD_SORTS[sort], after=after, limit=limit
    )
