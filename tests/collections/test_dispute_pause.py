"""Issue 3: an open dispute pauses dunning. The order's days past due stop counting: no late fee
is charged, no reminder after the due date is planned (one already planned is suppressed, reason
``dispute_open``), no escalation happens and the order leaves the queue; an order already
reported to the bureau carries compliance code XB. Closing the dispute resumes everything where
it stopped (days past due = days since due − days paused), and the bureau file of the month it
closed in carries XH, the one after that no code."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from tests.collections.dunning_env import Env, jsonl_records, open_env
from tests.collections.metro2_parser import parse_metro2
from usefirst.disputes.service import pause_of
from usefirst.flows.dispute_resolution import set_dispute_flag
from usefirst.orders.service import find_order

DUE = date(2027, 3, 9)  # bought and delivered on the start day, 2027-03-02


def flag(env: Env, order_id: str, *, is_disputed: bool) -> None:
    with env.runtime.work() as work:
        set_dispute_flag(
            work.session,
            order_id=order_id,
            is_disputed=is_disputed,
            settings=env.runtime.settings,
            now=work.now,
        )


def paused_days(session: Session, order_id: str) -> int:
    order = find_order(session, order_id=order_id)
    pause = pause_of(session, shopper_id=order.shopper_id, order_id=order.id)
    assert pause is not None
    return pause.dispute_paused_days


def steps(env: Env, shopper_id: str) -> list[tuple[str, str, str, str | None]]:
    return [
        (c["step"], c["channel"], c["status"], c["status_reason"]) for c in env.contacts(shopper_id)
    ]


def test_a_dispute_pauses_the_days_past_due_and_closing_it_resumes_them(
    database_url: str, tmp_path: Path
) -> None:
    with open_env(database_url, tmp_path) as env:
        gina = env.enrol(email="gina@example.com")
        hank = env.enrol()
        disputed = env.buy(gina["id"])
        reported = env.buy(hank["id"])

        # Gina disputes on day +3 at 09:00, after that day's reminders were planned for 10:00.
        env.advance_to_day(DUE + timedelta(days=3), 9)
        assert env.late_fees(disputed["id"]) == 45
        flag(env, disputed["id"], is_disputed=True)
        sms_sent = len(env.sms_lines())
        env.advance_to_day(DUE + timedelta(days=16))
        # Her day +3 reminders are suppressed at send time; her day +15 step is not due: her
        # days past due stand at 3 while the dispute is open.
        assert steps(env, gina["id"]) == [
            ("day_-3", "push", "sent", None),
            ("day_-1", "push", "sent", None),
            ("day_-1", "sms", "sent", None),
            ("day_+0", "push", "sent", None),
            ("day_+0", "sms", "sent", None),
            ("day_+1", "sms", "sent", None),
            ("day_+3", "sms", "suppressed", "dispute_open"),
            ("day_+3", "email", "suppressed", "dispute_open"),
        ]
        # Only Hank's reminders went out meanwhile: his day +3 and day +15 SMS.
        assert len(env.sms_lines()) == sms_sent + 2
        assert env.late_fees(disputed["id"]) == 45
        assert [entry["order_id"] for entry in env.queue()] == [reported["id"]]

        # Day +30: Hank is reported to the bureau, Gina is not.
        env.advance_to_day(DUE + timedelta(days=30), 9)
        assert list(env.jsonl_records("2027-04")) == [reported["id"]]
        assert env.late_fees(disputed["id"]) == 45
        assert env.legal_cases() == []

        # Hank disputes on day +30 too: the bureau files say so with compliance code XB, and
        # report the 30 days past due he had when it opened.
        flag(env, reported["id"], is_disputed=True)
        record = env.jsonl_records("2027-04")[reported["id"]]
        assert (record["compliance_condition_code"], record["is_disputed"]) == ("XB", True)
        assert (record["status"], record["account_status_code"]) == ("past_due", "71")
        assert record["days_past_due"] == 30
        _, metro2 = env.bureau_file("2027-04", "metro2")
        [base] = parse_metro2(metro2).bases
        assert base["compliance_condition_code"] == "XB"
        assert metro2.splitlines()[1][152:154] == "XB"  # positions 153–154
        assert env.queue() == []

        env.advance_to_day(DUE + timedelta(days=32), 9)
        assert env.late_fees(disputed["id"]) == 45
        assert env.late_fees(reported["id"]) == 15 * 30  # nothing since the dispute
        assert env.queue() == []
        assert env.jsonl_records("2027-04")[reported["id"]]["days_past_due"] == 30

        # Both disputes close on day +32: Gina's paused 29 days (+4 … +32), Hank's 2.
        flag(env, disputed["id"], is_disputed=False)
        flag(env, reported["id"], is_disputed=False)
        with env.runtime.work() as work:
            paused = {
                order_id: paused_days(work.session, order_id)
                for order_id in (disputed["id"], reported["id"])
            }
        assert paused == {disputed["id"]: 29, reported["id"]: 2}
        env.advance_to_day(DUE + timedelta(days=33))
        assert env.late_fees(disputed["id"]) == 45 + 15
        assert env.late_fees(reported["id"]) == 15 * 30 + 15
        # Gina is 4 days past due, not 33: not in the call queue yet, not reported.
        assert [(e["order_id"], e["days_past_due"]) for e in env.queue()] == [(reported["id"], 31)]
        records = env.jsonl_records("2027-04")
        assert {
            order_id: (r["compliance_condition_code"], r["is_disputed"], r["days_past_due"])
            for order_id, r in records.items()
        } == {reported["id"]: ("XH", False, 31)}
        _, metro2 = env.bureau_file("2027-04", "metro2")
        [base] = parse_metro2(metro2).bases
        assert base["compliance_condition_code"] == "XH"

        # Day +36 = Gina's day 7: she enters the call queue.
        env.advance_to_day(DUE + timedelta(days=36))
        assert {(e["order_id"], e["days_past_due"]) for e in env.queue()} == {
            (disputed["id"], 7),
            (reported["id"], 34),
        }
        # Day +44 = Gina's day 15: her final notice goes out (this sandbox sends no email).
        env.advance_to_day(DUE + timedelta(days=44))
        assert steps(env, gina["id"])[8:] == [
            ("day_+15", "sms", "sent", None),
            ("day_+15", "email", "suppressed", "email_not_configured"),
        ]
        # Day +59 = Gina's day 30: reported to the bureau, with 30 days past due.
        env.advance_to_day(DUE + timedelta(days=59), 9)
        records = env.jsonl_records("2027-05")
        assert {
            order_id: (r["compliance_condition_code"], r["days_past_due"])
            for order_id, r in records.items()
        } == {disputed["id"]: ("", 30), reported["id"]: ("", 57)}
        # The month-end file of April (made on 1 May) carried XH for Hank; May's carries none.
        [april] = [
            row
            for row in env.bureau_files()
            if (row["period"], row["format"]) == ("2027-04", "jsonl")
            and row["records"] == 1
            and row["created_at"].startswith("2027-04-30T16:00")
        ]
        assert (
            jsonl_records(env.bureau_content(april["id"]))[reported["id"]][
                "compliance_condition_code"
            ]
            == "XH"
        )
        assert env.late_fees(disputed["id"]) == 45 + 15 * 27
        env.assert_ledger_clean()


def test_a_dispute_opened_before_the_due_date_pauses_nothing_until_then(
    database_url: str, tmp_path: Path
) -> None:
    with open_env(database_url, tmp_path) as env:
        ivy = env.enrol()
        order = env.buy(ivy["id"])
        env.advance_to_day(DUE - timedelta(days=2), 9)
        flag(env, order["id"], is_disputed=True)
        env.advance_to_day(DUE + timedelta(days=5), 9)
        assert env.late_fees(order["id"]) == 0
        flag(env, order["id"], is_disputed=False)
        with env.runtime.work() as work:
            # Past due from day +1: the days +1 … +5 are paused, the two before due are not.
            assert paused_days(work.session, order["id"]) == 5
        env.advance_to_day(DUE + timedelta(days=6), 12)
        assert env.late_fees(order["id"]) == 15  # day 1 past due, its first fee
        env.advance_to_day(DUE + timedelta(days=13), 12)
        assert [(e["order_id"], e["days_past_due"]) for e in env.queue()] == [(order["id"], 8)]
        assert [step for step in steps(env, ivy["id"]) if int(step[0][4:]) > 0] == [
            ("day_+1", "sms", "sent", None),
            ("day_+3", "sms", "sent", None),
            ("day_+3", "email", "suppressed", "no_verified_email"),
        ]
        env.assert_ledger_clean()
