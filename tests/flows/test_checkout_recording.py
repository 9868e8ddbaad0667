"""The lean money path (issue 14) writes and answers exactly as the engine before it did: the
recorded sequence of ``checkout_scenario`` (approvals, an idempotent replay and a reused key, a
decline for credit, a step-up, a review, a limit race, a checkout without a key, shipment,
receipt and a replayed payment), compared response by response and table by table with the
recording made from the previous engine, on both databases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.flows.checkout_scenario import (
    ADDED_SINCE_RECORDING,
    FIXTURE,
    TABLES,
    play,
    without_added_features,
)
from usefirst.kit.models import payload_shard_key, subject_shard_key
from usefirst.risk import decision as risk_decision
from usefirst.runtime import Runtime


def assert_shard_keys(tables: dict[str, list[dict[str, Any]]]) -> None:
    """Events and entries are keyed by their shopper, else merchant, else the platform; a
    posting by its entry's key."""
    entry_keys = {}
    for name in ("events", "journal_entries"):
        for row in tables[name]:
            assert row["shard_key"] == subject_shard_key(row["shopper_id"], row["merchant_id"])
            if name == "journal_entries":
                entry_keys[row["id"]] = row["shard_key"]
    assert tables["ledger_postings"]
    for row in tables["ledger_postings"]:
        assert row["shard_key"] == entry_keys[row["entry_id"]], row
    # A message is keyed like its event (a webhook) or by the shopper or merchant it names.
    event_keys = {row["id"]: row["shard_key"] for row in tables["events"]}
    for row in tables["outbox_messages"]:
        payload = row["payload"]
        wanted = event_keys.get(payload.get("event_id")) or payload_shard_key(payload)
        assert row["shard_key"] == wanted, row


@pytest.fixture(autouse=True)
def no_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The recording is of the rules alone, whatever model artefact is installed.
    monkeypatch.setattr(risk_decision, "default_model", lambda: None)
    yield


def test_the_recorded_calls_answer_and_write_as_before(
    runtime: Runtime, client: TestClient
) -> None:
    expected = json.loads(FIXTURE.read_text(encoding="utf-8"))
    actual = play(runtime, client)
    assert len(actual["responses"]) == len(expected["responses"]) == 13
    for index, (got, wanted) in enumerate(
        zip(actual["responses"], expected["responses"], strict=True)
    ):
        assert got == wanted, f"response {index} ({wanted[0]})"
    for name in TABLES:
        added = ADDED_SINCE_RECORDING.get(name, {})
        rows = [
            {column: value for column, value in row.items() if column not in added}
            for row in actual["tables"][name]
        ]
        if name == "risk_decisions":
            rows = [without_added_features(row) for row in rows]
        assert rows == expected["tables"][name], name
        for row in actual["tables"][name]:
            for column, wanted in added.items():
                if wanted is None:
                    continue  # checked by assert_shard_keys
                if callable(wanted):
                    assert wanted(row[column]), (name, column, row[column])
                else:
                    assert row[column] == wanted, (name, column, row[column])
    assert_shard_keys(actual["tables"])
    outcomes = [
        response[3]["decision"]["outcome"]
        for response in expected["responses"]
        if response[0] == "/v1/checkouts" and response[1] == 201
    ]
    # The recording covers what it claims to.
    assert sorted(set(outcomes)) == ["approved", "declined", "review", "step_up"]
