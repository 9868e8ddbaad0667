"""Credit-bureau reporting in collections: the account each reported order makes in a period's
file, built from the order's facts (the flow ``usefirst.flows.bureau_reporting`` gathers them
from the domains that hold them), and the files themselves, encrypted at rest.

An order is reported once collections reported it to the bureau (the ladder's ``bureau_report``
step) and in every month after, until the file of the month it was settled or charged off.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.orm import Session

from usefirst.collections import bureau_format, bureau_jsonl
from usefirst.collections.models import BureauFile, DelinquentOrder, HardshipRequest
from usefirst.collections.repository import CollectionsRepository
from usefirst.disputes import pauses
from usefirst.disputes.models import DisputedOrder
from usefirst.disputes.repository import DisputeRepository
from usefirst.kit.clock import as_utc, business_date, business_day_start
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.errors import NotFound, ValidationFailed
from usefirst.kit.ids import new_id
from usefirst.kit.settings import Settings
from usefirst.orders.models import Order
from usefirst.orders.repository import OrderRepository
from usefirst.repayment.models import Instalment

FILE_FORMATS = ("metro2", "jsonl")
COMPOUND_SURNAMES = ("欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙")


# --- the period of a file ------------------------------------------------------------------

PERIOD_PATTERN = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
# A fixed floor, not the month of the first order: an engine with no orders yet still writes its
# (empty) monthly files. A period before 2000 can only be a typo ("0000-01" is not even a date).
EARLIEST_PERIOD_YEAR = 2000


def period_end_of(period: str, *, today: date) -> date:
    match = PERIOD_PATTERN.fullmatch(period)
    if match is None:
        raise ValidationFailed("period must be YYYY-MM with a month from 01 to 12.", field="period")
    year, month = int(match.group(1)), int(match.group(2))
    if year < EARLIEST_PERIOD_YEAR:
        raise ValidationFailed(
            f"The period must not be before {EARLIEST_PERIOD_YEAR}-01.", field="period"
        )
    first = date(year, month, 1)
    if first > today:
        raise ValidationFailed("The period has not started yet.", field="period")
    last = date(year, month, calendar.monthrange(year, month)[1])
    return min(last, today)


@dataclass(frozen=True)
class BureauPeriod:
    """The month a file reports, read as the month left the book: everything made before
    ``ends_at`` (the first instant of the day after ``end_on`` in the operator's time zone, when
    the nightly run writes the month-end file) and nothing after, however late the file is
    made. ``end_on`` is the month's last day, or today for the current month."""

    end_on: date
    time_zone: str

    @property
    def start_on(self) -> date:
        return self.end_on.replace(day=1)

    @property
    def starts_at(self) -> datetime:
        return business_day_start(self.start_on, self.time_zone)

    @property
    def ends_at(self) -> datetime:
        return business_day_start(self.end_on + timedelta(days=1), self.time_zone)


def check_file_format(file_format: str) -> None:
    if file_format not in FILE_FORMATS:
        raise ValidationFailed("format must be metro2 or jsonl.", field="format")


@dataclass(frozen=True)
class ReportedOrder:
    """An order collections reported to the bureau: the order, its record in collections, and
    how its shopper's disputes paused it (None: never disputed)."""

    order: Order
    delinquency: DelinquentOrder
    pause: DisputedOrder | None
    # The order's hardship requests, oldest first (none for most orders).
    hardships: Sequence[HardshipRequest] = ()


