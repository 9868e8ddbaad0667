"""All SQL of risk: decision records, link observations, cases, labels, known-fraud subjects,
step-up challenges and the action log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from usefirst.kit.personal_data import ShopperRecords, tables_of
from usefirst.risk import models
from usefirst.risk.models import (
    KnownFraudSubject,
    LinkObservation,
    RiskAction,
    RiskCase,
    RiskDecision,
    RiskLabel,
    StepUpChallenge,
)


class RiskRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: Any) -> None:
        self.session.add(row)

    # decisions
    def decision_of_order(self, order_id: str) -> RiskDecision | None:
        return self.session.scalars(
            select(RiskDecision).where(RiskDecision.order_id == order_id)
        ).first()

    def decisions(
        self, *, since: datetime | None = None, batch_size: int = 1000
    ) -> Iterator[RiskDecision]:
        """Every stored decision (made at or after ``since``), oldest first, read in batches
        (backtests replay them all)."""
        after: tuple[Any, str] | None = None
        while True:
            statement = select(RiskDecision).order_by(
                RiskDecision.decided_at, RiskDecision.order_id
            )
            if since is not None:
                statement = statement.where(RiskDecision.decided_at >= since)
            if after is not None:
                statement = statement.where(
                    (RiskDecision.decided_at > after[0])
                    | ((RiskDecision.decided_at == after[0]) & (RiskDecision.order_id > after[1]))
                )
            rows = list(self.session.scalars(statement.limit(batch_size)))
            yield from rows
            if len(rows) < batch_size:
                return
            after = (rows[-1].decided_at, rows[-1].order_id)

    # links
    def add_observations(self, rows: list[LinkObservation]) -> None:
        self.session.add_all(rows)

    # cases
    def get_case(self, case_id: str, *, for_update: bool = False) -> RiskCase | None:
        statement = select(RiskCase).where(RiskCase.id == case_id)
        if for_update:
            statement = statement.with_for_update().execution_options(populate_existing=True)
        return self.session.scalars(statement).one_or_none()

    def open_case_for(self, subject_key: str) -> RiskCase | None:
        return self.session.scalars(
            select(RiskCase)
            .where(RiskCase.subject_key == subject_key, RiskCase.status != "resolved")
            .order_by(RiskCase.id)
            .with_for_update()
        ).first()

    def cases(
        self,
        *,
        status: str | None,
        case_type: str | None,
        starting_after: str | None,
        limit: int,
    ) -> list[RiskCase]:
        statement = select(RiskCase).order_by(RiskCase.id)
        if status is not None:
            statement = statement.where(RiskCase.status == status)
        if case_type is not None:
            statement = statement.where(RiskCase.case_type == case_type)
        if starting_after is not None:
            statement = statement.where(RiskCase.id > starting_after)
        return list(self.session.scalars(statement.limit(limit)))

    def cases_about_merchant(self, merchant_id: str) -> list[RiskCase]:
        """The merchant's own cases and those of rings around it."""
        return list(
            self.session.scalars(
                select(RiskCase)
                .where(RiskCase.subject_key.in_((f"merchant:{merchant_id}", f"ring:{merchant_id}")))
                .order_by(RiskCase.id)
            )
        )

    # labels and known fraud
    def upsert_label(self, row: RiskLabel) -> None:
        existing = self.session.get(RiskLabel, (row.shopper_id, row.order_id))
        if existing is None:
            self.session.add(row)
            return
        existing.label = row.label
        existing.case_id = row.case_id
        existing.decided_by = row.decided_by
        existing.decided_at = row.decided_at

    def labels(self) -> list[RiskLabel]:
        return list(self.session.scalars(select(RiskLabel).order_by(RiskLabel.decided_at)))

    def is_known_fraud(self, subject_id: str) -> bool:
        return self.session.get(KnownFraudSubject, subject_id) is not None

    def mark_known_fraud(self, row: KnownFraudSubject) -> None:
        if self.session.get(KnownFraudSubject, row.subject_id) is None:
            self.session.add(row)

    # step-up
    def challenge(
        self, shopper_id: str, order_id: str, *, for_update: bool = False
    ) -> StepUpChallenge | None:
        statement = select(StepUpChallenge).where(
            StepUpChallenge.shopper_id == shopper_id, StepUpChallenge.order_id == order_id
        )
        if for_update:
            statement = statement.with_for_update().execution_options(populate_existing=True)
        return self.session.scalars(statement).one_or_none()

    # actions
    def actions_of(self, subject_id: str) -> list[RiskAction]:
        return list(
            self.session.scalars(
                select(RiskAction)
                .where(RiskAction.subject_id == subject_id)
                .order_by(RiskAction.id)
            )
        )

    def actions_of_case(self, case_id: str) -> list[RiskAction]:
        return list(
            self.session.scalars(
                select(RiskAction).where(RiskAction.case_id == case_id).order_by(RiskAction.id)
            )
        )

    def subjects_of_actions(self, case_id: str, *, action: str) -> list[str]:
        return list(
            self.session.scalars(
                select(RiskAction.subject_id)
                .where(RiskAction.case_id == case_id, RiskAction.action == action)
                .distinct()
                .order_by(RiskAction.subject_id)
            )
        )

    def open_cases_with_action(self, subject_id: str, *, action: str, other_than: str) -> bool:
        """Whether a case other than ``other_than`` that is still open took ``action`` on the
        subject."""
        return bool(
            self.session.scalar(
                select(
                    exists().where(
                        RiskAction.subject_id == subject_id,
                        RiskAction.action == action,
                        RiskAction.case_id != other_than,
                        RiskCase.id == RiskAction.case_id,
                        RiskCase.status != "resolved",
                    )
                )
            )
        )

    def shopper_records(self) -> ShopperRecords:
        """risk's rows about shoppers, for the privacy flow's export and erasure."""
        return ShopperRecords.of(
            self.session,
            tables_of(models),
            plaintext_pii={"risk_link_observations": ("value_hash",)},
        )
