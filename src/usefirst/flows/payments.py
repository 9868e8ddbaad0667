"""Payments: money from the shopper reaches their instalments, and their orders and credit
follow. Held credit applied at delivery takes the same path (flows/fulfilment.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any, NoReturn

from sqlalchemy import CTE, ColumnElement, UpdateBase, exists, true
from sqlalchemy.orm import Session

from usefirst.collections import service as collections_service
from usefirst.credit import service as credit_service
from usefirst.flows.order_events import insert_order_event, publish_order_event
from usefirst.identity import service as identity_service
from usefirst.kit.db import (
    Part,
    look_up_together,
    on_citus,
    one_statement,
    parts_bound,
    rows_together,
)
from usefirst.kit.errors import NotFound, ValidationFailed
from usefirst.kit.idempotency import KeyAlreadyRecorded, ResponseRecord
from usefirst.kit.settings import Settings
from usefirst.ledger import accounts
from usefirst.ledger import service as ledger_service
from usefirst.ledger.accounts import EntryKind, Leg
from usefirst.ledger.service import post_entry
from usefirst.merchants import service as merchant_service
from usefirst.notify.service import insert_event, publish_event
from usefirst.orders import service as order_service
from usefirst.orders.models import Order
from usefirst.repayment import service as repayment_service
from usefirst.repayment.models import Allocation
from usefirst.risk import counters as risk_counters


def pay(
    session: Session,
    *,
    shopper_id: str,
    amount_minor: int,
    currency: str,
    order_id: str | None,
    method: str,
    external_ref: str | None,
    today: date,
    settings: Settings,
    now: datetime,
    is_reported: bool = False,
) -> PaidOutcome:
    """A payment from the shopper, with its effect on orders and credit: late fees, then
    principal, oldest due first; the rest is held as credit. ``is_reported``: a payment the
    platform reports (``POST /v1/payments``), told as it is posted
    (``publish_reported_receipt``)."""
    request = repayment_service.PaymentRequest(
        shopper_id=shopper_id,
        amount_minor=amount_minor,
        currency=currency,
        order_id=order_id,
        method=method,
        external_ref=external_ref,
    )
    if order_id is None:
        identity_service.get_shopper(session, shopper_id=shopper_id)
    else:
        # Shopper and order in one round trip on PostgreSQL, both by the shopper's id.
        _shopper, owned = look_up_together(
            session,
            identity_service.shopper_standing(shopper_id),
            order_service.is_shoppers_order(shopper_id, order_id),
        )
        if not owned:
            _refuse_order(session, order_id=order_id)
    repayment_service.check_payment(amount_minor=amount_minor, currency=currency, method=method)
    line = credit_service.lock_credit_line(session, shopper_id=shopper_id)
    _check_currency(line.currency, request)
    return _take_payment(
        session,
        request=request,
        today=today,
        settings=settings,
        now=now,
        read_rows=None,
        is_reported=is_reported,
    )


def _refuse_order(session: Session, *, order_id: str) -> NoReturn:
    """The order is not the shopper's: which error, no such order at all or another shopper's."""
    order_service.find_order(session, order_id=order_id)
    raise NotFound("No such order for this shopper.", field="order_id")


def _check_currency(line_currency: str, request: repayment_service.PaymentRequest) -> None:
    if line_currency != request.currency:
        raise ValidationFailed(f"This shopper's account is in {line_currency}.", field="currency")


def _take_payment(
    session: Session,
    *,
    request: repayment_service.PaymentRequest,
    today: date,
    settings: Settings,
    now: datetime,
    read_rows: list[dict[str, Any]] | None,
    is_reported: bool,
) -> PaidOutcome:
    """The checked payment, the shopper's line locked: allocated, freed credit released, posted,
    and the orders it reached brought in line (``read_rows``: the open instalments, read and
    locked already; ``is_reported``: see ``pay``)."""
    outcome = repayment_service.receive_payment(
        session, request=request, today=today, now=now, read_rows=read_rows
    )
    shopper_id = request.shopper_id
    credit_service.release(
        session, shopper_id=shopper_id, amount_minor=outcome.applied.freed_credit_minor
    )
    post_entry(session, **_payment_entry(outcome, now=now))
    session.flush()
    left_by_order = follow_schedules(
        session,
        shopper_id=shopper_id,
        order_ids=sorted({allocation.order_id for allocation in outcome.allocations}),
        settings=settings,
        now=now,
    )
    paid = PaidOutcome(
        payment=outcome.payment, applied=outcome.applied, left_by_order=left_by_order
    )
    if is_reported:
        publish_reported_receipt(session, paid, settings=settings, now=now)
    return paid


@dataclass
class PaidOutcome(repayment_service.PaymentOutcome):
    """A payment posted, with what each order it reached still owes after it."""

    left_by_order: dict[str, int]

    def receipt(self) -> list[dict[str, Any]]:
        """Each order the payment reached: what it paid there (fees and principal) and what the
        order still owes, by order id: the receipt's lines."""
        paid: dict[str, int] = {}
        for allocation in self.allocations:
            paid[allocation.order_id] = (
                paid.get(allocation.order_id, 0)
                + allocation.fees_minor
                + allocation.principal_minor
            )
        return [
            {
                "order_id": order_id,
                "paid_minor": paid_minor,
                "left_minor": self.left_by_order[order_id],
            }
            for order_id, paid_minor in sorted(paid.items())
            if paid_minor > 0
        ]