def orders_reported_to_bureau(
    session: Session, *, reported_by: date, disputes_before: datetime | None = None
) -> list[ReportedOrder]:
    """The orders reported to the bureau on or before ``reported_by``, by order id. With
    ``disputes_before`` (the period's end, an instant), each pause is as it stood then
    (``pauses.as_of``): the shopper's disputes opened since do not count, those closed since
    are still open (one statement over ``disputes`` and one over ``dispute_pause_closures`` per
    500 orders)."""
    delinquencies = {
        (row.shopper_id, row.order_id): row
        for row in CollectionsRepository(session).reported_to_bureau(reported_by)
    }
    orders = OrderRepository(session).many(list(delinquencies))
    disputes = DisputeRepository(session)
    collections = CollectionsRepository(session)
    keys = sorted(delinquencies)
    first_opened = {} if disputes_before is None else disputes.first_opened_at(keys)
    closed_since = (
        {}
        if disputes_before is None
        else disputes.pause_closures_since(keys, since=disputes_before)
    )

    def pause_then(order: Order) -> DisputedOrder | None:
        pause = disputes.pause_of(order.shopper_id, order.id)
        if disputes_before is None:
            return pause
        opened_at = first_opened.get((order.shopper_id, order.id))
        return pauses.as_of(
            pause,
            on=reported_by,
            is_first_opened_since=opened_at is not None and as_utc(opened_at) >= disputes_before,
            closed_since=closed_since.get((order.shopper_id, order.id)),
        )

    return [
        ReportedOrder(
            order=order,
            delinquency=delinquencies[(order.shopper_id, order.id)],
            pause=pause_then(order),
            hardships=collections.hardships_of_order(order.shopper_id, order.id),
        )
        for order in sorted(orders, key=lambda order: order.id)
    ]


# --- one account of a file -------------------------------------------------------------------


@dataclass(frozen=True)
class ReportedIdentity:
    """Who the account belongs to, as the file names them (decrypted by the caller)."""

    name: str
    national_id: str
    phone_e164: str


class AppliedToInstalment(Protocol):
    """Money a payment, held credit or reversal (negative) applied to one of the order's
    instalments."""

    @property
    def at(self) -> datetime: ...

    @property
    def seq(self) -> int: ...

    @property
    def amount_minor(self) -> int: ...


class ChangeToInstalment(Protocol):
    """One of the order's instalments as it stood just before a refund cut it, a hardship plan
    rescheduled it, a settlement forgave the rest, a waiver took late fees off it or a payment
    reversal reopened it (``cause``: ``refund`` | ``rescheduled`` | ``forgiven`` |
    ``late_fee_waiver`` | ``reversal``)."""

    @property
    def seq(self) -> int: ...

    @property
    def cause(self) -> str: ...

    @property
    def changed_at(self) -> datetime: ...

    @property
    def status_before(self) -> str: ...

    @property
    def principal_minor_before(self) -> int: ...

    @property
    def fees_minor_before(self) -> int: ...

    @property
    def settled_on_before(self) -> date | None: ...

    @property
    def late_fees_carried_minor_before(self) -> int | None: ...


@dataclass(frozen=True)
class _Stood:
    """An instalment's own figures at the period's end, before any change made since."""

    status: str
    principal_minor: int
    fees_minor: int
    settled_on: date | None
    # The late fees a hardship plan carried onto it (``Instalment.late_fees_carried_minor``).
    late_fees_carried_minor: int | None


def _stood_now(row: Instalment) -> _Stood:
    return _Stood(
        row.status,
        row.principal_minor,
        row.fees_minor,
        row.settled_on,
        row.late_fees_carried_minor,
    )


def _stood_then(
    rows: Sequence[Instalment], changes: Sequence[ChangeToInstalment], *, period: BureauPeriod
) -> tuple[dict[int, _Stood], int]:
    """Each instalment as it stood at the period's end, where a refund, a hardship plan or
    settlement, a late-fee waiver or a payment reversal changed it since (its first change since
    says what it was before), and what the refunds
    made since took off the instalments' principal and plan fee (the ledger counts that in the
    order's cut since: ``OrderDebt.cut_since_minor``)."""
    now_of = {row.seq: _stood_now(row) for row in rows}
    by_seq: dict[int, list[ChangeToInstalment]] = {}
    for change in sorted(changes, key=lambda change: as_utc(change.changed_at)):
        if as_utc(change.changed_at) >= period.ends_at:
            by_seq.setdefault(change.seq, []).append(change)
    stood: dict[int, _Stood] = {}
    refunded_since_minor = 0
    for seq, since in by_seq.items():
        befores = [
            _Stood(
                change.status_before,
                change.principal_minor_before,
                change.fees_minor_before,
                change.settled_on_before,
                change.late_fees_carried_minor_before,
            )
            for change in since
        ]
        stood[seq] = befores[0]
        afters = [*befores[1:], now_of[seq]]
        for change, before, after in zip(since, befores, afters, strict=True):
            if change.cause == "refund":
                refunded_since_minor += (before.principal_minor - after.principal_minor) + (
                    before.fees_minor - after.fees_minor
                )
    return stood, refunded_since_minor


