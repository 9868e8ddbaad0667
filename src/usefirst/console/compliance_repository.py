"""Read models for the compliance pages: the PII-access audit log, newest first."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from usefirst.privacy.models import AuditEntry


class ComplianceRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def audit_entries(
        self, *, shopper_id: str | None, before_seq: int | None, limit: int
    ) -> list[AuditEntry]:
        """Newest first; ``before_seq`` pages back (keyset on the chain's sequence number)."""
        query = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit)
        if shopper_id:
            query = query.where(AuditEntry.subject_shopper_id == shopper_id)
        if before_seq is not None:
            query = query.where(AuditEntry.seq < before_seq)
        return list(self.session.scalars(query))
