"""The contact policy on the shopper's own clock, and reminders in the shopper's language.

Two shoppers buy the same thing on the same day: one in New York who reads English, one with the
defaults (Chinese, the operator's Asia/Shanghai). Quiet hours (21:00–08:00) and the daily limits
are theirs: the sweep plans each reminder at the step's time on the shopper's clock, the worker
re-checks it there, and a collector's call is refused during the shopper's night, not the
operator's. 2027-03-09 is before the US change to summer time (03-14): New York is UTC-5.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.collections.dunning_env import local_at, open_env, parse_time, smtp_server

NEW_YORK = ZoneInfo("America/New_York")
DUE = date(2027, 3, 9)
HOW_TO_PAY = "在商城 App 的“先用后付”页面还款 / pay in the marketplace app"

LADDER = """
[[step]]
day = -1
channels = ["sms"]
template = "reminder_upcoming"
send_at = 22:00:00

[[step]]
day = 3
channels = ["sms", "email"]
template = "overdue_notice"
send_at = 07:30:00
"""


def new_york_at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=NEW_YORK).astimezone(UTC)


def test_quiet_hours_caps_and_language_follow_the_shopper(
    database_url: str, tmp_path: Path
) -> None:
    ladder = tmp_path / "ladder.toml"
    ladder.write_text(LADDER, encoding="utf-8")
    with (
        smtp_server() as (mailbox, smtp_port),
        open_env(
            database_url,
            tmp_path,
            dunning_ladder_file=ladder,
            smtp_host="127.0.0.1",
            smtp_port=smtp_port,
            smtp_sender="billing@example.com",
        ) as env,
    ):
        abroad = env.enrol(email="ny@example.com", language="en", time_zone="America/New_York")
        home = env.enrol(email="sh@example.com")
        assert (abroad["language"], abroad["time_zone"]) == ("en", "America/New_York")
        assert (home["language"], home["time_zone"]) == ("zh-CN", "Asia/Shanghai")
        abroad_order = env.buy(abroad["id"])
        home_order = env.buy(home["id"])

        # The day -1 step at 22:00 falls in each shopper's own quiet hours: it waits for 08:00 on
        # the due date on each shopper's clock, 13 hours apart.
        env.advance_to_day(DUE - timedelta(days=1), 12)
        [abroad_contact] = env.contacts(abroad["id"])
        [home_contact] = env.contacts(home["id"])
        for contact, opening in (
            (abroad_contact, new_york_at(DUE, 8)),
            (home_contact, local_at(DUE, 8)),
        ):
            assert (contact["step"], contact["status"], contact["status_reason"]) == (
                "day_-1",
                "deferred",
                "quiet_hours",
            )
            assert parse_time(contact["scheduled_at"]) == opening
        assert new_york_at(DUE, 8) == datetime(2027, 3, 9, 13, 0, tzinfo=UTC)
        assert local_at(DUE, 8) == datetime(2027, 3, 9, 0, 0, tzinfo=UTC)

        # 08:00 in Shanghai is 19:00 the evening before in New York: only the home shopper's
        # reminder goes out.
        env.advance_to(local_at(DUE, 8))
        assert env.contacts(home["id"])[0]["status"] == "sent"
        assert env.contacts(abroad["id"])[0]["status"] == "deferred"
        env.advance_to(new_york_at(DUE, 7, 59))
        assert env.contacts(abroad["id"])[0]["status"] == "deferred"
        env.advance_to(new_york_at(DUE, 8))
        [abroad_contact] = env.contacts(abroad["id"])
        assert (abroad_contact["status"], parse_time(abroad_contact["sent_at"])) == (
            "sent",
            new_york_at(DUE, 8),
        )

        # Day +3 at 07:30 waits for 08:00 on each shopper's clock; messages in their language.
        env.advance_to(new_york_at(DUE + timedelta(days=3), 12))
        timeline = {
            (shopper_id, c["step"], c["channel"]): (
                c["status"],
                parse_time(c["sent_at"]),
                c["template"],
            )
            for shopper_id in (abroad["id"], home["id"])
            for c in env.contacts(shopper_id)
        }
        abroad_plus_3, home_plus_3 = (
            new_york_at(DUE + timedelta(days=3), 8),
            local_at(DUE + timedelta(days=3), 8),
        )
        assert timeline == {
            (abroad["id"], "day_-1", "sms"): ("sent", new_york_at(DUE, 8), "reminder_due_today"),
            (abroad["id"], "day_+3", "sms"): ("sent", abroad_plus_3, "overdue_notice"),
            (abroad["id"], "day_+3", "email"): ("sent", abroad_plus_3, "overdue_notice"),
            (home["id"], "day_-1", "sms"): ("sent", local_at(DUE, 8), "reminder_due_today"),
            (home["id"], "day_+3", "sms"): ("sent", home_plus_3, "overdue_notice"),
            (home["id"], "day_+3", "email"): ("sent", home_plus_3, "overdue_notice"),
        }
        sms = {line["reference"]: line["text"] for line in env.sms_lines()}
        texts = {
            (shopper_id, c["step"]): sms[c["id"]]
            for shopper_id in (abroad["id"], home["id"])
            for c in env.contacts(shopper_id)
            if c["channel"] == "sms"
        }
        assert texts == {
            (abroad["id"], "day_-1"): "Hi 张*, your Test Shop pay-later bill of ¥300.00 is due "
            f"today (9 March 2027). Pay: {HOW_TO_PAY}. Late payment incurs fees per your "
            "agreement; at 30 days overdue it is reported to the credit bureau.",
            (abroad["id"], "day_+3"): "Hi 张*, your Test Shop bill of ¥300.45 (due 9 March 2027) "
            "is 3 days overdue. Late fees apply per your agreement; at 30 days overdue it is "
            f"reported to the credit bureau. Pay: {HOW_TO_PAY}",
            (
                home["id"],
                "day_-1",
            ): "张*您好，您在Test Shop的先用后付账单¥300.00今天（2027年3月9日）"
            f"到期。还款方式：{HOW_TO_PAY}。逾期将按协议收取逾期费用，逾期满30天将报送征信。"
            "如已还款请忽略。",
            (
                home["id"],
                "day_+3",
            ): "张*您好，您在Test Shop的先用后付账单¥300.45（还款日2027年3月9日）"
            f"已逾期3天。逾期费用按协议计收；逾期满30天将报送征信。还款方式：{HOW_TO_PAY}。"
            "如已还款请忽略。",
        }
        assert sorted((m["To"], m["Subject"]) for m in mailbox.messages()) == [
            ("ny@example.com", "Overdue: ¥300.45 is 3 days past due"),
            ("sh@example.com", "逾期提醒：¥300.45已逾期3天"),
        ]
        [english_mail] = [m for m in mailbox.messages() if m["To"] == "ny@example.com"]
        body = english_mail.get_content()
        assert "had ¥300.45 due on 9 March 2027; it is now 3 days overdue." in body
        assert "逾期" not in body

        # 10:30 in Shanghai is 21:30 in New York: a collector may call one shopper, not the other.
        env.advance_to_day(DUE + timedelta(days=4), 10, 30)
        before = env.contacts(abroad["id"])
        refused = env.call(abroad_order["id"], outcome="no_answer")
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"] == {
            "code": "contact_not_allowed",
            "message": "No calls between the quiet hours in the shopper's time zone.",
        }
        assert env.contacts(abroad["id"]) == before
        allowed = env.call(home_order["id"], outcome="no_answer")
        assert allowed.status_code == 201, allowed.text

        # 08:00 in New York is 21:00 in Shanghai: now it is the other way round.
        env.advance_to(new_york_at(DUE + timedelta(days=4), 8))
        allowed = env.call(abroad_order["id"], outcome="reached")
        assert allowed.status_code == 201, allowed.text
        refused = env.call(home_order["id"], outcome="reached")
        assert refused.status_code == 409, refused.text
        assert [c["outcome"] for c in env.contacts(abroad["id"]) if c["channel"] == "call"] == [
            "reached"
        ]
        assert [c["outcome"] for c in env.contacts(home["id"]) if c["channel"] == "call"] == [
            "no_answer"
        ]


def test_a_shopper_who_moves_is_called_on_the_new_clock(database_url: str, tmp_path: Path) -> None:
    """After ``PATCH …/preferences`` to Europe/London, 08:00 in Shanghai (00:00 in London) is the
    shopper's night; 08:00 in London is not."""
    with open_env(database_url, tmp_path) as env:
        shopper = env.enrol()
        order = env.buy(shopper["id"])
        env.advance_to_day(DUE + timedelta(days=2), 10)
        assert env.call(order["id"], outcome="no_answer").status_code == 201

        moved = env.client.patch(
            f"/v1/shoppers/{shopper['id']}/preferences",
            headers=env.platform,
            json={"time_zone": "Europe/London"},
        )
        assert moved.status_code == 200, moved.text
        assert (moved.json()["language"], moved.json()["time_zone"]) == (
            "zh-CN",
            "Europe/London",
        )
        # 08:00 in Shanghai the next day is 00:00 in London: the London night.
        env.advance_to_day(DUE + timedelta(days=3), 8)
        refused = env.call(order["id"], outcome="no_answer")
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["message"] == (
            "No calls between the quiet hours in the shopper's time zone."
        )
        london_morning = datetime(2027, 3, 12, 8, 0, tzinfo=UTC)
        env.advance_to(london_morning)
        assert env.call(order["id"], outcome="reached").status_code == 201
        assert [
            (c["outcome"], parse_time(c["sent_at"]))
            for c in env.contacts(shopper["id"])
            if c["channel"] == "call"
        ] == [
            ("no_answer", local_at(DUE + timedelta(days=2), 10)),
            ("reached", london_morning),
        ]
