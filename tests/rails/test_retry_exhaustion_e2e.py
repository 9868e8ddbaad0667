"""Auto-debit retries end to end on SQLite and PostgreSQL, with a retry file of the operator's:
the schedule's days and time are followed, attempts stop at ``max_attempts`` (the last decline
says no try is left), and a charge that falls due in the quiet hours waits for their end."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from tests.rails.rail_env import open_rail_env

DUE_ON = date(2027, 3, 9)


def test_retries_follow_the_file_and_stop_after_the_last_attempt(
    database_url: str, tmp_path: Path
) -> None:
    retry_file = tmp_path / "retry.toml"
    retry_file.write_text('charge_at = "09:30"\nretry_days = [2]\nmax_attempts = 2\n', "utf-8")
    with open_rail_env(database_url, tmp_path, auto_debit_retry_file=retry_file) as rail_env:
        env = rail_env.env
        shopper = env.enrol()
        rail_env.mandate(shopper["id"])
        order = env.buy(shopper["id"], 9_900)
        rail_env.force("decline", "decline")
        env.advance_to_day(DUE_ON, hour=9, minute=31)
        rail_env.send_charges()
        [first] = rail_env.charges(order["id"])
        assert first["submit_at"].startswith(f"{DUE_ON.isoformat()}T01:30:00")  # 09:30 local
        assert (first["status"], first["next_attempt_on"]) == (
            "failed",
            (DUE_ON + timedelta(days=2)).isoformat(),
        )
        env.advance_to_day(DUE_ON + timedelta(days=1), hour=12)
        assert len(rail_env.charges(order["id"])) == 1  # not on +1: the file says +2
        env.advance_to_day(DUE_ON + timedelta(days=2), hour=9, minute=31)
        rail_env.send_charges()
        first, second = rail_env.charges(order["id"])
        assert (second["attempt"], second["status"]) == (2, "failed")
        assert (second["next_attempt_on"], second["stop_reason"]) == (None, "attempts_exhausted")
        last_failure = env.events("charge.failed")[-1]["data"]
        assert (last_failure["next_attempt_on"], last_failure["next_attempt_at"]) == (None, None)
        env.advance_to_day(DUE_ON + timedelta(days=8), hour=12)
        assert len(rail_env.charges(order["id"])) == 2
        assert rail_env.money()["payments"] == []
        assert env.order(order["id"])["status"] == "overdue"
        env.assert_ledger_clean()


def test_a_charge_due_in_the_quiet_hours_waits_for_their_end(
    database_url: str, tmp_path: Path
) -> None:
    with open_rail_env(database_url, tmp_path) as rail_env:
        env = rail_env.env
        shopper = env.enrol()
        rail_env.mandate(shopper["id"])
        order = env.buy(shopper["id"], 7_700)
        rail_env.force("succeed")
        # The worker was down all day: it comes back at 22:30, inside the quiet hours.
        env.advance_to_day(DUE_ON, hour=22, minute=30)
        rail_env.send_charges()
        [charge] = rail_env.charges(order["id"])
        assert charge["status"] == "scheduled"
        assert rail_env.rail.rail.state.charges == {}
        env.advance_to_day(DUE_ON + timedelta(days=1), hour=7, minute=59)
        rail_env.send_charges()
        assert rail_env.rail.rail.state.charges == {}
        env.advance_to_day(DUE_ON + timedelta(days=1), hour=8, minute=1)
        rail_env.send_charges()
        [charge] = rail_env.charges(order["id"])
        assert (charge["status"], charge["amount_minor"]) == ("succeeded", 7_700)
        # It was charged for what was owed on the due date; the day of late fees charged at
        # midnight leaves that much unpaid, to dunning (a succeeded charge is not followed by
        # another).
        [instalment] = env.order(order["id"])["instalments"]
        assert instalment["paid_minor"] == 7_700
        assert instalment["late_fees_minor"] == env.late_fees(order["id"]) > 0
        assert env.order(order["id"])["status"] == "overdue"
        env.assert_ledger_clean()
