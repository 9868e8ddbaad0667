"""Read models for the support pages: the hardship queue (unanswered requests by their answer
deadline, the late ones first), the order lookup, and the counts the menu shows. Keyset-paged
like every console list (``listing``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from usefirst.collections.models import HardshipRequest
from usefirst.console.listing import ListPage, Search, SortKey, keyset_page
from usefirst.orders.models import Order
from usefirst.rails.models import ReconciliationBreak


@dataclass(frozen=True)
class HardshipFilter:
    status: str | None = None
    overdue_only: bool = False
    search: Search | None = None  # a request's or order's id, a shopper's id or phone


def _answer_late(today: date) -> ColumnElement[bool]:
    """Awaiting an answer past its deadline (the deadline day itself is still in time)."""
    return (HardshipRequest.status == "open") & (HardshipRequest.answer_due_on < today)


def hardship_sorts(today: date) -> dict[str, tuple[SortKey, ...]]:
    return {
        # Late answers first, then the other open requests by deadline, then the rest newest first.
        "deadline": (
            SortKey(case((_answer_late(today), 0), (HardshipRequest.status == "open", 1), else_=2)),
            SortKey(HardshipRequest.answer_due_on),
            SortKey(HardshipRequest.id),
        ),
        "newest": (
            SortKey(HardshipRequest.created_at, descending=True),
            SortKey(HardshipRequest.id),
        ),
    }


def hardship_page(
    session: Session,
    *,
    filters: HardshipFilter,
    sort: str,
    after: str | None,
    limit: int,
    today: date,
) -> ListPage[HardshipRequest]:
    conditions: list[ColumnElement[bool]] = []
    if filters.status:
        conditions.append(HardshipRequest.status == filters.status)
    if filters.overdue_only:
        conditions.append(_answer_late(today))
    if filters.search is not None:
        conditions.append(
            filters.search.condition(
                ids=[HardshipRequest.id, HardshipRequest.order_id],
                shopper=HardshipRequest.shopper_id,
            )
        )
    return keyset_page(
        session,
        HardshipRequest,
        conditions=conditions,
        sort=hardship_sorts(today)[sort],
        after=after,
        limit=limit,
    )


ORDER_SORT = (SortKey(Order.created_at, descending=True), SortKey(Order.id))


def orders_page(
    session: Session,
    *,
    status: str | None,
    search: Search | None,
    after: str | None,
    limit: int,
) -> ListPage[Order]:
    """Orders newest first, by status and by the search box (an order's id, a shopper's id or
    phone, a merchant's id or name)."""
    conditions: list[ColumnElement[bool]] = []
    if status:
        conditions.append(Order.status == status)
    if search is not None:
        conditions.append(
            search.condition(ids=[Order.id], shopper=Order.shopper_id, merchant=Order.merchant_id)
        )
    return keyset_page(
        session, Order, conditions=conditions, sort=ORDER_SORT, after=after, limit=limit
    )


class SupportCounts:
    """What the menu shows beside the support entries: requests awaiting an answer, and open
    reconciliation breaks."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def unanswered_hardships(self) -> int:
        return int(
            self.session.scalar(select(func.count()).where(HardshipRequest.status == "open")) or 0
        )

    def open_breaks(self) -> int:
        return int(
            self.session.scalar(
                select(func.count()).where(ReconciliationBreak.resolved_at.is_(None))
            )
            or 0
        )
