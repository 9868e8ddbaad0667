"""Issue 3: the daily sweep is idempotent per business date. Swept a second time, a date changes
nothing in any table: no second late fee, reminder, escalation, bureau file or journal entry.

A compressed ladder makes one date hit every part of the sweep at once: auto-confirmation, newly
overdue orders, late fees, reminders, the call queue, bureau reporting, legal referral, charge-off
and (on the first of the month) the bureau files of the month before.
"""

from __future__ import annotations

import threading
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from tests.collections.dunning_env import SHIPMENT, dump_tables, local_at, open_env
from tests.factories import bearer, checkout_body
from usefirst.collections.models import SweepRun
from usefirst.flows import daily_sweep
from usefirst.kit.clock import TestClock

COMPRESSED_LADDER = """
[[step]]
day = -1
channels = ["push"]
template = "reminder_upcoming"

[[step]]
day = 0
channels = ["sms"]
template = "reminder_due_today"

[[step]]
day = 1
channels = ["sms", "email"]
template = "overdue_notice"

[[step]]
day = 2
action = "call_queue"

[[step]]
day = 3
action = "bureau_report"

[[step]]
day = 4
action = "legal_referral"

[[step]]
day = 5
action = "charge_off"
"""

SWEPT_ON = date(2027, 4, 1)
TABLES = [
    "orders",
    "instalments",
    "contact_attempts",
    "journal_entries",
    "ledger_postings",
    "ledger_accounts",
    "outbox_messages",
    "events",
    "credit_lines",
    "credit_line_changes",
    "legal_cases",
    "bureau_files",
    "sweep_runs",
]


