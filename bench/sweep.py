#!/usr/bin/env python3
"""Daily sweep benchmark: one ``Runtime.sweep(date)`` over a large synthetic book.

What one run does (PostgreSQL first, then SQLite unless ``--sqlite-instalments 0``):

1. recreates the bench database, migrates it with ``usefirst.kit.migrate.upgrade`` and bulk-loads
   the book without going through the services (PostgreSQL: ``COPY``, the journal guards off
   while the balanced history is copied; SQLite: one ``executemany`` transaction), then
   ``VACUUM ANALYZE`` / ``ANALYZE``;
2. runs one ``Runtime.sweep(business_on)``: the full nightly run as the worker and ``usefirst
   sweep`` run it (``daily_sweep.run_stepped_sweep``: every step in its own transaction), and
   times the whole and each step (the functions the steps call are wrapped in this process
   only): dispute deadlines, step-up expiry, auto-confirm, mark overdue, late fees, escalation,
   reminders, bureau files, the first-payment monitor, merchant drift, the nightly graph,
   settlement, complaints, and the stepped run's own claims and commits. For each: SQL
   statements, time waiting on them, and the statements that waited longest. For the sweep:
   this process's CPU, the PostgreSQL backend's CPU (``/proc``) and how long tasks waited for a
   CPU (``/proc/pressure/cpu``: the machine may be shared);
3. checks the effects against what the generator expects (newly overdue, late fees, call queue,
   bureau, reminders, auto-confirmations), runs the same date again (the idempotent re-run) and
   runs ``flows.reconcile.audit`` (the book's ledger matches its statements, and must still);
4. ``--py-spy``: samples the sweep with py-spy and splits the wall time by kind (database
   driver, SQLAlchemy, usefirst code) and by phase;
5. ``--reference-commit C`` (PostgreSQL): copies the loaded database (``CREATE DATABASE …
   TEMPLATE``), sweeps the copy with the engine of commit ``C`` (``git archive``, in a
   subprocess) and compares every row the two sweeps touched: the set-based sweep must give
   exactly what the per-row one gave (use ``--no-daily-jobs`` then: other domains' daily jobs
   are not part of that comparison). The copy is migrated to this engine's schema, so the other
   engine must be of the same schema: since migration 0021 (collections' and disputes' state off
   ``orders``) an earlier engine is compared on a ``pg_dump`` of the book it loaded itself,
   migrated, as issue 13's report describes;
6. other domains' daily jobs run by default, each timed as its own step; ``--collections-only``
   (formerly ``--no-daily-jobs``) leaves them out, to time collections alone.

The book, as it stands after the previous business day's sweep:

* ``--instalments`` instalments are due in a ``--days`` window that ends ``--future-days`` after
  the sweep date (default 120 days, 60 after: more than half are past due). Orders are
  ``instalments_3`` (70 % of the daily volume) or ``pay_after_delivery`` (30 %), delivered at a
  constant daily rate, with the real schedule (``plan_instalments``, ``due_dates``). Their
  instalments outside the window exist too (paid before it, pending after it);
* each instalment due by yesterday was paid on time with probability ``1 - --miss-rate``. Once
  one is missed, the order's later ones stay unpaid (payments go to the oldest first). Unpaid
  ones are ``overdue`` (``pending`` if due yesterday: today's sweep turns them overdue) and carry
  the late fees of the earlier sweeps. ``--early-paid-share`` of future instalments are paid
  early. ``--miss-rate 1`` leaves every past-due instalment unpaid;
* orders are ``delivered``, ``overdue`` or ``repaid``, with the collections state the earlier
  sweeps recorded (``delinquent_orders``: first delinquency, call queue at 7 days, bureau report
  at 30 days); 0.5 % are disputed (``disputed_orders``).
  Credit lines are frozen exactly for the shoppers with overdue instalments;
* ``--unconfirmed-share`` of the daily order volume is shipped and never confirmed, for each of
  the last 10 days: one day's worth is auto-confirmed today;
* shopper PII is real ciphertext, made once by the real ``FieldCipher`` and reused; 70 % of
  shoppers have an email address; 60 % of merchants have a webhook URL;
* history: the journal entries the services would have posted (activation, merchant fee, plan
  fee, late fees so far, one payment per paid instalment), and the reminders the earlier sweeps
  planned, with their delivered outbox messages. Without it those tables start empty, and
  PostgreSQL caches sequential-scan plans for them (``--no-history`` shows the effect);
* links: the device, IP, phone and address every order in the graph's window was placed from
  (``risk_link_observations``): 8 % of shoppers in offices of 8 behind one IP address (groups
  the nightly graph scores), 5 % behind carrier NATs of 50 (left out as infrastructure), 2 %
  sharing a device with another shopper;
* the previous night: after loading, the engine runs the first-payment monitor, merchant drift,
  the nightly graph and settlement for the day before the sweep date (timed, reported with the
  load), so the measured night meets a day's new first-payment defaults and settles a day's
  entries, as a live engine does; without it the first night would open a case for every missed
  first instalment of the history and settle the whole history at once.

Loading (PostgreSQL): ``COPY`` with the tables' foreign keys and non-unique indexes dropped and
put back afterwards (checked and built once, not row by row); each history is generated once.
``--book-database B`` keeps the loaded book (previous night included) for later runs.

Run from the repository root::

    .venv/bin/python bench/sweep.py --instalments 1000000 --sqlite-instalments 100000
    .venv/bin/python bench/sweep.py --instalments 20000 --sqlite-instalments 0 \
        --reference-commit ae6c242 --no-daily-jobs
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import text

from usefirst.collections import service as collections_service
from usefirst.collections.contact_policy import ContactPolicy
from usefirst.collections.ladder import load_ladder
from usefirst.credit.service import FROZEN_OVERDUE
from usefirst.flows import (
    bureau_reporting,
    daily_sweep,
    fulfilment,
    late_fees,
    risk_monitoring,
    settlement_run,
)
from usefirst.flows.reconcile import audit
from usefirst.identity import validation
from usefirst.kit.business_day import DailyContext
from usefirst.kit.clock import business_day_start
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.ids import new_id
from usefirst.kit.migrate import upgrade
from usefirst.kit.models import subject_shard_key
from usefirst.kit.money import basis_points_of
from usefirst.kit.settings import Settings, load_field_cipher
from usefirst.ledger import accounts
from usefirst.repayment import schedule
from usefirst.repayment import service as repayment_service
from usefirst.risk import signal_upkeep, signals
from usefirst.risk.graph import GraphParameters
from usefirst.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgresql://usefirst:usefirst@127.0.0.1:5432/usefirst_bench_sweep"
DEFAULT_BUSINESS_ON = date(2026, 12, 10)
GOAL_SECONDS = 30.0
CURRENCY = "CNY"
I3_SHARE = 0.7  # of the daily order volume; the rest is pay_after_delivery
DISPUTED_SHARE = 0.005
EMAIL_SHARE = 0.7
WEBHOOK_SHARE = 0.6
LIMITS = (100_000, 150_000, 200_000, 300_000, 500_000)
CATEGORIES = ("electronics", "apparel", "home", "beauty", "books", "groceries")


def _columns(names: str) -> tuple[str, ...]:
    return tuple(names.split())


SHOPPER_COLUMNS = _columns(
    "id external_id status name_encrypted national_id_encrypted phone_encrypted "
    "email_encrypted name_masked national_id_masked phone_masked email_masked phone_hash "
    "enrolment_device_id enrolment_ip created_at"
)
CREDIT_LINE_COLUMNS = _columns(
    "shopper_id currency limit_minor used_minor status score band reasons on_time_orders "
    "reviewed_at"
)
MERCHANT_COLUMNS = _columns(
    "id name category status webhook_url webhook_secret_encrypted settlement_days "
    "fee_rate_bps created_at"
)
ORDER_COLUMNS = _columns(
    "shopper_id id merchant_id currency plan status amount_minor refunded_minor items "
    "shipping_address_encrypted device_id ip decision_outcome decision_reasons decided_at "
    "carrier tracking_number shipped_at delivered_at delivery_confirmation cancelled_at "
    "repaid_at created_at updated_at"
)
DELINQUENT_ORDER_COLUMNS = _columns(
    "shopper_id order_id first_delinquent_on call_queue_since_on bureau_reported_on "
    "charged_off_minor updated_at"
)
DISPUTED_ORDER_COLUMNS = _columns(
    "shopper_id order_id is_disputed disputed_since_on dispute_paused_days updated_at"
)
INSTALMENT_COLUMNS = _columns(
    "shopper_id order_id seq currency status due_on principal_minor fees_minor "
    "late_fees_minor late_fees_waived_minor paid_principal_minor paid_fees_minor was_overdue "
    "settled_on"
)
LEDGER_ACCOUNT_COLUMNS = _columns("code kind owner_id currency created_at")
# The shard key (migration 0029: the entry's shopper, else its merchant, else "platform") last.
POSTING_COLUMNS = _columns("entry_id seq account_code currency amount_minor shard_key")
JOURNAL_ENTRY_COLUMNS = _columns(
    "id kind shopper_id merchant_id order_id reference_id posting_count memo created_at shard_key"
)
OPEN_ITEM_COLUMNS = _columns(
    "owner_id account_code entry_id account_kind currency entry_kind order_id amount_minor"
    " created_at"
)
CONTACT_COLUMNS = _columns(
    "shopper_id id order_id seq channel step_day step template scheduled_at sent_at status "
    "status_reason destination_masked created_at"
)
OUTBOX_COLUMNS = _columns(
    "id topic payload available_at attempts delivered_at created_at shard_key"
)
LINK_COLUMNS = _columns("shopper_id order_id kind value_hash merchant_id observed_at")
LINK_WINDOW_DAYS = GraphParameters().window_days
SIGNAL_EVENT_COLUMNS = _columns(
    "kind key_hash created_at order_id shopper_id merchant_id amount_minor is_held"
)
SIGNAL_HOUR_COLUMNS = _columns("scope key hour stripe orders amount_minor")
SWEEP_RUN_COLUMNS = _columns("business_on completed_at summary")
MERCHANT_FEE_BPS = 60
DECISION_REASONS = json.dumps(
    [{"code": "within_credit_limit", "message": "The order fits the available credit."}]
)
# Positions in an order row that the history streams read back.
ORDER_SHOPPER, ORDER_ID, ORDER_MERCHANT = range(3)
ORDER_AMOUNT = ORDER_COLUMNS.index("amount_minor")
ORDER_DELIVERED_AT = ORDER_COLUMNS.index("delivered_at")
INSTALMENT = {name: index for index, name in enumerate(INSTALMENT_COLUMNS)}
# Load order respects the foreign keys.
TABLES = (
    ("shoppers", SHOPPER_COLUMNS),
    ("credit_lines", CREDIT_LINE_COLUMNS),
    ("merchants", MERCHANT_COLUMNS),
    ("orders", ORDER_COLUMNS),
    ("delinquent_orders", DELINQUENT_ORDER_COLUMNS),
    ("disputed_orders", DISPUTED_ORDER_COLUMNS),
    ("instalments", INSTALMENT_COLUMNS),
    ("ledger_accounts", LEDGER_ACCOUNT_COLUMNS),
    ("sweep_runs", SWEEP_RUN_COLUMNS),
)

Row = tuple[Any, ...]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# The synthetic book
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BookSpec:
    instalments: int
    shoppers: int
    merchants: int
    days: int
    future_days: int
    business_on: date
    miss_rate: float
    early_paid_share: float
    unconfirmed_share: float
    seed: int


@dataclass
class Book:
    spec: BookSpec
    settings: Settings
    rows: dict[str, list[Row]]
    counts: Counter[str] = field(default_factory=Counter)
    expected: Counter[str] = field(default_factory=Counter)
    window: tuple[date, date] = (date.min, date.min)
    # (order row, first instalment row, end) of every delivered order, for the history streams
    delivered: list[tuple[int, int, int]] = field(default_factory=list)
    disputed: set[str] = field(default_factory=set)  # ids of the orders with a dispute open
    email_of: dict[str, bool] = field(default_factory=dict)
    shopper_ids: list[str] = field(default_factory=list)
    masked: tuple[str, str] = ("", "")  # phone, email


@dataclass(slots=True)
class _Due:
    """One instalment of an order being generated."""

    seq: int
    status: str
    due_on: date
    principal: int
    fees: int
    late: int
    settled_on: date | None


class _Clock:
    """Local business times as UTC instants, cached per day."""

    def __init__(self, time_zone: str) -> None:
        self.zone = ZoneInfo(time_zone)

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - a handful of instances, all short-lived
    def at(self, day: date, hour: int, minute: int = 0) -> datetime:
        local = datetime.combine(day, clock_time(hour, minute), tzinfo=self.zone)
        return local.astimezone(UTC)


class _StartOfBusinessDay:
    """The engine's clock for the measured sweep: the first instant of the swept date, so the
    synthetic book's date is "today" whenever the benchmark runs (a later date is refused)."""

    def __init__(self, business_on: date, time_zone: str) -> None:
        self.moment = business_day_start(business_on, time_zone)

    def now(self, session: Any) -> datetime:
        return self.moment


