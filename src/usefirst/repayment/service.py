"""Repayment: schedules, activation at delivery, payments with the allocation waterfall, refunds
against the schedule, ageing and statements. What money movements post to the ledger and what
they free of the shopper's credit is done by the flows that call these (``usefirst.flows``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypedDict

from sqlalchemy import Select
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import UpdateBase

from usefirst.kit.db import AnySelect, Part, new_row
from usefirst.kit.errors import Conflict, InvariantViolated, ValidationFailed
from usefirst.kit.ids import new_id
from usefirst.kit.money import check_currency, split_evenly
from usefirst.kit.settings import Settings
from usefirst.repayment import schedule
from usefirst.repayment.models import Allocation, Instalment, InstalmentChange, Payment
from usefirst.repayment.repository import RepaymentRepository

PAYMENT_METHODS = ("alipay", "wechat", "bank_card", "other")


def add_schedule(session: Session, instalments: list[Instalment]) -> None:
    """Record a ``new_schedule`` with the unit of work."""
    RepaymentRepository(session).add_all(instalments)


def new_schedule(
    *,
    shopper_id: str,
    order_id: str,
    currency: str,
    principal_minor: int,
    plan: str,
    settings: Settings,
) -> list[Instalment]:
    """An order's instalments by its plan, not yet stored (``add_schedule`` or
    ``insert_schedule``)."""
    planned = schedule.plan_instalments(
        principal_minor=principal_minor,
        plan=plan,
        fee_bps_per_month=settings.instalment_fee_bps_per_month,
        apr_cap_bps=settings.apr_cap_bps,
    )
    rows = [
        new_row(
            Instalment,
            shopper_id=shopper_id,
            order_id=order_id,
            seq=item.seq,
            currency=currency,
            status="scheduled",
            due_on=None,
            principal_minor=item.principal_minor,
            fees_minor=item.fees_minor,
            late_fees_minor=0,
            late_fees_waived_minor=0,
            paid_principal_minor=0,
            paid_fees_minor=0,
            was_overdue=False,
            settled_on=None,
            extended_days=0,
        )
        for item in planned
    ]
    return rows


def insert_schedule(instalments: list[Instalment]) -> Part:
    """What stores a ``new_schedule``, as a part of a larger write (``kit.db.write_prepared``)."""
    return RepaymentRepository.insert_part(instalments)


def instalments_of(session: Session, *, shopper_id: str, order_id: str) -> list[Instalment]:
    return RepaymentRepository(session).instalments_of_order(shopper_id, order_id)


def instalments_of_orders(
    session: Session, *, shopper_id: str, order_ids: list[str]
) -> dict[str, list[Instalment]]:
    grouped: dict[str, list[Instalment]] = defaultdict(list)
    for row in RepaymentRepository(session).instalments_of_orders(shopper_id, order_ids):
        grouped[row.order_id].append(row)
    return grouped


def instalments_of_many(
    session: Session, *, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], list[Instalment]]:
    """(shopper_id, order_id) → the order's instalments by seq, for many orders at once."""
    grouped: dict[tuple[str, str], list[Instalment]] = defaultdict(list)
    for row in RepaymentRepository(session).instalments_of_keys(keys):
        grouped[(row.shopper_id, row.order_id)].append(row)
    return grouped


def replan_before_delivery(
    session: Session,
    *,
    shopper_id: str,
    order_id: str,
    principal_minor: int,
    plan: str,
    settings: Settings,
) -> None:
    """A refund before delivery shrinks the principal: re-split the still-unstarted schedule."""
    rows = RepaymentRepository(session).instalments_of_order(shopper_id, order_id, for_update=True)
    planned = schedule.plan_instalments(
        principal_minor=principal_minor,
        plan=plan,
        fee_bps_per_month=settings.instalment_fee_bps_per_month,
        apr_cap_bps=settings.apr_cap_bps,
    )
    for row, item in zip(rows, planned, strict=True):
        if row.status != "scheduled":
            raise InvariantViolated("only an unstarted schedule can be re-planned")
        row.principal_minor = item.principal_minor
        row.fees_minor = item.fees_minor
        if principal_minor == 0:
            row.status = "cancelled"


def cancel_schedule(session: Session, *, shopper_id: str, order_id: str) -> None:
    for row in RepaymentRepository(session).instalments_of_order(
        shopper_id, order_id, for_update=True
    ):
        if row.status != "scheduled":
            raise InvariantViolated("only an unstarted schedule can be cancelled")
        row.status = "cancelled"


@dataclass(frozen=True)
class Activation:
    """What delivery put on the schedule: the debt that now enters the ledger."""

    principal_minor: int
    fees_minor: int  # the plan fee


def activate_schedule(
    session: Session,
    *,
    shopper_id: str,
    order_id: str,
    plan: str,
    delivered_on: date,
    settings: Settings,
) -> Activation:
    """Delivery starts the repayment clock: due dates are set."""
    repository = RepaymentRepository(session)
    rows = repository.instalments_of_order(shopper_id, order_id, for_update=True)
    return activate_rows(rows, plan=plan, delivered_on=delivered_on, settings=settings)


