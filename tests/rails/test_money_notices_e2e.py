"""Notices about money that moved, told to the shopper by push, SMS and e-mail in their language
under the contact policy, beside the webhook event: a failed auto-debit (and when it is tried
again), the payment received (what it paid, what is left) and a due date moved; and dunning for a
shopper with a mandate that says when the charge is tried. On SQLite and
PostgreSQL, through the sandbox rail over real HTTP."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from tests.collections.dunning_env import RecordingHandler, free_port
from tests.rails.rail_env import open_rail_env
from usefirst.notify.templates import RenderedMessage, TemplateCatalog

DUE_ON = date(2027, 3, 9)  # an order delivered on 03-02 falls due on 03-09
HOW_TO_PAY = "在商城 App 的“先用后付”页面还款 / pay in the marketplace app"


def notices(contacts: list[dict[str, Any]], template: str) -> list[tuple[str, str, Any]]:
    return sorted(
        (c["channel"], c["status"], c["status_reason"])
        for c in contacts
        if c["template"] == template
    )


def texts(lines: list[dict[str, Any]], template: str | None = None) -> list[str]:
    return [line["text"] for line in lines if template is None or line["template"] == template]


def test_failed_charge_and_receipt_in_chinese_under_the_daily_cap(
    database_url: str, tmp_path: Path
) -> None:
    with open_rail_env(database_url, tmp_path) as rail_env:
        env = rail_env.env
        shopper = env.enrol()
        rail_env.mandate(shopper["id"])
        order = env.buy(shopper["id"], 30_000)
        rail_env.force("decline", "succeed")

        env.advance_to_day(DUE_ON, hour=10, minute=5)
        rail_env.send_charges()
        [failed] = env.events("charge.failed")
        assert failed["data"]["next_attempt_on"] == "2027-03-10"
        env.advance(seconds=60)
        # The day's cap (3) counts a notice as any reminder: today's two "due today" reminders
        # and the notice's push reach it, so its SMS and e-mail wait for tomorrow's opening.
        assert notices(env.contacts(shopper["id"]), "charge_failed") == [
            ("email", "deferred", "daily_contact_limit"),
            ("push", "sent", None),
            ("sms", "deferred", "daily_contact_limit"),
        ]
        assert texts([p["data"] for p in env.push_events()], "charge_failed") == [
            f"张*您好，您在Test Shop的订单{order['id']}于2027年3月9日到期的¥300.00自动扣款未成功。"
            f"我们将于2027年3月10日再次尝试扣款，您也可以先行还款：{HOW_TO_PAY}。"
        ]
        sms_before = len(env.sms_lines())

        # The next morning the SMS goes out (no e-mail on file: suppressed); the second try
        # succeeds and the receipt tells what it paid (a day's late fee included) and what is left.
        env.advance_to_day(DUE_ON + timedelta(days=1), hour=10, minute=5)
        assert texts(env.sms_lines()[sms_before : sms_before + 1]) == [
            "张*您好，您在Test Shop的先用后付账单2027年3月9日到期的¥300.00自动扣款未成功，"
            f"将于2027年3月10日再次扣款。您也可以先行还款：{HOW_TO_PAY}。"
        ]
        rail_env.send_charges()
        [received] = env.events("payment.received")
        assert received["data"]["amount_minor"] == 30_015
        env.advance(seconds=60)
        contacts = env.contacts(shopper["id"])
        assert notices(contacts, "charge_failed") == [
            ("email", "suppressed", "no_verified_email"),
            ("push", "sent", None),
            ("sms", "sent", None),
        ]
        assert notices(contacts, "payment_received") == [
            ("email", "deferred", "daily_contact_limit"),
            ("push", "sent", None),
            ("sms", "deferred", "daily_contact_limit"),
        ]
        # Dunning for a shopper with a mandate says when the charge is tried: the reminders
        # before and on the due date name the due date's charge, the overdue notice the next try.
        assert (
            texts([p["data"] for p in env.push_events()], "reminder_autodebit")
            == [
                f"张*您好，您在Test Shop的订单{order['id']}应还¥300.00，还款日为2027年3月9日，"
                f"将于2027年3月9日从您授权的支付方式自动扣款。您也可以先行还款：{HOW_TO_PAY}。"
            ]
            * 3
        )
        [overdue_sms] = [line for line in env.sms_lines() if "已逾期" in line["text"]]
        assert overdue_sms["text"] == (
            "张*您好，您在Test Shop的先用后付账单¥300.15（还款日2027年3月9日）已逾期1天，"
            "将于2027年3月10日再次自动扣款。逾期满30天将报送征信。"
            f"还款方式：{HOW_TO_PAY}。"
        )
        assert texts([p["data"] for p in env.push_events()], "payment_received") == [
            f"张*您好，我们已收到您对Test Shop订单{order['id']}的还款¥300.15，该订单剩余应还¥0.00。"
        ]
        # A receipt still goes out the next day although the order is repaid.
        env.advance_to_day(DUE_ON + timedelta(days=2), hour=9)
        assert env.sms_lines()[-1]["text"] == (
            "张*您好，已收到您在Test Shop的先用后付还款¥300.15，剩余应还¥0.00。"
        )
        assert notices(env.contacts(shopper["id"]), "payment_received")[2] == ("sms", "sent", None)


def test_extension_notice_in_english_waits_for_quiet_hours_to_end(
    database_url: str, tmp_path: Path
) -> None:
    with open_rail_env(database_url, tmp_path) as rail_env:
        env = rail_env.env
        shopper = env.enrol(language="en", name="Li Lei")
        order = env.buy(shopper["id"], 15_000)
        env.advance_to_day(DUE_ON - timedelta(days=2), hour=22)
        moved = env.client.post(
            f"/v1/orders/{order['id']}/extension",
            headers=env.platform,
            json={"seq": 1, "days": 10},
        )
        assert moved.status_code == 200, moved.text
        [extended] = env.events("order.due_date_extended")
        assert extended["data"]["due_on"] == "2027-03-19"
        env.advance(seconds=60)
        assert notices(env.contacts(shopper["id"]), "due_date_extended") == [
            ("email", "deferred", "quiet_hours"),
            ("push", "deferred", "quiet_hours"),
            ("sms", "deferred", "quiet_hours"),
        ]
        assert texts([p["data"] for p in env.push_events()], "due_date_extended") == []
        sms_before = len(env.sms_lines())

        env.advance_to_day(DUE_ON - timedelta(days=1), hour=9)
        assert notices(env.contacts(shopper["id"]), "due_date_extended") == [
            ("email", "suppressed", "no_verified_email"),
            ("push", "sent", None),
            ("sms", "sent", None),
        ]
        assert texts(env.sms_lines()[sms_before:]) == [
            "Hi L*****, the ¥150.00 of your Test Shop pay-later bill is now due on 19 March 2027, "
            f"at no extra cost. Pay: {HOW_TO_PAY}"
        ]
        assert texts([p["data"] for p in env.push_events()], "due_date_extended") == [
            f"Hi L*****, the ¥150.00 for Test Shop order {order['id']} is now due on "
            f"19 March 2027, at no extra cost. How to pay: {HOW_TO_PAY}"
        ]


# What an instalment's notice says in the rendering tests below.
DUE = {
    "merchant_name": "Test Shop",
    "order_reference": "ord_1",
    "amount_due_minor": 30_000,
    "due_on": date(2027, 3, 9),
    "how_to_pay": "the app",
}


def render(template: str, channel: str, language: str, **variables: Any) -> RenderedMessage:
    return TemplateCatalog().render(
        template, channel=channel, language=language, variables={**DUE, **variables}
    )


def test_notice_messages_render_exactly() -> None:
    failed = render(
        "charge_failed", "email", "en", shopper_name="Li Lei", next_try_on=date(2027, 3, 10)
    )
    assert failed.subject == "Automatic payment failed: we will try ¥300.00 again on 10 March 2027"
    assert failed.text.startswith(
        "Dear Li Lei,\n\nThe automatic payment of ¥300.00 due on 9 March 2027 for your purchase "
        "from Test Shop (order ord_1) did not go through. We will try to charge your authorised "
        "payment method again on 10 March 2027.\n\nIf you would rather pay now: the app\n\n"
    )
    final = render("charge_failed_final", "sms", "zh", shopper_name="张三")
    assert final.text == (
        "张三您好，您在Test Shop的先用后付账单2027年3月9日到期的¥300.00多次自动扣款未成功，"
        "不会再自动扣款。请自行还款：the app。"
    )
    reminder = render(
        "reminder_autodebit",
        "sms",
        "en",
        shopper_name="Li Lei",
        next_try_on=date(2027, 3, 9),
        bureau_reporting_days=30,
    )
    assert reminder.text == (
        "Hi Li Lei, your Test Shop bill of ¥300.00 is due on 9 March 2027; we will charge it "
        "automatically on 9 March 2027. Or pay: the app. At 30 days overdue it is reported to "
        "the credit bureau."
    )
    receipt = TemplateCatalog().render(
        "payment_received",
        channel="email",
        language="zh",
        variables={
            "shopper_name": "张三",
            "merchant_name": "Test Shop",
            "order_reference": "ord_1",
            "amount_paid_minor": 10_000,
            "amount_left_minor": 20_000,
        },
    )
    assert receipt.subject == "还款回执：已收到¥100.00"
    assert receipt.text.startswith(
        "张三您好：\n\n我们已收到您对Test Shop订单（订单号 ord_1）的还款¥100.00。\n\n"
        "该订单剩余应还：¥200.00\n\n感谢您按时还款。\n\n"
    )


def test_an_auto_debit_reminder_retried_after_a_failed_email_is_worded_afresh(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens here yet
    settings = {"smtp_host": "127.0.0.1", "smtp_sender": "billing@example.com", "smtp_port": port}
    with open_rail_env(database_url, tmp_path, **settings) as rail_env:
        env = rail_env.env
        shopper = env.enrol(email="ann@example.com")
        rail_env.mandate(shopper["id"])
        env.buy(shopper["id"], 30_000)
        rail_env.force("decline", "decline", "decline")
        for day in (DUE_ON, DUE_ON + timedelta(days=1)):
            env.advance_to_day(day, hour=10, minute=5)
            rail_env.send_charges()
        env.advance_to_day(DUE_ON + timedelta(days=3), hour=10)
        [email] = [
            c
            for c in env.contacts(shopper["id"])
            if c["channel"] == "email" and c["step"] != "money_notice"
        ]
        assert (email["template"], email["status"]) == ("overdue_notice_autodebit", "deferred")
        mailbox = RecordingHandler()
        controller = Controller(mailbox, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            env.advance_to_day(DUE_ON + timedelta(days=3), hour=10, minute=30)
        finally:
            controller.stop()
        [email] = [
            c
            for c in env.contacts(shopper["id"])
            if c["channel"] == "email" and c["step"] != "money_notice"
        ]
        assert (email["template"], email["status"]) == ("overdue_notice_autodebit", "sent")
        assert [message["Subject"] for message in mailbox.messages()] == [
            "逾期提醒：¥300.45将于2027年3月12日再次扣款"
        ]
