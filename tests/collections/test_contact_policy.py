"""Issue 3: the contact policy over the API. Quiet hours (21:00–08:00 in Asia/Shanghai) defer a
reminder to 08:00, never drop it; at most three contacts a day per shopper across channels, the
rest deferred to the next morning; calls count towards the cap."""

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
            )
            for c in contacts
        ]
        assert sorted(timeline, key=lambda row: (row[4] or "99", row[0], row[1])) == [
            ("first", "day_-3", "push", "sent", "03-06 10:00"),
            ("second", "day_-3", "push", "sent", "03-06 10:00"),
            ("first", "day_-1", "push", "sent", "03-08 10:00"),
            ("first", "day_-1", "sms", "sent", "03-08 10:00"),
            ("second", "day_-1", "push", "sent", "03-08 10:00"),
            ("second", "day_-1", "sms", "sent", "03-09 08:00"),
            ("first", "day_+0", "push", "sent", "03-09 10:00"),
            ("first", "day_+0", "sms", "sent", "03-09 10:00"),
            ("second", "day_+0", "push", "sent", "03-10 08:00"),
            ("second", "day_+0", "sms", "sent", "03-10 08:00"),
            ("first", "day_+1", "sms", "sent", "03-10 10:00"),
            ("second", "day_+1", "sms", "sent", "03-11 08:00"),
            ("first", "day_+3", "sms", "sent", "03-12 10:00"),
            ("second", "day_+3", "sms", "sent", "03-12 10:00"),
            ("first", "day_+3", "email", "suppressed", None),
            ("second", "day_+3", "email", "suppressed", None),
        ]
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
