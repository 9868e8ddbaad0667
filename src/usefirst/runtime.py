"""What a running engine holds: settings, database, clock and PII cipher, wired once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from usefirst.collections import tasks as sweep_tasks
from usefirst.kit.clock import Clock, SystemClock, TestClock, business_date, business_day_start
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.db import Database
from usefirst.kit.errors import NotFound
from usefirst.kit.settings import Settings, load_field_cipher


@dataclass
class Work:
    """One unit of work: a session inside one transaction, and the time it happens at."""

    session: Session
    now: datetime
    today: date


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        database: Database | None = None,
        cipher: FieldCipher | None = None,
    ) -> None:
        self.settings = settings
        self.database = database or Database(settings.database_url)
        self.cipher = cipher or load_field_cipher(settings)
        self.clock: Clock = TestClock() if settings.sandbox else SystemClock()

    @contextmanager
    def work(self, *, read_only: bool = False) -> Iterator[Work]:
        with self.database.transaction(read_only=read_only) as session:
            now = self.clock.now(session)
            yield Work(session=session, now=now, today=business_date(now, self.settings.time_zone))

    def run_due_sweeps(self) -> list[sweep_tasks.SweepSummary]:
        """Sweep every business date from the last swept one through today, one transaction each."""
        with self.work() as work:
            dates = sweep_tasks.dates_to_sweep(
                last_swept=sweep_tasks.last_swept_on(work.session), through=work.today
            )
        summaries = []
        for business_on in dates:
            summaries.append(self.sweep(business_on))
        return summaries

    def sweep(self, business_on: date) -> sweep_tasks.SweepSummary:
        with self.database.transaction() as session:
            return sweep_tasks.run_sweep(session, business_on=business_on, settings=self.settings)

    def advance_test_clock(self, *, days: int = 0, seconds: int = 0) -> datetime:
        """Move the sandbox clock and sweep every business day passed, as production would."""
        clock = self.clock
        if not isinstance(clock, TestClock):
            raise NotFound("The test clock exists only in sandbox mode.")
        with self.work() as work:
            target = work.now + timedelta(days=days, seconds=seconds)
        self.run_due_sweeps()
        while True:
            with self.work() as work:
                next_day_start = business_day_start(
                    work.today + timedelta(days=1), self.settings.time_zone
                )
                step_to = min(target, next_day_start)
                clock.set(work.session, step_to)
            self.run_due_sweeps()
            if step_to >= target:
                return target
