"""Issue 3: the Metro 2 24-month payment history profile, filled from the order's history: one
code per month before the reported one, most recent first (0–6 by days past due at the month's
end, E once paid off, L once charged off), stopping at the month the account opened; the file
pads the rest with B. Parsed back from real files too."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from tests.collections.dunning_env import open_env
from tests.collections.metro2_parser import parse_metro2
from usefirst.collections.bureau import ReportedOrder, payment_history_profile
from usefirst.collections.bureau_format import metro2_account_number
from usefirst.collections.models import DelinquentOrder
from usefirst.disputes.models import DisputedOrder
from usefirst.orders.models import Order
from usefirst.repayment.models import Instalment

OPENED_AT = datetime(2027, 3, 1, 16, 0, tzinfo=UTC)  # 2 March 2027 in Shanghai, 00:00
DUE = date(2027, 3, 9)


def order(**overrides: object) -> ReportedOrder:
    """The order with its collections and dispute state (each kept by its own domain)."""
    values: dict[str, object] = {
        "shopper_id": "shp_1",
        "id": "ord_1",
        "created_at": OPENED_AT,
        "is_disputed": False,
        "disputed_since_on": None,
        "dispute_paused_days": 0,
        "dispute_resolved_on": None,
        "charged_off_on": None,
    }
    values.update(overrides)
    keys = {"shopper_id": values["shopper_id"], "order_id": values["id"]}
    return ReportedOrder(
        order=Order(shopper_id=values["shopper_id"], id=values["id"], created_at=OPENED_AT),
        delinquency=DelinquentOrder(**keys, charged_off_on=values["charged_off_on"]),
        pause=DisputedOrder(
            **keys,
            is_disputed=values["is_disputed"],
            disputed_since_on=values["disputed_since_on"],
            dispute_paused_days=values["dispute_paused_days"],
            dispute_resolved_on=values["dispute_resolved_on"],
        ),
    )


def instalment(
    due_on: date, *, settled_on: date | None = None, status: str = "overdue"
) -> Instalment:
    return Instalment(due_on=due_on, settled_on=settled_on, status=status)


def test_a_never_paid_account_ages_month_by_month() -> None:
    rows = [instalment(DUE)]
    # 31 May: 83 days late (2); 30 April: 52 (1); 31 March: 22 (0); opened in March.
    assert payment_history_profile(order(), rows, period_end=date(2027, 6, 30)) == "210"
    assert payment_history_profile(order(), rows, period_end=date(2027, 6, 10)) == "210"
    assert payment_history_profile(order(), rows, period_end=date(2027, 3, 31)) == ""


def test_paid_off_months_are_e_and_a_charge_off_is_l() -> None:
    paid = [instalment(DUE, settled_on=date(2027, 4, 18), status="paid")]
    assert payment_history_profile(order(), paid, period_end=date(2027, 5, 31)) == "E0"
    charged_off = order(charged_off_on=date(2027, 9, 5))
    rows = [instalment(DUE, status="charged_off")]
    # Aug 175 days (5), Jul 144 (4), Jun 113 (3), May 83 (2), Apr 52 (1), Mar 22 (0).
    assert payment_history_profile(charged_off, rows, period_end=date(2027, 10, 31)) == ("L543210")


def test_instalments_count_by_their_own_due_dates_and_the_profile_keeps_24_months() -> None:
    rows = [
        instalment(date(2027, 4, 2), settled_on=date(2027, 4, 2), status="paid"),
        instalment(date(2027, 5, 2)),
        instalment(date(2027, 6, 2), status="pending"),
    ]
    # 31 May: the second is 29 days late (0); 30 June: 59 (1); Mar/Apr nothing late (0).
    assert payment_history_profile(order(), rows, period_end=date(2027, 7, 15)) == "1000"
    profile = payment_history_profile(order(), rows, period_end=date(2029, 12, 31))
    assert profile == "6" * 24  # December 2027 to November 2029: the second 180+ days late


def test_days_paused_by_a_dispute_do_not_age_the_history() -> None:
    rows = [instalment(DUE)]
    closed = order(
        dispute_paused_days=29,
        dispute_resolved_on=date(2027, 4, 10),
    )
    # May: 83 − 29 = 54 (1); April: 52 − 29 = 23 (0); March, before it closed: 22 (0).
    assert payment_history_profile(closed, rows, period_end=date(2027, 6, 30)) == "100"
    still_open = order(is_disputed=True, disputed_since_on=date(2027, 3, 12))
    # Frozen at 3 days since the dispute opened on day +3.
    assert payment_history_profile(still_open, rows, period_end=date(2027, 6, 30)) == "000"


def test_the_metro2_file_carries_the_profile(database_url: str, tmp_path: Path) -> None:
    with open_env(database_url, tmp_path) as env:
        never = env.enrol()
        late = env.enrol()
        unpaid = env.buy(never["id"])
        paid_late = env.buy(late["id"])
        env.advance_to_day(DUE + timedelta(days=31), 9)  # both reported to the bureau
        env.pay(late["id"], 30_000 + 15 * 31, paid_late["id"])
        env.advance_to_day(date(2027, 5, 2), 9)
        _, metro2 = env.bureau_file("2027-05", "metro2")
        profiles = {
            str(base["consumer_account_number"]).strip(): base["payment_history_profile"]
            for base in parse_metro2(metro2).bases
        }
        # April: 52 days late (1) or paid off on 9 April (E); March: 22 days late (0).
        assert profiles == {
            metro2_account_number(unpaid["id"]): "10" + "B" * 22,
            metro2_account_number(paid_late["id"]): "E0" + "B" * 22,
        }
        env.assert_ledger_clean()