@dataclass(frozen=True)
class OrderDebt:
    """The order's own ledger figures as of the period's end (see
    ``usefirst.ledger.service.order_receivables``)."""

    # Charged to the order by then, less what was taken off it without a payment.
    charged_minor: int
    # Rebates and refunds posted since, which took that much off instalments not yet due then.
    cut_since_minor: int


@dataclass(frozen=True)
class InstalmentThen:
    """An instalment as it stood at the period's end."""

    seq: int
    status: str
    due_on: date | None
    principal_minor: int
    fees_minor: int
    # None while it was still owed then.
    settled_on: date | None
    # What it owed then if it was not due yet: principal and plan fee, and the late fees a
    # hardship plan moved onto it (less any taken off by then), less what was paid on it by
    # then. An instalment not yet due has run up no late fees of its own (the night charges
    # them after its due date, after the period).
    owed_before_due_minor: int

    @property
    def is_open(self) -> bool:
        """Whether something of it was owed at the period's end."""
        return self.settled_on is None and self.status in ("pending", "overdue", "charged_off")


def instalments_then(
    rows: Sequence[Instalment],
    applied: Sequence[AppliedToInstalment],
    *,
    charged_off_on: date | None,
    period: BureauPeriod,
    stood: dict[int, _Stood] | None = None,
) -> list[InstalmentThen]:
    """The order's instalments as they stood at the period's end: what was paid on each by
    then (the allocations made since are taken back), settled only if settled by then, and the
    status they had: the nightly run marks every instalment due before a day overdue on that
    day, so one still owed then was overdue if due before the period's last day, pending
    otherwise, and charged off only if the order was charged off by then. The instalments of a
    hardship plan agreed since (numbered after the ones it rescheduled) did not exist yet; an
    instalment a refund, a hardship plan or settlement, a late-fee waiver or a payment reversal
    changed since has the status, amounts and settlement date it had then (``stood``, from
    :func:`_stood_then`)."""
    period_end = period.end_on
    paid_since: dict[int, int] = {}
    for money in applied:
        if as_utc(money.at) >= period.ends_at:
            paid_since[money.seq] = paid_since.get(money.seq, 0) + money.amount_minor
    rescheduled_since = [
        row.seq
        for row in rows
        if row.status == "rescheduled"
        and row.settled_on is not None
        and row.settled_on > period_end
    ]
    last_seq_then = max(rescheduled_since, default=None)
    # A hardship plan's instalments are numbered after the ones it rescheduled.
    last_seq_before_plan = max(
        (row.seq for row in rows if row.status == "rescheduled"), default=None
    )
    is_charged_off_then = charged_off_on is not None and charged_off_on <= period_end
    then: list[InstalmentThen] = []
    for row in rows:
        if last_seq_then is not None and row.seq > last_seq_then:
            continue
        then_of = (stood or {}).get(row.seq) or _stood_now(row)
        settled_on = then_of.settled_on
        settled_then = settled_on is not None and settled_on <= period_end
        was_open = not settled_then and (
            settled_on is not None or then_of.status in ("pending", "overdue", "charged_off")
        )
        status = then_of.status
        if was_open:
            if then_of.status == "charged_off" and is_charged_off_then:
                status = "charged_off"
            elif row.due_on is not None and row.due_on < period_end:
                status = "overdue"
            else:
                status = "pending"
        then.append(
            InstalmentThen(
                seq=row.seq,
                status=status,
                due_on=row.due_on,
                principal_minor=then_of.principal_minor,
                fees_minor=then_of.fees_minor,
                settled_on=settled_on if settled_then else None,
                owed_before_due_minor=then_of.principal_minor
                + then_of.fees_minor
                + (
                    _carried_then(row, then_of)
                    if last_seq_before_plan is not None and row.seq > last_seq_before_plan
                    else 0
                )
                - (row.paid_principal_minor + row.paid_fees_minor - paid_since.get(row.seq, 0)),
            )
        )
    return then


