"""Missed deadlines, enforced by the daily sweep (before that day's collections run).

Filed on 2027-03-02 at 12:00 Shanghai (04:00 UTC): the respondent must answer by 03-09 12:00 and
an operator decide by 03-17 12:00. The sweep of a business date acts at its first instant, so
the sweep of 03-10 is the first to see the respondent deadline passed and that of 03-18 the first
to see the decision deadline passed.

- A respondent who gave no evidence loses by default.
- A decision not taken in time lets the opener's claim stand: a shopper's dispute is settled for
  the shopper (a platform that did not rule must not keep the shopper's account in limbo, dunning
  paused); a merchant's dispute is settled for the merchant, which leaves the debt and dunning
  where they were.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tests.disputes.dispute_env import JPEG_BYTES, PDF_BYTES, DisputeEnv, open_dispute_env
from usefirst.collections.models import SweepRun
from usefirst.disputes import pauses
from usefirst.disputes.service import pause_of
from usefirst.orders.models import Order, Refund


def order_state(d: DisputeEnv, order_id: str) -> tuple[str, bool]:
    """(status, is_disputed) of the order."""
    with d.env.runtime.work(read_only=True) as work:
        row = work.session.scalars(select(Order).where(Order.id == order_id)).one()
        return row.status, pauses.is_open(
            pause_of(work.session, shopper_id=row.shopper_id, order_id=row.id)
        )


def refunds(d: DisputeEnv, order_id: str) -> list[tuple[int, int, int]]:
    with d.env.runtime.work(read_only=True) as work:
        rows = work.session.scalars(select(Refund).where(Refund.order_id == order_id)).all()
        return [(r.amount_minor, r.reduced_debt_minor, r.returned_to_shopper_minor) for r in rows]


def sweep_jobs(d: DisputeEnv, business_on: date) -> dict[str, int]:
    with d.env.runtime.work(read_only=True) as work:
        run = work.session.get(SweepRun, business_on)
        assert run is not None
        jobs: dict[str, int] = run.summary["jobs"]["usefirst.disputes.tasks:enforce_deadlines"]
        return jobs


def resolution(d: DisputeEnv, dispute_id: str) -> dict[str, Any]:
    view = d.get(dispute_id)
    assert view["status"] == "resolved", view
    found = dict(view["resolution"])
    found.pop("refund_id")
    return found


def test_a_merchant_that_does_not_answer_loses(database_url: str, tmp_path: Path) -> None:
    with open_dispute_env(database_url, tmp_path) as d:
        shopper = d.env.enrol()
        order = d.buy(shopper["id"], 30_000)
        dispute = d.open(order["id"], reason="not_received")
        shopper_photo = d.upload(dispute["id"], JPEG_BYTES, headers=d.platform, filename="a.jpg")
        assert shopper_photo.json()["status"] == "awaiting_evidence"

        d.env.advance_to_day(date(2027, 3, 9), 23, 59)
        assert d.get(dispute["id"])["status"] == "awaiting_evidence"
        # Too late to answer, even before the sweep acts on it; nothing is stored.
        late = d.upload(dispute["id"], PDF_BYTES, headers=d.merchant_headers(), filename="l.pdf")
        assert late.status_code == 409, late.text
        assert late.json()["error"]["code"] == "dispute_respond_by_passed"
        assert d.row_counts() == (1, 1, 2)
        assert len(d.stored_files()) == 1
        assert sweep_jobs(d, date(2027, 3, 9)) == {
            "respondent_deadline_missed": 0,
            "decision_deadline_missed": 0,
            "blocked": 0,
        }

        d.env.advance_to_day(date(2027, 3, 10), 1)
        assert sweep_jobs(d, date(2027, 3, 10)) == {
            "respondent_deadline_missed": 1,
            "decision_deadline_missed": 0,
            "blocked": 0,
        }
        assert resolution(d, dispute["id"]) == {
            "outcome": "for_shopper",
            "basis": "respondent_missed_deadline",
            "shopper_refund_minor": 30_000,
            "note": "The merchant gave no evidence by 2027-03-09T04:00:00+00:00; "
            "it loses by default.",
            "resolved_by": "system",
            # 03-10 00:00 in Shanghai
            "resolved_at": "2027-03-09T16:00:00Z",
        }
        assert d.get(dispute["id"])["history"][-1]["actor"] == "system"
        assert refunds(d, order["id"]) == [(30_000, 30_000, 0)]
        assert order_state(d, order["id"]) == ("refunded", False)
        # Settled before the day's ageing: the order never turned overdue, no late fee.
        assert d.env.late_fees(order["id"]) == 0
        assert d.env.statement(shopper["id"])["outstanding_minor"] == 0
        d.env.assert_ledger_clean()

        # The next sweeps find nothing more to do.
        d.env.advance_to_day(date(2027, 3, 12))
        assert sweep_jobs(d, date(2027, 3, 11))["respondent_deadline_missed"] == 0
        assert len(refunds(d, order["id"])) == 1


def test_a_shopper_that_does_not_answer_a_merchants_dispute_loses(
    database_url: str, tmp_path: Path
) -> None:
    with open_dispute_env(database_url, tmp_path) as d:
        shopper = d.env.enrol()
        order = d.buy(shopper["id"], 30_000)
        d.env.advance_to_day(date(2027, 3, 10), 9)
        assert d.env.order(order["id"])["status"] == "overdue"
        dispute = d.open(order["id"], opened_by="merchant", reason="unpaid")
        assert (dispute["respond_by"], dispute["decide_by"]) == (
            "2027-03-17T01:00:00Z",
            "2027-03-25T01:00:00Z",
        )
        # A merchant's dispute does not pause dunning.
        assert order_state(d, order["id"])[1] is False
        d.upload(dispute["id"], PDF_BYTES, headers=d.merchant_headers(), filename="proof.pdf")

        d.env.advance_to_day(date(2027, 3, 18), 1)
        assert sweep_jobs(d, date(2027, 3, 18))["respondent_deadline_missed"] == 1
        assert resolution(d, dispute["id"]) == {
            "outcome": "for_merchant",
            "basis": "respondent_missed_deadline",
            "shopper_refund_minor": 0,
            "note": "The shopper gave no evidence by 2027-03-17T01:00:00+00:00; "
            "it loses by default.",
            "resolved_by": "system",
            "resolved_at": "2027-03-17T16:00:00Z",
        }
        assert refunds(d, order["id"]) == []
        # The debt stands and kept accruing: one late fee a day from 03-10 through 03-18.
        assert d.env.late_fees(order["id"]) == 15 * 9
        assert d.env.statement(shopper["id"])["outstanding_minor"] == 30_000 + 15 * 9
        d.env.assert_ledger_clean()


def test_a_missed_decision_lets_the_shoppers_claim_stand(database_url: str, tmp_path: Path) -> None:
    with open_dispute_env(database_url, tmp_path) as d:
        shopper = d.env.enrol()
        order = d.buy(shopper["id"], 30_000)
        d.env.pay(shopper["id"], 5_000, order["id"])
        dispute = d.open(order["id"], reason="unauthorized")
        answered = d.upload(
            dispute["id"], PDF_BYTES, headers=d.merchant_headers(), filename="ip-log.pdf"
        )
        assert answered.json()["status"] == "under_review"

        # Past the respondent deadline: the merchant answered, so nothing happens.
        d.env.advance_to_day(date(2027, 3, 17), 23)
        assert d.get(dispute["id"])["status"] == "under_review"
        assert order_state(d, order["id"])[1] is True
        assert d.env.late_fees(order["id"]) == 0

        d.env.advance_to_day(date(2027, 3, 18), 1)
        assert sweep_jobs(d, date(2027, 3, 18)) == {
            "respondent_deadline_missed": 0,
            "decision_deadline_missed": 1,
            "blocked": 0,
        }
        assert resolution(d, dispute["id"]) == {
            "outcome": "for_shopper",
            "basis": "decision_deadline_missed",
            "shopper_refund_minor": 30_000,
            "note": "No decision by 2027-03-17T04:00:00+00:00; the shopper's claim stands "
            "by default.",
            "resolved_by": "system",
            "resolved_at": "2027-03-17T16:00:00Z",
        }
        assert refunds(d, order["id"]) == [(30_000, 25_000, 5_000)]
        assert order_state(d, order["id"]) == ("refunded", False)
        d.env.assert_ledger_clean()


def test_a_missed_decision_on_a_merchants_dispute_leaves_the_debt(
    database_url: str, tmp_path: Path
) -> None:
    with open_dispute_env(database_url, tmp_path) as d:
        shopper = d.env.enrol()
        order = d.buy(shopper["id"], 30_000)
        dispute = d.open(order["id"], opened_by="merchant", reason="suspected_cash_out")
        answered = d.upload(dispute["id"], PDF_BYTES, headers=d.platform, filename="receipt.pdf")
        assert answered.json()["status"] == "under_review"
        d.env.advance_to_day(date(2027, 3, 18), 1)
        assert sweep_jobs(d, date(2027, 3, 18))["decision_deadline_missed"] == 1
        assert resolution(d, dispute["id"])["outcome"] == "for_merchant"
        assert refunds(d, order["id"]) == []
        assert d.env.statement(shopper["id"])["outstanding_minor"] == 30_000 + 15 * 9
        d.env.assert_ledger_clean()
