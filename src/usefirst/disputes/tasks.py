"""Disputes' part of the daily sweep: deadlines."""

from __future__ import annotations

from sqlalchemy.orm import Session

from usefirst.disputes import service
from usefirst.kit.business_day import DailyContext


def enforce_deadlines(session: Session, context: DailyContext) -> dict[str, int]:
    """Registered in ``usefirst.daily_jobs.BEFORE_COLLECTIONS``: a dispute settled for a missed
    deadline resumes (or never pauses) dunning before that day's reminders and late fees."""
    counts = service.enforce_deadlines(
        session, business_on=context.business_on, settings=context.settings, now=context.now
    )
    return {
        "respondent_deadline_missed": counts.respondent_missed,
        "decision_deadline_missed": counts.decision_missed,
        "blocked": counts.blocked,
    }
