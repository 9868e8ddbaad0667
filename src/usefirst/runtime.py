"""What a running engine holds: settings, database, clock and PII cipher, wired once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from usefirst.collections.service import CONTACT_TOPIC
from usefirst.credit.service import CREDIT_CHANGE_TOPIC
from usefirst.flows import auto_debit, daily_sweep, rail_reconciliation, shopper_notices
from usefirst.flows.reminder_delivery import ContactDeliverer
from usefirst.flows.step_up import StepUpCodeSender
from usefirst.kit.clock import Clock, SystemClock, TestClock, business_date, business_day_start
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.db import Database
from usefirst.kit.errors import NotFound
from usefirst.kit.job_metrics import JobMetrics
from usefirst.kit.logs import get_logger, job_scope
from usefirst.kit.outbox import DrainResult, Handler, drain, next_available_at
from usefirst.kit.settings import Settings, load_field_cipher
from usefirst.kit.throttle import AuthThrottles, throttle_storage
from usefirst.kit.tracing import instrument_database, instrument_outgoing_http
from usefirst.notify.channels import ChannelSettings, build_channels
from usefirst.notify.service import NOTICE_TOPIC, WEBHOOK_TOPIC, WebhookSender
from usefirst.rails.provider import PaymentProvider
from usefirst.rails.providers import build_provider
from usefirst.risk.service import STEP_UP_TOPIC

log = get_logger(__name__)


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
        tracer_provider: Any | None = None,
    ) -> None:
        self.settings = settings
        self.database = database or Database(settings.database_url)
        # OpenTelemetry (kit/tracing.py): None unless the process traces.
        self.tracer_provider = tracer_provider
        if tracer_provider is not None:
            instrument_database(self.database.engine, tracer_provider)
            instrument_outgoing_http(tracer_provider)
        self.cipher = cipher or load_field_cipher(settings)
        self.clock: Clock = TestClock() if settings.sandbox else SystemClock()
        self._handlers: dict[str, Handler] | None = None
        self.job_metrics = JobMetrics()
        # The payment rail auto-debit charges through (None: the engine only records payments).
        self.payment_provider: PaymentProvider | None = build_provider(settings)
        # Called with a key's secret hash after a revocation (or an immediate expiry) commits:
        # whatever remembers authenticated keys in this process forgets that one.
        self.credential_listeners: list[Callable[[str], None]] = []
        self.auth_throttles = AuthThrottles(
            storage=throttle_storage(settings.auth_throttle_storage, self.database.engine),
            api_key_failures=settings.api_key_failures_per_address,
            sign_in_failures_per_address=settings.sign_in_failures_per_address,
            sign_in_failures_per_account=(
                f"{settings.console_max_failed_attempts}/{settings.console_lockout_minutes} minutes"
            ),
        )

    def forget_credential(self, secret_hash: str) -> None:
        for listener in self.credential_listeners:
            listener(secret_hash)

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

    def _sweep_step_done(self, step: str, seconds: float) -> None:
        self.job_metrics.record_sweep_step(step, seconds)
        log.info("sweep_step", step=step, duration_ms=round(seconds * 1000, 1))

    def sweep(self, business_on: date) -> daily_sweep.SweepSummary:
        """The nightly run of ``business_on``, step by step (each step commits on its own)."""
        with job_scope():
            started = time.perf_counter()
            with self.work(read_only=True) as work:
                today = work.today
            summary = daily_sweep.run_stepped_sweep(
                self.database,
                business_on=business_on,
                today=today,
                settings=self.settings,
                cipher=self.cipher,
                on_step_done=self._sweep_step_done,
            )
            elapsed = time.perf_counter() - started
            if not summary.already_ran:
                counts = summary.as_dict(with_jobs=False)
                core = {
                    key: value
                    for key, value in counts.items()
                    if isinstance(value, int) and not isinstance(value, bool)
                }
                self.job_metrics.record_sweep(elapsed, {"collections": core, **summary.jobs})
            log.info(
                "sweep", duration_ms=round(elapsed * 1000, 1), **summary.as_dict(with_jobs=False)
            )
            return summary

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
                NOTICE_TOPIC: shopper_notices.NoticePlanner(runtime=self),
                CREDIT_CHANGE_TOPIC: shopper_notices.CreditChangeAnnouncer(runtime=self),
            }
            if self.payment_provider is not None:
                rail = auto_debit.RailWork(
                    database=self.database,
                    clock=self.clock,
                    settings=settings,
                    provider=self.payment_provider,
                )
                self._handlers[auto_debit.CHARGE_TOPIC] = auto_debit.ChargeSubmitter(rail)
                self._handlers[auto_debit.QUERY_TOPIC] = auto_debit.ChargeQuerier(rail)
                self._handlers[auto_debit.RECONCILE_TOPIC] = (
                    rail_reconciliation.StatementReconciler(rail)
                )
        return self._handlers

    def rail_work(self) -> auto_debit.RailWork:
        """What the payment rail's jobs need; an error when no provider is configured."""
        if self.payment_provider is None:
            raise auto_debit.NoPaymentProvider()
        return auto_debit.RailWork(
            database=self.database,
            clock=self.clock,
            settings=self.settings,
            provider=self.payment_provider,
        )

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
                metrics=self.job_metrics,
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
