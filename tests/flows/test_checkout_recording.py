"""The lean money path (issue 14) writes and answers exactly as the engine before it did: the
recorded sequence of ``checkout_scenario`` (approvals, an idempotent replay and a reused key, a
decline for credit, a step-up, a review, a limit race, a checkout without a key, shipment,
receipt and a replayed payment), compared response by response and table by table with the
recording made from the previous engine, on both databases."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.flows.checkout_scenario import FIXTURE, TABLES, play
from usefirst.risk import decision as risk_decision
from usefirst.runtime import Runtime


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
        assert actual["tables"][name] == expected["tables"][name], name
    outcomes = [
        response[3]["decision"]["outcome"]
        for response in expected["responses"]
        if response[0] == "/v1/checkouts" and response[1] == 201
    ]
    # The recording covers what it claims to.
    assert sorted(set(outcomes)) == ["approved", "declined", "review", "step_up"]