def _carried_then(row: Instalment, then_of: _Stood) -> int:
    """The late fees a hardship plan's instalment not yet due at the period's end had then: what
    the plan carried onto it less what was taken off by then, not the late fees the night
    charged on it since it fell due. A plan's instalment made before migration 0064 kept no such
    figure: its late fees as they are now."""
    if then_of.late_fees_carried_minor is None:
        return row.late_fees_minor
    return then_of.late_fees_carried_minor


@dataclass(frozen=True)
class _Standing:
    """Where the account stands at the period's end."""

    status: bureau_format.AccountStanding
    balance_minor: int
    past_due_minor: int
    days_past_due: int


def bureau_account(
    reported: ReportedOrder,
    *,
    identity: ReportedIdentity,
    credit_limit_minor: int,
    instalments: Sequence[Instalment],
    applied: Sequence[AppliedToInstalment],
    debt: OrderDebt,
    period: BureauPeriod,
    changes: Sequence[ChangeToInstalment] = (),
) -> bureau_format.BureauAccount:
    """The order's account in the file of ``period``, as the book stood at the period's end:
    the balance from the order's ledger entries made by then less the payments applied by then,
    the instalments as they stood then (:func:`instalments_then`). ``applied`` is every
    payment, held credit or reversal applied to the order; ``credit_limit_minor`` the limit at
    the period's end; ``changes`` what refunds, hardship plans and settlements, late-fee waivers
    and payment reversals changed on its instalments (those made since are taken back)."""
    order, pause = reported.order, reported.pause
    period_end = period.end_on
    period_start = period.start_on
    charged_off_on = reported.delinquency.charged_off_on
    is_charged_off = charged_off_on is not None and charged_off_on <= period_end
    applied_then = [money for money in applied if as_utc(money.at) < period.ends_at]
    stood, refunded_since_minor = _stood_then(instalments, changes, period=period)
    rows = instalments_then(
        instalments, applied, charged_off_on=charged_off_on, period=period, stood=stood
    )
    standing = _standing(
        reported,
        rows,
        balance_minor=debt.charged_minor - sum(money.amount_minor for money in applied_then),
        # The refunds' cut since is back on the instalments it came off (``stood``).
        cut_since_minor=debt.cut_since_minor - refunded_since_minor,
        is_charged_off=is_charged_off,
        period_end=period_end,
    )
    # The terms in force: a hardship plan's instalments replace the ones it rescheduled, and
    # its scheduled payment is the plan's monthly payment as agreed.
    terms = [row for row in rows if row.status != "rescheduled"]
    plan_instalments = [
        request.plan_instalment_minor
        for request in reported.hardships
        if request.plan_instalment_minor is not None
        and request.decided_on is not None
        and request.decided_on <= period_end
    ]
    if plan_instalments:
        scheduled_payment = plan_instalments[-1]
    else:
        scheduled_payment = terms[0].principal_minor + terms[0].fees_minor if terms else 0
    surname, given_name = _split_name(identity.name)
    # A reversal is applied as a negative amount: it is no payment, and a period whose
    # reversals undo more than it received reports no payment (the format takes no negative).
    last_payment = max((money.at for money in applied_then if money.amount_minor > 0), default=None)
    return bureau_format.BureauAccount(
        account_number=order.id,
        shopper_id=order.shopper_id,
        surname=surname,
        given_name=given_name,
        birth_on=_birth_on(identity.national_id),
        national_id=identity.national_id,
        phone_e164=identity.phone_e164,
        opened_on=as_utc(order.created_at).date(),
        credit_limit_minor=credit_limit_minor,
        highest_credit_minor=order.amount_minor,
        original_amount_minor=order.amount_minor,
        terms_duration=len(terms),
        terms_frequency="P" if order.plan == "pay_after_delivery" and len(terms) == 1 else "M",
        scheduled_monthly_payment_minor=scheduled_payment,
        actual_payment_minor=max(
            sum(
                money.amount_minor for money in applied_then if as_utc(money.at) >= period.starts_at
            ),
            0,
        ),
        current_balance_minor=standing.balance_minor,
        amount_past_due_minor=standing.past_due_minor
        if standing.status in ("past_due", "current", "charged_off")
        else 0,
        days_past_due=standing.days_past_due,
        status=standing.status,
        date_of_first_delinquency=date_of_first_delinquency(reported, rows, as_of=period_end),
        date_closed=_closed_on(
            rows, standing=standing, is_charged_off=is_charged_off, period_end=period_end
        ),
        date_last_payment=business_date(last_payment, period.time_zone) if last_payment else None,
        charge_off_amount_minor=reported.delinquency.charged_off_minor if is_charged_off else 0,
        is_disputed=pauses.is_open(pause),
        is_dispute_resolved=pause is not None
        and not pause.is_disputed
        and pause.dispute_resolved_on is not None
        and period_start <= pause.dispute_resolved_on <= period_end,
        account_information_on=period_end,
        currency=order.currency,
        payment_history_profile=payment_history_profile(reported, rows, period_end=period_end),
        special_comment_code=hardship_special_comment(
            reported.hardships, balance_minor=standing.balance_minor, period_end=period_end
        ),
    )