class _Ciphertexts:
    """One real ciphertext per PII field, made once and reused for every row."""

    def __init__(self, cipher: FieldCipher) -> None:
        name, national_id = "张伟", "110105199001011237"
        phone, email = "+8613800138000", "zhang.wei@example.com"
        self.name = cipher.encrypt(name, field="name")
        self.national_id = cipher.encrypt(national_id, field="national_id")
        self.phone = cipher.encrypt(phone, field="phone")
        self.email = cipher.encrypt(email, field="email")
        self.shipping_address = cipher.encrypt(
            "北京市朝阳区建国路 88 号 1 单元 1201", field="shipping_address"
        )
        self.webhook_secret = cipher.encrypt("whsec_" + "A" * 44, field="webhook_secret")
        self.name_masked = validation.mask_name(name)
        self.national_id_masked = validation.mask_national_id(national_id)
        self.phone_masked = validation.mask_phone(phone)
        self.email_masked = validation.mask_email(email)


def build_book(spec: BookSpec, *, settings: Settings, cipher: FieldCipher) -> Book:
    """Generate every row of the book in memory (deterministic for a given spec)."""
    rng = random.Random(spec.seed)
    clock = _Clock(settings.time_zone)
    secrets = _Ciphertexts(cipher)
    today = spec.business_on
    yesterday = today - timedelta(days=1)
    window_start = today - timedelta(days=spec.days - spec.future_days)
    window_end = today + timedelta(days=spec.future_days - 1)
    book = Book(
        spec=spec,
        settings=settings,
        rows={name: [] for name, _ in TABLES},
        window=(window_start, window_end),
        masked=(secrets.phone_masked, secrets.email_masked),
    )
    counts = book.counts
    ladder = load_ladder(settings.dunning_ladder_file)
    reminder_days = {today - timedelta(days=step.day): step for step in ladder.reminder_steps()}
    call_day = ladder.action_day("call_queue") or 10**6
    bureau_day = ladder.action_day("bureau_report") or 10**6

    # Shoppers: created well before their first order.
    shopper_ids = [new_id("shopper") for _ in range(spec.shoppers)]
    has_email = [rng.random() < EMAIL_SHARE for _ in range(spec.shoppers)]
    used = [0] * spec.shoppers
    has_overdue = bytearray(spec.shoppers)
    on_time_orders = [0] * spec.shoppers
    merchant_ids = [new_id("merchant") for _ in range(spec.merchants)]
    has_webhook = [rng.random() < WEBHOOK_SHARE for _ in range(spec.merchants)]

    plan_cache: dict[tuple[str, int], list[schedule.PlannedInstalment]] = {}

    def planned(plan: str, amount: int) -> list[schedule.PlannedInstalment]:
        key = (plan, amount)
        if key not in plan_cache:
            plan_cache[key] = schedule.plan_instalments(
                principal_minor=amount,
                plan=plan,
                fee_bps_per_month=settings.instalment_fee_bps_per_month,
                apr_cap_bps=settings.apr_cap_bps,
            )
        return plan_cache[key]

    def amount_minor() -> int:
        return max(int(math.exp(rng.uniform(math.log(3_000), math.log(400_000)))) // 100, 1) * 100

    def order_row(
        *,
        shopper: int,
        order_id: str,
        merchant: int,
        plan: str,
        status: str,
        amount: int,
        created: datetime,
        shipped_at: datetime,
        delivered_at: datetime | None,
        repaid_at: datetime | None,
        disputed: bool,
        flags: tuple[date | None, date | None, date | None],
        updated: datetime,
    ) -> Row:
        item = {
            "sku": f"SKU-{amount % 9973}",
            "name": "蓝牙耳机",
            "category": CATEGORIES[amount % len(CATEGORIES)],
            "quantity": 1,
            "unit_price_minor": amount,
        }
        values = {
            "shopper_id": shopper_ids[shopper],
            "id": order_id,
            "merchant_id": merchant_ids[merchant],
            "currency": CURRENCY,
            "plan": plan,
            "status": status,
            "amount_minor": amount,
            "refunded_minor": 0,
            "items": json.dumps([item], ensure_ascii=False),
            "shipping_address_encrypted": secrets.shipping_address,
            "decision_outcome": "approved",
            "decision_reasons": DECISION_REASONS,
            "decided_at": created,
            "carrier": "SF Express",
            "tracking_number": f"SF{len(book.rows['orders']):012d}",
            "shipped_at": shipped_at,
            "delivered_at": delivered_at,
            "delivery_confirmation": "shopper" if delivered_at is not None else None,
            "repaid_at": repaid_at,
            "created_at": created,
            "updated_at": updated,
        }
        # The state collections and disputes keep of the order, in their own tables.
        if any(flag is not None for flag in flags):
            book.rows["delinquent_orders"].append(
                (shopper_ids[shopper], order_id, *flags, 0, updated)
            )
        if disputed:
            book.disputed.add(order_id)
            book.rows["disputed_orders"].append(
                (shopper_ids[shopper], order_id, True, None, 0, updated)
            )
        return tuple(values.get(column) for column in ORDER_COLUMNS)

    # Delivered orders, at a constant daily rate, until the window holds the wanted rows.
    i3_first = window_start - timedelta(days=92)  # seq 3 (delivery + 3 months) still in window
    i3_days = (yesterday - i3_first).days + 1
    pad_first = window_start - timedelta(days=settings.pay_within_days)
    pad_days = (yesterday - pad_first).days + 1
    i3_weight = I3_SHARE * i3_days / (I3_SHARE * i3_days + (1 - I3_SHARE) * pad_days)
    orders = book.rows["orders"]
    instalments = book.rows["instalments"]
    in_window = 0
    while in_window < spec.instalments:
        if rng.random() < i3_weight:
            plan, delivered_on = "instalments_3", i3_first + timedelta(days=rng.randrange(i3_days))
        else:
            plan = "pay_after_delivery"
            delivered_on = pad_first + timedelta(days=rng.randrange(pad_days))
        amount = amount_minor()
        dues = schedule.due_dates(
            plan=plan, delivered_on=delivered_on, pay_within_days=settings.pay_within_days
        )
        if dues[-1] < window_start:
            continue
        shopper = rng.randrange(spec.shoppers)
        merchant = rng.randrange(spec.merchants)
        order_id = new_id("order")
        disputed = rng.random() < DISPUTED_SHARE
        counts[f"orders {plan}"] += 1
        paying = True
        rows: list[_Due] = []
        for item, due_on in zip(planned(plan, amount), dues, strict=True):
            status, settled_on = "pending", None
            if due_on < window_start:
                status = "paid"
                settled_on = max(due_on - timedelta(days=rng.randrange(4)), delivered_on)
            elif due_on <= yesterday:
                if paying and rng.random() >= spec.miss_rate:
                    status = "paid"
                    settled_on = max(due_on - timedelta(days=rng.randrange(4)), delivered_on)
                else:
                    paying = False
                    status = "overdue" if due_on < yesterday else "pending"
            elif paying and rng.random() < spec.early_paid_share:
                status = "paid"
                settled_on = max(yesterday - timedelta(days=rng.randrange(10)), delivered_on)
            else:
                paying = False
            if window_start <= due_on <= window_end:
                in_window += 1
                counts[f"window {status}"] += 1
            elif due_on > window_end:
                counts[f"after window {status}"] += 1
            else:
                counts[f"before window {status}"] += 1
            late = 0
            if status == "overdue":
                # One day of fees for every sweep from the day after the due date to yesterday.
                late = (yesterday - due_on).days * basis_points_of(
                    item.principal_minor, settings.late_fee_bps_per_day
                )
            rows.append(
                _Due(
                    item.seq,
                    status,
                    due_on,
                    item.principal_minor,
                    item.fees_minor,
                    late,
                    settled_on,
                )
            )
        # The per-order caps (rarely binding this early): trim the latest fees first.
        late_total = sum(row.late for row in rows)
        if late_total:
            plan_fees = sum(row.fees for row in rows)
            days_on_book = (yesterday - delivered_on).days
            room = min(
                basis_points_of(amount, settings.late_fee_cap_bps_of_principal),
                int(amount * settings.apr_cap_bps * days_on_book / (10_000 * 365)) - plan_fees,
            )
            excess = late_total - max(room, 0)
            for row in reversed(rows):
                cut = min(excess, row.late) if excess > 0 else 0
                row.late -= cut
                excess -= cut
        unpaid = [row for row in rows if row.status in ("pending", "overdue")]
        overdue = [row for row in rows if row.status == "overdue"]
        first_instalment = len(instalments)
        for row in rows:
            paid = row.status == "paid"
            instalments.append(
                (
                    shopper_ids[shopper],
                    order_id,
                    row.seq,
                    CURRENCY,
                    row.status,
                    row.due_on,
                    row.principal,
                    row.fees,
                    row.late,
                    0,
                    row.principal if paid else 0,
                    row.fees + row.late if paid else 0,
                    row.status == "overdue",
                    row.settled_on,
                )
            )
            # An open dispute pauses the days past due: no step after the due date is logged.
            if not paid and row.due_on in reminder_days:
                if disputed and reminder_days[row.due_on].day > 0:
                    continue
                for channel in reminder_days[row.due_on].channels:
                    suppressed = disputed or (channel == "email" and not has_email[shopper])
                    book.expected[f"reminders {'suppressed' if suppressed else 'planned'}"] += 1
        used[shopper] += sum(row.principal for row in unpaid)
        # What the earlier sweeps did to the order.
        flags: tuple[date | None, date | None, date | None] = (None, None, None)
        newly_late = [row for row in unpaid if row.due_on < today]
        if overdue:
            oldest = min(row.due_on for row in overdue)
            has_overdue[shopper] = 1
            call_on = oldest + timedelta(days=call_day)
            bureau_on = oldest + timedelta(days=bureau_day)
            flags = (
                oldest + timedelta(days=1),
                call_on if call_on <= yesterday and not disputed else None,
                bureau_on if bureau_on <= yesterday and not disputed else None,
            )
        if newly_late and not disputed:
            days_late = (today - min(row.due_on for row in newly_late)).days
            book.expected["call queue"] += days_late == call_day
            book.expected["bureau reported"] += days_late == bureau_day
            book.expected["late-fee instalments (at most)"] += len(newly_late)
        due_yesterday = [row for row in unpaid if row.status == "pending" and row.due_on < today]
        if due_yesterday:
            book.expected["newly overdue instalments"] += len(due_yesterday)
            book.expected["newly overdue orders"] += 1
        if overdue:
            status = "overdue"
        elif not unpaid:
            status = "repaid"
            on_time_orders[shopper] += 1
        else:
            status = "delivered"
        counts[f"orders {status}"] += 1
        settled = [row.settled_on for row in rows if row.settled_on is not None]
        repaid_at = clock.at(max(settled), 12) if status == "repaid" else None
        delivered_at = clock.at(delivered_on, 15)
        orders.append(
            order_row(
                shopper=shopper,
                order_id=order_id,
                merchant=merchant,
                plan=plan,
                status=status,
                amount=amount,
                created=clock.at(delivered_on - timedelta(days=3), 20),
                shipped_at=clock.at(delivered_on - timedelta(days=2), 10),
                delivered_at=delivered_at,
                repaid_at=repaid_at,
                disputed=disputed,
                flags=flags,
                updated=repaid_at or delivered_at,
            )
        )
        book.delivered.append((len(orders) - 1, first_instalment, len(instalments)))
    counts["rows in window"] = in_window

    # Shipped orders nobody confirmed yet: one day's worth reaches auto-confirmation today.
    orders_per_day = counts["orders instalments_3"] / i3_days / I3_SHARE
    shipped_per_day = max(1, round(orders_per_day * spec.unconfirmed_share))
    confirm_before = business_day_start(
        today - timedelta(days=settings.auto_confirm_days - 1), settings.time_zone
    )
    buyers = [index for index in range(spec.shoppers) if not has_overdue[index]] or list(
        range(spec.shoppers)
    )  # frozen lines cannot buy
    for days_ago in range(1, settings.auto_confirm_days + 1):
        shipped_on = today - timedelta(days=days_ago)
        for _ in range(shipped_per_day):
            shopper = rng.choice(buyers)
            plan = "instalments_3" if rng.random() < I3_SHARE else "pay_after_delivery"
            amount = amount_minor()
            order_id = new_id("order")
            shipped_at = clock.at(shipped_on, 8 + rng.randrange(12), rng.randrange(60))
            orders.append(
                order_row(
                    shopper=shopper,
                    order_id=order_id,
                    merchant=rng.randrange(spec.merchants),
                    plan=plan,
                    status="shipped",
                    amount=amount,
                    created=shipped_at - timedelta(days=1),
                    shipped_at=shipped_at,
                    delivered_at=None,
                    repaid_at=None,
                    disputed=False,
                    flags=(None, None, None),
                    updated=shipped_at,
                )
            )
            for item in planned(plan, amount):
                instalments.append(
                    (shopper_ids[shopper], order_id, item.seq, CURRENCY, "scheduled", None,
                     item.principal_minor, item.fees_minor, 0, 0, 0, 0, False, None)
                )  # fmt: skip
            used[shopper] += amount
            counts["orders shipped"] += 1
            book.expected["auto-confirmed"] += shipped_at < confirm_before

    # Shoppers, their credit lines and ledger accounts.
    frozen_reasons = json.dumps([FROZEN_OVERDUE.as_dict()])
    active_reasons = json.dumps(
        [{"code": "within_policy", "message": "Limit set by the cold-start policy."}]
    )
    enrolled = business_day_start(window_start - timedelta(days=200), settings.time_zone)
    for index, shopper_id in enumerate(shopper_ids):
        book.rows["shoppers"].append(
            (
                shopper_id,
                f"mkt_user_{index}",
                "active",
                secrets.name,
                secrets.national_id,
                secrets.phone,
                secrets.email if has_email[index] else None,
                secrets.name_masked,
                secrets.national_id_masked,
                secrets.phone_masked,
                secrets.email_masked if has_email[index] else None,
                hashlib.sha256(_link_keys(index)["phone"].encode()).hexdigest(),
                None,
                None,
                enrolled,
            )
        )
        frozen = bool(has_overdue[index])
        limit = max(LIMITS[index % len(LIMITS)], -(-used[index] // 10_000) * 10_000)
        book.rows["credit_lines"].append(
            (
                shopper_id,
                CURRENCY,
                limit,
                used[index],
                "frozen" if frozen else "active",
                600 + index % 200,
                "B",
                frozen_reasons if frozen else active_reasons,
                on_time_orders[index],
                enrolled,
            )
        )
        counts["credit lines frozen" if frozen else "credit lines active"] += 1
        book.rows["ledger_accounts"].append(
            (accounts.shopper_receivable(shopper_id).code(CURRENCY), "shopper_receivable",
             shopper_id, CURRENCY, enrolled)
        )  # fmt: skip
    for index, merchant_id in enumerate(merchant_ids):
        book.rows["merchants"].append(
            (
                merchant_id,
                f"Merchant {index}",
                CATEGORIES[index % len(CATEGORIES)],
                "active",
                f"https://merchant-{index}.example/webhooks" if has_webhook[index] else None,
                secrets.webhook_secret,
                1,
                60,
                enrolled,
            )
        )
        book.rows["ledger_accounts"].append(
            (accounts.merchant_payable(merchant_id).code(CURRENCY), "merchant_payable",
             merchant_id, CURRENCY, enrolled)
        )  # fmt: skip
    for account in (
        accounts.PLATFORM_CASH,
        accounts.MERCHANT_FEE_INCOME,
        accounts.INSTALMENT_FEE_INCOME,
        accounts.LATE_FEE_INCOME,
        accounts.WRITE_OFF_EXPENSE,
        accounts.RECOVERIES,
    ):
        book.rows["ledger_accounts"].append(
            (account.code(CURRENCY), account.kind.value, None, CURRENCY, enrolled)
        )
    # The earlier daily sweeps ran.
    for days_ago in range(spec.days + 100, 0, -1):
        day = today - timedelta(days=days_ago)
        book.rows["sweep_runs"].append(
            (day, business_day_start(day, settings.time_zone), '{"seeded": true}')
        )
    book.email_of = dict(zip(shopper_ids, has_email, strict=True))
    book.shopper_ids = shopper_ids
    counts["shoppers"] = spec.shoppers
    counts["merchants"] = spec.merchants
    counts["orders"] = len(orders)
    counts["instalments"] = len(instalments)
    return book


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _entry(
    entry_id: str,
    kind: str,
    legs: list[tuple[str, int]],
    *,
    created_at: datetime,
    memo: str,
    shopper_id: str | None = None,
    merchant_id: str | None = None,
    order_id: str | None = None,
) -> tuple[Row, list[Row]]:
    postings = [
        (entry_id, seq, code, CURRENCY, amount) for seq, (code, amount) in enumerate(legs, 1)
    ]
    entry = (entry_id, kind, shopper_id, merchant_id, order_id, None, len(legs), memo, created_at)
    return entry, postings


def journal_history(book: Book) -> Iterator[tuple[Row, list[Row]]]:
    """The entries the services posted for the book so far: activation, merchant fee, plan fee,
    the late fees accrued (one entry per order here, one per day in reality) and one payment
    per paid instalment. Receivables then equal the statements (``audit`` passes). Ids are
    derived from the order's, so the stream can be replayed (postings first, then entries)."""
    orders, instalments = book.rows["orders"], book.rows["instalments"]
    time_zone = book.settings.time_zone
    yesterday_start = business_day_start(book.spec.business_on, time_zone) - timedelta(hours=1)
    cash = accounts.PLATFORM_CASH.code(CURRENCY)
    for order_index, start, end in book.delivered:
        order = orders[order_index]
        shopper_id, order_id, merchant_id = order[ORDER_SHOPPER : ORDER_MERCHANT + 1]
        amount, delivered_at = order[ORDER_AMOUNT], order[ORDER_DELIVERED_AT]
        suffix = order_id.partition("_")[2]
        receivable = accounts.shopper_receivable(shopper_id).code(CURRENCY)
        payable = accounts.merchant_payable(merchant_id).code(CURRENCY)
        common = {"shopper_id": shopper_id, "order_id": order_id, "created_at": delivered_at}
        yield _entry(
            f"je_{suffix}A",
            "order_activation",
            [(receivable, amount), (payable, -amount)],
            merchant_id=merchant_id,
            memo="order delivered: shopper owes the principal, merchant is owed it",
            **common,
        )
        merchant_fee = basis_points_of(amount, MERCHANT_FEE_BPS)
        yield _entry(
            f"je_{suffix}M",
            "merchant_fee",
            [(payable, merchant_fee), (accounts.MERCHANT_FEE_INCOME.code(CURRENCY), -merchant_fee)],
            merchant_id=merchant_id,
            order_id=order_id,
            created_at=delivered_at,
            memo=f"merchant fee {MERCHANT_FEE_BPS} bps",
        )
        rows = instalments[start:end]
        plan_fees = sum(row[INSTALMENT["fees_minor"]] for row in rows)
        if plan_fees:
            yield _entry(
                f"je_{suffix}F",
                "instalment_fee",
                [
                    (receivable, plan_fees),
                    (accounts.INSTALMENT_FEE_INCOME.code(CURRENCY), -plan_fees),
                ],
                memo="instalments_3 fee",
                **common,
            )
        late_fees = sum(
            row[INSTALMENT["late_fees_minor"]]
            for row in rows
            if row[INSTALMENT["status"]] != "paid"
        )
        if late_fees:
            yield _entry(
                f"je_{suffix}L",
                "late_fee",
                [(receivable, late_fees), (accounts.LATE_FEE_INCOME.code(CURRENCY), -late_fees)],
                shopper_id=shopper_id,
                order_id=order_id,
                created_at=yesterday_start,
                memo="daily late fee",
            )
        for row in rows:
            if row[INSTALMENT["status"]] == "paid":
                paid = row[INSTALMENT["paid_principal_minor"]] + row[INSTALMENT["paid_fees_minor"]]
                settled_on = row[INSTALMENT["settled_on"]]
                yield _entry(
                    f"je_{suffix}P{row[INSTALMENT['seq']]}",
                    "shopper_payment",
                    [(cash, paid), (receivable, -paid)],
                    shopper_id=shopper_id,
                    order_id=order_id,
                    created_at=business_day_start(settled_on, time_zone) + timedelta(hours=12),
                    memo="payment by alipay",
                )


# Identifiers shoppers share, so that the nightly graph has a real book's work: 8 % of shoppers in
# offices of 8 behind one IP address (groups the graph scores), 5 % behind carrier NATs of 50
# (infrastructure: too many holders, left out), 2 % sharing a device with the shopper before
# (households: pairs, too small to be a ring); every other identifier is the shopper's own.
OFFICE_SIZE, NAT_SIZE = 8, 50


def _link_keys(index: int) -> dict[str, str]:
    if index % 100 < OFFICE_SIZE:
        ip = f"office:{index // 100}"
    elif index % 1000 >= 1000 - NAT_SIZE:
        ip = f"nat:{index // 1000}"
    else:
        ip = f"ip:{index}"
    return {
        "device": f"device:{index - 1 if index % 50 == 1 else index}",
        "ip": ip,
        "phone": f"phone:{index}",
        "address": f"address:{index}",
    }


def link_history(book: Book) -> Iterator[Row]:
    """The link observations checkouts recorded: device, IP, phone and address of every order
    placed in the graph's window (keyed hashes; the phone's is the enrolment's own)."""
    since = business_day_start(book.spec.business_on, book.settings.time_zone) - timedelta(
        days=LINK_WINDOW_DAYS
    )
    index_of = {shopper_id: index for index, shopper_id in enumerate(book.shopper_ids)}
    hashes: dict[str, str] = {}

    def hashed(key: str) -> str:
        if key not in hashes:
            hashes[key] = hashlib.sha256(key.encode()).hexdigest()
        return hashes[key]

    created = ORDER_COLUMNS.index("created_at")
    for order in book.rows["orders"]:
        if order[created] < since:
            continue
        shopper_id = order[ORDER_SHOPPER]
        for kind, key in _link_keys(index_of[shopper_id]).items():
            yield (shopper_id, order[ORDER_ID], kind, hashed(key), order[ORDER_MERCHANT],
                   order[created])  # fmt: skip


def signal_history(book: Book) -> tuple[list[Row], list[Row]]:
    """The online signals' rows (``risk_signal_events``, ``risk_hour_counts``) the checkouts of
    the book's orders wrote, as the previous night's prune left them (what a checkout at the
    start of yesterday still read): each order's device, IP block and address cluster events
    (``signals.event_rows``, keys hashed as the link history's) and its two hour counts."""
    yesterday = business_day_start(
        book.spec.business_on - timedelta(days=1), book.settings.time_zone
    )
    events_before, hours_before = signal_upkeep.prune_cutoffs(yesterday)
    since = min(min(events_before.values()), hours_before)
    index_of = {shopper_id: index for index, shopper_id in enumerate(book.shopper_ids)}
    created = ORDER_COLUMNS.index("created_at")
    outcome = ORDER_COLUMNS.index("decision_outcome")
    events: list[Row] = []
    hours: dict[tuple[str, str, datetime, int], list[int]] = defaultdict(lambda: [0, 0])
    for order in book.rows["orders"]:
        placed = order[created]
        if placed < since:
            continue
        link = _link_keys(index_of[order[ORDER_SHOPPER]])
        keys = {
            kind: hashlib.sha256(link[name].encode()).hexdigest()
            for kind, name in (("device", "device"), ("ip_block", "ip"), ("cluster", "address"))
        }
        events.extend(
            tuple(row[column] for column in SIGNAL_EVENT_COLUMNS)
            for row in signals.event_rows(
                keys=keys,
                shopper_id=order[ORDER_SHOPPER],
                order_id=order[ORDER_ID],
                merchant_id=order[ORDER_MERCHANT],
                amount_minor=order[ORDER_AMOUNT],
                status=order[outcome],
                created_at=placed,
            )
            if row["created_at"] >= events_before[row["kind"]]
        )
        if placed >= hours_before:
            for row in signals.hour_rows(
                shopper_id=order[ORDER_SHOPPER],
                merchant_id=order[ORDER_MERCHANT],
                amount_minor=order[ORDER_AMOUNT],
                created_at=placed,
            ):
                counts = hours[(row["scope"], row["key"], row["hour"], row["stripe"])]
                counts[0] += 1
                counts[1] += row["amount_minor"]
    return events, [(*key, *counts) for key, counts in sorted(hours.items())]


def contact_history(book: Book) -> Iterator[tuple[Row, Row | None]]:
    """The reminders the earlier sweeps planned (and the worker sent): every ladder step that
    fell on a past business day while the instalment was unpaid, with its outbox message."""
    orders, instalments = book.rows["orders"], book.rows["instalments"]
    settings = book.settings
    policy = ContactPolicy.from_settings(settings)
    steps = load_ladder(settings.dunning_ladder_file).reminder_steps()
    yesterday = book.spec.business_on - timedelta(days=1)
    phone_masked, email_masked = book.masked
    for order_index, start, end in book.delivered:
        order = orders[order_index]
        shopper_id, order_id = order[ORDER_SHOPPER], order[ORDER_ID]
        disputed = order_id in book.disputed
        delivered_on = policy.local(order[ORDER_DELIVERED_AT]).date()
        has_email = book.email_of[shopper_id]
        suffix = order_id.partition("_")[2]
        for row in instalments[start:end]:
            seq, due_on = row[INSTALMENT["seq"]], row[INSTALMENT["due_on"]]
            settled_on = row[INSTALMENT["settled_on"]]
            for step in steps:
                on = due_on + timedelta(days=step.day)
                if on > yesterday or on <= delivered_on or (settled_on and settled_on < on):
                    continue
                day_start = business_day_start(on, settings.time_zone)
                scheduled_at = policy.at(on, step.send_at)
                for channel in step.channels:
                    attempt_id = f"cnt_{suffix}{seq}{step.day:+d}{channel[0]}"
                    reason = (
                        "dispute_open"
                        if disputed
                        else "no_verified_email"
                        if channel == "email" and not has_email
                        else None
                    )
                    destination = {"sms": phone_masked, "email": email_masked}.get(channel)
                    attempt = (
                        shopper_id,
                        attempt_id,
                        order_id,
                        seq,
                        channel,
                        step.day,
                        f"day_{step.day:+d}",
                        step.template,
                        scheduled_at,
                        None if reason else scheduled_at,
                        "suppressed" if reason else "sent",
                        reason,
                        None if reason else destination,
                        day_start,
                    )
                    message = None
                    if reason is None:
                        payload = json.dumps({"shopper_id": shopper_id, "attempt_id": attempt_id})
                        message = (
                            f"obx_{attempt_id[4:]}",
                            collections_service.CONTACT_TOPIC,
                            payload,
                            scheduled_at,
                            1,
                            scheduled_at,
                            day_start,
                            shopper_id,  # the shard key: the message's subject (migration 0039)
                        )
                    yield attempt, message


def table_streams(book: Book, *, history: bool) -> list[tuple[str, tuple[str, ...], Iterable[Row]]]:
    """What to load, in an order the foreign keys and the journal triggers accept."""
    streams: list[tuple[str, tuple[str, ...], Iterable[Row]]] = [
        (table, columns, book.rows[table]) for table, columns in TABLES
    ]
    if history:
        # Each history is generated once: the first table's stream keeps the second's rows (and
        # the open items of the merchant payables, as the ledger writes them with the postings).
        open_items: list[Row] = []
        postings, entries = _one_pass(_sharded(journal_history(book), open_items))
        attempts, messages = _one_pass(
            (
                ([attempt], [message] if message else [])
                for attempt, message in contact_history(book)
            )
        )
        streams += [
            ("ledger_postings", POSTING_COLUMNS, postings),
            ("journal_entries", JOURNAL_ENTRY_COLUMNS, entries),
            ("ledger_open_items", OPEN_ITEM_COLUMNS, open_items),
            ("contact_attempts", CONTACT_COLUMNS, attempts),
            ("outbox_messages", OUTBOX_COLUMNS, messages),
            ("risk_link_observations", LINK_COLUMNS, link_history(book)),
        ]
        signal_events, signal_hours = signal_history(book)
        streams += [
            ("risk_signal_events", SIGNAL_EVENT_COLUMNS, signal_events),
            ("risk_hour_counts", SIGNAL_HOUR_COLUMNS, signal_hours),
        ]
    return streams


def _sharded(
    history: Iterable[tuple[Row, list[Row]]], open_items: list[Row]
) -> Iterator[tuple[list[Row], list[Row]]]:
    """(postings, [entry]) pairs of the journal history, each row with its entry's shard key;
    the postings to merchant payables are added to ``open_items`` as ledger_open_items rows."""
    payable = accounts.AccountKind.MERCHANT_PAYABLE.value
    for entry, postings in history:
        key = subject_shard_key(entry[2], entry[3])
        for entry_id, _, code, currency, amount in postings:
            if code.startswith(f"{payable}:"):
                owner = code.split(":")[1]
                open_items.append(
                    (owner, code, entry_id, payable, currency, entry[1], entry[4], amount, entry[8])
                )
        yield [(*posting, key) for posting in postings], [(*entry, key)]


def _one_pass(pairs: Iterator[tuple[list[Row], list[Row]]]) -> tuple[Iterator[Row], Iterator[Row]]:
    """Two streams from one pass over ``pairs``: the first yields the first rows of each pair as
    it goes and keeps the second ones, which the second stream (read after the first) yields."""
    kept: list[Row] = []

    def first() -> Iterator[Row]:
        for rows, later in pairs:
            kept.extend(later)
            yield from rows

    def second() -> Iterator[Row]:
        yield from kept
        kept.clear()

    return first(), second()


JOURNAL_TABLES = ("ledger_postings", "journal_entries")


def recreate_postgresql(url: str) -> None:
    name = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name)))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(name))))


