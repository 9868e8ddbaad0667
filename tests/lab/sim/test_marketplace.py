"""The simulated marketplace: shoppers pay by their habit even though the simulator reads a
shopper's instalments only on the days something can have fallen due."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import make_runtime
from usefirst.flows.shopper_statement import shopper_statement
from usefirst.lab.sim.marketplace import simulate
from usefirst.runtime import Runtime

# The latest a "late" shopper pays: late_days is drawn from 2..20.
LATEST_LATE_DAYS = 20


def test_shoppers_pay_what_falls_due_by_their_habit(database_url: str) -> None:
    # Every applicant on the cold-start limit (as in ``credit simulate-history``), so the test
    # does not depend on which applicants the shipped scorecard would decline.
    runtime = make_runtime(database_url, credit_policy="cold_start")
    try:
        _check_payments_by_habit(runtime)
    finally:
        runtime.database.dispose()


def _check_payments_by_habit(runtime: Runtime) -> None:
    summary = simulate(runtime, shoppers=12, merchants=2, days=45, seed=3)
    assert summary.ledger_balanced
    assert summary.payments > 0
    behaviours = {shopper_id: applicant.behaviour for shopper_id, applicant in summary.applicants}
    checked = {"early": 0, "on_time": 0, "late": 0, "never": 0}
    with runtime.work(read_only=True) as work:
        yesterday = work.today - timedelta(days=1)
        for shopper_id, behaviour in behaviours.items():
            statement = shopper_statement(work.session, shopper_id=shopper_id, today=work.today)
            for order in statement["orders"]:
                for instalment in order["instalments"]:
                    due_on, unpaid = instalment["due_on"], instalment["amount_due_minor"]
                    if due_on is None or due_on > yesterday:
                        continue
                    checked[behaviour] += 1
                    if behaviour in ("early", "on_time"):
                        # Paid on (or five days before) the due date: never left past due.
                        assert unpaid == 0, (behaviour, instalment)
                    elif (
                        behaviour == "late"
                        and due_on + timedelta(days=LATEST_LATE_DAYS) <= yesterday
                    ):
                        assert unpaid == 0, (behaviour, instalment)
                    elif behaviour == "never":
                        assert instalment["paid_minor"] == 0, instalment
    # The seed gives instalments that fell due to payers of every habit.
    assert all(checked.values()), checked
