"""Payment rails: mandates, the charge attempts made against them and the callbacks received.
Which instalment to charge and what a confirmed charge does to the books is decided by
``flows.auto_debit``; this domain keeps the rail's side of the story."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from usefirst.kit.errors import Conflict, NotFound
from usefirst.kit.ids import new_id
from usefirst.rails.models import PaymentMandate, RailCallback, RailCharge, ReconciliationBreak
from usefirst.rails.provider import Mandate
from usefirst.rails.repository import RailRepository

OPEN_CHARGE_STATES = ("scheduled", "submitted")


class MandateRevoked(Conflict):
    code = "mandate_revoked"
    default_message = "This mandate is revoked."


def add_mandate(
    session: Session, *, shopper_id: str, provider: str, mandate: Mandate, now: datetime
) -> PaymentMandate:
    row = PaymentMandate(
        shopper_id=shopper_id,
        id=new_id("mandate"),
        provider=provider,
        provider_mandate_id=mandate.provider_mandate_id,
        status="active" if mandate.is_active else "revoked",
        created_at=now,
        revoked_at=None if mandate.is_active else now,
    )
    RailRepository(session).add(row)
    session.flush()
    return row


def mandate_of(session: Session, *, shopper_id: str, mandate_id: str) -> PaymentMandate:
    row = RailRepository(session).mandate(shopper_id, mandate_id)
    if row is None:
        raise NotFound("No such mandate for this shopper.", field="mandate_id")
    return row


def revoke_mandate(
    session: Session, *, shopper_id: str, mandate_id: str, now: datetime
) -> PaymentMandate:
    row = RailRepository(session).mandate(shopper_id, mandate_id, for_update=True)
    if row is None:
        raise NotFound("No such mandate for this shopper.", field="mandate_id")
    if row.status != "revoked":
        row.status = "revoked"
        row.revoked_at = now
    return row


def mandates_of(session: Session, *, shopper_id: str) -> list[PaymentMandate]:
    return RailRepository(session).mandates_of(shopper_id)


def active_mandates_by_shopper(session: Session, *, provider: str) -> dict[str, PaymentMandate]:
    """Each shopper's latest active mandate with ``provider``."""
    mandates: dict[str, PaymentMandate] = {}
    for row in RailRepository(session).active_mandates(provider):
        mandates[row.shopper_id] = row
    return mandates


def charges_of_shoppers(session: Session, *, shopper_ids: list[str]) -> list[RailCharge]:
    return RailRepository(session).charges_of_shoppers(sorted(shopper_ids))


def schedule_charge(
    session: Session,
    *,
    mandate: PaymentMandate,
    order_id: str,
    seq: int,
    attempt: int,
    amount_minor: int,
    currency: str,
    charge_on: date,
    submit_at: datetime,
    now: datetime,
) -> RailCharge:
    row = RailCharge(
        shopper_id=mandate.shopper_id,
        id=new_id("charge"),
        order_id=order_id,
        seq=seq,
        attempt=attempt,
        provider=mandate.provider,
        mandate_id=mandate.id,
        idempotency_key=f"{order_id}:{seq}:{attempt}",
        amount_minor=amount_minor,
        currency=currency,
        status="scheduled",
        charge_on=charge_on,
        submit_at=submit_at,
        reversed_minor=0,
        created_at=now,
    )
    RailRepository(session).add(row)
    return row


def charge_of(
    session: Session, *, shopper_id: str, charge_id: str, for_update: bool = False
) -> RailCharge | None:
    return RailRepository(session).charge(shopper_id, charge_id, for_update=for_update)


def charge_by_reference(session: Session, *, provider: str, reference: str) -> RailCharge | None:
    return RailRepository(session).charge_by_reference(provider, reference)


def charges_by_provider_ids(
    session: Session, *, provider: str, provider_ids: list[str]
) -> list[RailCharge]:
    return RailRepository(session).charges_by_provider_ids(provider, provider_ids)


def submitted_before(session: Session, *, provider: str, on: date) -> list[RailCharge]:
    return RailRepository(session).submitted_charges(provider, charged_before=on)


def cancel_charge(charge: RailCharge, *, reason: str, now: datetime) -> None:
    charge.status = "cancelled"
    charge.stop_reason = reason
    charge.decided_at = now


def mark_submitted(charge: RailCharge, *, provider_charge_id: str, now: datetime) -> None:
    charge.status = "submitted"
    charge.provider_charge_id = provider_charge_id
    charge.submitted_at = now


def mark_failed(
    charge: RailCharge,
    *,
    failure_code: str,
    next_attempt_on: date | None,
    confirmed_by: str,
    now: datetime,
) -> None:
    charge.status = "failed"
    charge.failure_code = failure_code
    charge.next_attempt_on = next_attempt_on
    charge.stop_reason = None if next_attempt_on is not None else "attempts_exhausted"
    charge.confirmed_by = confirmed_by
    charge.decided_at = now


def mark_succeeded(
    charge: RailCharge, *, payment_id: str, confirmed_by: str, now: datetime
) -> None:
    charge.status = "succeeded"
    charge.payment_id = payment_id
    charge.failure_code = None
    charge.next_attempt_on = None
    charge.confirmed_by = confirmed_by
    charge.decided_at = now


def mark_reversed(charge: RailCharge, *, amount_minor: int, now: datetime) -> None:
    charge.status = "reversed"
    charge.reversed_minor += amount_minor
    charge.decided_at = now