def activate_rows(
    rows: Sequence[Instalment], *, plan: str, delivered_on: date, settings: Settings
) -> Activation:
    """``activate_schedule`` on an order's instalments (all of them, by seq) read and locked
    beforehand: their due dates and statuses set on the objects."""
    dates = schedule.due_dates(
        plan=plan, delivered_on=delivered_on, pay_within_days=settings.pay_within_days
    )
    for row, due_on in zip(rows, dates, strict=True):
        if row.status != "scheduled":
            raise InvariantViolated(f"instalment {row.order_id}/{row.seq} was already activated")
        row.due_on = due_on
        row.status = "pending" if row.principal_minor + row.fees_minor > 0 else "cancelled"
    return Activation(
        principal_minor=sum(row.principal_minor for row in rows),
        fees_minor=sum(row.fees_minor for row in rows),
    )


def instalments_locked(shopper_id: str, order_id: str) -> AnySelect:
    """Every instalment of the order, by seq, locked (``activate_schedule``'s read), as a
    statement to send with other reads (``kit.db.rows_together``)."""
    return RepaymentRepository.order_instalments_statement(shopper_id, order_id, for_update=True)


def instalments_of_rows(rows: Sequence[dict[str, Any]]) -> list[Instalment]:
    """Instalments (known to no session) from rows of every column."""
    return [Instalment(**row) for row in rows]


def instalments_of_order_reading(shopper_id: str, order_id: str) -> AnySelect:
    """The order's instalments by seq (what ``orders.service.order_view`` reads), as a
    statement to send with other reads."""
    return RepaymentRepository.order_instalments_statement(shopper_id, order_id)


def order_standings(shopper_id: str) -> AnySelect:
    """Per order of the shopper with instalments: whether one of them is overdue
    (``is_overdue``) and whether all are closed (``is_closed``), as a statement to send with
    other reads: what ``follow_schedules`` looks at."""
    return RepaymentRepository.order_standings_statement(shopper_id, CLOSED_STATUSES)


def activation_writes(rows: Sequence[Instalment]) -> list[UpdateBase]:
    """The activated instalments (``activate_rows``) as parts of one statement."""
    return RepaymentRepository.activation_writes(rows)


@dataclass(frozen=True)
class ScheduleActivation:
    shopper_id: str
    order_id: str
    plan: str


def activate_schedules(
    session: Session,
    *,
    activations: list[ScheduleActivation],
    delivered_on: date,
    settings: Settings,
) -> list[Activation]:
    """``activate_schedule`` for many orders delivered on the same day (the daily sweep's
    auto-confirmations), due dates set in one flush. The caller holds the shoppers' credit-line
    locks. Returns what each activation put on the schedule, in the order of ``activations``."""
    rows_by_order = instalments_of_many(
        session, keys=[(item.shopper_id, item.order_id) for item in activations]
    )
    due_dates_by_plan: dict[str, list[date]] = {}
    activated: list[Activation] = []
    for item in activations:
        rows = rows_by_order.get((item.shopper_id, item.order_id), [])
        if item.plan not in due_dates_by_plan:
            due_dates_by_plan[item.plan] = schedule.due_dates(
                plan=item.plan, delivered_on=delivered_on, pay_within_days=settings.pay_within_days
            )
        for row, due_on in zip(rows, due_dates_by_plan[item.plan], strict=True):
            if row.status != "scheduled":
                raise InvariantViolated(
                    f"instalment {item.order_id}/{row.seq} was already activated"
                )
            row.due_on = due_on
            row.status = "pending" if row.principal_minor + row.fees_minor > 0 else "cancelled"
        activated.append(
            Activation(
                principal_minor=sum(row.principal_minor for row in rows),
                fees_minor=sum(row.fees_minor for row in rows),
            )
        )
    session.flush()
    return activated


@dataclass
class AppliedMoney:
    allocations: list[Allocation]
    left_minor: int
    to_receivable_minor: int  # applied to live debt
    recovered_minor: int  # applied to charged-off debt
    # Live principal paid: credit it used is free again (charged-off principal released its
    # credit when it was written off).
    freed_credit_minor: int


@dataclass
class PaymentOutcome:
    payment: Payment
    applied: AppliedMoney

    @property
    def allocations(self) -> list[Allocation]:
        return self.applied.allocations


def apply_to_open_instalments(
    session: Session,
    *,
    shopper_id: str,
    amount_minor: int,
    order_id: str | None,
    source: str,
    payment_id: str | None,
    today: date,
    now: datetime,
) -> AppliedMoney:
    repository = RepaymentRepository(session)
    open_rows = repository.open_instalments(shopper_id, order_id=order_id, for_update=True)
    applied = allocate_to(
        open_rows,
        shopper_id=shopper_id,
        amount_minor=amount_minor,
        source=source,
        payment_id=payment_id,
        today=today,
        now=now,
    )
    repository.add_all(applied.allocations)
    return applied