def _journal_guards(url: str, action: str) -> None:
    with psycopg.connect(url) as conn:
        for table in JOURNAL_TABLES:
            conn.execute(
                sql.SQL("ALTER TABLE {} {} TRIGGER USER").format(
                    sql.Identifier(table), sql.SQL(action)
                )
            )


def _drop_keys_and_indexes(conn: psycopg.Connection[Any], tables: list[str]) -> list[sql.Composed]:
    """Drop the foreign keys and the non-unique indexes of ``tables`` (in the load's transaction);
    the statements that put them back. Checked and built once over the loaded rows, they cost a
    fraction of what checking and updating them row by row during ``COPY`` costs."""
    restore: list[sql.Composed] = []
    foreign_keys = conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE contype = 'f' AND conrelid::regclass::text = ANY(%s) ORDER BY conname",
        (tables,),
    ).fetchall()
    for table, name, definition in foreign_keys:
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier(table), sql.Identifier(name)
            )
        )
        restore.append(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                sql.Identifier(table), sql.Identifier(name), sql.SQL(definition)
            )
        )
    indexes = conn.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indrelid WHERE c.relname = ANY(%s)"
        " AND NOT i.indisunique AND NOT i.indisprimary ORDER BY 1",
        (tables,),
    ).fetchall()
    for name, definition in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        restore.insert(0, sql.Composed([sql.SQL(definition)]))
    return restore


