"""Over HTTP: a held order (review) with the merchant's signed early warning, the decision record,
and cases assigned and resolved both ways with their effect on the order, credit and labels."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from tests.api.test_events_and_webhooks import WebhookServer, run_drain, webhook_server  # noqa: F401
from tests.factories import bearer, checkout_body, create_merchant, enrol
from usefirst.identity.service import create_operator
from usefirst.merchants.models import Merchant
from usefirst.risk import decision as risk_decision
from usefirst.risk.decision import backtest
from usefirst.risk.models import KnownFraudSubject, RiskLabel
from usefirst.risk.rules import DEFAULT_RULES_FILE, parse_rule_set
from usefirst.runtime import Runtime

SHIPMENT = {"carrier": "SF Express", "tracking_number": "SF1234567890123"}


@pytest.fixture(autouse=True)
def no_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Exact scores below are the rules' alone, whatever model artefact is installed.
    monkeypatch.setattr(risk_decision, "default_model", lambda: None)
    yield


def operator(runtime: Runtime, role: str, email: str) -> tuple[str, dict[str, str]]:
    with runtime.work() as work:
        row, token = create_operator(work.session, email=email, role=role, now=work.now)
        return row.id, bearer(token)


def held_checkout(
    client: TestClient, headers: dict[str, str], merchant: dict[str, Any]
) -> dict[str, Any]:
    shopper = enrol(client, headers)
    response = client.post(
        "/v1/checkouts", headers=headers, json=checkout_body(shopper["id"], merchant["id"])
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_order_to_merchants_own_address_is_held_warned_and_cleared(
    runtime: Runtime,
    client: TestClient,
    platform_headers: dict[str, str],
    webhook_server: WebhookServer,  # noqa: F811
) -> None:
    merchant = create_merchant(
        client, platform_headers, webhook_url=webhook_server.url, address="北京市朝阳区建国路1号"
    )
    created = held_checkout(client, platform_headers, merchant)
    order, decision = created["order"], created["decision"]
    assert decision["outcome"] == "review"
    assert [r["code"] for r in decision["reasons"]] == ["held_for_review", "ships_to_merchant"]
    assert order["status"] == "review"
    credit = client.get(f"/v1/shoppers/{order['shopper_id']}/credit", headers=platform_headers)
    assert credit.json()["used_minor"] == 30_000  # reserved while held

    merchant_headers = bearer(merchant["api_key"])
    refused = client.post(f"/v1/orders/{order['id']}/ship", headers=merchant_headers, json=SHIPMENT)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "order_state_conflict"

    run_drain(runtime)
    received = {json.loads(item.body)["type"]: item for item in webhook_server.received}
    assert sorted(received) == ["order.review", "risk.merchant_warning"]
    warning = received["risk.merchant_warning"]
    body = Webhook(merchant["webhook_secret"]).verify(warning.body, warning.headers)
    assert body["data"]["order_id"] == order["id"]
    assert body["data"]["action"] == "do_not_ship"
    assert body["data"]["reasons"] == [
        "The delivery address or phone number of this order is your own shop's."
    ]

    analyst_id, analyst = operator(runtime, "risk_analyst", "analyst@example.com")
    assert (
        client.get(f"/v1/risk/decisions/{order['id']}", headers=platform_headers).status_code == 403
    )
    record = client.get(f"/v1/risk/decisions/{order['id']}", headers=analyst).json()
    assert (record["order_id"], record["outcome"], record["score"]) == (order["id"], "review", 50)
    assert [hit["id"] for hit in record["rule_hits"]] == ["ships_to_merchant"]
    assert record["model_version"] is None and record["rule_set_version"] == "2026-12-07.3"
    assert record["features"]["link_merchant_own"] == 1.0
    assert record["features"]["order_amount_minor"] == 30_000.0
    assert record["links"] == [
        {"kind": "address", "shopper_count": 0, "shopper_ids": [], "shared_with_merchant": True,
         "with_known_fraud": False}
    ]  # fmt: skip
    assert [r["code"] for r in record["reasons"]] == ["held_for_review", "ships_to_merchant"]
    assert record["latency_micros"] > 0

    listed = client.get(
        "/v1/risk/cases", headers=analyst, params={"status": "open", "type": "order"}
    )
    assert listed.status_code == 200
    [case] = listed.json()["data"]
    assert listed.json()["has_more"] is False
    assert (case["type"], case["status"], case["amount_at_risk_minor"]) == ("order", "open", 30_000)
    assert case["subject_ids"] == [order["id"], order["shopper_id"]]
    assert "evidence" not in case
    detail = client.get(f"/v1/risk/cases/{case['id']}", headers=analyst).json()
    assert detail["evidence"]["order_ids"] == [order["id"]]
    assert detail["evidence"]["signals"][0]["evidence"]["rule_hits"][0]["id"] == "ships_to_merchant"
    assert client.get("/v1/risk/cases", headers=platform_headers).status_code == 403

    assigned = client.post(f"/v1/risk/cases/{case['id']}/assign", headers=analyst)
    assert assigned.status_code == 200, assigned.text
    assert (assigned.json()["status"], assigned.json()["assignee"]) == ("assigned", analyst_id)

    bad = client.post(
        f"/v1/risk/cases/{case['id']}/resolve",
        headers=analyst,
        json={"outcome": "maybe", "note": "x"},
    )
    assert bad.status_code == 422
    assert client.get(f"/v1/orders/{order['id']}", headers=platform_headers).json()["status"] == (
        "review"
    )
    resolved = client.post(
        f"/v1/risk/cases/{case['id']}/resolve",
        headers=analyst,
        json={"outcome": "legitimate", "note": "The shopper works at the shop."},
    )
    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["status"], resolved.json()["resolution"]) == ("resolved", "legitimate")
    assert client.get(f"/v1/orders/{order['id']}", headers=platform_headers).json()["status"] == (
        "approved"
    )
    shipped = client.post(f"/v1/orders/{order['id']}/ship", headers=merchant_headers, json=SHIPMENT)
    assert shipped.status_code == 200, shipped.text
    with runtime.work(read_only=True) as work:
        labels = [(row.order_id, row.label) for row in work.session.scalars(select(RiskLabel))]
    assert labels == [(order["id"], "legitimate")]
    again = client.post(
        f"/v1/risk/cases/{case['id']}/resolve",
        headers=analyst,
        json={"outcome": "confirmed_fraud", "note": "changed my mind"},
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "case_already_resolved"


def test_confirmed_fraud_declines_the_held_order_and_releases_credit(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    merchant = create_merchant(client, platform_headers, address="北京市朝阳区建国路 1 号")
    created = held_checkout(client, platform_headers, merchant)
    order = created["order"]
    _, admin = operator(runtime, "admin", "admin@example.com")
    [case] = client.get("/v1/risk/cases", headers=admin).json()["data"]
    resolved = client.post(
        f"/v1/risk/cases/{case['id']}/resolve",
        headers=admin,
        json={"outcome": "confirmed_fraud", "note": "Cash-out with the shop owner."},
    )
    assert resolved.status_code == 200, resolved.text
    after = client.get(f"/v1/orders/{order['id']}", headers=platform_headers).json()
    assert after["status"] == "declined"
    assert [row["status"] for row in after["instalments"]] == ["cancelled"]
    credit = client.get(f"/v1/shoppers/{order['shopper_id']}/credit", headers=platform_headers)
    assert (credit.json()["used_minor"], credit.json()["status"]) == (0, "closed")
    with runtime.work(read_only=True) as work:
        labels = [(row.order_id, row.label) for row in work.session.scalars(select(RiskLabel))]
        known = sorted(row.subject_id for row in work.session.scalars(select(KnownFraudSubject)))
    assert labels == [(order["id"], "fraud")]
    assert known == [order["shopper_id"]]
    collector = operator(runtime, "collector", "c@example.com")[1]
    assert client.get("/v1/risk/cases", headers=collector).status_code == 403


def test_backtest_shows_what_a_rule_change_would_move(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    held = create_merchant(client, platform_headers, address="北京市朝阳区建国路 1 号")
    plain = create_merchant(client, platform_headers)
    held_order = held_checkout(client, platform_headers, held)["order"]
    held_checkout(client, platform_headers, plain)
    text = DEFAULT_RULES_FILE.read_text(encoding="utf-8").replace(
        'version = "2026-12-07.3"', 'version = "lenient"'
    )
    lenient = parse_rule_set(text.replace("link_merchant_own >= 1", "link_merchant_own >= 3"))
    with runtime.work(read_only=True) as work:
        report = backtest(work.session, rule_set=lenient)
    assert (report.rule_set_version, report.decisions, report.changed) == ("lenient", 2, 1)
    assert report.transitions == {("review", "approved"): 1, ("approved", "approved"): 1}
    assert report.examples[("review", "approved")] == [held_order["id"]]


def test_merchant_own_phone_and_address_are_validated_and_never_shown(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    refused = client.post(
        "/v1/merchants",
        headers=platform_headers,
        json={"name": "Shop", "category": "phones", "phone": "12345"},
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "phone"
    blank = client.post(
        "/v1/merchants",
        headers=platform_headers,
        json={"name": "Shop", "category": "phones", "address": " ， "},
    )
    assert blank.status_code == 422
    assert blank.json()["error"]["field"] == "address"
    with runtime.work(read_only=True) as work:
        assert work.session.scalars(select(Merchant)).all() == []
    created = create_merchant(
        client, platform_headers, phone="+8613800138000", address="上海市 1 号"
    )
    assert "+8613800138000" not in json.dumps(created)
    with runtime.work(read_only=True) as work:
        row = work.session.get(Merchant, created["id"])
        assert row is not None and row.phone_encrypted is not None
        assert "+8613800138000" not in row.phone_encrypted
        assert row.phone_hash == runtime.cipher.blind_index("+8613800138000", field="phone")