# Metro 2 Special Comment codes (CRRG Exhibit 7) for hardship relief.
SPECIAL_COMMENT_FORBEARANCE = "CP"  # account in forbearance: a request awaits its answer
SPECIAL_COMMENT_PARTIAL_PAYMENT_AGREEMENT = "AC"  # paying under a partial payment agreement
SPECIAL_COMMENT_PAID_FOR_LESS = "AU"  # account paid in full for less than the full balance


def hardship_special_comment(
    hardships: Sequence[HardshipRequest], *, balance_minor: int, period_end: date
) -> str:
    """The special comment the order's hardship relief calls for at the period's end: CP while a
    request awaits its answer (or a settlement offer awaits payment), AC while a plan runs, AU
    once a settlement for less closed the account; blank otherwise (a plan kept or broken, a
    refusal, a lapsed offer: the comment is removed and the status speaks for itself)."""
    for request in reversed(hardships):
        if request.opened_on > period_end:
            continue
        ended = request.ended_on is not None and request.ended_on <= period_end
        if ended:
            if request.status == "settled" and balance_minor == 0:
                return SPECIAL_COMMENT_PAID_FOR_LESS
            return ""
        decided = request.decided_on is not None and request.decided_on <= period_end
        if decided and request.decision == "plan":
            return SPECIAL_COMMENT_PARTIAL_PAYMENT_AGREEMENT
        return SPECIAL_COMMENT_FORBEARANCE
    return ""


def _standing(
    reported: ReportedOrder,
    rows: list[InstalmentThen],
    *,
    balance_minor: int,
    cut_since_minor: int,
    is_charged_off: bool,
    period_end: date,
) -> _Standing:
    """The account's standing from its balance then (from the ledger) and its instalments
    then: the part past due is the balance less what the instalments not yet due then still
    owed (``InstalmentThen.owed_before_due_minor``)."""
    open_rows = [row for row in rows if row.is_open]
    late_rows = [row for row in open_rows if row.due_on is not None and row.due_on < period_end]
    not_due_minor = cut_since_minor + sum(
        row.owed_before_due_minor
        for row in open_rows
        if row.due_on is None or row.due_on >= period_end
    )
    days_past_due = max(
        (
            pauses.days_past_due_on(reported.pause, due_on=row.due_on, on=period_end)
            for row in late_rows
            if row.due_on
        ),
        default=0,
    )
    status: bureau_format.AccountStanding
    if is_charged_off:
        status = "charged_off"
    elif balance_minor == 0:
        status = "paid"
        days_past_due = _days_late_when_paid_off(rows, period_end=period_end)
    elif days_past_due >= 30:
        status = "past_due"
    else:
        status = "current"
    return _Standing(
        status=status,
        balance_minor=balance_minor,
        past_due_minor=balance_minor - not_due_minor if late_rows else 0,
        days_past_due=days_past_due,
    )


