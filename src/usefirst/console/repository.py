"""Read models for console pages: aggregates across domains, computed in SQL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from usefirst.collections.models import LegalCase
from usefirst.identity.models import Operator
from usefirst.orders.models import Order
from usefirst.privacy.models import Complaint
from usefirst.repayment.models import Instalment
from usefirst.risk.models import RiskCase

_OWED = (
    Instalment.principal_minor
    - Instalment.paid_principal_minor
    + Instalment.fees_minor
    + Instalment.late_fees_minor
    - Instalment.late_fees_waived_minor
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
