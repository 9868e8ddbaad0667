"""Issue 3: a shopper who pays stops the dunning process the same day. Reminders already planned
are suppressed (reason ``paid``), nothing later is planned, credit unfreezes, late fees stop, and
the order never reaches the call queue or the credit bureau."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from tests.collections.dunning_env import balance, instant, local_at, open_env

DUE = date(2027, 3, 9)  # bought and delivered on the start day, 2027-03-02


def test_paying_on_day_5_stops_everything(database_url: str, tmp_path: Path) -> None:
    with open_env(database_url, tmp_path) as env:
        carol = env.enrol()
        dan = env.enrol(email="dan@example.com")
        carol_order = env.buy(carol["id"])
        dan_order = env.buy(dan["id"])
        assert carol_order["instalments"][0]["due_on"] == DUE.isoformat()

        # Dan pays on day +3 at 09:00, after the sweep planned that day's SMS and email for 10:00.
        env.advance_to_day(DUE + timedelta(days=3), 9)
        planned = [c for c in env.contacts(dan["id"]) if c["step"] == "day_+3"]
        assert [(c["channel"], c["status"]) for c in planned] == [
            ("sms", "scheduled"),
            ("email", "scheduled"),
        ]
        assert env.credit(dan["id"])["status"] == "frozen"
        assert env.statement(dan["id"])["outstanding_minor"] == 30_045
        env.pay(dan["id"], 30_045)
        assert env.order(dan_order["id"])["status"] == "repaid"
        assert env.credit(dan["id"])["status"] == "active"
        sms_before = len(env.sms_lines())
        env.advance_to_day(DUE + timedelta(days=3), 10)
        dan_contacts = env.contacts(dan["id"])
        assert [
            (c["step"], c["channel"], c["status"], c["status_reason"], c["sent_at"])
            for c in dan_contacts
            if c["step"] == "day_+3"
        ] == [
            ("day_+3", "sms", "suppressed", "paid", None),
            ("day_+3", "email", "suppressed", "paid", None),
        ]
        # Carol's day +3 SMS went out at 10:00; Dan's did not.
        assert [line["reference"] for line in env.sms_lines()[sms_before:]] == [
            c["id"]
            for c in env.contacts(carol["id"])
            if (c["step"], c["channel"]) == ("day_+3", "sms")
        ]

        # Carol pays on day +5: five days of late fees, then nothing more.
        env.advance_to_day(DUE + timedelta(days=5), 12)
        assert env.late_fees(carol_order["id"]) == 5 * 15
        credit = env.credit(carol["id"])
        assert (credit["status"], credit["available_minor"]) == ("frozen", 0)
        carol_contacts = env.contacts(carol["id"])
        assert [(c["step"], c["channel"], c["status"]) for c in carol_contacts] == [
            ("day_-3", "push", "sent"),
            ("day_-1", "push", "sent"),
            ("day_-1", "sms", "sent"),
            ("day_+0", "push", "sent"),
            ("day_+0", "sms", "sent"),
            ("day_+1", "sms", "sent"),
            ("day_+3", "sms", "sent"),
            ("day_+3", "email", "suppressed"),  # Carol gave no email
        ]
        late_fee_income = balance(env.account_balances(), "late_fee_income")
        paid = env.pay(carol["id"], 30_075)
        assert [(a["fees_minor"], a["principal_minor"]) for a in paid["allocations"]] == [
            (75, 30_000)
        ]
        view = env.order(carol_order["id"])
        assert view["status"] == "repaid"
        assert [
            (i["status"], i["late_fees_minor"], i["paid_minor"]) for i in view["instalments"]
        ] == [("paid", 75, 30_075)]
        credit = env.credit(carol["id"])
        assert (credit["status"], credit["used_minor"], credit["available_minor"]) == (
            "active",
            0,
            100_000,
        )
        assert [reason["code"] for reason in credit["reasons"]] == ["overdue_cleared"]

        # A month later: no contact, fee, queue entry or bureau record came after the payment.
        for day in (7, 16, 31):
            env.advance_to_day(DUE + timedelta(days=day))
            assert env.queue() == []
        assert env.contacts(carol["id"]) == carol_contacts
        assert [(c["step"], c["channel"], c["status"]) for c in env.contacts(dan["id"])] == [
            (c["step"], c["channel"], c["status"]) for c in dan_contacts
        ]
        assert env.late_fees(carol_order["id"]) == 75
        assert env.late_fees(dan_order["id"]) == 45
        assert balance(env.account_balances(), "late_fee_income") == late_fee_income
        assert env.statement(carol["id"])["outstanding_minor"] == 0
        meta, _ = env.bureau_file("2027-04", "jsonl")
        assert meta["records"] == 0
        assert len(env.sms_lines()) == 4 + 3  # Carol: days -1, 0, +1, +3; Dan: -1, 0, +1
        assert {e["data"]["order"]["id"] for e in env.events("order.repaid")} == {
            carol_order["id"],
            dan_order["id"],
        }
        last_sent = max(
            instant(c["sent_at"])
            for c in env.contacts(carol["id"]) + env.contacts(dan["id"])
            if c["sent_at"]
        )
        assert last_sent == local_at(DUE + timedelta(days=3), 10)
        env.assert_ledger_clean()
