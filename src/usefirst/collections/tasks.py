"""The daily sweep: one transaction per business date, idempotent per date.

Each business date D is swept once: orders shipped more than ``auto_confirm_days`` ago are
confirmed, then instalments due before D and unpaid turn overdue (freezing the shopper's credit).
Reminders, late fees and the rest of the collections ladder will hang off this same sweep.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from usefirst.kit.clock import business_date, business_day_start
from usefirst.kit.models import SweepRun
from usefirst.kit.settings import Settings
from usefirst.orders import service as order_service


@dataclass
class SweepSummary:
    business_on: date
    already_ran: bool
    auto_confirmed: int = 0
    newly_overdue_orders: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "business_on": self.business_on.isoformat(),
            "already_ran": self.already_ran,
            "auto_confirmed": self.auto_confirmed,
            "newly_overdue_orders": self.newly_overdue_orders,
        }


def run_sweep(session: Session, *, business_on: date, settings: Settings) -> SweepSummary:
    if session.get(SweepRun, business_on) is not None:
        return SweepSummary(business_on=business_on, already_ran=True)
    # The sweep for D acts at the first instant of D, whenever it actually runs (catch-up).
    now = business_day_start(business_on, settings.time_zone)
    summary = SweepSummary(business_on=business_on, already_ran=False)
    confirm_shipped_before = business_day_start(
        business_on - timedelta(days=settings.auto_confirm_days - 1), settings.time_zone
    )
    summary.auto_confirmed = order_service.auto_confirm_shipped(
        session,
        shipped_before=confirm_shipped_before,
        business_on=business_on,
        settings=settings,
        now=now,
    )
    summary.newly_overdue_orders = order_service.mark_overdue(
        session, business_on=business_on, settings=settings, now=now
    )
    session.add(SweepRun(business_on=business_on, completed_at=now, summary=summary.as_dict()))
    session.flush()
    return summary


def last_swept_on(session: Session) -> date | None:
    return session.scalar(select(func.max(SweepRun.business_on)))


def dates_to_sweep(*, last_swept: date | None, through: date) -> list[date]:
    start = through if last_swept is None else last_swept + timedelta(days=1)
    return [start + timedelta(days=offset) for offset in range((through - start).days + 1)]


def today_of(now: datetime, settings: Settings) -> date:
    return business_date(now, settings.time_zone)