def load_postgresql(url: str, book: Book, *, history: bool) -> dict[str, tuple[int, float]]:
    """COPY every table in one transaction. The journal guards (balance, seal) are switched off
    while the history is copied: it is generated balanced, and they check row by row. Foreign
    keys and non-unique indexes are dropped for the copy and put back after it."""
    loaded: dict[str, tuple[int, float]] = {}
    if history:
        _journal_guards(url, "DISABLE")
    try:
        with psycopg.connect(url) as conn:
            streams = table_streams(book, history=history)
            restore = _drop_keys_and_indexes(conn, [table for table, _, _ in streams])
            for table, columns, rows in streams:
                started = time.perf_counter()
                statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                    sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
                )
                count = 0
                with conn.cursor() as cursor, cursor.copy(statement) as copy:
                    for row in rows:
                        copy.write_row(row)
                        count += 1
                loaded[table] = (count, time.perf_counter() - started)
            started = time.perf_counter()
            for statement in restore:
                conn.execute(statement)
            loaded["foreign keys and indexes"] = (len(restore), time.perf_counter() - started)
            started = time.perf_counter()
            conn.commit()
            loaded["commit"] = (0, time.perf_counter() - started)
    finally:
        if history:
            _journal_guards(url, "ENABLE")
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute("VACUUM (ANALYZE)")
        loaded["vacuum analyze"] = (0, time.perf_counter() - started)
        with contextlib.suppress(psycopg.Error):
            conn.execute("CHECKPOINT")  # needs pg_checkpoint; harmless when refused
    return loaded


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    return value


