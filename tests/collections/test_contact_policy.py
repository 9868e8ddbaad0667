"""Issue 3: the contact policy over the API. Quiet hours (21:00–08:00 in the shopper's time zone,
Asia/Shanghai by default) defer a reminder to 08:00, never drop it; at most three contacts a day
per shopper across channels, the rest deferred to the next morning; calls count towards the cap.
A reminder that goes out later than planned says what is true when it is sent."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from pathlib import Path

from tests.collections.dunning_env import (
    TIME_ZONE,
    instant,
    local_at,
    local_day,
    open_env,
    parse_time,
)

HOW_TO_PAY = "在商城 App 的“先用后付”页面还款 / pay in the marketplace app"
DUE = date(2027, 3, 9)  # bought and delivered on the start day, 2027-03-02

QUIET_LADDER = """
[[step]]
day = -1
channels = ["sms"]
template = "reminder_upcoming"
send_at = 22:00:00

[[step]]
day = 1
channels = ["sms"]
template = "overdue_notice"

[[step]]
day = 3
channels = ["sms"]
template = "overdue_notice"
send_at = 07:30:00
"""


def test_a_step_set_for_22_00_goes_out_at_08_00_the_next_day(
    database_url: str, tmp_path: Path
) -> None:
    ladder = tmp_path / "ladder.toml"
    ladder.write_text(QUIET_LADDER, encoding="utf-8")
    with open_env(database_url, tmp_path, dunning_ladder_file=ladder) as env:
        shopper = env.enrol()
        env.buy(shopper["id"])

        env.advance_to_day(DUE - timedelta(days=1), 12)
        [contact] = env.contacts(shopper["id"])
        assert (contact["step"], contact["channel"], contact["template"]) == (
            "day_-1",
            "sms",
            "reminder_upcoming",
        )
        assert (contact["status"], contact["status_reason"], contact["sent_at"]) == (
            "deferred",
            "quiet_hours",
            None,
        )
        assert parse_time(contact["scheduled_at"]) == local_at(DUE, 8)

        for hour, minute in ((21, 59), (22, 0), (23, 30)):
            env.advance_to_day(DUE - timedelta(days=1), hour, minute)
            assert env.contacts(shopper["id"])[0]["status"] == "deferred"
        env.advance_to_day(DUE, 7, 59)
        assert env.contacts(shopper["id"])[0]["status"] == "deferred"
        assert env.sms_lines() == []

        env.advance_to_day(DUE, 8, 0)
        [contact] = env.contacts(shopper["id"])
        assert contact["status"] == "sent"
        assert parse_time(contact["sent_at"]) == local_at(DUE, 8)
        assert contact["destination_masked"] == shopper["phone_masked"]
        assert [line["reference"] for line in env.sms_lines()] == [contact["id"]]

        # A 07:30 step waits for 08:00 the same morning; a 10:00 step goes out at 10:00.
        env.advance_to_day(DUE + timedelta(days=3), 12)
        assert [
            (c["step"], c["status"], parse_time(c["scheduled_at"]), parse_time(c["sent_at"]))
            for c in env.contacts(shopper["id"])
        ] == [
            ("day_-1", "sent", local_at(DUE, 8), local_at(DUE, 8)),
            (
                "day_+1",
                "sent",
                local_at(DUE + timedelta(days=1), 10),
                local_at(DUE + timedelta(days=1), 10),
            ),
            (
                "day_+3",
                "sent",
                local_at(DUE + timedelta(days=3), 8),
                local_at(DUE + timedelta(days=3), 8),
            ),
        ]
        assert len(env.sms_lines()) == 3


def test_at_most_three_contacts_a_day_the_rest_the_next_morning(
    database_url: str, tmp_path: Path
) -> None:
    with open_env(database_url, tmp_path) as env:
        shopper = env.enrol()
        first = env.buy(shopper["id"], 20_000)
        second = env.buy(shopper["id"], 10_000)
        label = {first["id"]: "first", second["id"]: "second"}

        # Day -1: four reminders at 10:00 (push and SMS for each order); the fourth waits.
        env.advance_to_day(DUE - timedelta(days=1), 12)
        waiting = [c for c in env.contacts(shopper["id"]) if c["status"] != "sent"]
        assert [
            (label[c["order_id"]], c["step"], c["channel"], c["status"], c["status_reason"])
            for c in waiting
        ] == [("second", "day_-1", "sms", "deferred", "daily_contact_limit")]
        assert parse_time(waiting[0]["scheduled_at"]) == local_at(DUE, 8)

        # A collector cannot call either once the shopper had three contacts today.
        env.advance_to_day(DUE + timedelta(days=1), 10, 30)
        refused = env.call(first["id"], outcome="no_answer")
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "contact_not_allowed"

        env.advance_to_day(DUE + timedelta(days=3), 12)
        contacts = env.contacts(shopper["id"])
        timeline = [
            (
                label[c["order_id"]],
                c["step"],
                c["channel"],
                c["status"],
                instant(c["sent_at"]).astimezone(TIME_ZONE).strftime("%m-%d %H:%M")
                if c["sent_at"]
                else None,
                c["template"],
            )
            for c in contacts
        ]
        # A reminder pushed to a later day by the cap is sent with the template true on that day
        # (and the log says which): day -1's "due on 03-09" goes out on 03-09 as "due today",
        # day 0's "due today" goes out on 03-10 as an overdue notice.
        assert sorted(timeline, key=lambda row: (row[4] or "99", row[0], row[1])) == [
            ("first", "day_-3", "push", "sent", "03-06 10:00", "reminder_upcoming"),
            ("second", "day_-3", "push", "sent", "03-06 10:00", "reminder_upcoming"),
            ("first", "day_-1", "push", "sent", "03-08 10:00", "reminder_upcoming"),
            ("first", "day_-1", "sms", "sent", "03-08 10:00", "reminder_upcoming"),
            ("second", "day_-1", "push", "sent", "03-08 10:00", "reminder_upcoming"),
            ("second", "day_-1", "sms", "sent", "03-09 08:00", "reminder_due_today"),
            ("first", "day_+0", "push", "sent", "03-09 10:00", "reminder_due_today"),
            ("first", "day_+0", "sms", "sent", "03-09 10:00", "reminder_due_today"),
            ("second", "day_+0", "push", "sent", "03-10 08:00", "overdue_notice"),
            ("second", "day_+0", "sms", "sent", "03-10 08:00", "overdue_notice"),
            ("first", "day_+1", "sms", "sent", "03-10 10:00", "overdue_notice"),
            ("second", "day_+1", "sms", "sent", "03-11 08:00", "overdue_notice"),
            ("first", "day_+3", "sms", "sent", "03-12 10:00", "overdue_notice"),
            ("second", "day_+3", "sms", "sent", "03-12 10:00", "overdue_notice"),
            ("first", "day_+3", "email", "suppressed", None, "overdue_notice"),
            ("second", "day_+3", "email", "suppressed", None, "overdue_notice"),
        ]
        sms_text = {line["reference"]: line["text"] for line in env.sms_lines()}
        second_sms = {
            c["step"]: sms_text[c["id"]]
            for c in contacts
            if c["order_id"] == second["id"] and c["channel"] == "sms" and c["status"] == "sent"
        }
        assert second_sms == {
            "day_-1": "张*您好，您在Test Shop的先用后付账单¥100.00今天（2027年3月9日）到期。"
            f"还款方式：{HOW_TO_PAY}。逾期将按协议收取逾期费用，逾期满30天将报送征信。如已还款请忽略。",
            "day_+0": "张*您好，您在Test Shop的先用后付账单¥100.05（还款日2027年3月9日）已逾期1天。"
            f"逾期费用按协议计收；逾期满30天将报送征信。还款方式：{HOW_TO_PAY}。如已还款请忽略。",
            "day_+1": "张*您好，您在Test Shop的先用后付账单¥100.10（还款日2027年3月9日）已逾期2天。"
            f"逾期费用按协议计收；逾期满30天将报送征信。还款方式：{HOW_TO_PAY}。如已还款请忽略。",
            "day_+3": "张*您好，您在Test Shop的先用后付账单¥100.15（还款日2027年3月9日）已逾期3天。"
            f"逾期费用按协议计收；逾期满30天将报送征信。还款方式：{HOW_TO_PAY}。如已还款请忽略。",
        }
        [deferred_push] = [
            event["data"]
            for event in env.push_events()
            if event["data"]["order_id"] == second["id"]
            and event["data"]["template"] == "overdue_notice"
        ]
        assert deferred_push["text"] == (
            f"张*您好，您在Test Shop的订单{second['id']}应还¥100.05（还款日2027年3月9日）"
            f"已逾期1天，请尽快还款。还款方式：{HOW_TO_PAY}。"
        )
        per_day = Counter(local_day(c["sent_at"]) for c in contacts if c["sent_at"])
        assert max(per_day.values()) == 3
        assert per_day == {
            date(2027, 3, 6): 2,
            date(2027, 3, 8): 3,
            date(2027, 3, 9): 3,
            date(2027, 3, 10): 3,
            date(2027, 3, 11): 1,
            date(2027, 3, 12): 2,
        }
        # Each reminder went out once: one SMS per SMS contact, one push event per push.
        assert sorted(line["reference"] for line in env.sms_lines()) == sorted(
            c["id"] for c in contacts if c["channel"] == "sms" and c["status"] == "sent"
        )
        assert len(env.push_events()) == 6  # days -3, -1 and 0 for each order
