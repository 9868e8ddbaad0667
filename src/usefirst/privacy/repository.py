"""All SQL of privacy: complaints and privacy requests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text, cast, delete, func, select, update
from sqlalchemy.orm import Session

from usefirst.kit.models import IdempotencyRecord
from usefirst.kit.personal_data import ShopperRecords, tables_of
from usefirst.privacy import models
from usefirst.privacy.models import Complaint, ComplaintResponse, PrivacyRequest


class PrivacyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- complaints ---------------------------------------------------------------------------

    def add(self, row: Complaint | ComplaintResponse | PrivacyRequest) -> None:
        self.session.add(row)

    def complaint(self, complaint_id: str, *, for_update: bool = False) -> Complaint | None:
        query = select(Complaint).where(Complaint.id == complaint_id)
        found = self.session.scalars(query).one_or_none()
        if found is not None and for_update:
            # Lock by the distribution column as well (Citus: FOR UPDATE filtered by shopper).
            return self.session.scalars(
                select(Complaint)
                .where(Complaint.shopper_id == found.shopper_id, Complaint.id == complaint_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).one()
        return found

    def responses(self, *, shopper_id: str, complaint_id: str) -> list[ComplaintResponse]:
        return list(
            self.session.scalars(
                select(ComplaintResponse)
                .where(
                    ComplaintResponse.shopper_id == shopper_id,
                    ComplaintResponse.complaint_id == complaint_id,
                )
                .order_by(ComplaintResponse.id)
            )
        )

    def complaints(
        self,
        *,
        overdue_at: datetime | None,
        status: str | None,
        starting_after: str | None,
        limit: int,
    ) -> list[Complaint]:
        query = select(Complaint).order_by(Complaint.id).limit(limit)
        if overdue_at is not None:
            query = query.where(
                Complaint.responded_at.is_(None),
                Complaint.closed_at.is_(None),
                Complaint.respond_by < overdue_at,
            )
        if status is not None:
            query = query.where(Complaint.status == status)
        if starting_after is not None:
            query = query.where(Complaint.id > starting_after)
        return list(self.session.scalars(query))

    def mark_newly_overdue(self, *, as_of: datetime) -> int:
        """Stamp unanswered complaints past their deadline the first time they are seen so."""
        result = self.session.execute(
            update(Complaint)
            .where(
                Complaint.responded_at.is_(None),
                Complaint.closed_at.is_(None),
                Complaint.respond_by < as_of,
                Complaint.overdue_reported_at.is_(None),
            )
            .values(overdue_reported_at=as_of)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def count_overdue(self, *, as_of: datetime) -> int:
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(Complaint)
                .where(
                    Complaint.responded_at.is_(None),
                    Complaint.closed_at.is_(None),
                    Complaint.respond_by < as_of,
                )
            )
            or 0
        )

    # --- privacy requests --------------------------------------------------------------------

    def forget_idempotent_responses(self, *, shopper_id: str) -> int:
        """Stored responses for replay mention the shopper (masked PII included); a replay after
        erasure must not bring it back."""
        result = self.session.execute(
            delete(IdempotencyRecord)
            .where(cast(IdempotencyRecord.response_body, Text).contains(shopper_id))
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def shopper_records(self) -> ShopperRecords:
        """privacy's rows about shoppers (complaints, requests), for export and erasure."""
        return ShopperRecords.of(self.session, tables_of(models))
