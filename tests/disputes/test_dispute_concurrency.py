"""Concurrent filings on one order (PostgreSQL): exactly one dispute opens; the other gets 409
``dispute_already_open``, by the one-unresolved-dispute-per-order key if both passed the check."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.disputes.dispute_env import open_dispute_env
from usefirst.disputes.repository import DisputeRepository


@pytest.mark.postgresql
def test_concurrent_filings_open_one_dispute(postgres_url: str, tmp_path: Path) -> None:
    with open_dispute_env(postgres_url, tmp_path) as d:
        shopper = d.env.enrol()
        order = d.buy(shopper["id"])
        barrier = threading.Barrier(4)
        statuses: list[int] = []
        codes: list[str] = []
        lock = threading.Lock()

        def file(index: int) -> None:
            barrier.wait()
            if index % 2:
                response = d.file(order["id"], reason="not_received")
            else:
                response = d.file(order["id"], opened_by="merchant", reason="unpaid")
            with lock:
                statuses.append(response.status_code)
                if response.status_code != 201:
                    codes.append(response.json()["error"]["code"])

        threads = [threading.Thread(target=file, args=(index,)) for index in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [201, 409, 409, 409]
        assert codes == ["dispute_already_open"] * 3
        assert d.row_counts()[0] == 1


def test_the_database_key_refuses_a_second_unresolved_dispute(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key behind the race above, reached deterministically: with the look-up blinded (as
    when two filings pass it at once), the insert itself is refused and nothing else changes."""
    with open_dispute_env(database_url, tmp_path) as d:
        shopper = d.env.enrol()
        order = d.buy(shopper["id"])
        first = d.open(order["id"], reason="not_received")
        events = len(d.dispute_events())
        monkeypatch.setattr(
            DisputeRepository, "unresolved_of_order", lambda self, shopper_id, order_id: None
        )
        second = d.file(order["id"], opened_by="merchant", reason="unpaid")
        assert second.status_code == 409, second.text
        assert second.json()["error"]["code"] == "dispute_already_open"
        assert d.row_counts() == (1, 0, 1)
        assert len(d.dispute_events()) == events
        assert d.get(first["id"])["status"] == "open"