def load_sqlite(path: Path, book: Book, *, history: bool) -> dict[str, tuple[int, float]]:
    """One transaction of ``executemany``; the journal triggers stay on (postings go first)."""
    loaded: dict[str, tuple[int, float]] = {}
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("BEGIN")
        for table, columns, rows in table_streams(book, history=history):
            started = time.perf_counter()
            statement = (
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})"
            )
            before = conn.total_changes
            conn.executemany(statement, ([_sqlite_value(v) for v in row] for row in rows))
            loaded[table] = (conn.total_changes - before, time.perf_counter() - started)
        conn.execute("COMMIT")
        started = time.perf_counter()
        conn.execute("ANALYZE")
        loaded["analyze"] = (0, time.perf_counter() - started)
    finally:
        conn.close()
    return loaded


# --------------------------------------------------------------------------------------------
# Measuring one sweep
# --------------------------------------------------------------------------------------------

# Other domains' jobs, as the daily sweep's steps call them, each timed as its own phase.
DAILY_JOBS = (
    ("dispute_resolution", "enforce_deadlines"),
    ("step_up", "expire_step_ups"),
    ("risk_monitoring", "first_instalment_missed"),
    ("risk_monitoring", "merchant_drift"),
    ("risk_monitoring", "nightly_graph"),
    ("settlement_run", "settle_daily"),
    ("complaints", "flag_overdue_complaints"),
    ("risk_counters", "refresh_window_bounds"),
    ("signal_upkeep", "prune"),
)
JOB_PHASES = {
    "enforce_deadlines": "dispute deadlines",
    "expire_step_ups": "step-up expiry",
    "first_instalment_missed": "first-payment monitor",
    "merchant_drift": "merchant drift",
    "nightly_graph": "nightly graph",
    "settle_daily": "settlement",
    "flag_overdue_complaints": "complaints",
    "refresh_window_bounds": "top-buyer bounds",
    "prune": "signal prune",
}
# In the order of daily_sweep.STEPS: the two jobs before collections, collections, the rest.
PHASES = (
    *(
        (JOB_PHASES[function], getattr(daily_sweep, module), function)
        for module, function in DAILY_JOBS[:2]
    ),
    ("auto-confirm", fulfilment, "auto_confirm_shipped"),
    ("mark overdue", daily_sweep, "mark_overdue"),
    ("late fees", daily_sweep, "accrue_late_fees"),
    ("escalation", daily_sweep, "escalate"),
    ("reminders", collections_service, "plan_reminders"),
    ("bureau files", bureau_reporting, "monthly_bureau_files"),
    *(
        (JOB_PHASES[function], getattr(daily_sweep, module), function)
        for module, function in DAILY_JOBS[2:]
    ),
)
# What the stepped run does around the steps: the date's lock and check, each step's claim of its
# row in sweep_steps and its commit, the summary at the end.
STEP_OVERHEAD = "step claims + commits"

PHASE_NAMES = tuple(dict.fromkeys(name for name, _, _ in PHASES))


def _no_job(session: Any, context: Any) -> dict[str, int]:
    return {}


@contextlib.contextmanager
def without_daily_jobs() -> Iterator[None]:
    """The sweep without other domains' jobs (``--no-daily-jobs``), to time collections alone."""
    with contextlib.ExitStack() as stack:
        for module, function in DAILY_JOBS:
            stack.enter_context(mock.patch.object(getattr(daily_sweep, module), function, _no_job))
        yield


@dataclass
class PhaseStats:
    seconds: float = 0.0
    statements: int = 0
    sql_seconds: float = 0.0


