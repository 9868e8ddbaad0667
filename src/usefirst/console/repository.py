"""Read models for console pages: aggregates across domains, computed in SQL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from usefirst.collections.models import LegalCase
from usefirst.console.listing import ListPage, Search, SortKey, keyset_page
from usefirst.identity.models import ApiKey, Operator
from usefirst.merchants.models import Merchant
from usefirst.orders.models import Order
from usefirst.privacy.models import Complaint
from usefirst.repayment.models import Instalment
from usefirst.risk.models import RiskCase

_OWED = (
    Instalment.principal_minor
    - Instalment.paid_principal_minor
    + Instalment.fees_minor
    + Instalment.late_fees_minor
    - Instalment.paid_fees_minor
)


class DashboardRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def owed_by_status(self) -> dict[str, int]:
        """What shoppers owe on delivered orders, by instalment status (pending / overdue)."""
        rows = self.session.execute(
            select(Instalment.status, func.coalesce(func.sum(_OWED), 0))
            .where(Instalment.status.in_(("pending", "overdue")))
            .group_by(Instalment.status)
        ).all()
        return {status: int(total) for status, total in rows}

    def overdue_order_count(self) -> int:
        return int(self.session.scalar(select(func.count()).where(Order.status == "overdue")) or 0)

    def decisions_since(self, since: datetime) -> dict[str, int]:
        rows = self.session.execute(
            select(Order.decision_outcome, func.count())
            .where(Order.decided_at >= since)
            .group_by(Order.decision_outcome)
        ).all()
        return {outcome: int(count) for outcome, count in rows}

    def open_legal_cases(self) -> int:
        return int(
            self.session.scalar(select(func.count()).where(LegalCase.status != "closed")) or 0
        )

    def open_risk_cases(self) -> int:
        return int(
            self.session.scalar(
                select(func.count()).where(RiskCase.status.in_(("open", "assigned")))
            )
            or 0
        )

    def unanswered_complaints(self, now: datetime) -> tuple[int, int]:
        """Complaints still awaiting a first response: all of them, and those past their SLA."""
        waiting = Complaint.responded_at.is_(None) & (Complaint.status == "open")
        total = self.session.scalar(select(func.count()).where(waiting)) or 0
        late = self.session.scalar(select(func.count()).where(waiting, Complaint.respond_by < now))
        return int(total), int(late or 0)


class PeopleRepository:
    """Who the operators are, so pages name people by email rather than by id."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def operator_emails(self) -> dict[str, str]:
        rows = self.session.execute(select(Operator.id, Operator.email)).all()
        return {operator_id: email for operator_id, email in rows}

    def operators_in_roles(self, roles: tuple[str, ...]) -> list[tuple[str, str]]:
        """(id, email) of the operators holding one of ``roles``, by email."""
        rows = self.session.execute(
            select(Operator.id, Operator.email)
            .where(Operator.role.in_(roles))
            .order_by(Operator.email)
        ).all()
        return [(operator_id, email) for operator_id, email in rows]


class CollectionsReadRepository:
    """What the call queue shows beside each account: the order's merchant, by name."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def merchants_of_orders(self, order_ids: list[str]) -> dict[str, str]:
        if not order_ids:
            return {}
        rows = self.session.execute(
            select(Order.id, Order.merchant_id).where(Order.id.in_(order_ids))
        ).all()
        return {order_id: merchant_id for order_id, merchant_id in rows}

    def merchant_names(self, merchant_ids: set[str]) -> dict[str, str]:
        rows = self.session.execute(
            select(Merchant.id, Merchant.name).where(Merchant.id.in_(sorted(merchant_ids)))
        ).all()
        return {merchant_id: name for merchant_id, name in rows}


CREDENTIAL_SORT = (SortKey(ApiKey.created_at), SortKey(ApiKey.id))


def credentials_page(
    session: Session,
    *,
    kind: str | None,
    revoked: bool | None,
    search: Search | None,
    after: str | None,
    limit: int,
) -> ListPage[ApiKey]:
    """API keys and operator tokens, oldest first: by kind, revoked or not, and by key id,
    merchant (id or name) or operator (id or email)."""
    conditions: list[ColumnElement[bool]] = []
    if kind:
        conditions.append(ApiKey.kind == kind)
    if revoked is not None:
        conditions.append(
            ApiKey.revoked_at.is_not(None) if revoked else ApiKey.revoked_at.is_(None)
        )
    if search is not None:
        operators = select(Operator.id).where(Operator.email == search.text.lower())
        conditions.append(
            or_(
                search.condition(ids=[ApiKey.id, ApiKey.operator_id], merchant=ApiKey.merchant_id),
                ApiKey.operator_id.in_(operators.scalar_subquery()),
            )
        )
    return keyset_page(
        session, ApiKey, conditions=conditions, sort=CREDENTIAL_SORT, after=after, limit=limit
    )