def _days_late_when_paid_off(rows: list[InstalmentThen], *, period_end: date) -> int:
    """For a paid account the days past due are how late it was when paid off in this period:
    the Payment Rating of status 13 reports them (0 when paid in time or in an earlier
    period)."""
    period_start = period_end.replace(day=1)
    days_late = max(
        (
            (row.settled_on - row.due_on).days
            for row in rows
            if row.settled_on is not None
            and row.due_on is not None
            and period_start <= row.settled_on <= period_end
        ),
        default=0,
    )
    return max(days_late, 0)


def _closed_on(
    rows: list[InstalmentThen], *, standing: _Standing, is_charged_off: bool, period_end: date
) -> date | None:
    if standing.status == "paid" or (is_charged_off and standing.balance_minor == 0):
        return max((row.settled_on for row in rows if row.settled_on), default=period_end)
    return None


def _birth_on(national_id: str) -> date:
    """The date of birth a PRC resident ID carries (digits 7 to 14)."""
    return date(int(national_id[6:10]), int(national_id[10:12]), int(national_id[12:14]))


def _split_name(name: str) -> tuple[str, str]:
    surname_length = 2 if name[:2] in COMPOUND_SURNAMES and len(name) > 2 else 1
    if len(name) <= surname_length:
        return name, name
    return name[:surname_length], name[surname_length:]


def _month_end_before(day: date) -> date:
    return day.replace(day=1) - timedelta(days=1)


def _history_code(reported: ReportedOrder, rows: list[InstalmentThen], *, month_end: date) -> str:
    """The account's Metro 2 payment history code as it stood at ``month_end``."""
    charged_off_on = reported.delinquency.charged_off_on
    if charged_off_on is not None and charged_off_on <= month_end:
        return "L"
    live = [row for row in rows if row.status != "cancelled" and row.due_on is not None]
    unpaid = [row for row in live if row.settled_on is None or row.settled_on > month_end]
    if live and not unpaid:
        return "E"  # zero balance and current
    # Disputes count as of what was known then: a closed one once it closed, an open one since it
    # opened (the windows of closed disputes are not kept, only their total).
    paused = 0
    pause = reported.pause
    if pause is not None:
        if pause.dispute_resolved_on is not None and pause.dispute_resolved_on <= month_end:
            paused = pause.dispute_paused_days or 0
        if pause.disputed_since_on is not None and pause.disputed_since_on <= month_end:
            paused += (month_end - pause.disputed_since_on).days
    days_past_due = max(
        (
            (month_end - row.due_on).days - paused
            for row in unpaid
            if row.due_on is not None and row.due_on < month_end
        ),
        default=0,
    )
    return bureau_format.payment_history_code_for_days(max(days_past_due, 0))


def date_of_first_delinquency(
    reported: ReportedOrder, rows: list[InstalmentThen], *, as_of: date
) -> date | None:
    """The Metro 2 Date of First Delinquency as of ``as_of``: the first day of the latest run of
    days on which some instalment was unpaid past its due date. An account brought current and
    later late again starts a new run (the bureau's seven-year clock runs from it); a run still
    open, or the one that ended in payment in full or charge-off, is the one reported. An
    instalment is unpaid until settled in full."""
    first_delinquent_on = reported.delinquency.first_delinquent_on
    if first_delinquent_on is None:
        return None
    late_spans = sorted(
        (row.due_on + timedelta(days=1), row.settled_on)
        for row in rows
        if row.status != "cancelled"
        and row.due_on is not None
        and row.due_on < as_of
        and (row.settled_on is None or row.settled_on > row.due_on + timedelta(days=1))
    )
    run_start: date | None = None
    run_end: date | None = None  # exclusive; None while an instalment of the run is unpaid
    for starts_on, settled_on in late_spans:
        if run_start is None or (run_end is not None and starts_on > run_end):
            run_start, run_end = starts_on, settled_on
        elif run_end is not None:
            run_end = None if settled_on is None else max(run_end, settled_on)
    return run_start or first_delinquent_on


