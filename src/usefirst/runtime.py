"""What a running engine holds: settings, database, clock and PII cipher, wired once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from usefirst.collections.service import CONTACT_TOPIC
from usefirst.flows import daily_sweep
from usefirst.flows.reminder_delivery import ContactDeliverer
from usefirst.flows.step_up import StepUpCodeSender
from usefirst.kit.clock import Clock, SystemClock, TestClock, business_date, business_day_start
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.db import Database
from usefirst.kit.errors import NotFound
from usefirst.kit.outbox import DrainResult, Handler, drain, next_available_at
from usefirst.kit.settings import Settings, load_field_cipher
from usefirst.notify.channels import ChannelSettings, build_channels
from usefirst.notify.service import WEBHOOK_TOPIC, WebhookSender
from usefirst.risk.service import STEP_UP_TOPIC


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
        self._handlers: dict[str, Handler] | None = None

    @contextmanager
    def work(self, *, read_only: bool = False) -> Iterator[Work]:
        with self.database.transaction(read_only=read_only) as session:
            now = self.clock.now(session)
            yield Work(session=session, now=now, today=business_date(now, self.settings.time_zone))

    def run_due_sweeps(self) -> list[daily_sweep.SweepSummary]:
        """Sweep every business date after the last fully swept one through today (a date whose
        sweep crashed part-way is resumed), each step of each date in a transaction of its own."""
        with self.work() as work:
            dates = daily_sweep.dates_to_sweep(
                last_swept=daily_sweep.last_swept_on(work.session), through=work.today
            )
        summaries = []
        for business_on in dates:
            summaries.append(self.sweep(business_on))
        return summaries

    def sweep(self, business_on: date) -> daily_sweep.SweepSummary:
        """The nightly run of ``business_on``, step by step (each step commits on its own)."""
        with self.work(read_only=True) as work:
            today = work.today
        return daily_sweep.run_stepped_sweep(
            self.database,
            business_on=business_on,
            today=today,
            settings=self.settings,
            cipher=self.cipher,
        )

    def outbox_handlers(self) -> dict[str, Handler]:
        """What the worker delivers: signed webhooks and planned reminders."""

        if self._handlers is None:
            settings = self.settings
            sms_gateway, email_sender = build_channels(
                ChannelSettings(
                    sms_gateway_url=settings.sms_gateway_url,
                    sms_gateway_token=settings.sms_gateway_token,
                    sms_log_path=settings.sms_log_path,
                    smtp_host=settings.smtp_host,
                    smtp_port=settings.smtp_port,
                    smtp_sender=settings.smtp_sender,
                    smtp_username=settings.smtp_username,
                    smtp_password=settings.smtp_password,
                    smtp_starttls=settings.smtp_starttls,
                )
            )
            self._handlers = {
                WEBHOOK_TOPIC: WebhookSender(
                    database=self.database, settings=settings, cipher=self.cipher
                ),
                CONTACT_TOPIC: ContactDeliverer(
                    runtime=self, sms_gateway=sms_gateway, email_sender=email_sender
                ),
                STEP_UP_TOPIC: StepUpCodeSender(runtime=self, sms_gateway=sms_gateway),
            }
        return self._handlers

    def deliver_outbox(self, *, topics: tuple[str, ...] | None = None) -> DrainResult:
        handlers = self.outbox_handlers()
        if topics is not None:
            handlers = {topic: handlers[topic] for topic in topics}
        total = DrainResult()
        while True:
            result = drain(
                self.database,
                clock=self.clock,
                handlers=handlers,
                max_attempts=self.settings.webhook_max_attempts,
            )
            total.delivered += result.delivered
            total.retried += result.retried
            total.failed += result.failed
            if not (result.delivered or result.retried or result.failed):
                return total

    def advance_test_clock(self, *, days: int = 0, seconds: int = 0) -> datetime:
        """Move the sandbox clock as production time would pass: the daily sweep runs at every
        business day's start, and reminders go out at the moments they were planned for."""
        clock = self.clock
        if not isinstance(clock, TestClock):
            raise NotFound("The test clock exists only in sandbox mode.")

        with self.work() as work:
            target = work.now + timedelta(days=days, seconds=seconds)
        self.run_due_sweeps()
        self.deliver_outbox(topics=(CONTACT_TOPIC,))
        while True:
            with self.work() as work:
                next_day_start = business_day_start(
                    work.today + timedelta(days=1), self.settings.time_zone
                )
                next_contact = next_available_at(work.session, topic=CONTACT_TOPIC, after=work.now)
                step_to = min(target, next_day_start, next_contact or target)
                clock.set(work.session, step_to)
            self.run_due_sweeps()
            self.deliver_outbox(topics=(CONTACT_TOPIC,))
            if step_to >= target:
                return target
