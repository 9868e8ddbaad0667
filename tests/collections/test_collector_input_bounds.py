"""Collectors' inputs that must be refused whole: a bureau period outside 2000-01..this month, a
promise to pay more than the order owes, and a late-fee waiver retried with its Idempotency-Key
(one waiver, its full reason kept)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.collections.dunning_env import dump_tables, open_env
from usefirst.collections.models import LateFeeWaiver
from usefirst.ledger.models import JournalEntry

# Delivered on 2027-03-02, due 03-09: swept through 03-12, three days of late fees (3 x 15).
LATE_DAY = date(2027, 3, 12)


@pytest.mark.parametrize("period", ["0000-01", "1800-01", "1999-12", "2027-04"])
def test_a_bureau_period_out_of_range_is_refused_and_stores_nothing(
    database_url: str, tmp_path: Path, period: str
) -> None:
    with open_env(database_url, tmp_path) as env:
        before = dump_tables(env.runtime)
        response = env.client.post(
            "/v1/bureau/files", headers=env.collector, json={"period": period, "format": "metro2"}
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "validation_error"
        assert response.json()["error"]["field"] == "period"
        assert dump_tables(env.runtime) == before
        assert env.bureau_files() == []
        # The floor itself is a period like any other.
        created = env.client.post(
            "/v1/bureau/files", headers=env.collector, json={"period": "2000-01", "format": "jsonl"}
        )
        assert created.status_code == 201, created.text
        assert created.json()["records"] == 0


@pytest.mark.parametrize("promise_minor", [30_046, 10**20])
def test_a_promise_above_what_the_order_owes_is_refused(
    database_url: str, tmp_path: Path, promise_minor: int
) -> None:
    with open_env(database_url, tmp_path) as env:
        shopper = env.enrol()
        order_id = env.buy(shopper["id"])["id"]
        env.advance_to_day(LATE_DAY)
        assert env.statement(shopper["id"])["outstanding_minor"] == 30_000 + 45
        before = dump_tables(env.runtime)
        refused = env.call(
            order_id,
            outcome="promise_to_pay",
            promise_on="2027-03-15",
            promise_minor=promise_minor,
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"] == {
            "code": "promise_exceeds_outstanding",
            "message": "promise_minor is more than the 30045 the order still owes.",
            "field": "promise_minor",
        }
        assert dump_tables(env.runtime) == before

        kept = env.call(
            order_id, outcome="promise_to_pay", promise_on="2027-03-15", promise_minor=30_045
        )
        assert kept.status_code == 201, kept.text
        assert kept.json()["promise_minor"] == 30_045


def test_a_retried_waiver_waives_once(database_url: str, tmp_path: Path) -> None:
    with open_env(database_url, tmp_path) as env:
        shopper = env.enrol()
        order_id = env.buy(shopper["id"])["id"]
        env.advance_to_day(LATE_DAY)
        assert env.late_fees(order_id) == 45
        reason = "Shopper was in hospital; " + "x" * 475
        assert len(reason) == 500
        path = f"/v1/orders/{order_id}/late-fees/waive"
        headers = {**env.collector, "Idempotency-Key": "waive-1"}
        body = {"amount_minor": 30, "reason": reason}

        first = env.client.post(path, headers=headers, json=body)
        assert first.status_code == 200, first.text
        assert first.json()["waived_minor"] == 30
        assert first.json()["waiver"]["reason"] == reason
        after_first = dump_tables(env.runtime)

        second = env.client.post(path, headers=headers, json=body)
        assert second.status_code == 200, second.text
        assert second.headers["Idempotent-Replayed"] == "true"
        assert second.json() == first.json()
        assert dump_tables(env.runtime) == after_first

        reused = env.client.post(path, headers=headers, json={**body, "amount_minor": 15})
        assert reused.status_code == 409, reused.text
        assert reused.json()["error"]["code"] == "idempotency_key_reused"
        assert dump_tables(env.runtime) == after_first

        assert env.late_fees(order_id) == 45 - 30
        with env.runtime.work(read_only=True) as work:
            waivers = [
                (row.id, row.order_id, row.amount_minor, row.reason, row.entry_id)
                for row in work.session.scalars(select(LateFeeWaiver))
            ]
            entries = [
                (entry.id, entry.order_id, entry.memo)
                for entry in work.session.scalars(
                    select(JournalEntry).where(JournalEntry.kind == "late_fee_waiver")
                )
            ]
        assert len(waivers) == 1
        waiver_id, waived_order_id, amount_minor, stored_reason, entry_id = waivers[0]
        assert (waived_order_id, amount_minor, stored_reason) == (order_id, 30, reason)
        assert entries == [(entry_id, order_id, f"late fees waived ({waiver_id})")]
        env.assert_ledger_clean()