class SweepProbe:
    """Wraps the sweep's phase functions and counts the SQL each phase sends."""

    def __init__(
        self, runtime: Runtime, replacements: dict[str, Callable[..., Any]] | None = None
    ) -> None:
        self.engine = runtime.database.engine
        self.replacements = replacements or {}
        self.stats: dict[str, PhaseStats] = defaultdict(PhaseStats)
        self.current = "begin"
        self.late_fee_instalments = 0
        self.late_fee_orders = 0
        self.instalments_marked_overdue = 0
        self.inner: tuple[float, float] = (0.0, 0.0)
        # (phase, statement shape) -> [executions, seconds waiting on the database]
        self.statements: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])
        self._statement_started = 0.0
        # PostgreSQL backend pid -> its CPU seconds when first seen (to measure server CPU)
        self.backends: dict[int, float] = {}
        self._backends_seen: set[int] | None = set() if runtime.database.is_postgresql else None

    def server_cpu_seconds(self) -> float:
        return sum(_process_cpu_seconds(pid) - cpu for pid, cpu in self.backends.items())

    def _before(self, conn: Any, *_: Any) -> None:
        if self._backends_seen is not None:
            pid = _backend_pid(conn)
            if pid is not None and pid not in self.backends:
                self.backends[pid] = _process_cpu_seconds(pid)
        self._statement_started = time.perf_counter()

    def _after(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        waited = time.perf_counter() - self._statement_started
        stats = self.stats[self.current]
        stats.statements += 1
        stats.sql_seconds += waited
        shape = self.statements[(self.current, _statement_shape(statement))]
        shape[0] += 1
        shape[1] += waited

    def top_statements(self, count: int = 12) -> list[dict[str, Any]]:
        ranked = sorted(self.statements.items(), key=lambda item: -item[1][1])[:count]
        return [
            {"phase": phase, "statement": shape, "executions": int(n), "seconds": seconds}
            for (phase, shape), (n, seconds) in ranked
        ]

    def _phase(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            previous, self.current = self.current, name
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.stats[name].seconds += time.perf_counter() - started
                self.current = previous

        return timed

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        run_sweep = daily_sweep.run_stepped_sweep
        charge_daily_late_fees = late_fees.charge_daily_late_fees
        mark_overdue = repayment_service.mark_overdue

        def outer_run_sweep(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            self.current = STEP_OVERHEAD
            try:
                return run_sweep(*args, **kwargs)
            finally:
                self.inner = (started, time.perf_counter())
                self.current = "commit"

        def counting_late_fees(*args: Any, **kwargs: Any) -> Any:
            run = charge_daily_late_fees(*args, **kwargs)
            self.late_fee_instalments += run.instalments
            self.late_fee_orders += run.orders
            return run

        def counting_mark_overdue(*args: Any, **kwargs: Any) -> int:
            marked = mark_overdue(*args, **kwargs)
            self.instalments_marked_overdue += marked
            return marked

        sqlalchemy_event.listen(self.engine, "before_cursor_execute", self._before)
        sqlalchemy_event.listen(self.engine, "after_cursor_execute", self._after)
        with contextlib.ExitStack() as stack:
            for name, module, attribute in PHASES:
                function = self.replacements.get(attribute, getattr(module, attribute))
                stack.enter_context(
                    mock.patch.object(module, attribute, self._phase(name, function))
                )
            stack.enter_context(
                mock.patch.object(daily_sweep, "run_stepped_sweep", outer_run_sweep)
            )
            stack.enter_context(
                mock.patch.object(late_fees, "charge_daily_late_fees", counting_late_fees)
            )
            stack.enter_context(
                mock.patch.object(repayment_service, "mark_overdue", counting_mark_overdue)
            )
            try:
                yield
            finally:
                sqlalchemy_event.remove(self.engine, "before_cursor_execute", self._before)
                sqlalchemy_event.remove(self.engine, "after_cursor_execute", self._after)


class PySpy:
    """py-spy sampling this very process (wall clock, idle included) while a block runs."""

    def __init__(self, output: Path, rate: int = 100) -> None:
        self.output = output
        self.rate = rate

    @contextlib.contextmanager
    def sampling(self) -> Iterator[None]:
        binary = Path(sys.executable).with_name("py-spy")
        process = subprocess.Popen(
            [str(binary), "record", "--pid", str(os.getpid()), "--rate", str(self.rate),
             "--idle", "--nonblocking", "--format", "raw", "-o", str(self.output)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.0)  # let it attach
        try:
            yield
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)

    def summary(self, top: int = 14) -> dict[str, Any]:
        if not self.output.exists():
            return {}
        leaf: Counter[str] = Counter()
        by_phase: dict[str, Counter[str]] = defaultdict(Counter)
        inclusive: Counter[str] = Counter()
        total = 0
        for line in self.output.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            frames = stack.split(";")
            if not any(frame.startswith("Runtime.sweep ") for frame in frames):
                continue
            count = int(count_text)
            total += count
            kind = _frame_kind(frames[-1])
            leaf[kind] += count
            by_phase[_frame_phase(frames)][kind] += count
            for name in {_frame_name(frame) for frame in frames if "(usefirst/" in frame}:
                inclusive[name] += count
        if not total:
            return {}
        return {
            "samples": total,
            "by_kind": {kind: n / total for kind, n in leaf.most_common()},
            "by_phase": {
                phase: {kind: n / total for kind, n in kinds.most_common()}
                for phase, kinds in sorted(by_phase.items(), key=lambda i: -sum(i[1].values()))
            },
            "usefirst_inclusive": {name: n / total for name, n in inclusive.most_common(top)},
        }


def _backend_pid(conn: Any) -> int | None:
    with contextlib.suppress(AttributeError):
        return int(conn.connection.dbapi_connection.info.backend_pid)
    return None


def _process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a local process (the PostgreSQL backend serving the sweep)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_stall_microseconds() -> int | None:
    """Cumulative time some runnable task waited for a CPU (Linux PSI), or None."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return int(some.rpartition("total=")[2])
    return None


def _statement_shape(statement: str) -> str:
    """The statement without its bind-parameter lists, cut to a readable length."""
    shape = " ".join(statement.split())
    if " IN (" in shape:
        head, _, tail = shape.partition(" IN (")
        shape = f"{head} IN (…){tail.partition(')')[2]}"
    return shape[:150]


def _frame_name(frame: str) -> str:
    function, _, where = frame.partition(" (")
    module = where.split(":")[0].removesuffix(".py").replace("/", ".")
    return f"{module}.{function}"


def _frame_phase(frames: list[str]) -> str:
    for index, frame in enumerate(frames[:-1]):
        if frame.startswith("SweepProbe._phase.<locals>.timed "):
            return frames[index + 1].partition(" (")[0]
    if any(frame.startswith("run_stepped_sweep ") for frame in frames):
        return "run_stepped_sweep (step claims, commits)"
    return "begin / commit"


def _frame_kind(last: str) -> str:
    # sqlite3 is C code: its time shows on the SQLAlchemy frame that calls the cursor.
    function = last.partition(" (")[0].rpartition(".")[2]
    if "psycopg" in last or function in ("do_execute", "do_executemany"):
        return "database driver (round trips, server time)"
    if "cryptography" in last:
        return "PII decryption"
    if "sqlalchemy" in last:
        return "SQLAlchemy (ORM, SQL compilation)"
    if "(usefirst/" in last:
        return "usefirst code"
    if "fractions.py" in last:
        return "Fraction arithmetic"
    return "other Python (stdlib, pydantic)"


@dataclass
class SweepResult:
    seconds: float
    summary: dict[str, Any]
    phases: dict[str, PhaseStats]
    late_fee_instalments: int
    late_fee_orders: int
    instalments_marked_overdue: int
    effects: dict[str, int]
    client_cpu_seconds: float = 0.0
    server_cpu_seconds: float | None = None
    cpu_stall_share: float | None = None
    statements: list[dict[str, Any]] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict)


def _table_counts(runtime: Runtime) -> dict[str, int]:
    queries = {
        "contact attempts": "SELECT status, COUNT(*) FROM contact_attempts GROUP BY status",
        "outbox": "SELECT topic, COUNT(*) FROM outbox_messages GROUP BY topic",
        "events": "SELECT type, COUNT(*) FROM events GROUP BY type",
        "journal": "SELECT kind, COUNT(*) FROM journal_entries GROUP BY kind",
        "instalments": "SELECT status, COUNT(*) FROM instalments GROUP BY status",
        "credit changes": (
            "SELECT new_status, COUNT(*) FROM credit_line_changes GROUP BY new_status"
        ),
    }
    counts: dict[str, int] = {}
    with runtime.database.transaction(read_only=True) as session:
        for prefix, query in queries.items():
            for key, count in session.execute(text(query)).all():
                counts[f"{prefix} {key}"] = int(count)
    return counts


def run_measured_sweep(
    runtime: Runtime,
    business_on: date,
    *,
    py_spy: PySpy | None = None,
) -> SweepResult:
    before = _table_counts(runtime)
    probe = SweepProbe(runtime)
    with probe.installed(), py_spy.sampling() if py_spy else contextlib.nullcontext():
        stall_before = _cpu_stall_microseconds()
        cpu_before = time.process_time()
        started = time.perf_counter()
        summary = runtime.sweep(business_on)
        ended = time.perf_counter()
        client_cpu = time.process_time() - cpu_before
        server_cpu = probe.server_cpu_seconds() if runtime.database.is_postgresql else None
        stall_after = _cpu_stall_microseconds()
    stall_share = None
    if stall_before is not None and stall_after is not None:
        stall_share = (stall_after - stall_before) / 1e6 / (ended - started)
    inner_started, inner_ended = probe.inner
    phases = dict(probe.stats)
    phases.setdefault("commit", PhaseStats()).seconds = ended - inner_ended
    phase_total = sum(phases[name].seconds for name in PHASE_NAMES if name in phases)
    phases.setdefault(STEP_OVERHEAD, PhaseStats()).seconds = (
        inner_ended - inner_started - phase_total
    )
    phases.setdefault("begin", PhaseStats()).seconds = inner_started - started
    after = _table_counts(runtime)
    effects = {
        key: after.get(key, 0) - before.get(key, 0)
        for key in sorted(set(after) | set(before))
        if after.get(key, 0) != before.get(key, 0)
    }
    return SweepResult(
        seconds=ended - started,
        summary=summary.as_dict(),
        phases=phases,
        late_fee_instalments=probe.late_fee_instalments,
        late_fee_orders=probe.late_fee_orders,
        instalments_marked_overdue=probe.instalments_marked_overdue,
        effects=effects,
        client_cpu_seconds=client_cpu,
        server_cpu_seconds=server_cpu,
        cpu_stall_share=stall_share,
        statements=probe.top_statements(),
        profile=py_spy.summary() if py_spy else {},
    )


# --------------------------------------------------------------------------------------------
# A reference sweep by another version of the engine (``--reference-commit``)
#
# The sweep was made set-based in one go; to show it changes nothing, the same book is swept by
# the per-row engine of an earlier commit (its ``src`` exported with ``git archive``, run in a
# subprocess on a ``CREATE DATABASE … TEMPLATE`` copy), and every row either sweep touched is
# compared.
# --------------------------------------------------------------------------------------------

REFERENCE_SWEEP = """
import json
import sys
from datetime import date
from pathlib import Path
from usefirst.kit.clock import business_day_start
from usefirst.kit.settings import Settings, load_field_cipher
from usefirst.runtime import Runtime
if sys.argv[4:5] == ["no-daily-jobs"]:
    try:
        from usefirst.flows import daily_sweep
    except ImportError:  # an engine whose sweep ran jobs registered by name
        try:
            from usefirst import daily_jobs
        except ImportError:  # an engine older than the daily jobs
            pass
        else:
            daily_jobs.BEFORE_COLLECTIONS.clear()
            daily_jobs.AFTER_COLLECTIONS.clear()
    else:
        for module, function in json.loads(sys.argv[5]):
            if hasattr(daily_sweep, module):  # a job the other engine's sweep has
                setattr(getattr(daily_sweep, module), function, lambda session, context: {})
settings = Settings(database_url=sys.argv[1], keys_file=Path(sys.argv[2]))
runtime = Runtime(settings, cipher=load_field_cipher(settings))
business_on = date.fromisoformat(sys.argv[3])
start = business_day_start(business_on, settings.time_zone)
runtime.clock = type("StartOfBusinessDay", (), {"now": lambda self, session: start})()
print(runtime.sweep(business_on).as_dict(with_jobs=False))
"""


def reference_sweep(
    *, commit: str, url: str, keys_file: Path, business_on: date, daily_jobs_on: bool = True
) -> float:
    """Sweep ``url`` with the engine of ``commit`` (without other domains' daily jobs unless
    ``daily_jobs_on``, as the engine's sweep here); the seconds it took."""
    source = Path(tempfile.mkdtemp(prefix="usefirst-reference-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "src"], check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", REFERENCE_SWEEP, url, str(keys_file), business_on.isoformat()]
        + ([] if daily_jobs_on else ["no-daily-jobs", json.dumps(DAILY_JOBS)]),
        env={**os.environ, "PYTHONPATH": str(source / "src")},
        check=True,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    log(f"reference {commit}: {completed.stdout.strip()} in {seconds:.1f} s")
    return seconds


def clone_postgresql(url: str, name: str) -> str:
    """A copy of the loaded bench database (``CREATE DATABASE … TEMPLATE``), its URL."""
    source = str(conninfo_to_dict(url)["dbname"])
    with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        for attempt in range(30):  # autovacuum may be visiting the template
            try:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                        sql.Identifier(name), sql.Identifier(source)
                    )
                )
                break
            except psycopg.errors.ObjectInUse:
                if attempt == 29:
                    raise
                time.sleep(2)
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


# What the sweep touched, compared between the engine's database and the prototype's.
COMPARISONS = {
    "instalments": (
        "SELECT shopper_id, order_id, seq, status, late_fees_minor, was_overdue FROM instalments"
    ),
    "orders": "SELECT shopper_id, id, status, updated_at FROM orders",
    "delinquent orders": (
        "SELECT shopper_id, order_id, first_delinquent_on, call_queue_since_on,"
        " bureau_reported_on, legal_referred_on, charged_off_on, charged_off_minor"
        " FROM delinquent_orders"
    ),
    "credit lines": "SELECT shopper_id, status, used_minor FROM credit_lines",
    "late-fee postings": (
        "SELECT e.shopper_id, e.order_id, e.memo, e.created_at, p.seq, p.account_code,"
        " p.amount_minor FROM journal_entries e JOIN ledger_postings p ON p.entry_id = e.id"
        " WHERE e.kind = 'late_fee' AND e.created_at = %(now)s"
    ),
    "contact attempts": (
        "SELECT shopper_id, order_id, seq, step_day, channel, step, template, scheduled_at,"
        " status, status_reason FROM contact_attempts WHERE created_at = %(now)s"
    ),
    "journal entries of the sweep": (
        "SELECT e.kind, e.shopper_id, e.merchant_id, e.order_id, e.memo, p.seq, p.account_code,"
        " p.amount_minor FROM journal_entries e JOIN ledger_postings p ON p.entry_id = e.id"
        " WHERE e.created_at = %(now)s"
    ),
    "events of the sweep": (
        "SELECT type, merchant_id, shopper_id, data::text FROM events WHERE created_at = %(now)s"
    ),
    "credit line changes": (
        "SELECT shopper_id, previous_status, new_status, reason_code FROM credit_line_changes"
        " WHERE created_at = %(now)s"
    ),
    "contact outbox": (
        "SELECT a.shopper_id, a.order_id, a.seq, a.step_day, a.channel, m.available_at,"
        " m.attempts FROM outbox_messages m JOIN contact_attempts a"
        " ON a.shopper_id = m.payload->>'shopper_id' AND a.id = m.payload->>'attempt_id'"
        " WHERE m.topic = 'contact' AND m.created_at = %(now)s"
    ),
}


def compare_databases(engine_url: str, other_url: str, *, now: datetime) -> dict[str, Any]:
    differences: dict[str, Any] = {}
    with psycopg.connect(engine_url) as left, psycopg.connect(other_url) as right:
        for name, query in COMPARISONS.items():
            engine_rows = Counter(left.execute(query, {"now": now}).fetchall())
            other_rows = Counter(right.execute(query, {"now": now}).fetchall())
            differences[name] = {
                "rows": sum(engine_rows.values()),
                "only_engine": sum((engine_rows - other_rows).values()),
                "only_reference": sum((other_rows - engine_rows).values()),
            }
    return differences


# --------------------------------------------------------------------------------------------
# One backend, end to end
# --------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gb = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        first = Path("/proc/meminfo").read_text().splitlines()[0]
        memory_gb = int(first.split()[1]) / 1024 / 1024
    revision = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    changed = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    return {
        "source": f"{revision}"
        + (f" + {len(changed)} uncommitted files in src/" if changed else ""),
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(memory_gb, 1),
        "python": sys.version.split()[0],
        "load_average": os.getloadavg(),
    }


def postgresql_settings(url: str) -> dict[str, str]:
    names = (
        "server_version",
        "shared_buffers",
        "work_mem",
        "synchronous_commit",
        "max_wal_size",
        "checkpoint_timeout",
    )
    with psycopg.connect(url) as conn:
        values = {}
        for name in names:
            row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            values[name] = str(row[0]) if row else ""
        return values


def server_activity(url: str) -> tuple[int, int] | None:
    """PostgreSQL: (WAL position in bytes, checkpoints so far), to tell what a sweep wrote."""
    if url.startswith("sqlite"):
        return None
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        row = conn.execute(
            "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn,"
            " checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


def sweep_and_check(
    *,
    label: str,
    settings: Settings,
    cipher: FieldCipher,
    business_on: date,
    py_spy: PySpy | None,
    rerun: bool,
    history: bool,
) -> dict[str, Any]:
    """One measured sweep, the idempotent re-run, and the ledger audit afterwards."""
    runtime = Runtime(settings, cipher=cipher)
    runtime.clock = _StartOfBusinessDay(business_on, settings.time_zone)
    log(f"{label}: sweeping {business_on} …")
    server_before = server_activity(settings.database_url)
    first = run_measured_sweep(runtime, business_on, py_spy=py_spy)
    server_after = server_activity(settings.database_url)
    log(f"{label}: first sweep {first.seconds:.2f} s")
    wal = None
    if server_before is not None and server_after is not None:
        wal = {
            "wal_bytes": server_after[0] - server_before[0],
            "checkpoints": server_after[1] - server_before[1],
        }
        log(
            f"{label}: the sweep wrote {wal['wal_bytes'] / 2**20:,.0f} MiB of WAL;"
            f" checkpoints during it: {wal['checkpoints']}"
        )
    second = None
    if rerun:
        second = run_measured_sweep(runtime, business_on)
        log(
            f"{label}: re-run {second.seconds * 1000:.1f} ms "
            f"(already_ran={second.summary['already_ran']})"
        )
    ledger_audit = None
    if history:  # without the history the receivables do not match the statements
        started = time.perf_counter()
        with runtime.database.transaction(read_only=True) as session:
            report = audit(session)
        ledger_audit = {
            "balanced": report.is_balanced,
            "entries": report.entries,
            "shoppers_checked": report.shoppers_checked,
            "problems": report.problems[:5],
            "seconds": time.perf_counter() - started,
        }
        log(f"{label}: ledger audit after the sweep: {ledger_audit}")
    runtime.database.dispose()
    return {
        "sweep": _result_dict(first),
        "wal": wal,
        "rerun": _result_dict(second) if second else None,
        "ledger_audit": ledger_audit,
    }


# --------------------------------------------------------------------------------------------
# A loaded book kept for later runs (``--book-database``)
#
# Generating and loading the 1M book takes far longer than the sweep. With ``--book-database B``
# the book is loaded once into ``B`` and every run sweeps a fresh file copy of it (``CREATE
# DATABASE … TEMPLATE``), migrated to the current head first. What the run needs besides the
# rows (the spec it was made from, the generator's counts and expectations, the field keys its
# ciphertexts were made with) is kept as the comment of ``B``.
# --------------------------------------------------------------------------------------------


def _spec_document(spec: BookSpec, *, history: bool) -> dict[str, Any]:
    # A book kept before the generator added link observations and the previous night's jobs
    # differs from what it makes now: its description says so, and it is loaded again.
    return {
        **spec.__dict__,
        "business_on": spec.business_on.isoformat(),
        "history": history,
        "links_and_previous_night": True,
    }


def read_kept_book(url: str) -> dict[str, Any] | None:
    """The description of the book kept in ``url``'s database, if that database exists."""
    name = str(conninfo_to_dict(url)["dbname"])
    with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (name,),
        ).fetchone()
    if row is None or not row[0]:
        return None
    try:
        document = json.loads(row[0])
    except ValueError:
        return None
    return document if isinstance(document, dict) and "spec" in document else None


def keep_book(url: str, document: dict[str, Any]) -> None:
    name = str(conninfo_to_dict(url)["dbname"])
    with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name), sql.Literal(json.dumps(document))
            )
        )