def allocation_lines(outcome: repayment_service.PaymentOutcome) -> list[dict[str, Any]]:
    """Where the payment went, instalment by instalment (the answer's and the event's
    ``allocations``)."""
    return [
        {
            "order_id": allocation.order_id,
            "seq": allocation.seq,
            "fees_minor": allocation.fees_minor,
            "principal_minor": allocation.principal_minor,
        }
        for allocation in outcome.allocations
    ]


def payment_received_data(
    outcome: PaidOutcome, *, provider: str | None, charge_id: str | None
) -> dict[str, Any]:
    """The ``payment.received`` event's data: the payment, where it went, and each order's
    receipt line."""
    payment = outcome.payment
    return {
        "payment_id": payment.id,
        "shopper_id": payment.shopper_id,
        "order_id": payment.order_id,
        "amount_minor": payment.amount_minor,
        "currency": payment.currency,
        "method": payment.method,
        "provider": provider,
        "charge_id": charge_id,
        "allocations": allocation_lines(outcome),
        "unapplied_minor": payment.unapplied_minor,
        "orders": outcome.receipt(),
    }


def publish_reported_receipt(
    session: Session, outcome: PaidOutcome, *, settings: Settings, now: datetime
) -> None:
    """``payment.received`` for a payment the platform reported (``POST /v1/payments``, an
    early payoff, a hardship settlement), with a receipt to the shopper for each order it
    reached, planned by the worker from the event (flows/shopper_notices.py); on PostgreSQL the
    event and its outbox messages are one statement."""
    publish_event(
        session,
        event_type="payment.received",
        data=payment_received_data(outcome, provider=None, charge_id=None),
        now=now,
        settings=settings,
        shopper_id=outcome.payment.shopper_id,
        one_statement=True,
        tell_shopper=True,
    )


def _reported_receipt_parts(
    outcome: PaidOutcome, *, settings: Settings, now: datetime
) -> list[Part]:
    """``publish_reported_receipt``'s event and outbox messages, as parts of a larger write."""
    return insert_event(
        event_type="payment.received",
        data=payment_received_data(outcome, provider=None, charge_id=None),
        now=now,
        settings=settings,
        merchant_id=None,
        shopper_id=outcome.payment.shopper_id,
        merchant_webhook_url=None,
        tell_shopper=True,
    )


def _payment_entry(outcome: repayment_service.PaymentOutcome, *, now: datetime) -> dict[str, Any]:
    """The ledger entry of a payment (``post_entry``'s arguments)."""
    payment = outcome.payment
    applied = outcome.applied
    shopper_id = payment.shopper_id
    return {
        "kind": EntryKind.SHOPPER_PAYMENT,
        "currency": payment.currency,
        "legs": [
            Leg(accounts.PLATFORM_CASH, payment.amount_minor),
            Leg(accounts.shopper_receivable(shopper_id), -applied.to_receivable_minor),
            Leg(accounts.RECOVERIES, -applied.recovered_minor),
            Leg(accounts.shopper_unapplied_credit(shopper_id), -applied.left_minor),
        ],
        "now": now,
        "shopper_id": shopper_id,
        "order_id": payment.order_id,
        "reference_id": payment.id,
        "memo": f"payment by {payment.method}",
    }


