"""The daily sweep: one transaction per business date, idempotent per date.

Each business date D is swept once, in this order: orders shipped more than
``auto_confirm_days`` ago are confirmed; instalments due before D and unpaid turn overdue (freezing
the shopper's credit); one day of late fees is charged; order-level collections steps happen
(call queue, credit-bureau reporting, legal referral, charge-off); the reminders of the dunning
ladder that fall on D are planned; and on the first of a month the bureau files of the month just
ended are written.

Every phase is set-based: a handful of statements over the whole book (``UPDATE … FROM``,
``INSERT … SELECT``, journal entries posted in batches), not a loop over rows in Python, so a day
costs about the same number of statements for a hundred instalments as for a million. Only the
rare per-order steps (legal referral, charge-off, held credit at auto-confirmation) go one by one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from usefirst import daily_jobs
from usefirst.collections import service as collections_service
from usefirst.collections.repository import CollectionsRepository
from usefirst.flows import fulfilment
from usefirst.kit.business_day import DailyContext
from usefirst.kit.clock import business_date, business_day_start
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.errors import ValidationFailed
from usefirst.kit.settings import Settings
from usefirst.orders import service as order_service


class SweepDateInFuture(ValidationFailed):
    code = "sweep_date_in_future"
    default_message = "A business date after today cannot be swept yet."


@dataclass
class SweepSummary:
    business_on: date
    already_ran: bool
    auto_confirmed: int = 0
    newly_overdue_orders: int = 0
    late_fees_minor: int = 0
    reminders_planned: int = 0
    call_queue: int = 0
    bureau_reported: int = 0
    legal_referred: int = 0
    charged_off: int = 0
    bureau_files: int = 0
    jobs: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self, *, with_jobs: bool = True) -> dict[str, object]:
        summary: dict[str, object] = {
            "business_on": self.business_on.isoformat(),
            "already_ran": self.already_ran,
            "auto_confirmed": self.auto_confirmed,
            "newly_overdue_orders": self.newly_overdue_orders,
            "late_fees_minor": self.late_fees_minor,
            "reminders_planned": self.reminders_planned,
            "call_queue": self.call_queue,
            "bureau_reported": self.bureau_reported,
            "legal_referred": self.legal_referred,
            "charged_off": self.charged_off,
            "bureau_files": self.bureau_files,
        }
        if with_jobs:
            summary["jobs"] = self.jobs
        return summary


def run_sweep(
    session: Session, *, business_on: date, today: date, settings: Settings, cipher: FieldCipher
) -> SweepSummary:
    # Catch-up starts the day after the latest swept date, so sweeping ahead of today would make
    # it skip every day in between (no late fees, reminders or escalation for them).
    if business_on > today:
        raise SweepDateInFuture(
            f"{business_on} is in the future (today is {today}).", field="business_on"
        )
    # The sweep for D acts at the first instant of D, whenever it actually runs (catch-up).
    now = business_day_start(business_on, settings.time_zone)
    # Claim the date first: a concurrent sweep of the same date waits on this row, then finds it
    # taken and does nothing.
    if not CollectionsRepository(session).claim_sweep_date(business_on, now=now):
        return SweepSummary(business_on=business_on, already_ran=True)
    CollectionsRepository(session).raise_work_mem_for_sweep()
    summary = SweepSummary(business_on=business_on, already_ran=False)
    context = DailyContext(business_on=business_on, now=now, settings=settings, cipher=cipher)
    summary.jobs.update(daily_jobs.run_jobs(session, context, daily_jobs.BEFORE_COLLECTIONS))
    confirm_shipped_before = business_day_start(
        business_on - timedelta(days=settings.auto_confirm_days - 1), settings.time_zone
    )
    summary.auto_confirmed = fulfilment.auto_confirm_shipped(
        session,
        shipped_before=confirm_shipped_before,
        business_on=business_on,
        settings=settings,
        now=now,
    )
    summary.newly_overdue_orders = order_service.mark_overdue(
        session, business_on=business_on, settings=settings, now=now
    )
    summary.late_fees_minor = collections_service.accrue_late_fees(
        session, business_on=business_on, settings=settings, now=now
    )
    ladder = collections_service.ladder_of(session, settings)
    escalation = collections_service.escalate(
        session, business_on=business_on, ladder=ladder, settings=settings, now=now
    )
    summary.call_queue = escalation.call_queue
    summary.bureau_reported = escalation.bureau_reported
    summary.legal_referred = escalation.legal_referred
    summary.charged_off = escalation.charged_off
    summary.reminders_planned = collections_service.plan_reminders(
        session, business_on=business_on, ladder=ladder, settings=settings, cipher=cipher, now=now
    )
    summary.bureau_files = collections_service.monthly_bureau_files(
        session, business_on=business_on, cipher=cipher, settings=settings, now=now
    )
    summary.jobs.update(daily_jobs.run_jobs(session, context, daily_jobs.AFTER_COLLECTIONS))
    CollectionsRepository(session).record_sweep_summary(business_on, summary.as_dict())
    return summary


def last_swept_on(session: Session) -> date | None:
    return CollectionsRepository(session).last_swept_on()


def dates_to_sweep(*, last_swept: date | None, through: date) -> list[date]:
    start = through if last_swept is None else last_swept + timedelta(days=1)
    return [start + timedelta(days=offset) for offset in range((through - start).days + 1)]


def today_of(now: datetime, settings: Settings) -> date:
    return business_date(now, settings.time_zone)