# The other domains' nightly jobs, run by the engine on the loaded book for the day before the
# sweep date: the book is then as a live engine leaves it, with the history's first-payment
# defaults flagged and its merchants paid through that day, so the measured night opens a day's
# cases and settles a day's entries (without it, the first night settles the whole history).
PREVIOUS_NIGHT_JOBS = (
    ("first-payment monitor", risk_monitoring.first_instalment_missed),
    ("merchant drift", risk_monitoring.merchant_drift),
    ("nightly graph", risk_monitoring.nightly_graph),
    ("settlement", settlement_run.settle_daily),
)


def run_previous_night(
    settings: Settings, cipher: FieldCipher, business_on: date
) -> dict[str, tuple[float, dict[str, int]]]:
    runtime = Runtime(settings, cipher=cipher)
    context = DailyContext(
        business_on=business_on,
        now=business_day_start(business_on, settings.time_zone),
        settings=settings,
        cipher=cipher,
    )
    done: dict[str, tuple[float, dict[str, int]]] = {}
    try:
        for name, job in PREVIOUS_NIGHT_JOBS:
            started = time.perf_counter()
            with runtime.database.transaction() as session:
                counts = job(session, context)
            done[name] = (time.perf_counter() - started, counts)
    finally:
        runtime.database.dispose()
    return done


def load_book(
    *, label: str, url: str, spec: BookSpec, settings: Settings, history: bool
) -> dict[str, Any]:
    """Generate the book and load it into ``url`` (recreated); its description."""
    is_sqlite = url.startswith("sqlite")
    cipher = load_field_cipher(settings)
    log(f"{label}: generating the book ({spec.instalments:,} instalments in the window)")
    started = time.perf_counter()
    book = build_book(spec, settings=settings, cipher=cipher)
    generate_seconds = time.perf_counter() - started
    log(
        f"{label}: generated {book.counts['orders']:,} orders, "
        f"{book.counts['instalments']:,} instalments in {generate_seconds:.1f} s"
    )
    started = time.perf_counter()
    if is_sqlite:
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        upgrade(url)
        loaded = load_sqlite(path, book, history=history)
    else:
        recreate_postgresql(url)
        upgrade(url)
        loaded = load_postgresql(url, book, history=history)
    load_seconds = time.perf_counter() - started
    # On the database just loaded (with --book-database, the kept book, not the one swept).
    previous_night = run_previous_night(
        Settings(database_url=url, keys_file=settings.keys_file),
        cipher,
        spec.business_on - timedelta(days=1),
    )
    log(
        f"{label}: the previous night's risk and settlement jobs: "
        + ", ".join(
            f"{name} {seconds:.1f} s {counts}" for name, (seconds, counts) in previous_night.items()
        )
    )
    log(
        f"{label}: migrated and loaded in {load_seconds:.1f} s: "
        + ", ".join(
            f"{table} {rows:,} rows {seconds:.1f} s" for table, (rows, seconds) in loaded.items()
        )
    )
    return {
        "spec": _spec_document(spec, history=history),
        "book": dict(book.counts),
        "expected": dict(book.expected),
        "generate_seconds": generate_seconds,
        "load_seconds": load_seconds,
        "load": {table: {"rows": rows, "seconds": sec} for table, (rows, sec) in loaded.items()},
        "previous_night": {
            name: {"seconds": seconds, "counts": counts}
            for name, (seconds, counts) in previous_night.items()
        },
        "keys": json.loads(settings.keys_file.read_text()),
    }


def bench_backend(
    *,
    label: str,
    url: str,
    spec: BookSpec,
    keys_file: Path,
    py_spy_dir: Path | None,
    rerun: bool,
    history: bool,
    reference_commit: str | None,
    daily_jobs_on: bool,
    book_url: str | None = None,
) -> dict[str, Any]:
    is_sqlite = url.startswith("sqlite")
    settings = Settings(database_url=url, keys_file=keys_file)
    if book_url is None:
        loaded = load_book(label=label, url=url, spec=spec, settings=settings, history=history)
    else:
        kept = read_kept_book(book_url)
        if kept is not None and kept["spec"] == _spec_document(spec, history=history):
            log(f"{label}: reusing the book kept in {conninfo_to_dict(book_url)['dbname']}")
        else:
            if kept is not None:
                log(f"{label}: the kept book was made from another spec; loading it again")
            kept = load_book(
                label=label, url=book_url, spec=spec, settings=settings, history=history
            )
            keep_book(book_url, kept)
        loaded = kept
        if not keys_file.exists():
            keys_file.write_text(json.dumps(loaded["keys"]))
        started = time.perf_counter()
        clone_postgresql(book_url, str(conninfo_to_dict(url)["dbname"]))
        upgrade(url)  # migrations added since the book was loaded
        log(f"{label}: copied and migrated the kept book in {time.perf_counter() - started:.1f} s")
    cipher = load_field_cipher(settings)
    result: dict[str, Any] = {
        "label": label,
        "backend": "sqlite" if is_sqlite else "postgresql",
        "spec": {**spec.__dict__, "business_on": spec.business_on.isoformat()},
        "book": loaded["book"],
        "expected": loaded["expected"],
        "generate_seconds": loaded["generate_seconds"],
        "load_seconds": loaded["load_seconds"],
        "load": loaded["load"],
        "previous_night": loaded["previous_night"],
        "reused_book": book_url is not None,
        "sweeps": {},
    }
    if not is_sqlite:
        result["postgresql"] = postgresql_settings(url)
        log(
            f"{label}: server settings "
            + ", ".join(f"{name} {value}" for name, value in result["postgresql"].items())
        )
    reference_url = None
    if reference_commit and is_sqlite:
        log(f"{label}: the reference comparison is PostgreSQL only; skipped")
    elif reference_commit:
        name = f"{conninfo_to_dict(url)['dbname']}_reference"
        started = time.perf_counter()
        reference_url = clone_postgresql(url, name)
        log(f"{label}: copied the database to {name} in {time.perf_counter() - started:.1f} s")
    print_book(result)
    result["sweeps"]["engine"] = sweep_and_check(
        label=f"{label} engine",
        settings=settings,
        cipher=cipher,
        business_on=spec.business_on,
        py_spy=PySpy(py_spy_dir / f"sweep-{label}.txt") if py_spy_dir else None,
        rerun=rerun,
        history=history,
    )
    print_sweep(result, "engine")
    if reference_url is not None and reference_commit is not None:
        result["reference_seconds"] = reference_sweep(
            commit=reference_commit,
            url=reference_url,
            keys_file=keys_file,
            business_on=spec.business_on,
            daily_jobs_on=daily_jobs_on,
        )
        now = business_day_start(spec.business_on, settings.time_zone)
        comparison = compare_databases(url, reference_url, now=now)
        result["comparison"] = comparison
        same = all(not (c["only_engine"] or c["only_reference"]) for c in comparison.values())
        print(
            f"engine vs the engine of {reference_commit} "
            f"({result['reference_seconds']:.1f} s), row by row: "
            f"{'identical' if same else 'DIFFERENT'}"
        )
        for name, counts in comparison.items():
            print(
                f"  {name:<30}{counts['rows']:>12,} rows; only engine {counts['only_engine']:,},"
                f" only reference {counts['only_reference']:,}"
            )
        print()
    return result