PaymentAnswer = Callable[[repayment_service.PaymentOutcome], tuple[int, Any]]


def pay_answered(
    session: Session,
    *,
    request: repayment_service.PaymentRequest,
    today: date,
    settings: Settings,
    now: datetime,
    answer: PaymentAnswer,
    record: ResponseRecord | None,
) -> tuple[int, Any]:
    """``pay``, answered by ``answer`` (JSON values) and the answer recorded under the call's
    idempotency key with the rest of the work (:class:`KeyAlreadyRecorded` when the key has a
    response already).

    On PostgreSQL a payment for an order reads what it needs in one round trip (the shopper,
    the line and the order's open instalments locked, in the fixed lock order, then the order
    locked and its risk facts) and, when the payment changes nothing but the instalments it
    pays (see ``_changes_only_instalments``), writes the payment, allocations, instalments,
    released credit, ledger entry, the ``payment.received`` event with its outbox messages
    (``publish_reported_receipt``'s rows) and idempotency record as two statements sent
    together: the entry's accounts and postings, then everything else with the entry's header
    (``_write_lean``). A payment that repays the order (``_repays_quietly``) reads three more
    things in one more round trip and writes the same way with the order repaid, the line grown
    and ``order.repaid`` (``_repay_lean``). Any other payment goes on from the rows read the way
    ``pay`` goes (``_take_payment``)."""
    order_id = request.order_id
    if order_id is None or not _reads_together(session, order_id):
        outcome = pay(
            session,
            **asdict(request),
            today=today,
            settings=settings,
            now=now,
            is_reported=True,
        )
        return _recorded(session, answer(outcome), record)
    shopper_id = request.shopper_id
    shopper = identity_service.shopper_standing(shopper_id)
    line_lookup = credit_service.locked_line_standing(shopper_id)
    order_lookup = order_service.shoppers_order_locked(shopper_id, order_id)
    shopper_rows, line_rows, open_rows, elsewhere_rows, order_rows, fact_rows = rows_together(
        session,
        [
            shopper.statement,
            line_lookup.statement,
            repayment_service.open_instalments_locked(shopper_id, order_id),
            repayment_service.left_elsewhere(shopper_id, order_id),
            order_lookup.statement,
            risk_counters.facts_reading([(shopper_id, order_id)]),
        ],
        parameters=[
            shopper.parameters,
            line_lookup.parameters,
            None,
            None,
            order_lookup.parameters,
            None,
        ],
    )
    # The checks of ``pay``, in its order.
    shopper.read(shopper_rows[0] if shopper_rows else None)
    order = order_lookup.read(order_rows[0] if order_rows else None)
    if order is None:
        _refuse_order(session, order_id=order_id)
    repayment_service.check_payment(
        amount_minor=request.amount_minor, currency=request.currency, method=request.method
    )
    line = line_lookup.read(line_rows[0] if line_rows else None)
    _check_currency(line.currency, request)
    planned = repayment_service.plan_payment(open_rows, request=request, today=today, now=now)
    elsewhere_minor = int(elsewhere_rows[0]["left_minor"])
    if _changes_only_instalments(planned, order=order, line=line, fact_rows=fact_rows):
        outcome = _planned_outcome(planned, elsewhere_minor=elsewhere_minor)
        answered = answer(outcome)
        return _write_lean(
            session,
            outcome=outcome,
            answered=answered,
            record=record,
            writes=[
                *repayment_service.payment_writes(planned),
                *credit_service.release_writes(
                    shopper_id=shopper_id, amount_minor=outcome.applied.freed_credit_minor
                ),
            ],
            parts=[],
            settings=settings,
            now=now,
        )
    if _repays_quietly(planned, order=order, line=line):
        repaid = _repay_lean(
            session,
            planned=planned,
            order=order,
            elsewhere_minor=elsewhere_minor,
            fact_rows=fact_rows,
            settings=settings,
            now=now,
            answer=answer,
            record=record,
        )
        if repaid is not None:
            return repaid
    outcome = _take_payment(
        session,
        request=request,
        today=today,
        settings=settings,
        now=now,
        read_rows=open_rows,
        is_reported=True,
    )
    return _recorded(session, answer(outcome), record)


