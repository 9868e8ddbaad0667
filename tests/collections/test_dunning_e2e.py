"""Issue 3, end to end over the HTTP API in sandbox mode: a shopper who never pays goes through
every step of the dunning ladder exactly once and on the right day, from the first reminder to
charge-off; a payment after charge-off is a recovery. Reminders go out through real channels: the
SMS log gateway, a real SMTP server (aiosmtpd) and ``notification.push`` events.
"""

from __future__ import annotations

import io
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pypdf import PdfReader

from tests.collections.dunning_env import (
    Env,
    RecordingHandler,
    balance,
    jsonl_records,
    local_at,
    open_env,
    parse_time,
    smtp_server,
)
from tests.collections.metro2_parser import parse_metro2
from usefirst.repayment.schedule import add_months

# The default ladder's reminders: (day relative to the due date, channel, template).
REMINDERS = (
    (-3, "push", "reminder_upcoming"),
    (-1, "push", "reminder_upcoming"),
    (-1, "sms", "reminder_upcoming"),
    (0, "push", "reminder_due_today"),
    (0, "sms", "reminder_due_today"),
    (1, "sms", "overdue_notice"),
    (3, "sms", "overdue_notice"),
    (3, "email", "overdue_notice"),
    (15, "sms", "final_notice_bureau"),
    (15, "email", "final_notice_bureau"),
)
ALICE_PHONE = "+8613912345678"
ALICE_EMAIL = "wang.fang@example.com"
BOB_PHONE = "+8613787654321"
DAILY_FEE = 15  # 0.05 % a day of 30 000 fen


def expected_contacts(
    due_dates: list[date], *, through: date, has_email: bool
) -> list[tuple[Any, ...]]:
    """(seq, step, channel, template, scheduled_at, status, status_reason) of every reminder
    that should exist by the end of ``through``, sorted as the API lists them."""
    rows = []
    for seq, due_on in enumerate(due_dates, start=1):
        for day, channel, template in REMINDERS:
            on = due_on + timedelta(days=day)
            if on > through:
                continue
            suppressed = channel == "email" and not has_email
            rows.append(
                (
                    seq,
                    f"day_{day:+d}",
                    channel,
                    template,
                    local_at(on, 10),
                    "suppressed" if suppressed else "sent",
                    "no_verified_email" if suppressed else None,
                )
            )
    return sorted(rows, key=lambda row: (row[4], row[0]))


def contact_rows(contacts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            c["seq"],
            c["step"],
            c["channel"],
            c["template"],
            parse_time(c["scheduled_at"]),
            c["status"],
            c["status_reason"],
        )
        for c in contacts
    ]


def check_contact_details(contacts: list[dict[str, Any]], shopper: dict[str, Any]) -> None:
    masked = {"push": f"app:{shopper['external_id']}", "sms": shopper["phone_masked"]}
    if shopper.get("email_masked"):
        masked["email"] = shopper["email_masked"]
    for contact in contacts:
        if contact["status"] == "sent":
            # Sent at the planned moment, 10:00 in Shanghai, to the shopper's masked channel.
            assert contact["sent_at"] == contact["scheduled_at"]
            assert contact["destination_masked"] == masked[contact["channel"]]
        else:
            assert contact["sent_at"] is None
            assert contact["destination_masked"] is None
    assert len({c["id"] for c in contacts}) == len(contacts)


def in_queue(env: Env, order_id: str) -> dict[str, Any] | None:
    return next((entry for entry in env.queue() if entry["order_id"] == order_id), None)


def test_a_shopper_who_never_pays_goes_through_every_step_once_until_charge_off(
    database_url: str, tmp_path: Path
) -> None:
    with (
        smtp_server() as (mailbox, smtp_port),
        open_env(
            database_url,
            tmp_path,
            smtp_host="127.0.0.1",
            smtp_port=smtp_port,
            smtp_sender="billing@example.com",
        ) as env,
    ):
        run_never_paying_scenario(env, mailbox)