def allocate_to(
    open_rows: list[Instalment],
    *,
    shopper_id: str,
    amount_minor: int,
    source: str,
    payment_id: str | None,
    today: date,
    now: datetime,
) -> AppliedMoney:
    """The waterfall over the open instalments given (locked, oldest due first): late fees,
    then principal; the rows are updated in place and the allocations made (not yet added)."""
    by_key = {(row.order_id, row.seq): row for row in open_rows}
    owed = [
        schedule.Owed(
            key=(row.order_id, row.seq),
            fees_minor=row.unpaid_fees_minor,
            principal_minor=row.unpaid_principal_minor,
        )
        for row in open_rows
    ]
    applied, left = schedule.allocate(amount_minor, owed)
    allocations: list[Allocation] = []
    live_principal_paid = 0
    recovered = 0
    for item in applied:
        row = by_key[item.key]
        row.paid_fees_minor += item.fees_minor
        row.paid_principal_minor += item.principal_minor
        if row.status == "charged_off":
            recovered += item.fees_minor + item.principal_minor
            if row.remaining_minor == 0:
                row.settled_on = today
        else:
            live_principal_paid += item.principal_minor
            if row.remaining_minor == 0:
                row.status = "paid"
                row.settled_on = today
        allocations.append(
            Allocation(
                shopper_id=shopper_id,
                id=new_id("allocation"),
                source=source,
                payment_id=payment_id,
                order_id=row.order_id,
                seq=row.seq,
                fees_minor=item.fees_minor,
                principal_minor=item.principal_minor,
                created_at=now,
            )
        )
    return AppliedMoney(
        allocations=allocations,
        left_minor=left,
        to_receivable_minor=amount_minor - left - recovered,
        recovered_minor=recovered,
        freed_credit_minor=live_principal_paid,
    )


def due_instalments(session: Session, *, shopper_ids: list[str], on: date) -> list[Instalment]:
    """Live unpaid instalments of these shoppers due on or before ``on``, by shopper then due
    date (what auto-debit charges)."""
    return RepaymentRepository(session).due_instalments(sorted(shopper_ids), on)


def check_payment(*, amount_minor: int, currency: str, method: str) -> None:
    check_currency(currency)
    if amount_minor <= 0:
        raise ValidationFailed("amount_minor must be a positive integer.", field="amount_minor")
    if method not in PAYMENT_METHODS:
        raise ValidationFailed(
            f"method must be one of {', '.join(PAYMENT_METHODS)}.", field="method"
        )


@dataclass(frozen=True)
class PaymentRequest:
    """A payment from a shopper, as asked (checked by ``check_payment``)."""

    shopper_id: str
    amount_minor: int
    currency: str
    order_id: str | None
    method: str
    external_ref: str | None


def receive_payment(
    session: Session,
    *,
    request: PaymentRequest,
    today: date,
    now: datetime,
    read_rows: list[dict[str, Any]] | None = None,
) -> PaymentOutcome:
    """Take a payment (checked by ``check_payment``; the caller holds the shopper's credit-line
    lock): late fees, then principal, oldest due first; the rest is held as credit. The open
    instalments are read (locked) now, or were read as ``read_rows``
    (``open_instalments_locked``)."""
    repository = RepaymentRepository(session)
    if read_rows is None:
        open_rows = repository.open_instalments(
            request.shopper_id, order_id=request.order_id, for_update=True
        )
    else:
        open_rows = [Instalment(**row) for row in read_rows]
        repository.adopt(open_rows)
    outcome = _planned(open_rows, request=request, today=today, now=now).outcome
    repository.add_all(outcome.allocations)
    repository.add(outcome.payment)
    return outcome


def open_instalments_locked(shopper_id: str, order_id: str | None) -> AnySelect:
    """The open instalments (of the order, if given), locked, oldest due first, as a statement
    to send with other reads (``kit.db.rows_together``); their rows are a payment's
    ``read_rows``."""
    return RepaymentRepository.open_instalments_statement(shopper_id, order_id)


def left_elsewhere(shopper_id: str, order_id: str) -> AnySelect:
    """What the order's instalments that are not open still owe, as a statement to send with
    ``open_instalments_locked`` (its one row's ``left_minor``)."""
    return RepaymentRepository.left_elsewhere_statement(shopper_id, order_id)


@dataclass
class PlannedPayment:
    """A payment worked out on open instalments read and locked beforehand (``plan_payment``),
    nothing written yet: ``payment_writes`` writes it as parts of one statement."""

    outcome: PaymentOutcome
    open_rows: list[Instalment]

    @property
    def changed_rows(self) -> list[Instalment]:
        paid = {(allocation.order_id, allocation.seq) for allocation in self.outcome.allocations}
        return [row for row in self.open_rows if (row.order_id, row.seq) in paid]

    def leaves_open(self, order_id: str) -> bool:
        """Whether something of the order is still owed after the payment (so the order is
        not repaid by it)."""
        return any(row.order_id == order_id and row.remaining_minor > 0 for row in self.open_rows)

    def left_on(self, order_id: str, *, elsewhere_minor: int) -> int:
        """What the order still owes after the payment (``instalments_of_orders``' sum),
        given what its instalments that are not open owe (``left_elsewhere``)."""
        return elsewhere_minor + sum(
            row.remaining_minor for row in self.open_rows if row.order_id == order_id
        )

    def instalments_after(self, order_id: str, rows: Sequence[dict[str, Any]]) -> list[Instalment]:
        """The order's instalments as the payment leaves them, from the rows of
        ``instalments_of_order_reading`` read before it was written: the open ones it read
        (and paid) in their place."""
        planned = {(row.order_id, row.seq): row for row in self.open_rows}
        return [planned.get((row["order_id"], row["seq"])) or Instalment(**row) for row in rows]

    def leaves_overdue(self, order_id: str) -> bool:
        """Whether an overdue instalment of the order is still owed after the payment (so the
        order and the shopper still have something overdue)."""
        return any(row.order_id == order_id and row.status == "overdue" for row in self.open_rows)


