"""Issue 3: an open dispute pauses dunning. No reminder goes out (suppressed, reason
``dispute_open``), no late fee is charged, no escalation happens and the order leaves the queue;
an order already reported to the bureau carries compliance code XB. Clearing the flag resumes
everything, and a step missed meanwhile happens on the next sweep."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from tests.collections.dunning_env import Env, open_env
from tests.collections.metro2_parser import parse_metro2
from usefirst.orders.service import set_dispute_flag

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


def steps(env: Env, shopper_id: str) -> list[tuple[str, str, str, str | None]]:
    return [
        (c["step"], c["channel"], c["status"], c["status_reason"]) for c in env.contacts(shopper_id)
    ]


def test_a_dispute_pauses_dunning_and_clearing_it_resumes(
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
        assert steps(env, gina["id"]) == [
            ("day_-3", "push", "sent", None),
            ("day_-1", "push", "sent", None),
            ("day_-1", "sms", "sent", None),
            ("day_+0", "push", "sent", None),
            ("day_+0", "sms", "sent", None),
            ("day_+1", "sms", "sent", None),
            ("day_+3", "sms", "suppressed", "dispute_open"),
            ("day_+3", "email", "suppressed", "dispute_open"),
            ("day_+15", "sms", "suppressed", "dispute_open"),
            ("day_+15", "email", "suppressed", "dispute_open"),
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

        # Hank disputes on day +30 too: the bureau files say so with compliance code XB.
        flag(env, reported["id"], is_disputed=True)
        record = env.jsonl_records("2027-04")[reported["id"]]
        assert (record["compliance_condition_code"], record["is_disputed"]) == ("XB", True)
        assert (record["status"], record["account_status_code"]) == ("past_due", "71")
        _, metro2 = env.bureau_file("2027-04", "metro2")
        [base] = parse_metro2(metro2).bases
        assert base["compliance_condition_code"] == "XB"
        assert metro2.splitlines()[1][152:154] == "XB"  # positions 153–154
        assert env.queue() == []

        env.advance_to_day(DUE + timedelta(days=32), 9)
        assert env.late_fees(disputed["id"]) == 45
        assert env.late_fees(reported["id"]) == 15 * 30  # nothing since the dispute
        assert env.queue() == []
        assert list(env.jsonl_records("2027-04")) == [reported["id"]]

        # Both disputes close: the next sweep charges fees again and catches up Gina's call queue
        # and bureau steps, missed while she was disputing.
        flag(env, disputed["id"], is_disputed=False)
        flag(env, reported["id"], is_disputed=False)
        env.advance_to_day(DUE + timedelta(days=33))
        assert env.late_fees(disputed["id"]) == 45 + 15
        assert env.late_fees(reported["id"]) == 15 * 30 + 15
        assert {entry["order_id"] for entry in env.queue()} == {disputed["id"], reported["id"]}
        records = env.jsonl_records("2027-04")
        assert set(records) == {disputed["id"], reported["id"]}
        assert {
            order_id: (r["compliance_condition_code"], r["is_disputed"], r["days_past_due"])
            for order_id, r in records.items()
        } == {disputed["id"]: ("", False, 33), reported["id"]: ("", False, 33)}
        # No reminder step falls after day +15 in the default ladder: none is made up.
        assert len(steps(env, gina["id"])) == 10
        env.assert_ledger_clean()
