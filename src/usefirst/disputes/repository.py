"""All SQL of disputes, and how other domains read the pause of dunning a shopper's dispute puts on
an order: ``open_dispute_on`` (a clause for their queries) and ``DISPUTE_PAUSES`` (a derived
table for their set-based SQL)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    ColumnExpressionArgument,
    and_,
    exists,
    func,
    or_,
    select,
    tuple_,
)
from sqlalchemy.orm import Session

from usefirst.disputes import models
from usefirst.disputes.models import (
    Dispute,
    DisputeAction,
    DisputedOrder,
    DisputeEvidence,
    DisputePauseClosure,
)
from usefirst.kit.personal_data import ShopperRecords, tables_of

UNRESOLVED_STATUSES = ("open", "awaiting_evidence", "under_review")
# The respondent has not answered yet.
AWAITING_RESPONDENT_STATUSES = ("open", "awaiting_evidence")

# The pause of each order a shopper disputed, for other domains' set-based SQL: LEFT JOIN it on
# (shopper_id, order_id); an order without a row was never disputed by its shopper (no dispute
# open: ``d.is_disputed IS NOT TRUE``, no paused days: ``COALESCE(d.dispute_paused_days, 0)``).
DISPUTE_PAUSES = (
    "(SELECT shopper_id, order_id, is_disputed, dispute_paused_days FROM disputed_orders)"
)


def open_dispute_on(
    shopper_id: ColumnExpressionArgument[str], order_id: ColumnExpressionArgument[str]
) -> ColumnElement[bool]:
    """Whether the order of these columns has a shopper's dispute open, as a clause for other
    domains' queries."""
    return exists().where(
        DisputedOrder.shopper_id == shopper_id,
        DisputedOrder.order_id == order_id,
        DisputedOrder.is_disputed.is_(True),
    )


class DisputeRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(
        self,
        row: Dispute | DisputeEvidence | DisputeAction | DisputedOrder | DisputePauseClosure,
    ) -> None:
        self.session.add(row)

    def pause_closures_since(
        self, keys: Sequence[tuple[str, str]], *, since: datetime
    ) -> dict[tuple[str, str], DisputePauseClosure]:
        """The first pause closing at or after ``since`` of each of these (shopper, order) keys
        that has one: one statement per 500 keys."""
        found: dict[tuple[str, str], DisputePauseClosure] = {}
        for start in range(0, len(keys), 500):
            for row in self.session.scalars(
                select(DisputePauseClosure)
                .where(
                    tuple_(DisputePauseClosure.shopper_id, DisputePauseClosure.order_id).in_(
                        keys[start : start + 500]
                    ),
                    DisputePauseClosure.closed_at >= since,
                )
                .order_by(DisputePauseClosure.closed_at, DisputePauseClosure.id)
            ):
                found.setdefault((row.shopper_id, row.order_id), row)
        return found

    def find(self, dispute_id: str) -> Dispute | None:
        return self.session.scalars(select(Dispute).where(Dispute.id == dispute_id)).first()

    def lock(self, shopper_id: str, dispute_id: str) -> Dispute | None:
        return self.session.scalars(
            select(Dispute)
            .where(Dispute.shopper_id == shopper_id, Dispute.id == dispute_id)
            .with_for_update()
        ).first()

    def unresolved_of_order(self, shopper_id: str, order_id: str) -> Dispute | None:
        return self.session.scalars(
            select(Dispute).where(
                Dispute.shopper_id == shopper_id,
                Dispute.open_order_id == order_id,
            )
        ).first()

    def was_filed_by(self, shopper_id: str, order_id: str, opened_by: str) -> bool:
        found = self.session.scalar(
            select(func.count())
            .select_from(Dispute)
            .where(
                Dispute.shopper_id == shopper_id,
                Dispute.order_id == order_id,
                Dispute.opened_by == opened_by,
            )
        )
        return (found or 0) > 0

    def page(
        self,
        *,
        merchant_id: str | None,
        status: str | None,
        starting_after: str | None,
        limit: int,
    ) -> list[Dispute]:
        query = select(Dispute)
        if merchant_id is not None:
            query = query.where(Dispute.merchant_id == merchant_id)
        if status is not None:
            query = query.where(Dispute.status == status)
        if starting_after is not None:
            query = query.where(Dispute.id > starting_after)
        return list(self.session.scalars(query.order_by(Dispute.id).limit(limit)))

    def past_deadline(self, *, now: datetime) -> list[tuple[str, str]]:
        """(shopper_id, id) of unresolved disputes with a deadline passed: the respondent's
        (still open or awaiting evidence at ``respond_by``) or the decision's (``decide_by``)."""
        rows = self.session.execute(
            select(Dispute.shopper_id, Dispute.id)
            .where(
                or_(
                    and_(
                        Dispute.status.in_(AWAITING_RESPONDENT_STATUSES),
                        Dispute.respond_by <= now,
                    ),
                    and_(Dispute.status.in_(UNRESOLVED_STATUSES), Dispute.decide_by <= now),
                )
            )
            .order_by(Dispute.shopper_id, Dispute.id)
        )
        return [(shopper_id, dispute_id) for shopper_id, dispute_id in rows]

    def evidence_of(self, shopper_id: str, dispute_id: str) -> list[DisputeEvidence]:
        return list(
            self.session.scalars(
                select(DisputeEvidence)
                .where(
                    DisputeEvidence.shopper_id == shopper_id,
                    DisputeEvidence.dispute_id == dispute_id,
                )
                .order_by(DisputeEvidence.id)
            )
        )

    def evidence_with_hash(
        self, shopper_id: str, dispute_id: str, sha256: str
    ) -> DisputeEvidence | None:
        return self.session.scalars(
            select(DisputeEvidence).where(
                DisputeEvidence.shopper_id == shopper_id,
                DisputeEvidence.dispute_id == dispute_id,
                DisputeEvidence.sha256 == sha256,
            )
        ).first()

    def evidence(
        self, shopper_id: str, dispute_id: str, evidence_id: str
    ) -> DisputeEvidence | None:
        return self.session.scalars(
            select(DisputeEvidence).where(
                DisputeEvidence.shopper_id == shopper_id,
                DisputeEvidence.dispute_id == dispute_id,
                DisputeEvidence.id == evidence_id,
            )
        ).first()

    def actions_of(self, shopper_id: str, dispute_id: str) -> list[DisputeAction]:
        return list(
            self.session.scalars(
                select(DisputeAction)
                .where(
                    DisputeAction.shopper_id == shopper_id,
                    DisputeAction.dispute_id == dispute_id,
                )
                .order_by(DisputeAction.seq)
            )
        )

    def next_action_seq(self, shopper_id: str, dispute_id: str) -> int:
        # The dispute row is locked by the caller, so no one else appends meanwhile.
        last = self.session.scalar(
            select(func.max(DisputeAction.seq)).where(
                DisputeAction.shopper_id == shopper_id, DisputeAction.dispute_id == dispute_id
            )
        )
        return (last or 0) + 1

    def pause_of(self, shopper_id: str, order_id: str) -> DisputedOrder | None:
        return self.session.get(DisputedOrder, (shopper_id, order_id))

    def first_opened_at(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], datetime]:
        """When the first dispute that pauses dunning (a shopper's) was opened on each of these
        (shopper, order) keys that has one: one statement per 500 keys."""
        found: dict[tuple[str, str], datetime] = {}
        for start in range(0, len(keys), 500):
            for shopper_id, order_id, opened_at in self.session.execute(
                select(Dispute.shopper_id, Dispute.order_id, func.min(Dispute.opened_at))
                .where(
                    tuple_(Dispute.shopper_id, Dispute.order_id).in_(keys[start : start + 500]),
                    Dispute.is_pausing_collections.is_(True),
                )
                .group_by(Dispute.shopper_id, Dispute.order_id)
            ):
                found[(shopper_id, order_id)] = opened_at
        return found

    def shopper_records(self) -> ShopperRecords:
        """disputes' rows about shoppers, for the privacy flow's export and erasure."""
        return ShopperRecords.of(
            self.session,
            tables_of(models),
            plaintext_pii={
                "disputes": ("description", "resolution_note"),
                "dispute_evidence": ("filename",),
            },
        )