def _planned_outcome(
    planned: repayment_service.PlannedPayment, *, elsewhere_minor: int
) -> PaidOutcome:
    """The planned payment's outcome, with what each order it reached still owes after it
    (``elsewhere_minor``: what the paid order's instalments that are not open owe)."""
    reached = sorted({allocation.order_id for allocation in planned.outcome.allocations})
    return PaidOutcome(
        payment=planned.outcome.payment,
        applied=planned.outcome.applied,
        left_by_order={
            reached_id: planned.left_on(reached_id, elsewhere_minor=elsewhere_minor)
            for reached_id in reached
        },
    )


def _repays_quietly(
    planned: repayment_service.PlannedPayment, *, order: Order, line: credit_service.LineStanding
) -> bool:
    """Whether the payment pays everything the order's open instalments owe, on an order being
    repaid, and ``follow_schedules`` after it would change nothing but that order, its risk
    counters and (``settle_order``) the line's growth: the line is not frozen for an overdue
    payment (``refresh_freeze`` might unfreeze it)."""
    return (
        bool(planned.outcome.allocations)
        and order_service.is_active(order)
        and not planned.leaves_open(order.id)
        and not credit_service.is_unfrozen_by_paying(line)
    )


def _repay_lean(
    session: Session,
    *,
    planned: repayment_service.PlannedPayment,
    order: Order,
    elsewhere_minor: int,
    fact_rows: list[dict[str, Any]],
    settings: Settings,
    now: datetime,
    answer: PaymentAnswer,
    record: ResponseRecord | None,
) -> tuple[int, Any] | None:
    """``pay_answered``'s lean path for a payment that repays the order (``_repays_quietly``):
    one more round trip reads the order's instalments, what ``record_on_time_repayment`` reads
    of the line and the order's merchant; then everything ``_take_payment`` and
    ``settle_order`` write is written as two statements sent together (see ``_write_lean``).
    None (nothing written) when an instalment of the order is neither open nor closed, which
    ``follow_schedules`` leaves to the previous way."""
    shopper_id = order.shopper_id
    merchant_lookup = merchant_service.merchant_by_id(order.merchant_id)
    instalment_rows, growth_rows, merchant_rows = rows_together(
        session,
        [
            repayment_service.instalments_of_order_reading(shopper_id, order.id),
            credit_service.growth_reading(shopper_id),
            merchant_lookup.statement,
        ],
        parameters=[None, None, merchant_lookup.parameters],
    )
    instalments = planned.instalments_after(order.id, instalment_rows)
    if not all(row.status in repayment_service.CLOSED_STATUSES for row in instalments):
        return None
    merchant = merchant_lookup.read(merchant_rows[0] if merchant_rows else None)
    # ``follow_schedules``' changes of the order, then ``settle_order``'s.
    order_service.clear_overdue(order, now=now)
    order_service.mark_repaid(order, now=now)
    outcome = _planned_outcome(planned, elsewhere_minor=elsewhere_minor)
    answered = answer(outcome)
    released_minor = outcome.applied.freed_credit_minor
    # Ids are made in the order of the previous way: the entry's, the line's change and its
    # message, the order.repaid event's, then (``_write_lean``) the payment.received event's.
    entry = _entry_of(outcome, now=now)
    credit_writes: list[UpdateBase]
    if repayment_service.repaid_on_time(instalments):
        credit_writes = credit_service.on_time_repayment_writes(
            growth_rows[0],
            shopper_id=shopper_id,
            order_id=order.id,
            released_minor=released_minor,
            policy=credit_service.policy_from_settings(settings),
            now=now,
        )
    else:
        credit_writes = [
            *credit_service.release_writes(shopper_id=shopper_id, amount_minor=released_minor)
        ]
    repaid_event = insert_order_event(
        order=order,
        event_type="order.repaid",
        settings=settings,
        now=now,
        view=order_service.order_view(session, order, instalments),
        merchant_webhook_url=merchant.webhook_url,
    )
    written = _write_lean(
        session,
        outcome=outcome,
        answered=answered,
        record=record,
        writes=[
            *repayment_service.payment_writes(planned),
            *credit_writes,
            order_service.repaid_writes(order),
        ],
        parts=[*risk_counters.observed_writes([order], fact_rows, now=now), *repaid_event],
        settings=settings,
        now=now,
        entry=entry,
    )
    # Objects of this order the caller's session holds are stale now: read afresh when used.
    session.expire_all()
    return written


