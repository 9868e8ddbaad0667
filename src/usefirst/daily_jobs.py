"""Daily jobs of other domains that run inside the daily sweep of a business date.

The sweep claims a business date once (see ``collections.tasks.run_sweep``) and then runs, in the
same transaction, the jobs listed here: those in ``BEFORE_COLLECTIONS`` before ageing, fees and
reminders (so that, say, a dispute closed for a missed deadline resumes dunning the same day), those
in ``AFTER_COLLECTIONS`` after them (settlement pays out what is owed once the day's money moved).
Jobs are named "module:function" and imported when the sweep runs, so domains stay decoupled and
import cycles cannot form. A job returns counts for the sweep summary.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from sqlalchemy.orm import Session

from usefirst.kit.business_day import DailyContext

DailyJob = Callable[[Session, DailyContext], dict[str, int]]

BEFORE_COLLECTIONS: list[str] = [
    "usefirst.disputes.tasks:enforce_deadlines",
    "usefirst.risk.service:expire_step_ups",
]
AFTER_COLLECTIONS: list[str] = [
    "usefirst.risk.monitors:first_instalment_missed",
    "usefirst.risk.monitors:merchant_drift",
    # Before settlement, so that orders of a ring found tonight are held from today's payout.
    "usefirst.risk.graph:nightly_graph",
    "usefirst.flows.settlement_run:settle_daily",
    "usefirst.privacy.complaints:flag_overdue_complaints",
]


def _load(reference: str) -> DailyJob:
    module_name, _, function_name = reference.partition(":")
    job: DailyJob = getattr(importlib.import_module(module_name), function_name)
    return job


def run_jobs(
    session: Session, context: DailyContext, references: list[str]
) -> dict[str, dict[str, int]]:
    return {reference: _load(reference)(session, context) for reference in references}
