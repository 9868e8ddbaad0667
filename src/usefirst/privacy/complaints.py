"""Complaints from shoppers, answered by operators within an SLA (default 15 days).

A complaint is overdue while it has no answer after ``respond_by``. The daily sweep stamps each
complaint the first day it is seen overdue, so the sweep summary counts newly overdue ones once.
A privacy complaint shows compliance the audit trail of who read the shopper's data.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from usefirst.identity.repository import IdentityRepository
from usefirst.kit.business_day import DailyContext
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.errors import Conflict, NotFound, ValidationFailed
from usefirst.kit.ids import new_id
from usefirst.privacy import audit
from usefirst.privacy.models import Complaint, ComplaintResponse
from usefirst.privacy.repository import PrivacyRepository

CATEGORIES = ("privacy", "collection_conduct", "billing", "other")
MAX_TEXT_LENGTH = 5_000


class ComplaintClosed(Conflict):
    code = "complaint_closed"
    default_message = "The complaint is closed; it takes no more responses."


def _text(value: str, *, field: str) -> str:
    cleaned = value.strip()
    if not 1 <= len(cleaned) <= MAX_TEXT_LENGTH:
        raise ValidationFailed(f"{field} must have 1 to {MAX_TEXT_LENGTH} characters.", field=field)
    return cleaned


def file_complaint(
    session: Session,
    *,
    shopper_id: str,
    category: str,
    description: str,
    cipher: FieldCipher,
    response_days: int,
    now: datetime,
) -> Complaint:
    if category not in CATEGORIES:
        raise ValidationFailed(
            f"category must be one of {', '.join(CATEGORIES)}.", field="category"
        )
    text = _text(description, field="description")
    if IdentityRepository(session).get_shopper(shopper_id) is None:
        raise NotFound("No such shopper.")
    complaint = Complaint(
        shopper_id=shopper_id,
        id=new_id("complaint"),
        category=category,
        description_encrypted=cipher.encrypt(text, field="description"),
        status="open",
        respond_by=now + timedelta(days=response_days),
        responded_at=None,
        closed_at=None,
        overdue_reported_at=None,
        created_at=now,
        updated_at=now,
    )
    PrivacyRepository(session).add(complaint)
    session.flush()
    return complaint


def get_complaint(session: Session, *, complaint_id: str, for_update: bool = False) -> Complaint:
    complaint = PrivacyRepository(session).complaint(complaint_id, for_update=for_update)
    if complaint is None:
        raise NotFound("No such complaint.")
    return complaint


def respond(
    session: Session,
    *,
    complaint_id: str,
    operator_id: str,
    message: str,
    closes: bool,
    cipher: FieldCipher,
    now: datetime,
) -> Complaint:
    complaint = get_complaint(session, complaint_id=complaint_id, for_update=True)
    if complaint.status == "closed":
        raise ComplaintClosed()
    text = _text(message, field="message")
    PrivacyRepository(session).add(
        ComplaintResponse(
            shopper_id=complaint.shopper_id,
            id=new_id("complaint_response"),
            complaint_id=complaint.id,
            operator_id=operator_id,
            message_encrypted=cipher.encrypt(text, field="message"),
            closes_complaint=closes,
            created_at=now,
        )
    )
    if complaint.responded_at is None:
        complaint.responded_at = now
    complaint.status = "closed" if closes else "answered"
    if closes:
        complaint.closed_at = now
    complaint.updated_at = now
    session.flush()
    return complaint


def list_complaints(
    session: Session,
    *,
    overdue_only: bool,
    status: str | None,
    starting_after: str | None,
    limit: int,
    now: datetime,
) -> list[Complaint]:
    return PrivacyRepository(session).complaints(
        overdue_at=now if overdue_only else None,
        status=status,
        starting_after=starting_after,
        limit=limit,
    )


def is_overdue(complaint: Complaint, *, now: datetime) -> bool:
    return (
        complaint.responded_at is None
        and complaint.closed_at is None
        and (complaint.respond_by < now)
    )


def complaint_view(
    session: Session,
    complaint: Complaint,
    *,
    cipher: FieldCipher,
    now: datetime,
    include_access_trail: bool,
) -> dict[str, Any]:
    responses = PrivacyRepository(session).responses(
        shopper_id=complaint.shopper_id, complaint_id=complaint.id
    )
    view: dict[str, Any] = {
        "id": complaint.id,
        "shopper_id": complaint.shopper_id,
        "category": complaint.category,
        "description": _plain(cipher, complaint.description_encrypted, field="description"),
        "status": complaint.status,
        "respond_by": complaint.respond_by,
        "is_overdue": is_overdue(complaint, now=now),
        "responded_at": complaint.responded_at,
        "closed_at": complaint.closed_at,
        "created_at": complaint.created_at,
        "responses": [
            {
                "id": response.id,
                "operator_id": response.operator_id,
                "message": _plain(cipher, response.message_encrypted, field="message"),
                "closes_complaint": response.closes_complaint,
                "created_at": response.created_at,
            }
            for response in responses
        ],
    }
    if include_access_trail and complaint.category == "privacy":
        view["access_trail"] = [
            audit.entry_view(entry)
            for entry in audit.entries_about(session, shopper_id=complaint.shopper_id)
        ]
    return view


def _plain(cipher: FieldCipher, value: str, *, field: str) -> str | None:
    # Erasure replaces the text with a tombstone that no key decrypts.
    return cipher.decrypt(value, field=field) if value.startswith("v1:") else None


def flag_overdue_complaints(session: Session, context: DailyContext) -> dict[str, int]:
    """Daily job: count complaints that became overdue (each once) and all still overdue."""
    repository = PrivacyRepository(session)
    newly = repository.mark_newly_overdue(as_of=context.now)
    return {
        "complaints_newly_overdue": newly,
        "complaints_overdue": repository.count_overdue(as_of=context.now),
    }