def _result_dict(result: SweepResult) -> dict[str, Any]:
    return {
        "seconds": result.seconds,
        "summary": result.summary,
        "phases": {name: stats.__dict__ for name, stats in result.phases.items()},
        "late_fee_instalments": result.late_fee_instalments,
        "late_fee_orders": result.late_fee_orders,
        "instalments_marked_overdue": result.instalments_marked_overdue,
        "effects": result.effects,
        "client_cpu_seconds": result.client_cpu_seconds,
        "server_cpu_seconds": result.server_cpu_seconds,
        "cpu_stall_share": result.cpu_stall_share,
        "statements": result.statements,
        "profile": result.profile,
    }


PHASE_ORDER = ("begin", *PHASE_NAMES, STEP_OVERHEAD, "commit")


def print_book(result: dict[str, Any]) -> None:
    book = result["book"]
    print()
    print(f"== {result['label']} ({result['backend']}) ==")
    order_statuses = ("overdue", "delivered", "repaid", "shipped")
    print(
        f"book: {book['rows in window']:,} instalments due in the window "
        f"({_share(book, 'window')}); {book['instalments']:,} instalments in all; "
        f"{book['orders']:,} orders ({_share(book, 'orders', order_statuses)}); "
        f"{book['shoppers']:,} shoppers ({book.get('credit lines frozen', 0):,} frozen)"
    )
    print(
        f"generated in {result['generate_seconds']:.1f} s, "
        f"migrated and loaded in {result['load_seconds']:.1f} s; the previous night's jobs: "
        + ", ".join(
            f"{name} {job['seconds']:.1f} s" for name, job in result["previous_night"].items()
        )
    )
    print()


def print_sweep(result: dict[str, Any], name: str) -> None:
    expected, run = result["expected"], result["sweeps"][name]
    sweep = run["sweep"]
    summary = sweep["summary"]
    print()
    print(f"-- {result['label']}: {name} --")
    print(f"{'phase':<22}{'seconds':>10}{'share':>8}{'SQL stmts':>12}{'SQL wait s':>12}")
    total = sweep["seconds"]
    for phase in PHASE_ORDER:
        stats = sweep["phases"].get(phase)
        if stats is None:
            continue
        print(
            f"{phase:<22}{stats['seconds']:>10.2f}{stats['seconds'] / total:>8.0%}"
            f"{stats['statements']:>12,}{stats['sql_seconds']:>12.2f}"
        )
    statements = sum(stats["statements"] for stats in sweep["phases"].values())
    waited = sum(stats["sql_seconds"] for stats in sweep["phases"].values())
    verdict = "meets" if total <= GOAL_SECONDS else "misses"
    print(f"{'total':<22}{total:>10.2f}{'':>8}{statements:>12,}{waited:>12.2f}")
    print(f"goal ≤ {GOAL_SECONDS:.0f} s: {verdict}")
    server = sweep["server_cpu_seconds"]
    stall = sweep["cpu_stall_share"]
    print(
        f"CPU: this process {sweep['client_cpu_seconds']:.2f} s"
        + ("" if server is None else f", PostgreSQL backend {server:.2f} s")
        + ("" if stall is None else f"; tasks waited for a CPU {stall:.0%} of the wall time")
    )
    print()
    rows = [
        ("auto-confirmed orders", summary["auto_confirmed"], expected.get("auto-confirmed", 0)),
        (
            "instalments newly overdue",
            sweep["instalments_marked_overdue"],
            expected.get("newly overdue instalments", 0),
        ),
        (
            "orders with newly overdue instalments",
            summary["newly_overdue_orders"],
            expected.get("newly overdue orders", 0),
        ),
        (
            "instalments charged a late fee",
            sweep["late_fee_instalments"],
            expected.get("late-fee instalments (at most)", 0),
        ),
        ("orders charged (journal entries)", sweep["late_fee_orders"], None),
        ("late fees charged (minor units)", summary["late_fees_minor"], None),
        ("orders into the call queue", summary["call_queue"], expected.get("call queue", 0)),
        (
            "orders reported to the bureau",
            summary["bureau_reported"],
            expected.get("bureau reported", 0),
        ),
        ("reminders planned", summary["reminders_planned"], expected.get("reminders planned", 0)),
        (
            "reminders suppressed",
            sweep["effects"].get("contact attempts suppressed", 0),
            expected.get("reminders suppressed", 0),
        ),
    ]
    print(f"{'effect':<40}{'actual':>12}{'expected':>12}")
    for effect, actual, wanted in rows:
        print(f"{effect:<40}{actual:>12,}{'' if wanted is None else f'{wanted:,}':>12}")
    print("rows written:", ", ".join(f"{k} +{v:,}" for k, v in sweep["effects"].items()))
    if run["rerun"]:
        rerun = run["rerun"]
        print(
            f"re-run of the same date: {rerun['seconds'] * 1000:.1f} ms, "
            f"already_ran={rerun['summary']['already_ran']}, "
            f"{sum(s['statements'] for s in rerun['phases'].values())} statements"
        )
    if run["ledger_audit"]:
        audit_result = run["ledger_audit"]
        print(
            f"ledger audit after the sweep: "
            f"{'balanced' if audit_result['balanced'] else audit_result['problems']} "
            f"({audit_result['entries']:,} entries, {audit_result['shoppers_checked']:,} shoppers)"
        )
    print()
    print("statements that waited longest on the database (phase, executions, seconds):")
    for item in sweep["statements"]:
        print(
            f"  {item['phase']:<14}{item['executions']:>9,}{item['seconds']:>8.2f}  "
            f"{item['statement'][:100]}"
        )
    profile = sweep.get("profile") or {}
    if profile.get("samples"):
        print()
        print(f"py-spy ({profile['samples']:,} samples, wall clock): where the time went")
        for kind, share in profile["by_kind"].items():
            print(f"  {share:>6.1%}  {kind}")
        print("  by phase:")
        for phase, kinds in profile["by_phase"].items():
            parts = ", ".join(f"{kind.split(' (')[0]} {share:.1%}" for kind, share in kinds.items())
            print(f"  {sum(kinds.values()):>6.1%}  {phase}: {parts}")
        print("  inclusive time of usefirst functions:")
        for function, share in profile["usefirst_inclusive"].items():
            print(f"  {share:>6.1%}  {function}")
    print()


def _share(book: dict[str, int], prefix: str, keys: Iterable[str] | None = None) -> str:
    keys = keys or ("overdue", "pending", "paid")
    return ", ".join(f"{book.get(f'{prefix} {key}', 0):,} {key}" for key in keys)


# --------------------------------------------------------------------------------------------


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL (or SQLite) URL")
    parser.add_argument("--instalments", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=120, help="width of the due-date window")
    parser.add_argument("--future-days", type=int, default=60, help="window days from today")
    parser.add_argument("--shoppers", type=int, help="default: instalments / 4")
    parser.add_argument("--merchants", type=int, default=500)
    parser.add_argument("--seed", type=int, default=20261210)
    parser.add_argument(
        "--business-on", type=date.fromisoformat, default=DEFAULT_BUSINESS_ON, help="sweep date"
    )
    parser.add_argument("--miss-rate", type=float, default=0.15)
    parser.add_argument("--early-paid-share", type=float, default=0.03)
    parser.add_argument("--unconfirmed-share", type=float, default=0.25)
    parser.add_argument(
        "--sqlite-instalments", type=int, default=100_000, help="0 skips the SQLite run"
    )
    parser.add_argument("--sqlite-path", type=Path, help="default: a file in a temp directory")
    parser.add_argument("--no-rerun", action="store_true", help="skip the idempotent re-run")
    parser.add_argument(
        "--no-history",
        action="store_true",
        help="load no journal or reminder history (empty tables: see the note on cached plans)",
    )
    parser.add_argument("--py-spy", action="store_true", help="sample the sweeps with py-spy")
    parser.add_argument(
        "--reference-commit",
        help="also sweep a copy of the PostgreSQL book with the engine of this commit (e.g. "
        "c997c98, the last per-row sweep) and compare every row the two sweeps touched",
    )
    parser.add_argument(
        "--collections-only",
        "--no-daily-jobs",
        dest="no_daily_jobs",
        action="store_true",
        help="time collections alone: sweep without other domains' daily jobs (risk, "
        "settlement, disputes, privacy); by default the full nightly run, as the worker runs it",
    )
    parser.add_argument(
        "--book-database",
        help="PostgreSQL database name that keeps the loaded book: loaded once (again when the "
        "spec changes), then every run sweeps a fresh copy of it (CREATE DATABASE … TEMPLATE)",
    )
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    arguments = parser.parse_args(argv)
    past_days = arguments.days - arguments.future_days
    if not 0 < past_days <= 90 or arguments.future_days < 1:
        parser.error("the window must reach 1-90 days back (no legal referral or charge-off yet)")
    return arguments


def spec_for(arguments: argparse.Namespace, instalments: int) -> BookSpec:
    return BookSpec(
        instalments=instalments,
        shoppers=arguments.shoppers or max(instalments // 4, 10),
        merchants=arguments.merchants,
        days=arguments.days,
        future_days=arguments.future_days,
        business_on=arguments.business_on,
        miss_rate=arguments.miss_rate,
        early_paid_share=arguments.early_paid_share,
        unconfirmed_share=arguments.unconfirmed_share,
        seed=arguments.seed,
    )


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    with without_daily_jobs() if arguments.no_daily_jobs else contextlib.nullcontext():
        return bench_all(arguments)


def bench_all(arguments: argparse.Namespace) -> int:
    work_dir = Path(tempfile.mkdtemp(prefix="usefirst-bench-sweep-"))
    keys_file = work_dir / "keys.json"
    py_spy_dir = work_dir if arguments.py_spy else None
    results: dict[str, Any] = {"machine": machine(), "command": " ".join(sys.argv), "runs": []}
    log(f"source {results['machine']['source']}, {results['machine']['cpu']}")
    runs: list[tuple[str, str, int]] = [
        (
            "sqlite" if arguments.database_url.startswith("sqlite") else "postgresql",
            arguments.database_url,
            arguments.instalments,
        )
    ]
    if arguments.sqlite_instalments and not arguments.database_url.startswith("sqlite"):
        sqlite_path = arguments.sqlite_path or work_dir / "sweep.db"
        runs.append(("sqlite", f"sqlite:///{sqlite_path}", arguments.sqlite_instalments))
    for label, url, instalments in runs:
        results["runs"].append(
            bench_backend(
                label=label,
                url=url,
                spec=spec_for(arguments, instalments),
                keys_file=keys_file,
                py_spy_dir=py_spy_dir,
                rerun=not arguments.no_rerun,
                history=not arguments.no_history,
                reference_commit=arguments.reference_commit,
                daily_jobs_on=not arguments.no_daily_jobs,
                book_url=(
                    urlunsplit(urlsplit(url)._replace(path=f"/{arguments.book_database}"))
                    if arguments.book_database and not url.startswith("sqlite")
                    else None
                ),
            )
        )
    results["machine"]["load_average_after"] = os.getloadavg()
    print(f"machine: {results['machine']}")
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2, default=str))
        log(f"figures written to {arguments.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
