"""A collector's call to a shopper whose order is overdue, as logged from the console or the API:
checked against the contact policy under the shopper's credit-line lock (the lock every contact
of the shopper's day is counted under), then written to the shopper's contact log."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.orm import Session

from usefirst.collections import service as collections_service
from usefirst.collections.models import ContactAttempt
from usefirst.credit import service as credit_service
from usefirst.identity import service as identity_service
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.settings import Settings
from usefirst.orders import service as order_service


def record_call(
    session: Session,
    *,
    order_id: str,
    outcome: str,
    promise_on: date | None,
    promise_minor: int | None,
    note: str | None,
    operator_id: str | None,
    settings: Settings,
    cipher: FieldCipher,
    today: date,
    now: datetime,
) -> ContactAttempt:
    collections_service.check_call_outcome(
        outcome=outcome, promise_on=promise_on, promise_minor=promise_minor, today=today
    )
    order = order_service.find_order(session, order_id=order_id)
    credit_service.lock_credit_line(session, shopper_id=order.shopper_id)
    collections_service.check_call_allowed(
        session,
        order=order,
        shopper=identity_service.get_shopper(session, shopper_id=order.shopper_id),
        promise_minor=promise_minor,
        settings=settings,
        now=now,
    )
    details = identity_service.contact_details(session, shopper_id=order.shopper_id, cipher=cipher)
    return collections_service.log_call(
        session,
        order=order,
        outcome=outcome,
        promise_on=promise_on,
        promise_minor=promise_minor,
        note=note,
        operator_id=operator_id,
        destination_masked=details.phone_masked,
        now=now,
    )
