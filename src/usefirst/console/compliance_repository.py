"""Read models for the compliance pages: the PII-access audit log (newest first) and the
complaints (overdue first, then by deadline, closed last), both keyset-paged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, case
from sqlalchemy.orm import Session

from usefirst.console.listing import ListPage, Search, SortKey, keyset_page
from usefirst.privacy.models import AuditEntry, Complaint

AUDIT_SORT = (SortKey(AuditEntry.seq, descending=True),)


def audit_page(
    session: Session,
    *,
    shopper_ids: tuple[str, ...] | None,
    action: str | None,
    before_seq: int | None,
    limit: int,
) -> ListPage[AuditEntry]:
    """Newest first; ``before_seq`` pages back (keyset on the chain's sequence number);
    ``shopper_ids`` narrows to rows about those shoppers (none match an empty tuple)."""
    conditions: list[ColumnElement[bool]] = []
    if shopper_ids is not None:
        conditions.append(AuditEntry.subject_shopper_id.in_(shopper_ids))
    if action:
        conditions.append(AuditEntry.action == action)
    return keyset_page(
        session,
        AuditEntry,
        conditions=conditions,
        sort=AUDIT_SORT,
        after=before_seq,
        limit=limit,
    )


@dataclass(frozen=True)
class ComplaintFilter:
    status: str | None = None  # open | answered | closed
    category: str | None = None
    overdue_only: bool = False
    search: Search | None = None  # a complaint id, a shopper's id or phone


def _waiting(now: datetime) -> ColumnElement[bool]:
    return (
        Complaint.responded_at.is_(None)
        & Complaint.closed_at.is_(None)
        & (Complaint.respond_by < now)
    )


def complaint_sorts(now: datetime) -> dict[str, tuple[SortKey, ...]]:
    return {
        # Overdue first (the longest overdue on top), then open ones by deadline, closed last.
        "deadline": (
            SortKey(case((_waiting(now), 0), else_=1)),
            SortKey(case((Complaint.status == "closed", 1), else_=0)),
            SortKey(Complaint.respond_by),
            SortKey(Complaint.id),
        ),
        "newest": (SortKey(Complaint.created_at, descending=True), SortKey(Complaint.id)),
    }


def complaints_page(
    session: Session,
    *,
    filters: ComplaintFilter,
    sort: str,
    after: str | None,
    limit: int,
    now: datetime,
) -> ListPage[Complaint]:
    conditions: list[ColumnElement[bool]] = []
    if filters.status:
        conditions.append(Complaint.status == filters.status)
    if filters.category:
        conditions.append(Complaint.category == filters.category)
    if filters.overdue_only:
        conditions.append(_waiting(now))
    if filters.search is not None:
        conditions.append(
            filters.search.condition(ids=[Complaint.id], shopper=Complaint.shopper_id)
        )
    return keyset_page(
        session,
        Complaint,
        conditions=conditions,
        sort=complaint_sorts(now)[sort],
        after=after,
        limit=limit,
    )