def _entry_of(outcome: PaidOutcome, *, now: datetime) -> ledger_service.EntryRows:
    entry = ledger_service.entry_rows(**_payment_entry(outcome, now=now))
    if entry is None:
        raise AssertionError("a payment always posts (it is positive)")
    return entry


def _write_lean(
    session: Session,
    *,
    outcome: PaidOutcome,
    answered: tuple[int, Any],
    record: ResponseRecord | None,
    writes: list[UpdateBase],
    parts: list[Part],
    settings: Settings,
    now: datetime,
    entry: ledger_service.EntryRows | None = None,
) -> tuple[int, Any]:
    """The payment's ledger entry (``entry``, made now if not given), ``writes`` and ``parts``
    with the ``payment.received`` event and its outbox messages (``publish_reported_receipt``'s
    rows) and the idempotency record, as two statements sent together: the entry's accounts
    and postings, then everything else with the entry's header (:class:`KeyAlreadyRecorded`
    when the key has a response already)."""
    if entry is None:
        entry = _entry_of(outcome, now=now)
    # The receipt's event and its outbox messages, as ``publish_reported_receipt`` writes them.
    bound, values = parts_bound(
        [*parts, *_reported_receipt_parts(outcome, settings=settings, now=now)]
    )
    ledger_writes = ledger_service.entry_writes(entry)
    first: list[CTE] = []
    recorded: ColumnElement[bool] = true()
    if record is not None:
        written = record.insert(session, *answered).cte("recorded")
        first.append(written)
        recorded = exists(written.select())
    _posted, (outcome_row,) = rows_together(
        session,
        [
            ledger_writes.postings,
            one_statement(
                [*writes, ledger_writes.entry, *bound],
                first=first,
                answer=[recorded.label("recorded")],
            ),
        ],
        parameters=[None, values],
    )
    if not outcome_row["recorded"]:
        raise KeyAlreadyRecorded()
    return answered


def _reads_together(session: Session, order_id: str | None) -> bool:
    """Whether the payment takes the lean path: ``writes_together``, a payment for an order."""
    return order_id is not None and writes_together(session)


