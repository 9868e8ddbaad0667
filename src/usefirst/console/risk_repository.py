"""Read models for the risk review pages: held orders, a merchant's recent orders and the link
observations that tie a ring's shoppers to the identifiers they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from usefirst.orders.models import Order
from usefirst.risk.models import LinkObservation, RiskCase

HELD_STATUSES = ("review", "step_up")
UNRESOLVED = ("open", "assigned")


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


@dataclass(frozen=True)
class CaseFilter:
    """What an analyst narrows the open-case list to."""

    status: str | None = None  # open | assigned; both when None
    case_type: str | None = None
    assignee: str | None = None  # an operator id
    min_amount_minor: int | None = None
    search: str | None = None  # a case id, or a subject (order, shopper, merchant) id


@dataclass(frozen=True)
class CasePage:
    cases: list[RiskCase]
    next_cursor: str | None
    total: int


SORTS = ("oldest", "largest")


def open_cases_page(
    session: Session, *, filters: CaseFilter, sort: str, after: str | None, limit: int
) -> CasePage:
    """One page of unresolved cases, keyset-paged like the API: ``after`` is the cursor of the
    previous page's last row, so a page costs the same however deep it is. ``oldest`` sorts by
    opening time (largest first among cases opened together), ``largest`` by amount at risk."""
    conditions: list[ColumnElement[bool]] = [
        RiskCase.status.in_((filters.status,) if filters.status else UNRESOLVED)
    ]
    if filters.case_type:
        conditions.append(RiskCase.case_type == filters.case_type)
    if filters.assignee:
        conditions.append(RiskCase.assignee == filters.assignee)
    if filters.min_amount_minor is not None:
        conditions.append(RiskCase.amount_at_risk_minor >= filters.min_amount_minor)
    if filters.search:
        needle = filters.search.strip()
        conditions.append(
            or_(RiskCase.id == needle, RiskCase.subject_key.contains(needle, autoescape=True))
        )
    total = int(session.scalar(select(func.count()).where(*conditions)) or 0)
    order: tuple[Any, ...]
    if sort == "largest":
        order = (RiskCase.amount_at_risk_minor.desc(), RiskCase.opened_at, RiskCase.id)
    else:
        order = (RiskCase.opened_at, RiskCase.amount_at_risk_minor.desc(), RiskCase.id)
    query = select(RiskCase).where(*conditions)
    if after:
        last = session.get(RiskCase, after)
        if last is not None:
            query = query.where(_after(last, sort))
    rows = list(session.scalars(query.order_by(*order).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return CasePage(cases=rows, next_cursor=rows[-1].id if more and rows else None, total=total)


def _after(last: RiskCase, sort: str) -> ColumnElement[bool]:
    """Rows strictly after ``last`` in the page order (a tuple comparison written out, since
    the orders mix ascending and descending keys)."""
    opened, amount, case_id = last.opened_at, last.amount_at_risk_minor, last.id
    if sort == "largest":
        return or_(
            RiskCase.amount_at_risk_minor < amount,
            and_(RiskCase.amount_at_risk_minor == amount, RiskCase.opened_at > opened),
            and_(
                RiskCase.amount_at_risk_minor == amount,
                RiskCase.opened_at == opened,
                RiskCase.id > case_id,
            ),
        )
    return or_(
        RiskCase.opened_at > opened,
        and_(RiskCase.opened_at == opened, RiskCase.amount_at_risk_minor < amount),
        and_(
            RiskCase.opened_at == opened,
            RiskCase.amount_at_risk_minor == amount,
            RiskCase.id > case_id,
        ),
    )
