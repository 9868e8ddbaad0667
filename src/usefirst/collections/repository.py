"""All SQL of collections: contact attempts, legal cases, bureau files."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from usefirst.collections.models import BureauFile, ContactAttempt, LegalCase
from usefirst.kit.models import SweepRun


class CollectionsRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: ContactAttempt | LegalCase | BureauFile) -> None:
        self.session.add(row)

    def step_already_planned(
        self, shopper_id: str, order_id: str, seq: int, step_day: int, channel: str
    ) -> bool:
        return (
            self.session.scalar(
                select(func.count())
                .select_from(ContactAttempt)
                .where(
                    ContactAttempt.shopper_id == shopper_id,
                    ContactAttempt.order_id == order_id,
                    ContactAttempt.seq == seq,
                    ContactAttempt.step_day == step_day,
                    ContactAttempt.channel == channel,
                )
            )
            or 0
        ) > 0

    def attempt(self, shopper_id: str, attempt_id: str) -> ContactAttempt | None:
        return self.session.get(ContactAttempt, (shopper_id, attempt_id))

    def attempts_of_shopper(self, shopper_id: str) -> list[ContactAttempt]:
        return list(
            self.session.scalars(
                select(ContactAttempt)
                .where(ContactAttempt.shopper_id == shopper_id)
                .order_by(ContactAttempt.scheduled_at, ContactAttempt.id)
            )
        )

    def contacts_between(
        self, shopper_id: str, start: datetime, end: datetime, *, channel: str | None = None
    ) -> int:
        """Attempts that reached (or tried to reach) the shopper in [start, end)."""
        statement = (
            select(func.count())
            .select_from(ContactAttempt)
            .where(
                ContactAttempt.shopper_id == shopper_id,
                ContactAttempt.status.in_(("sent", "failed")),
                ContactAttempt.sent_at >= start,
                ContactAttempt.sent_at < end,
            )
        )
        if channel is not None:
            statement = statement.where(ContactAttempt.channel == channel)
        return int(self.session.scalar(statement) or 0)

    def latest_promise(self, shopper_id: str, order_id: str) -> ContactAttempt | None:
        return self.session.scalars(
            select(ContactAttempt)
            .where(
                ContactAttempt.shopper_id == shopper_id,
                ContactAttempt.order_id == order_id,
                ContactAttempt.outcome == "promise_to_pay",
            )
            .order_by(ContactAttempt.created_at.desc(), ContactAttempt.id.desc())
            .limit(1)
        ).first()

    def legal_case_of_order(self, shopper_id: str, order_id: str) -> LegalCase | None:
        return self.session.scalars(
            select(LegalCase).where(
                LegalCase.shopper_id == shopper_id, LegalCase.order_id == order_id
            )
        ).first()

    def legal_case(self, case_id: str) -> LegalCase | None:
        return self.session.scalars(select(LegalCase).where(LegalCase.id == case_id)).first()

    def legal_cases(self, *, starting_after: str | None, limit: int) -> list[LegalCase]:
        statement = select(LegalCase).order_by(LegalCase.id).limit(limit)
        if starting_after is not None:
            statement = statement.where(LegalCase.id > starting_after)
        return list(self.session.scalars(statement))

    def bureau_file(self, file_id: str) -> BureauFile | None:
        return self.session.get(BureauFile, file_id)

    def bureau_files(
        self, *, period: str | None = None, file_format: str | None = None
    ) -> Sequence[BureauFile]:
        statement = select(BureauFile).order_by(BureauFile.id)
        if period is not None:
            statement = statement.where(BureauFile.period == period)
        if file_format is not None:
            statement = statement.where(BureauFile.format == file_format)
        return list(self.session.scalars(statement))

    def claim_sweep_date(self, business_on: date, *, now: datetime) -> bool:
        """Record that the sweep of ``business_on`` runs; False when it already has. A concurrent
        claim of the same date waits on this row (PostgreSQL) and then finds it taken."""
        is_postgresql = self.session.get_bind().dialect.name == "postgresql"
        builder = postgresql_insert if is_postgresql else sqlite_insert
        claimed = self.session.execute(
            builder(SweepRun)
            .values(business_on=business_on, completed_at=now, summary={})
            .on_conflict_do_nothing()
            .returning(SweepRun.business_on)
        ).first()
        return claimed is not None

    def record_sweep_summary(self, business_on: date, summary: dict[str, object]) -> None:
        self.session.execute(
            update(SweepRun).where(SweepRun.business_on == business_on).values(summary=summary)
        )

    def last_swept_on(self) -> date | None:
        return self.session.scalar(select(func.max(SweepRun.business_on)))