def test_sweeping_a_date_twice_changes_nothing_the_second_time(
    database_url: str, tmp_path: Path
) -> None:
    ladder = tmp_path / "ladder.toml"
    ladder.write_text(COMPRESSED_LADDER, encoding="utf-8")
    with open_env(database_url, tmp_path, dunning_ladder_file=ladder) as env:
        # One order per ladder day: due on SWEPT_ON + 1 down to SWEPT_ON - 5 (7 days after delivery).
        orders = {}
        for days_before in range(5, -2, -1):
            due_on = SWEPT_ON - timedelta(days=days_before)
            env.advance_to_day(due_on - timedelta(days=7))
            shopper = env.enrol()
            orders[days_before] = env.buy(shopper["id"])["id"]
            if days_before == 3:
                # Shipped, never confirmed: auto-confirmed ten days later, on SWEPT_ON.
                unconfirmed = env.client.post(
                    "/v1/checkouts",
                    headers=env.platform,
                    json=checkout_body(env.enrol()["id"], env.merchant()["id"]),
                ).json()["order"]["id"]
                shipped = env.client.post(
                    f"/v1/orders/{unconfirmed}/ship",
                    headers=bearer(env.merchant()["api_key"]),
                    json=SHIPMENT,
                )
                assert shipped.status_code == 200, shipped.text
        env.advance_to_day(SWEPT_ON - timedelta(days=1), 23, 59)
        assert env.order(unconfirmed)["status"] == "shipped"

        # Midnight comes, but the sweep has not run yet.
        with env.runtime.work() as work:
            clock = env.runtime.clock
            assert isinstance(clock, TestClock)
            clock.set(work.session, local_at(SWEPT_ON, 0))
        before = dump_tables(env.runtime)
        first = env.runtime.sweep(SWEPT_ON)
        # Other domains' daily jobs report on their own; their effects are tested with them.
        assert set(first.jobs) == set(daily_sweep.JOB_NAMES)
        assert first.as_dict(with_jobs=False) == {
            "business_on": SWEPT_ON.isoformat(),
            "already_ran": False,
            "auto_confirmed": 1,
            "newly_overdue_orders": 1,  # due yesterday
            "late_fees_minor": 5 * 15,  # the five orders past due, a day each
            "reminders_planned": 3,  # push at -1, SMS at 0, SMS at +1 (its email: no address)
            "call_queue": 1,
            "bureau_reported": 1,
            "legal_referred": 1,
            "charged_off": 1,
            "bureau_files": 2,  # March, metro2 and jsonl
        }
        after_first = dump_tables(env.runtime)
        # Every one of these tables changed: the first write-off even opened its ledger account.
        assert [name for name in TABLES if before[name] == after_first[name]] == []

        second = env.runtime.sweep(SWEPT_ON)
        assert second.jobs == {}
        assert second.as_dict() == {
            "business_on": SWEPT_ON.isoformat(),
            "already_ran": True,
            "auto_confirmed": 0,
            "newly_overdue_orders": 0,
            "late_fees_minor": 0,
            "reminders_planned": 0,
            "call_queue": 0,
            "bureau_reported": 0,
            "legal_referred": 0,
            "charged_off": 0,
            "bureau_files": 0,
            "jobs": {},
        }
        assert dump_tables(env.runtime) == after_first
        # An older date is not swept again either.
        assert env.runtime.sweep(SWEPT_ON - timedelta(days=3)).already_ran is True
        assert dump_tables(env.runtime) == after_first

        # Over the API: moving the clock sweeps nothing twice; only the reminders go out.
        env.advance_to_day(SWEPT_ON, 12)
        assert env.runtime.run_due_sweeps() == []
        after_noon = dump_tables(env.runtime)
        assert after_noon["sweep_runs"] == after_first["sweep_runs"]
        assert after_noon["journal_entries"] == after_first["journal_entries"]
        assert after_noon["instalments"] == after_first["instalments"]
        env.advance()  # zero days, zero seconds
        assert dump_tables(env.runtime) == after_noon

        # What the one sweep did, as the API reports it.
        statuses = {days: env.order(order_id)["status"] for days, order_id in orders.items()}
        assert statuses == {
            -1: "delivered",
            0: "delivered",
            1: "overdue",
            2: "overdue",
            3: "overdue",
            4: "overdue",
            5: "charged_off",
        }
        assert env.order(unconfirmed)["status"] == "delivered"
        # Referred yesterday (day +4) and today.
        assert [case["order_id"] for case in env.legal_cases()] == [orders[5], orders[4]]
        assert [entry["order_id"] for entry in env.queue()] == [
            orders[4],
            orders[3],
            orders[2],
        ]
        assert [f["period"] for f in env.bureau_files()] == ["2027-03", "2027-03"]
        env.assert_ledger_clean()


def test_two_sweeps_of_one_date_racing_charge_once(postgres_url: str, tmp_path: Path) -> None:
    """Two workers sweeping the same date at once on PostgreSQL: one sweep takes effect; the
    other waits on the first one's claim of the date, then finds it already ran."""
    with open_env(postgres_url, tmp_path) as env:
        orders = [env.buy(env.enrol()["id"])["id"] for _ in range(3)]
        due_on = date(2027, 3, 9)
        env.advance_to_day(due_on + timedelta(days=2), 23, 59)
        with env.runtime.work() as work:
            clock = env.runtime.clock
            assert isinstance(clock, TestClock)
            clock.set(work.session, local_at(due_on + timedelta(days=3), 0))

        outcomes: list[object] = []

        def sweep() -> None:
            try:
                outcomes.append(env.runtime.sweep(due_on + timedelta(days=3)).already_ran)
            except IntegrityError as error:
                outcomes.append(type(error.orig).__name__)

        workers = [threading.Thread(target=sweep) for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert sorted(map(str, outcomes)) == ["False", "True"]
        assert [env.late_fees(order_id) for order_id in orders] == [3 * 15] * 3
        with env.runtime.work(read_only=True) as work:
            swept = work.session.scalar(select(func.count()).select_from(SweepRun))
        assert swept == (due_on + timedelta(days=3) - date(2027, 3, 2)).days + 1  # one a day
        env.assert_ledger_clean()