def plan_payment(
    read_rows: list[dict[str, Any]], *, request: PaymentRequest, today: date, now: datetime
) -> PlannedPayment:
    """``receive_payment`` on the rows of ``open_instalments_locked``, nothing written."""
    return _planned([Instalment(**row) for row in read_rows], request=request, today=today, now=now)


def _planned(
    open_rows: list[Instalment], *, request: PaymentRequest, today: date, now: datetime
) -> PlannedPayment:
    payment_id = new_id("payment")
    applied = allocate_to(
        open_rows,
        shopper_id=request.shopper_id,
        amount_minor=request.amount_minor,
        source="payment",
        payment_id=payment_id,
        today=today,
        now=now,
    )
    payment = Payment(
        shopper_id=request.shopper_id,
        id=payment_id,
        currency=request.currency,
        amount_minor=request.amount_minor,
        order_id=request.order_id,
        method=request.method,
        external_ref=request.external_ref,
        unapplied_minor=applied.left_minor,
        created_at=now,
    )
    return PlannedPayment(
        outcome=PaymentOutcome(payment=payment, applied=applied), open_rows=open_rows
    )


def payment_writes(planned: PlannedPayment) -> list[UpdateBase]:
    """The planned payment as parts of one statement: payment, allocations, instalments."""
    return RepaymentRepository.payment_writes(
        planned.outcome.payment, planned.outcome.allocations, planned.changed_rows
    )


def payments_of(session: Session, *, shopper_id: str) -> list[Payment]:
    return RepaymentRepository(session).payments_of(shopper_id)


def payment_of(session: Session, *, shopper_id: str, payment_id: str) -> Payment | None:
    return next(
        (
            row
            for row in RepaymentRepository(session).payments_of(shopper_id)
            if row.id == payment_id
        ),
        None,
    )


@dataclass(frozen=True)
class ReversedPayment:
    payment: Payment
    to_receivable_minor: int  # owed again on live instalments
    recovered_minor: int  # owed again on charged-off instalments (recoveries undone)
    reopened_principal_minor: int  # live principal owed again (its credit is used again)
    order_ids: list[str]


def reverse_payment(
    session: Session, *, shopper_id: str, payment_id: str, today: date, now: datetime
) -> ReversedPayment:
    """Undo what a payment paid (the caller holds the shopper's credit-line lock): each of its
    allocations is answered by a negative one, the instalments owe it again and reopen (overdue
    when their due date has passed). What the payment left as held credit is the caller's."""
    repository = RepaymentRepository(session)
    payment = next(
        (row for row in repository.payments_of(shopper_id) if row.id == payment_id), None
    )
    if payment is None:
        raise InvariantViolated(f"payment {payment_id} of {shopper_id} does not exist")
    allocations = [
        row
        for row in repository.allocations_of_payment(shopper_id, payment_id)
        if row.source == "payment"
    ]
    rows = {
        (row.order_id, row.seq): row
        for row in repository.instalments_of_orders(
            shopper_id, sorted({allocation.order_id for allocation in allocations})
        )
    }
    to_receivable = recovered = reopened_principal = 0
    reversing: list[Allocation] = []
    for allocation in allocations:
        row = rows[(allocation.order_id, allocation.seq)]
        row.paid_fees_minor -= allocation.fees_minor
        row.paid_principal_minor -= allocation.principal_minor
        amount = allocation.fees_minor + allocation.principal_minor
        if row.status == "charged_off":
            recovered += amount
            if row.settled_on is not None:
                repository.add(_change_of(row, cause="reversal", now=now))
            row.settled_on = None
        else:
            to_receivable += amount
            reopened_principal += allocation.principal_minor
            if row.remaining_minor > 0 and row.status in ("paid", "pending", "overdue"):
                if row.status == "paid" or row.settled_on is not None:
                    repository.add(_change_of(row, cause="reversal", now=now))
                is_late = row.due_on is not None and row.due_on < today
                row.status = "overdue" if is_late else "pending"
                row.was_overdue = row.was_overdue or is_late
                row.settled_on = None
        reversing.append(
            Allocation(
                shopper_id=shopper_id,
                id=new_id("allocation"),
                source="reversal",
                payment_id=payment_id,
                order_id=allocation.order_id,
                seq=allocation.seq,
                fees_minor=-allocation.fees_minor,
                principal_minor=-allocation.principal_minor,
                created_at=now,
            )
        )
    repository.add_all(reversing)
    return ReversedPayment(
        payment=payment,
        to_receivable_minor=to_receivable,
        recovered_minor=recovered,
        reopened_principal_minor=reopened_principal,
        order_ids=sorted({allocation.order_id for allocation in allocations}),
    )