def payment_history_profile(
    reported: ReportedOrder, rows: list[InstalmentThen], *, period_end: date
) -> str:
    """The Metro 2 24-month payment history profile: the account's code at the end of each of
    the 24 months before the reported one, most recent first, from the instalments' due and
    settlement dates (an instalment counts as unpaid until settled in full). It stops at the
    month the account opened; the format pads the months before with ``B``."""
    opened_on = as_utc(reported.order.created_at).date()
    codes: list[str] = []
    month_end = _month_end_before(period_end)
    while len(codes) < bureau_format.PAYMENT_HISTORY_MONTHS and month_end >= opened_on.replace(
        day=1
    ):
        codes.append(_history_code(reported, rows, month_end=month_end))
        month_end = _month_end_before(month_end)
    return "".join(codes)


# --- the files -------------------------------------------------------------------------------

# The associated data of a bureau file's ciphertext: its column's name without "_encrypted", as
# for every encrypted column (key rotation finds and re-encrypts them by that rule).
BUREAU_FILE_FIELD = "content"


def bureau_file_text(row: BureauFile, cipher: FieldCipher) -> str:
    """The file as sent to the bureau. A file stored before encryption at rest (migration 0016)
    is still its text until ``usefirst keys rotate`` encrypts it."""
    stored = row.content_encrypted
    if cipher.is_ciphertext(stored):
        return cipher.decrypt(stored, field=BUREAU_FILE_FIELD)
    return stored


def store_file(
    session: Session,
    *,
    period: str,
    file_format: str,
    accounts: Sequence[bureau_format.BureauAccount],
    period_end: date,
    cipher: FieldCipher,
    settings: Settings,
    today: date,
    now: datetime,
) -> BureauFile:
    """Write the accounts as a file of ``file_format`` and keep it, encrypted."""
    if file_format == "metro2":
        content = bureau_format.write_metro2(
            reporter=bureau_format.ReporterInfo(
                identification_number=settings.bureau_reporter_id,
                reporter_name=settings.lender_name,
                reporter_address=settings.bureau_reporter_address,
            ),
            accounts=accounts,
            period_end=period_end,
            activity_on=today,
        )
    else:
        content = bureau_jsonl.write_jsonl(accounts, period_end)
    row = BureauFile(
        id=new_id("bureau_file"),
        period=period,
        format=file_format,
        records=len(accounts),
        content_encrypted=cipher.encrypt(content, field=BUREAU_FILE_FIELD),
        created_at=now,
    )
    CollectionsRepository(session).add(row)
    session.flush()
    return row


def has_month_end_file(session: Session, *, period: str, file_format: str, now: datetime) -> bool:
    """Whether the file of ``period`` in ``file_format`` was made once the month ended (at
    ``now``, the first instant of the next month, or later). A file made before the month ended
    (on demand, mid-month) covers only part of it and does not stand in for the month-end
    file."""
    return any(
        as_utc(row.created_at) >= now
        for row in CollectionsRepository(session).bureau_files(
            period=period, file_format=file_format
        )
    )


def bureau_file_view(row: BureauFile) -> dict[str, Any]:
    return {
        "id": row.id,
        "period": row.period,
        "format": row.format,
        "records": row.records,
        "created_at": row.created_at,
    }


def get_bureau_file(session: Session, *, file_id: str) -> BureauFile:
    row = CollectionsRepository(session).bureau_file(file_id)
    if row is None:
        raise NotFound("No such bureau file.")
    return row


def list_bureau_files(
    session: Session, *, starting_after: str | None = None, limit: int | None = None
) -> list[BureauFile]:
    return list(
        CollectionsRepository(session).bureau_files(starting_after=starting_after, limit=limit)
    )