def run_never_paying_scenario(env: Env, mailbox: RecordingHandler) -> None:
    day_zero = env.today()
    assert day_zero == date(2027, 3, 2)
    alice = env.enrol(phone=ALICE_PHONE, email=ALICE_EMAIL)
    bob = env.enrol(phone=BOB_PHONE)
    assert alice["email_masked"] == "w***@example.com"
    order = env.buy(alice["id"])  # pay after delivery: due in 7 days
    split = env.buy(bob["id"], plan="instalments_3")
    due = date.fromisoformat(order["instalments"][0]["due_on"])
    assert due == day_zero + timedelta(days=7)
    split_due = [add_months(day_zero, months) for months in (1, 2, 3)]
    assert [date.fromisoformat(i["due_on"]) for i in split["instalments"]] == split_due

    # --- day by day through the reminders, the call queue and the final notice ----------------
    today = day_zero
    while today < due + timedelta(days=16):
        today += timedelta(days=1)
        assert env.advance(days=1) == local_at(today, 12)
        days_late = (today - due).days
        contacts = env.contacts(alice["id"])
        assert contact_rows(contacts) == expected_contacts([due], through=today, has_email=True), (
            today
        )
        check_contact_details(contacts, alice)
        view = env.order(order["id"])
        assert view["status"] == ("overdue" if days_late > 0 else "delivered")
        assert view["instalments"][0]["late_fees_minor"] == DAILY_FEE * max(days_late, 0)
        assert env.credit(alice["id"])["status"] == ("frozen" if days_late > 0 else "active")
        entry = in_queue(env, order["id"])
        if days_late < 7:
            assert entry is None, today
        else:
            overdue_minor = 30_000 + DAILY_FEE * days_late
            assert entry == {
                "order_id": order["id"],
                "shopper_id": alice["id"],
                "overdue_minor": overdue_minor,
                "currency": "CNY",
                "days_past_due": days_late,
                "bucket": "1-30",
                "priority": overdue_minor * days_late,
            }
    assert env.contacts(bob["id"]) == []

    # Every message went out once, through its channel.
    alice_contacts = env.contacts(alice["id"])
    sms = [c for c in alice_contacts if c["channel"] == "sms"]
    assert [(line["to"], line["reference"]) for line in env.sms_lines()] == [
        (ALICE_PHONE, c["id"]) for c in sms
    ]
    sms_texts = [line["text"] for line in env.sms_lines()]
    assert "¥300.00" in sms_texts[0]  # day -1: the amount due
    assert "¥300.15" in sms_texts[2]  # day +1: one day's fee added
    emails = mailbox.messages()
    assert [(m["From"], m["To"], m["X-Usefirst-Reference"], m["Subject"]) for m in emails] == [
        ("billing@example.com", ALICE_EMAIL, c["id"], subject)
        for c, subject in zip(
            [c for c in alice_contacts if c["channel"] == "email"],
            ["逾期提醒：¥300.45已逾期3天", "征信报送前通知：¥302.25已逾期15天"],
            strict=True,
        )
    ]
    pushes = env.push_events()
    assert [
        (p["data"]["shopper_id"], p["data"]["order_id"], p["data"]["template"], p["created_at"])
        for p in pushes
    ] == [
        (alice["id"], order["id"], c["template"], c["scheduled_at"])
        for c in alice_contacts
        if c["channel"] == "push"
    ]
    assert len(env.events("order.overdue")) == 1

    # --- credit-bureau reporting from day +30 -----------------------------------------------
    env.advance_to_day(due + timedelta(days=29))
    meta, _ = env.bureau_file("2027-04", "jsonl")
    assert meta["records"] == 0
    env.advance(days=1)
    reported_on = due + timedelta(days=30)
    assert env.today() == reported_on
    records = env.jsonl_records("2027-04")
    assert list(records) == [order["id"]]
    record = records[order["id"]]
    owed = 30_000 + DAILY_FEE * 30
    assert {
        key: record[key]
        for key in (
            "status",
            "days_past_due",
            "account_status_code",
            "current_balance_minor",
            "amount_past_due_minor",
            "date_of_first_delinquency",
            "compliance_condition_code",
            "account_information_on",
            "shopper_id",
        )
    } == {
        "status": "past_due",
        "days_past_due": 30,
        "account_status_code": "71",
        "current_balance_minor": owed,
        "amount_past_due_minor": owed,
        "date_of_first_delinquency": (due + timedelta(days=1)).isoformat(),
        "compliance_condition_code": "",
        "account_information_on": reported_on.isoformat(),
        "shopper_id": alice["id"],
    }
    assert record["national_id_masked"] == alice["national_id_masked"]
    _, metro2 = env.bureau_file("2027-04", "metro2")
    parsed = parse_metro2(metro2)
    [base] = parsed.bases
    assert base["consumer_account_number"] == order["id"].replace("_", "").upper()
    assert base["account_status"] == "71"
    assert metro2.splitlines()[1][123:125] == "71"  # positions 124–125
    assert base["current_balance"] == owed // 100
    assert base["date_of_first_delinquency"] == due + timedelta(days=1)

    # The sweep writes last month's files on the first of each month.
    env.advance_to_day(date(2027, 6, 1))
    april = jsonl_records(env.month_end_file("2027-04", "jsonl"))
    assert {k: (v["status"], v["account_status_code"]) for k, v in april.items()} == {
        order["id"]: ("past_due", "71")  # 52 days late on 30 April
    }
    may = jsonl_records(env.month_end_file("2027-05", "jsonl"))
    assert {k: (v["days_past_due"], v["account_status_code"]) for k, v in may.items()} == {
        order["id"]: (83, "78"),
        split["id"]: (59, "71"),  # instalment 1 was due 2 April
    }

    # --- legal referral on day +90 ------------------------------------------------------------
    env.advance_to_day(due + timedelta(days=89))
    assert [case["order_id"] for case in env.legal_cases()] == []
    env.advance(days=1)
    [case] = env.legal_cases()
    assert case["order_id"] == order["id"]
    assert case["shopper_id"] == alice["id"]
    assert case["status"] == "referred"
    assert case["claimed"] == {
        "principal_minor": 30_000,
        "fees_minor": DAILY_FEE * 90,
        "currency": "CNY",
    }
    assert parse_time(case["opened_at"]) == local_at(due + timedelta(days=90), 0)
    assert env.client.get(f"/v1/legal/cases/{case['id']}", headers=env.collector).json() == case
    pdf = env.client.get(f"/v1/legal/cases/{case['id']}/evidence.pdf", headers=env.collector)
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    pdf_text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert case["id"] in pdf_text
    assert order["id"] in pdf_text
    move_legal_case(env, case["id"])
    assert len(env.events("legal.referred")) == 1

    # --- charge-off on day +180 ---------------------------------------------------------------
    env.advance_to_day(due + timedelta(days=179))
    view = env.order(order["id"])
    assert (view["status"], view["instalments"][0]["late_fees_minor"]) == (
        "overdue",
        DAILY_FEE * 179,
    )
    assert env.credit(alice["id"])["status"] == "frozen"
    assert balance(env.account_balances(), "write_off_expense") == 0
    env.advance(days=1)
    charged_off_on = due + timedelta(days=180)
    view = env.order(order["id"])
    late_fees = DAILY_FEE * 180
    assert late_fees <= 30_000 * 25 // 100  # within the cap of 25 % of the principal
    assert view["status"] == "charged_off"
    assert [(i["status"], i["late_fees_minor"]) for i in view["instalments"]] == [
        ("charged_off", late_fees)
    ]
    credit = env.credit(alice["id"])
    assert (credit["status"], credit["available_minor"], credit["used_minor"]) == ("closed", 0, 0)
    assert [reason["code"] for reason in credit["reasons"]] == ["charged_off"]
    balances = env.account_balances()
    assert balance(balances, "write_off_expense") == 30_000 + late_fees
    assert balance(balances, "shopper_receivable", alice["id"]) == 0
    assert in_queue(env, order["id"]) is None
    env.assert_ledger_clean()

    # Nothing more happens to a charged-off order: no fees, no reminders, no second write-off.
    env.advance_to_day(split_due[0] + timedelta(days=180))
    assert env.late_fees(order["id"]) == late_fees
    assert env.order(split["id"])["status"] == "charged_off"
    assert [e["data"]["order"]["id"] for e in env.events("order.charged_off")] == [
        order["id"],
        split["id"],
    ]
    assert {e["created_at"] for e in env.events("order.charged_off")} == {
        local_at(charged_off_on, 0).isoformat().replace("+00:00", "Z"),
        local_at(split_due[0] + timedelta(days=180), 0).isoformat().replace("+00:00", "Z"),
    }
    last_day = env.today()
    assert contact_rows(env.contacts(alice["id"])) == expected_contacts(
        [due], through=last_day, has_email=True
    )
    assert len(env.contacts(alice["id"])) == len(REMINDERS)

    # --- the instalment plan went through the same ladder, per instalment ------------------------
    bob_contacts = env.contacts(bob["id"])
    assert contact_rows(bob_contacts) == expected_contacts(
        split_due, through=last_day, has_email=False
    )
    check_contact_details(bob_contacts, bob)
    assert sum(c["status"] == "sent" for c in bob_contacts) == 24
    assert [line["to"] for line in env.sms_lines()].count(BOB_PHONE) == 15
    assert len(mailbox.messages()) == 2  # Bob gave no email: his never left
    assert len([p for p in env.push_events() if p["data"]["shopper_id"] == bob["id"]]) == 9
    charge_off_day = split_due[0] + timedelta(days=180)
    split_late = [5 * (charge_off_day - due_on).days for due_on in split_due]
    assert split_late == [900, 750, 595]
    split_view = env.order(split["id"])
    assert [(i["status"], i["late_fees_minor"]) for i in split_view["instalments"]] == [
        ("charged_off", fee) for fee in split_late
    ]
    legal_day = split_due[0] + timedelta(days=90)
    [split_case] = [c for c in env.legal_cases() if c["order_id"] == split["id"]]
    assert split_case["claimed"] == {
        "principal_minor": 30_000,
        # the plan fee of each instalment and the late fees charged by day +90
        "fees_minor": 3 * 150 + sum(5 * (legal_day - due_on).days for due_on in split_due),
        "currency": "CNY",
    }
    split_written_off = 30_000 + 3 * 150 + sum(split_late)
    assert balance(env.account_balances(), "write_off_expense") == (
        30_000 + late_fees + split_written_off
    )

    # --- a payment after charge-off is a recovery -----------------------------------------------
    paid = env.pay(alice["id"], 30_000 + late_fees)
    assert [
        {key: a[key] for key in ("order_id", "seq", "fees_minor", "principal_minor")}
        for a in paid["allocations"]
    ] == [{"order_id": order["id"], "seq": 1, "fees_minor": late_fees, "principal_minor": 30_000}]
    assert paid["unapplied_minor"] == 0
    paid_on = env.today()
    balances = env.account_balances()
    assert balance(balances, "recoveries") == -(30_000 + late_fees)
    assert balance(balances, "shopper_receivable", alice["id"]) == 0
    assert env.order(order["id"])["status"] == "charged_off"
    assert env.credit(alice["id"])["status"] == "closed"
    env.assert_ledger_clean()

    env.advance_to_day(date(2027, 10, 1))
    september = jsonl_records(env.month_end_file("2027-09", "jsonl"))
    assert {
        key: (
            value["status"],
            value["account_status_code"],
            value["current_balance_minor"],
            value["charge_off_amount_minor"],
            value["date_closed"],
        )
        for key, value in september.items()
    } == {
        order["id"]: ("charged_off", "64", 0, 30_000 + late_fees, paid_on.isoformat()),
        split["id"]: ("charged_off", "97", split_written_off, split_written_off, None),
    }
    metro2_september = parse_metro2(env.month_end_file("2027-09", "metro2"))
    assert {
        base["consumer_account_number"]: base["account_status"] for base in metro2_september.bases
    } == {
        order["id"].replace("_", "").upper(): "64",
        split["id"].replace("_", "").upper(): "97",
    }
    env.assert_ledger_clean()


def move_legal_case(env: Env, case_id: str) -> None:
    path = f"/v1/legal/cases/{case_id}/status"
    assert env.client.post(path, headers=env.collector, json={"status": "filed"}).status_code == 403
    bad = env.client.post(path, headers=env.admin, json={"status": "referred"})
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "status"
    skipped = env.client.post(path, headers=env.admin, json={"status": "judgment"})
    assert skipped.status_code == 409
    for status in ("filed", "judgment", "closed"):
        moved = env.client.post(path, headers=env.admin, json={"status": status})
        assert moved.status_code == 200, moved.text
        assert moved.json()["status"] == status
    reopened = env.client.post(path, headers=env.admin, json={"status": "filed"})
    assert reopened.status_code == 409