@dataclass(frozen=True)
class PayoffQuote:
    principal_minor: int  # principal left
    late_fees_minor: int  # late fees charged and unpaid
    plan_fees_earned_minor: int  # unpaid plan fee of instalments already due
    plan_fees_rebated_minor: int  # unpaid plan fee of instalments not yet due: not charged

    @property
    def payoff_minor(self) -> int:
        return self.principal_minor + self.late_fees_minor + self.plan_fees_earned_minor


def payoff_quote(session: Session, *, shopper_id: str, order_id: str, today: date) -> PayoffQuote:
    """What closes the order today. Rebate rule: an instalment's plan fee is earned on its due
    date; paying off early rebates the whole plan fee of every instalment not yet due (and
    charges nothing for the days of an instalment's period already passed)."""
    principal = late = earned = rebated = 0
    for row in RepaymentRepository(session).instalments_of_order(shopper_id, order_id):
        if row.status not in ("pending", "overdue"):
            continue
        unpaid_plan, unpaid_late = unpaid_fee_parts(row)
        principal += row.unpaid_principal_minor
        late += unpaid_late
        if row.due_on is not None and row.due_on > today:
            rebated += unpaid_plan
        else:
            earned += unpaid_plan
    return PayoffQuote(
        principal_minor=principal,
        late_fees_minor=late,
        plan_fees_earned_minor=earned,
        plan_fees_rebated_minor=rebated,
    )


def rebate_unearned_plan_fees(
    session: Session, *, shopper_id: str, order_id: str, today: date
) -> int:
    """Take the unpaid plan fee of the order's instalments not yet due off the schedule (early
    payoff). Returns the amount rebated."""
    rebated = 0
    for row in RepaymentRepository(session).instalments_of_order(
        shopper_id, order_id, for_update=True
    ):
        if row.status != "pending" or row.due_on is None or row.due_on <= today:
            continue
        unpaid_plan, _ = unpaid_fee_parts(row)
        row.fees_minor -= unpaid_plan
        rebated += unpaid_plan
    return rebated


def extend_instalment(
    session: Session, *, shopper_id: str, order_id: str, seq: int, days: int, today: date
) -> Instalment:
    """Move one pending instalment's due date ``days`` later, once per order, before it is past
    due and not past the next instalment's due date. The plan fee does not change, so the
    annualised rate only falls (the APR cap holds)."""
    rows = RepaymentRepository(session).instalments_of_order(shopper_id, order_id, for_update=True)
    if any(row.extended_days for row in rows):
        raise ExtensionAlreadyUsed()
    row = next((item for item in rows if item.seq == seq), None)
    if row is None:
        raise ValidationFailed("No such instalment on this order.", field="seq")
    if row.status != "pending" or row.due_on is None or row.due_on < today:
        raise InstalmentNotExtendable()
    new_due_on = row.due_on + timedelta(days=days)
    following = [item for item in rows if item.seq > seq and item.due_on is not None]
    if following and new_due_on > min(item.due_on for item in following if item.due_on):
        raise ValidationFailed(
            "The new due date would fall after the next instalment's.", field="days"
        )
    row.due_on = new_due_on
    row.extended_days = days
    return row


class ExtensionAlreadyUsed(Conflict):
    code = "extension_already_used"
    default_message = "This order's due date was already extended once."


class InstalmentNotExtendable(Conflict):
    code = "instalment_not_extendable"
    default_message = "Only an instalment not yet past due (and not paid) can be extended."


# An instalment nothing more is owed on: paid; cancelled (never owed); rescheduled (what it
# still owed moved to a hardship plan's instalments); forgiven (a settlement for less wrote the
# rest off).
CLOSED_STATUSES = ("paid", "cancelled", "rescheduled", "forgiven")
RELIEF_STATUSES = ("rescheduled", "forgiven")


def settled_order_ids(session: Session, shopper_id: str, order_ids: set[str]) -> list[str]:
    grouped = instalments_of_orders(session, shopper_id=shopper_id, order_ids=sorted(order_ids))
    return [
        order_id
        for order_id, rows in grouped.items()
        if all(row.status in CLOSED_STATUSES for row in rows)
    ]


def was_repaid_on_time(session: Session, *, shopper_id: str, order_id: str) -> bool:
    """Whether every instalment was paid by its due date. An order repaid under hardship relief
    (a plan or a settlement) never was, whatever the plan's dates say."""
    return repaid_on_time(RepaymentRepository(session).instalments_of_order(shopper_id, order_id))


def repaid_on_time(rows: Sequence[Instalment]) -> bool:
    """``was_repaid_on_time`` of the order's instalments ``rows`` (as they are now)."""
    return all(
        row.status not in RELIEF_STATUSES
        and not row.was_overdue
        and (row.settled_on is None or row.due_on is None or row.settled_on <= row.due_on)
        for row in rows
    )


