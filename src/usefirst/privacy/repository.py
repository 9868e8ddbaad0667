"""All SQL of privacy: complaints, privacy requests, and the data map over every table that holds
something about a shopper (found from the schema, so tables added later are covered too)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, Text, and_, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session

from usefirst.collections.models import BureauFile
from usefirst.identity.models import ExternalIdLookup, NationalIdLookup
from usefirst.kit.db import Base
from usefirst.kit.models import IdempotencyRecord
from usefirst.ledger.models import JournalEntry, LedgerAccount, LedgerPosting
from usefirst.orders.models import Order
from usefirst.privacy.models import Complaint, ComplaintResponse, PrivacyRequest

ENCRYPTED_SUFFIX = "_encrypted"
SHOPPER_COLUMN = "shopper_id"


def all_tables() -> list[Table]:
    import usefirst.models  # noqa: F401  (every table registered on the metadata)

    return list(Base.metadata.sorted_tables)


def shopper_tables() -> list[Table]:
    """Tables keyed (distributed) by shopper: the rows about one shopper carry its id."""
    return [table for table in all_tables() if SHOPPER_COLUMN in table.c]


def encrypted_columns(table: Table) -> list[str]:
    return [column.name for column in table.c if column.name.endswith(ENCRYPTED_SUFFIX)]


def _fitting(tombstone: str, column_type: Any) -> str:
    length = getattr(column_type, "length", None)
    return tombstone if length is None or len(tombstone) <= length else tombstone[:length]


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

    # --- the data map -------------------------------------------------------------------------

    def rows_of(self, table: Table, *, shopper_id: str) -> list[dict[str, Any]]:
        order = [column for column in table.primary_key.columns]
        rows = self.session.execute(
            select(table).where(table.c[SHOPPER_COLUMN] == shopper_id).order_by(*order)
        )
        return [dict(row._mapping) for row in rows]

    def count_rows_of(self, table: Table, *, shopper_id: str) -> int:
        return int(
            self.session.scalar(
                select(func.count()).select_from(table).where(table.c[SHOPPER_COLUMN] == shopper_id)
            )
            or 0
        )

    def erase_columns(
        self, table: Table, *, shopper_id: str, columns: Sequence[str], tombstone: str
    ) -> int:
        """Overwrite the given columns of a shopper's rows: NULL where the column allows it, else
        the tombstone. Returns how many rows held a value there."""
        present = [name for name in columns if name in table.c]
        if not present:
            return 0
        values = {
            name: None if table.c[name].nullable else _fitting(tombstone, table.c[name].type)
            for name in present
        }
        holding = or_(
            *[
                and_(table.c[name].is_not(None), table.c[name] != values[name])
                if values[name] is not None
                else table.c[name].is_not(None)
                for name in present
            ]
        )
        result = self.session.execute(
            update(table)
            .where(table.c[SHOPPER_COLUMN] == shopper_id, holding)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def release_lookups(self, *, shopper_id: str) -> int:
        removed = 0
        for model in (NationalIdLookup, ExternalIdLookup):
            result = self.session.execute(
                delete(model)
                .where(model.shopper_id == shopper_id)
                .execution_options(synchronize_session=False)
            )
            removed += int(getattr(result, "rowcount", 0) or 0)
        return removed

    def forget_idempotent_responses(self, *, shopper_id: str) -> int:
        """Stored responses for replay mention the shopper (masked PII included); a replay after
        erasure must not bring it back."""
        result = self.session.execute(
            delete(IdempotencyRecord)
            .where(cast(IdempotencyRecord.response_body, Text).contains(shopper_id))
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def privacy_requests(self, *, shopper_id: str) -> list[PrivacyRequest]:
        return list(
            self.session.scalars(
                select(PrivacyRequest)
                .where(PrivacyRequest.shopper_id == shopper_id)
                .order_by(PrivacyRequest.id)
            )
        )

    def ledger_lines_of(self, *, owner_id: str) -> list[dict[str, Any]]:
        """Every posting to an account the shopper owns, with its entry."""
        rows = self.session.execute(
            select(
                LedgerAccount.code,
                LedgerAccount.kind,
                LedgerPosting.entry_id,
                LedgerPosting.seq,
                LedgerPosting.currency,
                LedgerPosting.amount_minor,
                JournalEntry.kind.label("entry_kind"),
                JournalEntry.order_id,
                JournalEntry.memo,
                JournalEntry.created_at,
            )
            .join(LedgerPosting, LedgerPosting.account_code == LedgerAccount.code)
            .join(JournalEntry, JournalEntry.id == LedgerPosting.entry_id)
            .where(LedgerAccount.owner_id == owner_id)
            .order_by(LedgerAccount.code, JournalEntry.created_at, LedgerPosting.entry_id)
        )
        return [dict(row._mapping) for row in rows]

    def bureau_files(self) -> list[BureauFile]:
        return list(self.session.scalars(select(BureauFile).order_by(BureauFile.id)))

    def shopper_ids_of_orders(self, order_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        ordered = sorted(set(order_ids))
        for start in range(0, len(ordered), 1_000):
            found.update(
                self.session.scalars(
                    select(Order.shopper_id).where(Order.id.in_(ordered[start : start + 1_000]))
                )
            )
        return found