def writes_together(session: Session) -> bool:
    """Whether a money call may take its lean path: PostgreSQL (one round trip for many
    statements) but not Citus."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    # The entries' accounts (a reference table on Citus) and their postings (sharded) are
    # written by one statement, which Citus does not run: there, the previous path.
    return not on_citus(session.connection())


def _changes_only_instalments(
    planned: repayment_service.PlannedPayment,
    *,
    order: Order,
    line: credit_service.LineStanding,
    fact_rows: list[dict[str, Any]],
) -> bool:
    """Whether ``follow_schedules`` after this payment would write nothing: the line is not
    frozen for an overdue payment, or something of the order stays overdue (so it stays
    frozen), and the order the payment reached (if it reached one that is being repaid) keeps
    its state: something still owed, not overdue or still overdue, its risk counters where they
    are."""
    stays_overdue = planned.leaves_overdue(order.id)
    if credit_service.is_unfrozen_by_paying(line) and not stays_overdue:
        return False
    if not planned.outcome.allocations or not order_service.is_active(order):
        return True
    if not planned.leaves_open(order.id):
        return False
    if order.status == "overdue" and not stays_overdue:
        return False
    return not risk_counters.observes_a_change([order], fact_rows)


def _recorded(
    session: Session, answered: tuple[int, Any], record: ResponseRecord | None
) -> tuple[int, Any]:
    if record is not None:
        record.write(session, *answered)
    return answered


def pay_order_in_full(
    session: Session,
    *,
    order: Order,
    amount_minor: int,
    method: str,
    external_ref: str | None,
    today: date,
    settings: Settings,
    now: datetime,
) -> PaidOutcome:
    """A payment the caller checked against what the order owes (an early payoff's exact amount,
    a hardship settlement for less): all of it applies to the order, none is held as credit."""
    outcome = pay(
        session,
        shopper_id=order.shopper_id,
        amount_minor=amount_minor,
        currency=order.currency,
        order_id=order.id,
        method=method,
        external_ref=external_ref,
        today=today,
        settings=settings,
        now=now,
    )
    if outcome.payment.unapplied_minor != 0:
        raise AssertionError(f"a payment meant to close order {order.id} left money unapplied")
    return outcome


def follow_schedules(
    session: Session, *, shopper_id: str, order_ids: list[str], settings: Settings, now: datetime
) -> dict[str, int]:
    """Bring delivered or overdue orders in line with their instalments after money reached
    them: an order with nothing overdue left is delivered again, a fully paid one is repaid,
    and the shopper's credit unfreezes once nothing is overdue. Returns what each order still
    owes."""
    grouped = repayment_service.instalments_of_orders(
        session, shopper_id=shopper_id, order_ids=sorted(order_ids)
    )
    left_by_order = {
        order_id: sum(row.remaining_minor for row in rows) for order_id, rows in grouped.items()
    }
    changed: list[Order] = []
    for order_id, rows in grouped.items():
        order = order_service.lock_active_order(session, shopper_id=shopper_id, order_id=order_id)
        if order is None:
            continue
        changed.append(order)
        if not any(row.status == "overdue" for row in rows):
            order_service.clear_overdue(order, now=now)
        if all(row.status in repayment_service.CLOSED_STATUSES for row in rows):
            settle_order(session, order=order, settings=settings, now=now)
    risk_counters.observe_orders(session, orders=changed, now=now)
    refresh_freeze(session, shopper_id=shopper_id, now=now)
    return left_by_order


def settle_order(session: Session, *, order: Order, settings: Settings, now: datetime) -> None:
    """Every instalment is paid: the order is repaid; on time, it grows the shopper's limit."""
    if not order_service.mark_repaid(order, now=now):
        return
    if repayment_service.was_repaid_on_time(
        session, shopper_id=order.shopper_id, order_id=order.id
    ):
        credit_service.record_on_time_repayment(
            session,
            shopper_id=order.shopper_id,
            order_id=order.id,
            policy=credit_service.policy_from_settings(settings),
            now=now,
        )
    session.flush()
    publish_order_event(session, order=order, event_type="order.repaid", settings=settings, now=now)


def refresh_freeze(session: Session, *, shopper_id: str, now: datetime) -> None:
    """Credit frozen for an overdue payment unfreezes once nothing is overdue, and no hardship
    request of the shopper's holds an order (a shopper on a hardship plan borrows no more)."""
    if not repayment_service.has_overdue(
        session, shopper_id=shopper_id
    ) and not collections_service.has_holding_hardship(session, shopper_id=shopper_id):
        credit_service.unfreeze_after_overdue_cleared(session, shopper_id=shopper_id, now=now)


def held_credit_of(session: Session, *, shopper_id: str, currency: str) -> int:
    """What the shopper paid beyond what they owed, held to pay their next instalments."""
    return -ledger_service.balance_of(
        session, accounts.shopper_unapplied_credit(shopper_id), currency
    )


def apply_held_credit(
    session: Session, *, shopper_id: str, currency: str, today: date, now: datetime
) -> list[Allocation]:
    """Credit the shopper holds (earlier overpayments) pays their open instalments, oldest due
    first, as a payment would."""
    held = held_credit_of(session, shopper_id=shopper_id, currency=currency)
    if held <= 0:
        return []
    applied = repayment_service.apply_to_open_instalments(
        session,
        shopper_id=shopper_id,
        amount_minor=held,
        order_id=None,
        source="unapplied_credit",
        payment_id=None,
        today=today,
        now=now,
    )
    credit_service.release(session, shopper_id=shopper_id, amount_minor=applied.freed_credit_minor)
    post_entry(
        session,
        kind=EntryKind.UNAPPLIED_CREDIT_APPLIED,
        legs=[
            Leg(accounts.shopper_unapplied_credit(shopper_id), held - applied.left_minor),
            Leg(accounts.shopper_receivable(shopper_id), -applied.to_receivable_minor),
            Leg(accounts.RECOVERIES, -applied.recovered_minor),
        ],
        currency=currency,
        now=now,
        shopper_id=shopper_id,
        memo="held credit applied to a new order",
    )
    return applied.allocations