def succeeded_on(session: Session, *, provider: str, on: date) -> list[RailCharge]:
    """Charges we posted as paid that were charged on ``on`` (the provider settles them that
    day), reversed ones included."""
    return [
        row
        for row in RailRepository(session).charges_on(provider, on)
        if row.status in ("succeeded", "reversed")
    ]


def record_break(
    session: Session,
    *,
    provider: str,
    statement_on: date,
    kind: str,
    line_key: str,
    now: datetime,
    charge: RailCharge | None = None,
    provider_charge_id: str | None = None,
    our_amount_minor: int | None = None,
    their_amount_minor: int | None = None,
) -> tuple[ReconciliationBreak, bool]:
    """The break, found once per statement line and kind (True when new)."""
    repository = RailRepository(session)
    found = repository.find_break(provider, statement_on, kind, line_key)
    if found is not None:
        return found, False
    row = ReconciliationBreak(
        id=new_id("reconciliation_break"),
        provider=provider,
        statement_on=statement_on,
        kind=kind,
        line_key=line_key,
        shopper_id=charge.shopper_id if charge is not None else None,
        charge_id=charge.id if charge is not None else None,
        provider_charge_id=provider_charge_id,
        our_amount_minor=our_amount_minor,
        their_amount_minor=their_amount_minor,
        found_at=now,
    )
    repository.add(row)
    session.flush()
    return row, True


def breaks(
    session: Session, *, provider: str | None, include_resolved: bool = False
) -> list[ReconciliationBreak]:
    return RailRepository(session).breaks(provider=provider, include_resolved=include_resolved)


def resolve_break(session: Session, *, break_id: str, now: datetime) -> ReconciliationBreak:
    row = RailRepository(session).break_by_id(break_id)
    if row is None:
        raise NotFound("No such reconciliation break.")
    if row.resolved_at is None:
        row.resolved_at = now
    return row


def break_view(row: ReconciliationBreak, *, today: date) -> dict[str, Any]:
    return {
        "id": row.id,
        "provider": row.provider,
        "statement_on": row.statement_on,
        "kind": row.kind,
        "shopper_id": row.shopper_id,
        "charge_id": row.charge_id,
        "provider_charge_id": row.provider_charge_id,
        "our_amount_minor": row.our_amount_minor,
        "their_amount_minor": row.their_amount_minor,
        "found_at": row.found_at,
        "resolved_at": row.resolved_at,
        "age_days": (today - row.statement_on).days,
    }


def has_accepted_event(session: Session, *, provider: str, event_id: str) -> bool:
    return RailRepository(session).has_accepted_event(provider, event_id)


def record_callback(
    session: Session,
    *,
    provider: str,
    outcome: str,
    source: str,
    now: datetime,
    reason: str | None = None,
    event_id: str | None = None,
    event_type: str | None = None,
    charge: RailCharge | None = None,
    provider_charge_id: str | None = None,
    amount_minor: int | None = None,
) -> RailCallback:
    row = RailCallback(
        id=new_id("callback"),
        provider=provider,
        event_id=event_id,
        event_type=event_type,
        shopper_id=charge.shopper_id if charge is not None else None,
        charge_id=charge.id if charge is not None else None,
        provider_charge_id=provider_charge_id,
        amount_minor=amount_minor,
        outcome=outcome,
        reason=reason,
        source=source,
        received_at=now,
    )
    RailRepository(session).add(row)
    session.flush()
    return row


def recent_callbacks(session: Session, *, provider: str, limit: int) -> list[RailCallback]:
    return RailRepository(session).callbacks(provider, limit=limit)


def mandate_view(row: PaymentMandate) -> dict[str, Any]:
    return {
        "id": row.id,
        "shopper_id": row.shopper_id,
        "provider": row.provider,
        "provider_mandate_id": row.provider_mandate_id,
        "status": row.status,
        "created_at": row.created_at,
        "revoked_at": row.revoked_at,
    }


def callback_view(row: RailCallback) -> dict[str, Any]:
    return {
        "id": row.id,
        "source": row.source,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "amount_minor": row.amount_minor,
        "outcome": row.outcome,
        "reason": row.reason,
        "received_at": row.received_at,
    }


def order_charges_view(session: Session, *, shopper_id: str, order_id: str) -> list[dict[str, Any]]:
    """Every charge attempt on the order's instalments, with the callbacks each received."""
    repository = RailRepository(session)
    charges = repository.charges_of_order(shopper_id, order_id)
    callbacks: dict[str, list[dict[str, Any]]] = {}
    for callback in repository.callbacks_of_charges(shopper_id, [row.id for row in charges]):
        callbacks.setdefault(str(callback.charge_id), []).append(callback_view(callback))
    return [
        {
            "id": row.id,
            "seq": row.seq,
            "attempt": row.attempt,
            "provider": row.provider,
            "mandate_id": row.mandate_id,
            "amount_minor": row.amount_minor,
            "currency": row.currency,
            "status": row.status,
            "charge_on": row.charge_on,
            "submit_at": row.submit_at,
            "provider_charge_id": row.provider_charge_id,
            "failure_code": row.failure_code,
            "next_attempt_on": row.next_attempt_on,
            "stop_reason": row.stop_reason,
            "confirmed_by": row.confirmed_by,
            "payment_id": row.payment_id,
            "reversed_minor": row.reversed_minor,
            "callbacks": callbacks.get(row.id, []),
        }
        for row in charges
    ]
