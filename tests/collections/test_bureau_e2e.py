"""Issue 3: credit-bureau reporting over the API. An order enters the files on day +30; paid after
that, the month's file, written on the first of the next month, reports it paid (Metro 2 status 13,
with the Payment Rating of how late it was paid). An order paid before day +30 never appears."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from tests.collections.dunning_env import jsonl_records, open_env
from tests.collections.metro2_parser import parse_metro2

DUE = date(2027, 3, 9)  # bought and delivered on the start day, 2027-03-02


def test_paid_after_reporting_shows_paid_in_the_next_months_file(
    database_url: str, tmp_path: Path
) -> None:
    with open_env(database_url, tmp_path) as env:
        erin = env.enrol()
        frank = env.enrol()
        order = env.buy(erin["id"])
        early = env.buy(frank["id"])
        account = order["id"].replace("_", "").upper()

        # Frank pays 20 days late, before reporting: he never reaches the bureau.
        env.advance_to_day(DUE + timedelta(days=20))
        env.pay(frank["id"], 30_000 + 20 * 15)

        env.advance_to_day(DUE + timedelta(days=30))  # 2027-04-08: reported today
        reported = env.jsonl_records("2027-04")
        assert list(reported) == [order["id"]]
        assert (reported[order["id"]]["status"], reported[order["id"]]["account_status_code"]) == (
            "past_due",
            "71",
        )
        _, metro2 = env.bureau_file("2027-04", "metro2")
        [base] = parse_metro2(metro2).bases
        assert (base["consumer_account_number"], base["account_status"]) == (account, "71")

        # Paid on 20 April, 42 days late.
        paid_on = DUE + timedelta(days=42)
        env.advance_to_day(paid_on)
        owed = 30_000 + 42 * 15
        assert env.statement(erin["id"])["outstanding_minor"] == owed
        env.pay(erin["id"], owed)
        assert env.order(order["id"])["status"] == "repaid"

        # The file of the month, written on 1 May, reports the account paid.
        env.advance_to_day(date(2027, 5, 1))
        april = jsonl_records(env.month_end_file("2027-04", "jsonl"))
        assert list(april) == [order["id"]]  # Frank's order was never reported
        record = april[order["id"]]
        assert {
            key: record[key]
            for key in (
                "status",
                "account_status_code",
                "payment_rating",
                "current_balance_minor",
                "amount_past_due_minor",
                "actual_payment_minor",
                "date_closed",
                "date_last_payment",
                "date_of_first_delinquency",
                "account_information_on",
            )
        } == {
            "status": "paid",
            "account_status_code": "13",
            "payment_rating": "1",  # 30–59 days past due when paid
            "current_balance_minor": 0,
            "amount_past_due_minor": 0,
            "actual_payment_minor": owed,
            "date_closed": paid_on.isoformat(),
            "date_last_payment": paid_on.isoformat(),
            "date_of_first_delinquency": (DUE + timedelta(days=1)).isoformat(),
            "account_information_on": "2027-04-30",
        }
        metro2 = env.month_end_file("2027-04", "metro2")
        [base] = parse_metro2(metro2).bases
        assert base["consumer_account_number"] == account
        assert base["account_status"] == "13"
        record_line = metro2.splitlines()[1]
        assert record_line[123:125] == "13"  # Account Status, positions 124–125
        assert record_line[125] == "1"  # Payment Rating, position 126
        assert (base["current_balance"], base["amount_past_due"]) == (0, 0)
        assert base["actual_payment"] == owed // 100
        assert base["date_closed"] == paid_on
        assert base["date_of_first_delinquency"] == DUE + timedelta(days=1)
        assert parse_metro2(metro2).trailer["total_status_code_13"] == 1

        assert env.order(early["id"])["status"] == "repaid"
        env.assert_ledger_clean()


def test_a_new_delinquency_after_the_account_was_brought_current_has_its_own_first_date(
    database_url: str, tmp_path: Path
) -> None:
    """Metro 2's Date of First Delinquency starts the bureau's seven-year clock: an account brought
    current and late again later reports the start of the new delinquency, not of the cured one."""
    with open_env(database_url, tmp_path) as env:
        gina = env.enrol()
        order = env.buy(gina["id"], plan="instalments_3")
        first_due, second_due, _ = (
            date.fromisoformat(row["due_on"]) for row in env.order(order["id"])["instalments"]
        )
        assert (first_due, second_due) == (date(2027, 4, 2), date(2027, 5, 2))

        # The first instalment is paid two days late: delinquent from 3 April, current on the 4th.
        env.advance_to_day(first_due + timedelta(days=2))
        [first] = [row for row in env.order(order["id"])["instalments"] if row["seq"] == 1]
        owed = first["amount_minor"] + first["late_fees_minor"] - first["paid_minor"]
        # 10,000 principal, 160 instalment fee, two days of 0.05 % of the principal late
        assert owed == 10_000 + 160 + 2 * 5
        env.pay(gina["id"], owed, order_id=order["id"])
        [first] = [row for row in env.order(order["id"])["instalments"] if row["seq"] == 1]
        assert first["status"] == "paid"

        # The second is never paid: 59 days late when June's file is written on 1 July.
        env.advance_to_day(date(2027, 7, 1))
        june = jsonl_records(env.month_end_file("2027-06", "jsonl"))
        record = june[order["id"]]
        assert (record["account_status_code"], record["date_of_first_delinquency"]) == (
            "71",
            (second_due + timedelta(days=1)).isoformat(),
        )
        [base] = parse_metro2(env.month_end_file("2027-06", "metro2")).bases
        assert (base["account_status"], base["date_of_first_delinquency"]) == (
            "71",
            second_due + timedelta(days=1),
        )
