"""Privacy: the hash-chained audit log of PII access, complaints, and privacy requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from usefirst.kit.db import Base, JSONDocument, UTCDateTime


class AuditEntry(Base):
    """One unmasked read of a shopper's PII, or one privacy action. Append-only: the database
    refuses UPDATE and DELETE, and each row's hash covers its content and the previous row's hash,
    so an edit that bypasses the database is caught by ``usefirst audit verify``."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_subject", "subject_shopper_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(120))  # op_… or system:<job>
    action: Mapped[str] = mapped_column(String(64))
    subject_shopper_id: Mapped[str | None] = mapped_column(String(40))
    fields: Mapped[Any] = mapped_column(JSONDocument)  # list of field names
    purpose: Mapped[str] = mapped_column(String(500))
    reference_id: Mapped[str | None] = mapped_column(String(40))
    previous_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The last link of the chain (one row). Appending locks it, so appends are serialised and a
    truncated tail is detectable (the head names a row that is gone)."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))


class Complaint(Base):
    __tablename__ = "complaints"
    __table_args__ = (
        # Look-up by id alone (ids are globally unique by construction); not a unique index,
        # which under Citus would have to include the distribution column.
        Index("ix_complaints_id", "id"),
        Index("ix_complaints_open_respond_by", "responded_at", "respond_by"),
    )

    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    category: Mapped[str] = mapped_column(String(24))  # privacy|collection_conduct|billing|other
    # Free text from the shopper may hold personal data: encrypted like other PII.
    description_encrypted: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12))  # open | answered | closed
    respond_by: Mapped[datetime] = mapped_column(UTCDateTime())
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The business date the daily job first counted it overdue (so it is counted once).
    overdue_reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ComplaintResponse(Base):
    __tablename__ = "complaint_responses"
    __table_args__ = (Index("ix_complaint_responses_complaint", "shopper_id", "complaint_id"),)

    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    complaint_id: Mapped[str] = mapped_column(String(40))
    operator_id: Mapped[str] = mapped_column(String(40))
    message_encrypted: Mapped[str] = mapped_column(Text)
    closes_complaint: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PrivacyRequest(Base):
    """A data export or an erasure carried out for a shopper, with what was kept and why."""

    __tablename__ = "privacy_requests"

    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(12))  # export | erasure
    requested_by: Mapped[str] = mapped_column(String(120))
    summary: Mapped[Any] = mapped_column(JSONDocument)
    completed_at: Mapped[datetime] = mapped_column(UTCDateTime())
