"""A shopper's dispute pauses dunning on the order while it is open; a decision for the merchant
reinstates the debt and dunning resumes. A merchant's dispute does not pause anything."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from tests.collections.dunning_env import instant, local_at
from tests.disputes.dispute_env import PDF_BYTES, open_dispute_env

DUE = date(2027, 3, 9)  # bought and delivered on the start day, 2027-03-02
LATE_FEE_PER_DAY = 15  # 5 bps of 30 000 a day


def test_contacts_and_late_fees_stop_while_open_and_resume_for_merchant(
    database_url: str, tmp_path: Path
) -> None:
    with open_dispute_env(database_url, tmp_path) as d:
        env = d.env
        gina = env.enrol(email="gina@example.com")
        hank = env.enrol()
        disputed = d.buy(gina["id"])
        control = d.buy(hank["id"])

        # Day +3 at 09:00, after that day's reminders were planned for 10:00.
        env.advance_to_day(DUE + timedelta(days=3), 9)
        assert env.late_fees(disputed["id"]) == 3 * LATE_FEE_PER_DAY
        opened_at = env.now()
        dispute = d.open(disputed["id"], reason="not_received")
        d.upload(dispute["id"], PDF_BYTES, headers=d.merchant_headers(), filename="pod.pdf")

        # A week under review: nothing reaches Gina, no fee accrues; Hank is dunned as usual.
        env.advance_to_day(DUE + timedelta(days=10), 12)
        during = [c for c in env.contacts(gina["id"]) if instant(c["scheduled_at"]) >= opened_at]
        assert [(c["step"], c["channel"], c["status"], c["status_reason"]) for c in during] == [
            ("day_+3", "sms", "suppressed", "dispute_open"),
            ("day_+3", "email", "suppressed", "dispute_open"),
        ]
        assert env.late_fees(disputed["id"]) == 3 * LATE_FEE_PER_DAY
        assert env.late_fees(control["id"]) == 10 * LATE_FEE_PER_DAY
        assert [
            (c["step"], c["status"])
            for c in env.contacts(hank["id"])
            if instant(c["scheduled_at"]) >= opened_at and c["channel"] == "sms"
        ] == [("day_+3", "sent")]

        decided = d.resolve(dispute["id"], "for_merchant", note="Signed proof of delivery.")
        assert decided.status_code == 200, decided.text
        decided_at = env.now()

        # The debt is reinstated: fees accrue again from the next sweep, reminders go out.
        env.advance_to_day(DUE + timedelta(days=32), 12)
        resumed_days = (DUE + timedelta(days=32) - (DUE + timedelta(days=10))).days
        assert env.late_fees(disputed["id"]) == (3 + resumed_days) * LATE_FEE_PER_DAY
        after = [c for c in env.contacts(gina["id"]) if instant(c["scheduled_at"]) >= decided_at]
        # The ladder's next step reaches Gina again (this environment has no SMTP server), seven
        # days late: days past due did not count on the business dates 03-13 to 03-19 the
        # dispute covered, so her day +15 falls on 03-31 rather than 03-24.
        assert [
            (c["step"], c["channel"], c["status"], c["status_reason"], c["scheduled_at"])
            for c in after
        ] == [
            ("day_+15", "sms", "sent", None, "2027-03-31T02:00:00Z"),
            ("day_+15", "email", "suppressed", "email_not_configured", "2027-03-31T02:00:00Z"),
        ]
        assert env.statement(gina["id"])["outstanding_minor"] == 30_000 + env.late_fees(
            disputed["id"]
        )
        env.assert_ledger_clean()


def test_a_merchants_dispute_does_not_pause_dunning(database_url: str, tmp_path: Path) -> None:
    with open_dispute_env(database_url, tmp_path) as d:
        env = d.env
        gina = env.enrol(email="gina@example.com")
        order = d.buy(gina["id"])
        env.advance_to_day(DUE + timedelta(days=1), 9)
        dispute = d.open(order["id"], opened_by="merchant", reason="unpaid")
        assert dispute["pauses_collections"] is False
        env.advance_to(local_at(DUE + timedelta(days=4), 12))
        assert d.get(dispute["id"])["status"] == "open"
        assert env.late_fees(order["id"]) == 4 * LATE_FEE_PER_DAY
        day_3 = [c for c in env.contacts(gina["id"]) if c["step"] == "day_+3"]
        assert [(c["channel"], c["status"], c["status_reason"]) for c in day_3] == [
            ("sms", "sent", None),
            ("email", "suppressed", "email_not_configured"),
        ]