def has_overdue(session: Session, *, shopper_id: str) -> bool:
    return RepaymentRepository(session).has_overdue(shopper_id)


@dataclass
class RefundSplit:
    reduced_debt_minor: int
    waived_fees_minor: int
    returned_to_shopper_minor: int
    waived_late_fees_minor: int = 0


def unpaid_fee_parts(row: Instalment) -> tuple[int, int]:
    """(unpaid plan fee, unpaid late fees). Fee payments go to late fees first (the waterfall
    pays late fees before anything else), so whatever is unpaid of the fees is plan fee last."""
    unpaid_late = max(row.late_fees_minor - row.paid_fees_minor, 0)
    return row.unpaid_fees_minor - unpaid_late, unpaid_late


def _change_of(row: Instalment, *, cause: str, now: datetime) -> InstalmentChange:
    """The instalment as it stands before ``cause`` changes it (kept for the bureau file of a
    month that ended before: ``changes_of``)."""
    return InstalmentChange(
        shopper_id=row.shopper_id,
        id=new_id("instalment_change"),
        order_id=row.order_id,
        seq=row.seq,
        cause=cause,
        changed_at=now,
        status_before=row.status,
        principal_minor_before=row.principal_minor,
        fees_minor_before=row.fees_minor,
        settled_on_before=row.settled_on,
        late_fees_carried_minor_before=row.late_fees_carried_minor,
    )


def _keep_carried_within_late_fees(row: Instalment) -> None:
    """After late fees came off the instalment: what a plan carried onto it is never more than
    the late fees it has (``Instalment.late_fees_carried_minor``)."""
    if row.late_fees_carried_minor is not None:
        row.late_fees_carried_minor = min(row.late_fees_carried_minor, row.late_fees_minor)


def changes_of(session: Session, *, shopper_id: str, order_id: str) -> list[InstalmentChange]:
    """The changes refunds, hardship plans and settlements, late-fee waivers and payment
    reversals made to the order's instalments, oldest first."""
    return RepaymentRepository(session).instalment_changes(shopper_id, order_id)


def apply_refund(
    session: Session,
    *,
    shopper_id: str,
    order_id: str,
    amount_minor: int,
    today: date,
    now: datetime,
) -> RefundSplit:
    """Reduce what the shopper still owes on the order first (latest instalments first); the rest
    of the refund is money the shopper already paid and gets back. An instalment whose principal
    is refunded in full has its unpaid fees waived. Each instalment cut keeps a record of what it
    was before (``InstalmentChange``)."""
    repository = RepaymentRepository(session)
    rows = repository.instalments_of_order(shopper_id, order_id, for_update=True)
    left = amount_minor
    waived_plan = waived_late = 0
    for row in reversed(rows):
        if left == 0:
            break
        if row.status not in ("pending", "overdue"):
            continue
        repository.add(_change_of(row, cause="refund", now=now))
        cut = min(left, row.unpaid_principal_minor)
        row.principal_minor -= cut
        left -= cut
        if row.unpaid_principal_minor == 0:
            unpaid_plan, unpaid_late = unpaid_fee_parts(row)
            row.fees_minor -= unpaid_plan
            row.late_fees_minor -= unpaid_late
            row.late_fees_waived_minor += unpaid_late
            _keep_carried_within_late_fees(row)
            waived_plan += unpaid_plan
            waived_late += unpaid_late
        if row.remaining_minor == 0:
            row.status = (
                "paid" if row.paid_principal_minor + row.paid_fees_minor > 0 else "cancelled"
            )
            row.settled_on = today
    return RefundSplit(
        reduced_debt_minor=amount_minor - left,
        waived_fees_minor=waived_plan,
        returned_to_shopper_minor=left,
        waived_late_fees_minor=waived_late,
    )


def overdue_candidates(session: Session, *, business_on: date) -> list[tuple[str, str]]:
    """(shopper_id, order_id) pairs with an instalment due before ``business_on`` still unpaid."""
    return RepaymentRepository(session).newly_overdue(business_on)


def mark_overdue(session: Session, *, business_on: date, shopper_ids: list[str]) -> int:
    """Turn those shoppers' unpaid instalments due before ``business_on`` overdue. The caller
    holds the shoppers' credit-line locks (lock order: credit line, then instalments)."""
    return RepaymentRepository(session).mark_overdue(business_on, shopper_ids)


def outstanding_by_shopper(session: Session) -> dict[str, int]:
    return RepaymentRepository(session).outstanding_by_shopper()


class StatementLine(TypedDict):
    seq: int
    due_on: date | None
    principal_minor: int
    fees_minor: int
    late_fees_minor: int
    amount_due_minor: int
    paid_minor: int
    days_past_due: int
    status: str


