"""Issue 3: late fees. Charged once a day on the overdue principal, capped at 25 % of the principal
and, with any plan fee, within the APR cap; a collector may waive unpaid late fees, which reduces
what is owed by exactly the waived amount through a reversing ledger entry."""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

from tests.collections.dunning_env import Env, open_env
from usefirst.api.book_metrics import read_book
from usefirst.console.repository import DashboardRepository

DUE = date(2027, 3, 9)  # bought and delivered on the start day, 2027-03-02


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert error.get("field") == field


def overdue_as_counted(env: Env) -> tuple[int, int]:
    """The overdue amount as the /metrics gauge (``usefirst_overdue_minor``) and the console's
    dashboard count it."""
    with env.runtime.work(read_only=True) as work:
        figures = read_book(work.session, now=work.now, today=work.today)
        owed = DashboardRepository(work.session).owed_by_status()
    return sum(figures.overdue_minor.values()), owed["overdue"]


def late_fee_line(env: Env) -> tuple[int, int]:
    """(debits, credits) of the late-fee income account."""
    [line] = [line for line in env.trial_balance()["accounts"] if line["kind"] == "late_fee_income"]
    return line["debits_minor"], line["credits_minor"]


def waive(env: Env, order_id: str, headers: dict[str, str], **body: Any) -> Any:
    return env.client.post(f"/v1/orders/{order_id}/late-fees/waive", headers=headers, json=body)


def test_a_collector_waives_late_fees_by_a_reversing_entry(
    database_url: str, tmp_path: Path
) -> None:
    with open_env(database_url, tmp_path) as env:
        ivy = env.enrol()
        order = env.buy(ivy["id"])
        path_order = order["id"]
        assert_error(
            waive(env, path_order, env.collector, reason="goodwill"), 409, "order_state_conflict"
        )

        env.advance_to_day(DUE + timedelta(days=5))
        assert env.statement(ivy["id"])["outstanding_minor"] == 30_075
        assert late_fee_line(env) == (0, 75)

        assert_error(waive(env, path_order, env.platform, reason="goodwill"), 403, "forbidden")
        for bad, field in (
            ({"amount_minor": 0, "reason": "goodwill"}, "amount_minor"),
            ({"amount_minor": 20, "reason": ""}, "reason"),
            ({"amount_minor": 20}, "reason"),
            ({"amount_minor": 20, "reason": "x", "waive_principal": True}, "waive_principal"),
        ):
            assert_error(
                waive(env, path_order, env.collector, **bad), 422, "validation_error", field
            )
        assert env.statement(ivy["id"])["outstanding_minor"] == 30_075

        waived = waive(env, path_order, env.collector, amount_minor=20, reason="first late payment")
        assert waived.status_code == 200, waived.text
        assert waived.json()["waived_minor"] == 20
        assert waived.json()["order"]["instalments"][0]["late_fees_minor"] == 55
        statement = env.statement(ivy["id"])
        assert (statement["outstanding_minor"], statement["overdue_minor"]) == (30_055, 30_055)
        # A waiver lowers the late fees themselves: the metrics and the console subtracted the
        # waived amount a second time (30,035).
        assert overdue_as_counted(env) == (30_055, 30_055)
        assert late_fee_line(env) == (20, 75)  # reversed, not rewritten
        balances = env.account_balances()
        assert balances[f"shopper_receivable:{ivy['id']}:CNY"] == 30_055
        env.assert_ledger_clean()

        # More than is owed waives what is owed; then there is nothing left to waive.
        waived = waive(env, path_order, env.admin, amount_minor=1_000, reason="complaint upheld")
        assert waived.status_code == 200, waived.text
        assert waived.json()["waived_minor"] == 55
        assert env.statement(ivy["id"])["outstanding_minor"] == 30_000
        assert late_fee_line(env) == (75, 75)
        assert_error(
            waive(env, path_order, env.collector, reason="again"), 409, "order_state_conflict"
        )
        assert env.statement(ivy["id"])["outstanding_minor"] == 30_000
        assert env.order(path_order)["status"] == "overdue"  # the principal is still late
        assert env.credit(ivy["id"])["status"] == "frozen"

        # Fees go on accruing while the principal is unpaid; paid off, nothing is left to waive.
        env.advance(days=1)
        assert env.statement(ivy["id"])["outstanding_minor"] == 30_015
        env.pay(ivy["id"], 30_015)
        assert env.order(path_order)["status"] == "repaid"
        assert env.credit(ivy["id"])["status"] == "active"
        assert_error(
            waive(env, path_order, env.collector, reason="late"), 409, "order_state_conflict"
        )
        assert late_fee_line(env) == (75, 90)
        env.assert_ledger_clean()


def test_late_fees_stop_at_25_percent_of_the_principal(database_url: str, tmp_path: Path) -> None:
    # 1 % a day, and an APR cap high enough not to bind: the 25 % cap is reached on day 25.
    with open_env(database_url, tmp_path, late_fee_bps_per_day=100, apr_cap_bps=100_000) as env:
        shopper = env.enrol()
        order = env.buy(shopper["id"])
        fees_by_day = {}
        for day in (1, 24, 25, 26):
            env.advance_to_day(DUE + timedelta(days=day))
            fees_by_day[day] = env.late_fees(order["id"])
        assert fees_by_day == {1: 300, 24: 7_200, 25: 7_500, 26: 7_500}

        # A waiver does not make room for more: waived fees count towards the cap.
        waived = waive(env, order["id"], env.collector, amount_minor=500, reason="goodwill")
        assert waived.json()["waived_minor"] == 500
        env.advance(days=2)
        assert env.late_fees(order["id"]) == 7_000
        assert env.statement(shopper["id"])["outstanding_minor"] == 37_000
        env.assert_ledger_clean()


def test_late_fees_stay_within_the_apr_cap(database_url: str, tmp_path: Path) -> None:
    # 1 % a day would pass an annualised 24 % at once: the APR cap, on the days since delivery,
    # binds from day 1.
    with open_env(database_url, tmp_path, late_fee_bps_per_day=100) as env:
        shopper = env.enrol()
        order = env.buy(shopper["id"])
        for day in (1, 2, 12):
            env.advance_to_day(DUE + timedelta(days=day))
            days_on_book = 7 + day
            allowance = int(Fraction(30_000 * 2_400 * days_on_book, 10_000 * 365))
            assert env.late_fees(order["id"]) == allowance, day
        # 24 % a year over 19 days on the books: 374, where 1 % a day for 12 days is 3 600.
        assert env.late_fees(order["id"]) == 374
        env.assert_ledger_clean()
