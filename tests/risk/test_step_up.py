"""Step-up: a new account sharing its phone with another that spends its whole credit line at once
on phones must confirm the order with a one-time code texted to its own phone (the shared phone
alone gives points only since rules 2026-12-07.1): right code, wrong codes, too many, expiry and
replay."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.factories import bearer, checkout_body, create_merchant, enrol
from usefirst.risk import decision as risk_decision
from usefirst.risk.models import StepUpChallenge
from usefirst.risk.service import STEP_UP_TOPIC
from usefirst.runtime import Runtime

PHONE = "+8613912345678"


@pytest.fixture(autouse=True)
def no_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(risk_decision, "default_model", lambda: None)
    yield


def step_up_order(
    runtime: Runtime, client: TestClient, headers: dict[str, str]
) -> tuple[dict[str, Any], str]:
    """A step-up order and the code the shopper received by SMS."""
    enrol(client, headers, phone=PHONE)
    shopper = enrol(client, headers, phone=PHONE)
    merchant = create_merchant(client, headers)
    body = checkout_body(shopper["id"], merchant["id"], amount_minor=100_000)
    body["items"][0].update(category="phones", name="Phone")
    response = client.post("/v1/checkouts", headers=headers, json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["decision"]["outcome"] == "step_up"
    assert [r["code"] for r in created["decision"]["reasons"]] == [
        "step_up_required",
        "shared_phone_new_account",
        "resellable_goods",
        "young_account_maxes_limit",
    ]
    order = created["order"]
    assert order["status"] == "step_up"
    runtime.deliver_outbox(topics=(STEP_UP_TOPIC,))
    lines = [
        json.loads(line)
        for line in runtime.settings.sms_log_path.read_text(encoding="utf-8").splitlines()
    ]
    [message] = [line for line in lines if line["reference"] == f"stepup-{order['id']}"]
    assert message["to"] == PHONE
    match = re.search(r"验证码 (\d{6})", message["text"])
    assert match is not None
    return order, match.group(1)


def verify(client: TestClient, headers: dict[str, str], order_id: str, code: str) -> Any:
    return client.post(
        f"/v1/orders/{order_id}/step-up/verify", headers=headers, json={"code": code}
    )


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def challenge(runtime: Runtime, order_id: str) -> dict[str, Any]:
    with runtime.work(read_only=True) as work:
        row = work.session.scalars(
            select(StepUpChallenge).where(StepUpChallenge.order_id == order_id)
        ).one()
        return {
            "status": row.status,
            "delivery_status": row.delivery_status,
            "attempts": row.attempts,
            "code_hash": row.code_hash,
        }


def test_right_code_approves_once_and_wrong_codes_count(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    order, code = step_up_order(runtime, client, platform_headers)
    stored = challenge(runtime, order["id"])
    assert (stored["status"], stored["delivery_status"], stored["attempts"]) == (
        "pending",
        "sent",
        0,
    )
    assert code not in stored["code_hash"]

    first = verify(client, platform_headers, order["id"], wrong(code))
    assert first.status_code == 422
    assert first.json()["error"] == {
        "code": "step_up_code_incorrect",
        "message": "The code is not correct; 4 attempt(s) left.",
        "field": "code",
    }
    assert challenge(runtime, order["id"])["attempts"] == 1

    right = verify(client, platform_headers, order["id"], code)
    assert right.status_code == 200, right.text
    assert right.json()["verified"] is True
    assert right.json()["order"]["status"] == "approved"
    assert challenge(runtime, order["id"])["status"] == "verified"

    replay = verify(client, platform_headers, order["id"], code)
    assert replay.status_code == 409
    assert replay.json()["error"]["code"] == "order_state_conflict"
    unknown_key = client.post(
        f"/v1/orders/{order['id']}/step-up/verify",
        headers={"Authorization": "Bearer nope"},
        json={"code": code},
    )
    assert unknown_key.status_code == 401


def test_only_the_platform_verifies_a_code(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    """A merchant (any merchant, the order's own too) must not confirm the shopper's code."""
    order, code = step_up_order(runtime, client, platform_headers)
    before = challenge(runtime, order["id"])
    merchant = create_merchant(client, platform_headers)
    refused = verify(client, bearer(merchant["api_key"]), order["id"], code)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "forbidden"
    assert challenge(runtime, order["id"]) == before
    after = client.get(f"/v1/orders/{order['id']}", headers=platform_headers).json()
    assert after["status"] == "step_up"


def test_too_many_wrong_codes_decline_and_release_credit(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    order, code = step_up_order(runtime, client, platform_headers)
    for attempt in range(4):
        response = verify(client, platform_headers, order["id"], wrong(code))
        assert response.status_code == 422
        assert response.json()["error"]["message"].endswith(f"{4 - attempt} attempt(s) left.")
    last = verify(client, platform_headers, order["id"], wrong(code))
    assert last.status_code == 409
    assert last.json()["error"]["code"] == "step_up_failed"
    after = client.get(f"/v1/orders/{order['id']}", headers=platform_headers).json()
    assert after["status"] == "declined"
    credit = client.get(f"/v1/shoppers/{order['shopper_id']}/credit", headers=platform_headers)
    assert credit.json()["used_minor"] == 0
    assert challenge(runtime, order["id"])["status"] == "failed"
    # the right code no longer helps
    assert verify(client, platform_headers, order["id"], code).status_code == 409


def test_expired_code_declines(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    order, code = step_up_order(runtime, client, platform_headers)
    moved = client.post(
        "/v1/sandbox/clock/advance", headers=platform_headers, json={"seconds": 601}
    )
    assert moved.status_code == 200
    response = verify(client, platform_headers, order["id"], code)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "step_up_expired"
    after = client.get(f"/v1/orders/{order['id']}", headers=platform_headers).json()
    assert after["status"] == "declined"
    credit = client.get(f"/v1/shoppers/{order['shopper_id']}/credit", headers=platform_headers)
    assert credit.json()["used_minor"] == 0