def statement_lines(
    session: Session, *, shopper_id: str, order_ids: list[str], today: date
) -> dict[str, list[StatementLine]]:
    grouped = instalments_of_orders(session, shopper_id=shopper_id, order_ids=order_ids)
    view: dict[str, list[StatementLine]] = {}
    for order_id, rows in grouped.items():
        view[order_id] = [
            {
                "seq": row.seq,
                "due_on": row.due_on,
                "principal_minor": row.principal_minor,
                "fees_minor": row.all_fees_minor,
                "late_fees_minor": row.late_fees_minor,
                "amount_due_minor": row.remaining_minor,
                "paid_minor": row.paid_principal_minor + row.paid_fees_minor,
                "days_past_due": days_past_due(row, today),
                "status": row.status,
            }
            for row in rows
        ]
    return view


def days_past_due(row: Instalment, today: date) -> int:
    if row.status != "overdue" or row.due_on is None:
        return 0
    return max((today - row.due_on).days, 0)


# --- collections support ---------------------------------------------------------------------


@dataclass(frozen=True)
class LateFeeRun:
    total_minor: int
    orders: int
    instalments: int


# Columns shopper_id, order_id, currency, amount_minor: the late fees ``charge_late_fees`` just
# charged, one row per order, for the ledger to post (until ``end_late_fee_run``).
LATE_FEE_CHARGES_SQL = RepaymentRepository.LATE_FEE_CHARGES


def shoppers_owing_late_fees(
    session: Session, *, business_on: date, settings: Settings
) -> Select[Any] | None:
    """A query selecting the shoppers with an instalment overdue beyond the grace days on
    ``business_on`` (whose credit lines a late-fee run locks first), or None when none is."""
    repository = RepaymentRepository(session)
    before_on = business_on - timedelta(days=settings.grace_days)
    session.flush()
    if not repository.has_overdue_before(before_on):
        return None
    return repository.overdue_shoppers_query(before_on)


def charge_late_fees(session: Session, *, business_on: date, settings: Settings) -> LateFeeRun:
    """Charge one day of late fees for ``business_on`` on the instalments, set-based (the policy
    and its caps: ``flows.late_fees.charge_daily_late_fees``). The charges stay readable by
    ``LATE_FEE_CHARGES_SQL`` until ``end_late_fee_run``."""
    repository = RepaymentRepository(session)
    repository.compute_late_fees(
        before_on=business_on - timedelta(days=settings.grace_days),
        business_on=business_on,
        fee_bps_per_day=settings.late_fee_bps_per_day,
        cap_bps_of_principal=settings.late_fee_cap_bps_of_principal,
        apr_cap_bps=settings.apr_cap_bps,
    )
    instalments, orders, total_minor = repository.apply_late_fees()
    # Instalments loaded earlier in this transaction must not keep their old late fees.
    session.expire_all()
    return LateFeeRun(total_minor=total_minor, orders=orders, instalments=instalments)


def end_late_fee_run(session: Session) -> None:
    RepaymentRepository(session).drop_late_fee_run()


@dataclass(frozen=True)
class ChargeOff:
    principal_minor: int  # unpaid principal written off (its credit is released)
    fees_minor: int  # unpaid plan and late fees written off

    @property
    def total_minor(self) -> int:
        return self.principal_minor + self.fees_minor


def charge_off_schedule(session: Session, *, shopper_id: str, order_id: str) -> ChargeOff:
    principal = fees = 0
    for row in RepaymentRepository(session).instalments_of_order(
        shopper_id, order_id, for_update=True
    ):
        if row.status in ("pending", "overdue"):
            principal += row.unpaid_principal_minor
            fees += row.unpaid_fees_minor
            row.status = "charged_off"
    return ChargeOff(principal_minor=principal, fees_minor=fees)


@dataclass(frozen=True)
class OwedOnOrder:
    """What an order's open instalments still owe, by part."""

    principal_minor: int
    plan_fees_minor: int
    late_fees_minor: int

    @property
    def total_minor(self) -> int:
        return self.principal_minor + self.plan_fees_minor + self.late_fees_minor


def owed_on_order(session: Session, *, shopper_id: str, order_id: str) -> OwedOnOrder:
    principal = plan_fees = late = 0
    for row in RepaymentRepository(session).instalments_of_order(shopper_id, order_id):
        if row.status in ("pending", "overdue"):
            unpaid_plan, unpaid_late = unpaid_fee_parts(row)
            principal += row.unpaid_principal_minor
            plan_fees += unpaid_plan
            late += unpaid_late
    return OwedOnOrder(principal_minor=principal, plan_fees_minor=plan_fees, late_fees_minor=late)


def _close_open_instalments(rows: list[Instalment], *, status: str, today: date) -> OwedOnOrder:
    """Take what the open instalments still owe off them (each keeps what was paid on it) and
    close them with ``status``. Returns what was taken off, by part."""
    principal = plan_fees = late = 0
    for row in rows:
        if row.status not in ("pending", "overdue"):
            continue
        unpaid_plan, unpaid_late = unpaid_fee_parts(row)
        principal += row.unpaid_principal_minor
        plan_fees += unpaid_plan
        late += unpaid_late
        row.principal_minor = row.paid_principal_minor
        row.fees_minor -= unpaid_plan
        row.late_fees_minor -= unpaid_late
        _keep_carried_within_late_fees(row)
        row.status = status
        row.settled_on = today
    return OwedOnOrder(principal_minor=principal, plan_fees_minor=plan_fees, late_fees_minor=late)


