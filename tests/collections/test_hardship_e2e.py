"""Hardship end to end on SQLite and PostgreSQL, over the HTTP API with the sandbox clock: a
shopper 30 days late asks for relief; late fees and dunning hold at once; an operator answers with
a plan (kept, or broken after a missed payment and its notice) or a settlement for less (the rest
written off). Each ends with the ledger audit balanced and the bureau file reporting the
arrangement (Metro 2 special comments CP, AC, AU)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from tests.collections.dunning_env import Env, balance, dump_tables, jsonl_records, open_env

DUE = date(2027, 3, 9)  # bought and delivered on the start day, 2027-03-02
REPORTED_ON = DUE + timedelta(days=30)  # 2027-04-08: the order reaches the bureau today
LATE_FEES_AT_REPORTING = 30 * 15  # 30 days at 5 bps a day of 30,000
OWED = 30_000 + LATE_FEES_AT_REPORTING
MONEY_AND_HARDSHIP = [
    "payments",
    "allocations",
    "journal_entries",
    "ledger_postings",
    "instalments",
    "credit_lines",
    "hardship_requests",
    "orders",
]


def _open(env: Env, order_id: str, headers: dict[str, str], key: str) -> Any:
    return env.client.post(
        f"/v1/orders/{order_id}/hardship",
        headers={**headers, "Idempotency-Key": key},
        json={"reason": "lost my job in March"},
    )


def _decide(env: Env, request_id: str, **body: Any) -> Any:
    return env.client.post(
        f"/v1/hardship-requests/{request_id}/decision", headers=env.collector, json=body
    )


def _late_shopper(env: Env) -> tuple[dict[str, Any], dict[str, Any]]:
    """A shopper whose 30,000 order is 30 days late and reported to the bureau."""
    shopper = env.enrol()
    order = env.buy(shopper["id"])
    env.advance_to_day(REPORTED_ON)
    assert env.late_fees(order["id"]) == LATE_FEES_AT_REPORTING
    assert env.order(order["id"])["status"] == "overdue"
    return shopper, order


def _request_relief(env: Env, order_id: str) -> dict[str, Any]:
    opened = _open(env, order_id, env.platform, "hardship-1")
    assert opened.status_code == 201, opened.text
    request = dict(opened.json())
    assert {
        key: request[key]
        for key in ("status", "opened_by", "owed_minor", "opened_on", "answer_due_on")
    } == {
        "status": "open",
        "opened_by": "shopper",
        "owed_minor": OWED,
        "opened_on": REPORTED_ON.isoformat(),
        "answer_due_on": (REPORTED_ON + timedelta(days=21)).isoformat(),
    }
    return request


def _bureau_record(env: Env, period: str, order_id: str) -> dict[str, Any]:
    return env.jsonl_records(period)[order_id]


def _reported(record: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "account_status_code",
        "special_comment_code",
        "terms_duration",
        "terms_frequency",
        "scheduled_monthly_payment_minor",
        "current_balance_minor",
        "amount_past_due_minor",
        "days_past_due",
    )
    return {key: record[key] for key in keys}


def test_plan_kept(database_url: str, tmp_path: Path) -> None:
    with open_env(database_url, tmp_path) as env:
        shopper, order = _late_shopper(env)
        request = _request_relief(env, order["id"])
        # A second request on the same order while the first holds is refused, nothing written.
        before = dump_tables(env.runtime, MONEY_AND_HARDSHIP)
        again = _open(env, order["id"], env.collector, "hardship-2")
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "hardship_already_open"
        assert dump_tables(env.runtime, MONEY_AND_HARDSHIP) == before

        # A week waiting for the answer: no late fee accrues, no reminder goes out.
        contacts_before = env.contacts(shopper["id"])
        env.advance_to_day(REPORTED_ON + timedelta(days=7))
        assert env.late_fees(order["id"]) == LATE_FEES_AT_REPORTING
        assert env.contacts(shopper["id"]) == contacts_before

        # Too long a plan is refused and changes nothing.
        too_long = _decide(env, request["id"], decision="plan", plan_months=13)
        assert too_long.status_code == 422
        assert dump_tables(env.runtime, MONEY_AND_HARDSHIP) == before

        decided_on = REPORTED_ON + timedelta(days=7)  # 2027-04-15
        answered = _decide(env, request["id"], decision="plan", plan_months=3, note="3 months")
        assert answered.status_code == 200, answered.text
        body = answered.json()
        assert (body["status"], body["decision"], body["plan_months"]) == ("plan", "plan", 3)
        assert body["plan"] == [
            {"seq": 2, "due_on": "2027-05-15", "amount_minor": 10_150},
            {"seq": 3, "due_on": "2027-06-15", "amount_minor": 10_150},
            {"seq": 4, "due_on": "2027-07-15", "amount_minor": 10_150},
        ]
        view = env.order(order["id"])
        assert view["status"] == "delivered"
        assert [(row["seq"], row["status"]) for row in view["instalments"]] == [
            (1, "rescheduled"),
            (2, "pending"),
            (3, "pending"),
            (4, "pending"),
        ]
        # The shopper borrows no more while the plan runs.
        assert env.credit(shopper["id"])["status"] == "frozen"
        [decided] = env.events("hardship.decided")
        assert decided["data"]["decided_on"] == decided_on.isoformat()
        # The shopper is told the plan on their own channels (no e-mail on file: that one is
        # suppressed), in their language, with the payment, its date and how to pay.
        env.advance(seconds=60)
        notices = [c for c in env.contacts(shopper["id"]) if c["step"] == "hardship_notice"]
        assert sorted((c["channel"], c["template"], c["status"], c["seq"]) for c in notices) == [
            ("email", "hardship_plan_agreed", "suppressed", 2),
            ("push", "hardship_plan_agreed", "sent", 2),
            ("sms", "hardship_plan_agreed", "sent", 2),
        ]
        [sms] = [line for line in env.sms_lines() if "还款计划" in line["text"]]
        assert "¥101.50" in sms["text"] and "2027年5月15日" in sms["text"]

        # April's file: current under a partial payment agreement (AC), the plan's terms.
        env.advance_to_day(date(2027, 5, 1))
        assert _reported(_bureau_record(env, "2027-04", order["id"])) == {
            "account_status_code": "11",
            "special_comment_code": "AC",
            "terms_duration": 3,
            "terms_frequency": "M",
            "scheduled_monthly_payment_minor": 10_150,
            "current_balance_minor": OWED,
            "amount_past_due_minor": 0,
            "days_past_due": 0,
        }

        for due_on in (date(2027, 5, 15), date(2027, 6, 15), date(2027, 7, 15)):
            env.advance_to_day(due_on)
            env.pay(shopper["id"], 10_150, order["id"])
        assert env.order(order["id"])["status"] == "repaid"
        env.advance_to_day(date(2027, 7, 16))
        [ended] = env.events("hardship.ended")
        assert (ended["data"]["status"], ended["data"]["ended_on"]) == ("completed", "2027-07-16")
        assert env.credit(shopper["id"])["status"] == "active"
        # No fee was added while the plan ran, no loss was taken, nothing is owed.
        assert env.late_fees(order["id"]) == LATE_FEES_AT_REPORTING
        balances = env.account_balances()
        assert balance(balances, "late_fee_income") == -LATE_FEES_AT_REPORTING
        assert balance(balances, "write_off_expense") == 0
        assert balance(balances, "shopper_receivable", shopper["id"]) == 0

        # July's file: paid (13), the comment removed.
        env.advance_to_day(date(2027, 8, 1))
        record = _bureau_record(env, "2027-07", order["id"])
        assert (record["account_status_code"], record["special_comment_code"]) == ("13", "")
        assert record["current_balance_minor"] == 0
        env.assert_ledger_clean()


def test_plan_broken_after_a_missed_payment_and_its_notice(
    database_url: str, tmp_path: Path
) -> None:
    with open_env(database_url, tmp_path) as env:
        shopper, order = _late_shopper(env)
        request = _request_relief(env, order["id"])
        # A file made while the request awaits its answer: forbearance (CP), still 30 days late.
        waiting = _bureau_record(env, "2027-04", order["id"])
        assert (waiting["account_status_code"], waiting["special_comment_code"]) == ("71", "CP")
        answered = _decide(env, request["id"], decision="plan", plan_months=2)
        assert answered.status_code == 200, answered.text
        assert [row["amount_minor"] for row in answered.json()["plan"]] == [15_225, 15_225]
        assert [row["due_on"] for row in answered.json()["plan"]] == ["2027-05-08", "2027-06-08"]

        # The first plan payment is missed: the shopper is told the day after, the plan holds.
        env.advance_to_day(date(2027, 5, 9))
        [missed] = env.events("hardship.plan_payment_missed")
        assert (missed["data"]["missed_minor"], missed["data"]["plan_ends_on"]) == (
            15_225,
            "2027-05-23",
        )
        assert env.events("hardship.ended") == []
        env.advance_to_day(date(2027, 5, 22))
        assert env.late_fees(order["id"]) == LATE_FEES_AT_REPORTING
        contacts = env.contacts(shopper["id"])
        plan_row_reminders = [
            c for c in contacts if c["seq"] == 2 and c["step"] != "hardship_notice"
        ]
        assert {(c["status"], c["status_reason"]) for c in plan_row_reminders} == {
            ("suppressed", "hardship")
        }
        missed_notices = [
            (c["channel"], c["status"]) for c in contacts if c["template"] == "hardship_plan_missed"
        ]
        assert sorted(missed_notices) == [
            ("email", "suppressed"),
            ("push", "sent"),
            ("sms", "sent"),
        ]

        # Still unpaid when the notice runs out: the plan ends, dunning and late fees resume.
        env.advance_to_day(date(2027, 5, 25))
        [ended] = env.events("hardship.ended")
        assert (ended["data"]["status"], ended["data"]["ended_on"]) == ("broken", "2027-05-23")
        # 23, 24 and 25 May: 5 bps a day of the plan instalment's 15,000 principal, rounded up.
        assert env.late_fees(order["id"]) == LATE_FEES_AT_REPORTING + 3 * 8
        final_notices = [
            contact
            for contact in env.contacts(shopper["id"])
            if contact["seq"] == 2 and contact["template"] == "final_notice_bureau"
        ]
        assert {(c["channel"], c["status"], c["status_reason"]) for c in final_notices} == {
            ("sms", "sent", None),
            ("email", "suppressed", "no_verified_email"),  # the shopper gave no e-mail
        }
        assert env.order(order["id"])["status"] == "overdue"

        # May's month-end file (written by the first sweep of June before that day's late fee:
        # the book as May left it, 23 to 31 May's nine fees): the comment removed, the missed plan
        # payment past due.
        env.advance_to_day(date(2027, 6, 1))
        record = jsonl_records(env.month_end_file("2027-05", "jsonl"))[order["id"]]
        assert _reported(record) == {
            "account_status_code": "11",
            "special_comment_code": "",
            "terms_duration": 2,
            "terms_frequency": "M",
            "scheduled_monthly_payment_minor": 15_225,
            "current_balance_minor": OWED + 9 * 8,
            "amount_past_due_minor": 15_225 + 9 * 8,
            "days_past_due": 23,
        }
        balances = env.account_balances()
        assert balance(balances, "late_fee_income") == -(LATE_FEES_AT_REPORTING + 10 * 8)
        assert balance(balances, "shopper_receivable", shopper["id"]) == OWED + 10 * 8
        env.assert_ledger_clean()


def test_settlement_for_less_writes_the_rest_off(database_url: str, tmp_path: Path) -> None:
    with open_env(database_url, tmp_path) as env:
        shopper, order = _late_shopper(env)
        request = _request_relief(env, order["id"])
        too_much = _decide(env, request["id"], decision="settlement", settlement_minor=OWED)
        assert too_much.status_code == 422
        offered = _decide(env, request["id"], decision="settlement", settlement_minor=20_000)
        assert offered.status_code == 200, offered.text
        assert (offered.json()["status"], offered.json()["settlement_valid_until_on"]) == (
            "offered",
            (REPORTED_ON + timedelta(days=30)).isoformat(),
        )
        env.advance_to_day(REPORTED_ON + timedelta(days=3))
        assert env.late_fees(order["id"]) == LATE_FEES_AT_REPORTING

        before = dump_tables(env.runtime, MONEY_AND_HARDSHIP)
        wrong = env.client.post(
            f"/v1/hardship-requests/{request['id']}/settlement-payment",
            headers=env.platform,
            json={"amount_minor": 19_999, "method": "alipay"},
        )
        assert wrong.status_code == 409
        assert wrong.json()["error"]["code"] == "settlement_amount_mismatch"
        assert dump_tables(env.runtime, MONEY_AND_HARDSHIP) == before

        paid = env.client.post(
            f"/v1/hardship-requests/{request['id']}/settlement-payment",
            headers={**env.platform, "Idempotency-Key": "settle-1"},
            json={"amount_minor": 20_000, "method": "alipay", "external_ref": "ali-77"},
        )
        assert paid.status_code == 200, paid.text
        assert (paid.json()["status"], paid.json()["written_off_minor"]) == (
            "settled",
            OWED - 20_000,
        )
        assert paid.json()["order_status"] == "repaid"
        assert env.credit(shopper["id"])["status"] == "active"
        balances = env.account_balances()
        assert balance(balances, "write_off_expense") == OWED - 20_000
        assert balance(balances, "shopper_receivable", shopper["id"]) == 0

        env.advance_to_day(date(2027, 5, 1))
        record = _bureau_record(env, "2027-04", order["id"])
        assert (record["account_status_code"], record["special_comment_code"]) == ("13", "AU")
        assert (record["current_balance_minor"], record["charge_off_amount_minor"]) == (0, 0)
        env.assert_ledger_clean()