def reschedule_for_hardship(
    session: Session, *, shopper_id: str, order_id: str, months: int, today: date, now: datetime
) -> list[Instalment]:
    """A hardship plan: what the order's open instalments still owe (principal, plan fees and
    late fees already charged) moves to ``months`` new monthly instalments, the first due a
    month from ``today``; nothing is added (the plan is fee-free). The old instalments keep what
    was paid on them and close as ``rescheduled``. Each part is split evenly, the earliest
    instalments carrying the extra minor unit, so the plan sums exactly to what was owed."""
    repository = RepaymentRepository(session)
    rows = repository.instalments_of_order(shopper_id, order_id, for_update=True)
    repository.add_all(
        [
            _change_of(row, cause="rescheduled", now=now)
            for row in rows
            if row.status in ("pending", "overdue")
        ]
    )
    owed = _close_open_instalments(rows, status="rescheduled", today=today)
    if owed.total_minor == 0:
        raise InvariantViolated(f"order {order_id} owes nothing to reschedule")
    next_seq = max(row.seq for row in rows) + 1
    principal_parts = split_evenly(owed.principal_minor, months)
    plan_fee_parts = split_evenly(owed.plan_fees_minor, months)
    late_fee_parts = split_evenly(owed.late_fees_minor, months)
    plan = [
        Instalment(
            shopper_id=shopper_id,
            order_id=order_id,
            seq=next_seq + index,
            currency=rows[0].currency,
            status="pending",
            due_on=schedule.add_months(today, index + 1),
            principal_minor=principal_parts[index],
            fees_minor=plan_fee_parts[index],
            late_fees_minor=late_fee_parts[index],
            late_fees_carried_minor=late_fee_parts[index],
            late_fees_waived_minor=0,
            paid_principal_minor=0,
            paid_fees_minor=0,
            was_overdue=False,
            settled_on=None,
            extended_days=0,
        )
        for index in range(months)
    ]
    repository.add_all(plan)
    session.flush()
    return plan


def forgive_rest(
    session: Session, *, shopper_id: str, order_id: str, today: date, now: datetime
) -> OwedOnOrder:
    """A settlement for less was paid: what the order's instalments still owe is forgiven (the
    caller writes it off in the ledger); they close as ``forgiven``, each keeping a record of
    what it was before (``InstalmentChange``). Returns what was forgiven."""
    repository = RepaymentRepository(session)
    rows = repository.instalments_of_order(shopper_id, order_id, for_update=True)
    repository.add_all(
        [
            _change_of(row, cause="forgiven", now=now)
            for row in rows
            if row.status in ("pending", "overdue")
        ]
    )
    return _close_open_instalments(rows, status="forgiven", today=today)


def waive_unpaid_late_fees(
    session: Session, *, shopper_id: str, order_id: str, amount_minor: int | None, now: datetime
) -> int:
    """Waive up to ``amount_minor`` (all, when None) of the order's unpaid late fees, latest
    instalments last; each instalment cut keeps a record of what it was before
    (``InstalmentChange``). Returns the amount waived."""
    repository = RepaymentRepository(session)
    rows = repository.instalments_of_order(shopper_id, order_id, for_update=True)
    budget = amount_minor
    waived = 0
    for row in rows:
        if row.status not in ("pending", "overdue"):
            continue
        _, unpaid_late = unpaid_fee_parts(row)
        cut = unpaid_late if budget is None else min(unpaid_late, budget - waived)
        if cut <= 0:
            continue
        repository.add(_change_of(row, cause="late_fee_waiver", now=now))
        row.late_fees_minor -= cut
        row.late_fees_waived_minor += cut
        _keep_carried_within_late_fees(row)
        waived += cut
    return waived


@dataclass(frozen=True)
class AppliedToInstalment:
    """Money a payment or held credit applied to one instalment (negative: a reversal)."""

    at: datetime
    seq: int
    amount_minor: int


def allocations_to_order(
    session: Session, *, shopper_id: str, order_id: str
) -> list[AppliedToInstalment]:
    """Every payment, held credit or reversal applied to the order's instalments, oldest
    first."""
    return [
        AppliedToInstalment(
            at=row.created_at, seq=row.seq, amount_minor=row.fees_minor + row.principal_minor
        )
        for row in RepaymentRepository(session).allocations_of_order(shopper_id, order_id)
    ]


def payments_to_order(
    session: Session, *, shopper_id: str, order_id: str
) -> list[tuple[str, datetime, int, str]]:
    """(payment id, paid at, amount applied to this order, method) for each payment that reached
    the order, oldest first."""
    repository = RepaymentRepository(session)
    applied: dict[str, int] = defaultdict(int)
    for allocation in repository.allocations_of_order(shopper_id, order_id):
        if allocation.payment_id is not None:
            applied[allocation.payment_id] += allocation.fees_minor + allocation.principal_minor
    payments = {payment.id: payment for payment in repository.payments_of(shopper_id)}
    return [
        (payment_id, payments[payment_id].created_at, amount, payments[payment_id].method)
        for payment_id, amount in sorted(applied.items())
    ]
