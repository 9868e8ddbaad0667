"""The merchant early warning for an abnormally large order: a merchant with a book of ordinary
orders gets one five times their size; the order is held for review, the merchant receives a
signed ``risk.merchant_warning`` before it could ship, and shipping is refused while the order is
held (and allowed once an analyst clears it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from tests.api.test_events_and_webhooks import WebhookServer, run_drain, webhook_server  # noqa: F401
from tests.conftest import make_runtime
from tests.factories import bearer, checkout_body, create_merchant, enrol
from usefirst.identity.service import create_operator
from usefirst.ledger.models import JournalEntry
from usefirst.risk import decision as risk_decision
from usefirst.risk.models import RiskAction
from usefirst.runtime import Runtime

SHIPMENT = {"carrier": "SF Express", "tracking_number": "SF1234567890123"}
ORDINARY_MINOR = 30_000
LARGE_MINOR = 200_000  # the rule's floor, and 6.7 times this merchant's average order
WARNING = "This order is more than five times the size of your usual orders on usefirst."


@pytest.fixture
def runtime(database_url: str) -> Iterator[Runtime]:
    # Shoppers start with a limit that fits the large order: credit must not be what stops it.
    runtime = make_runtime(database_url, starting_limit_minor=300_000)
    yield runtime
    runtime.database.dispose()


@pytest.fixture(autouse=True)
def no_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The rules' decision alone, whatever model artefact is installed.
    monkeypatch.setattr(risk_decision, "default_model", lambda: None)
    yield


def _checkout(
    client: TestClient, headers: dict[str, str], merchant_id: str, amount: int, index: int
) -> dict[str, object]:
    shopper = enrol(client, headers)
    body = checkout_body(shopper["id"], merchant_id, amount_minor=amount)
    body["shipping_address"] = f"上海市浦东新区世纪大道{100 + index}号{index + 1}室"
    response = client.post("/v1/checkouts", headers=headers, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _journal_entries(runtime: Runtime) -> int:
    with runtime.work(read_only=True) as work:
        return int(work.session.scalar(select(func.count()).select_from(JournalEntry)) or 0)


def test_abnormally_large_order_is_held_the_merchant_warned_and_shipping_refused(
    runtime: Runtime,
    client: TestClient,
    platform_headers: dict[str, str],
    webhook_server: WebhookServer,  # noqa: F811
) -> None:
    merchant = create_merchant(client, platform_headers, webhook_url=webhook_server.url)
    for index in range(20):  # the merchant's usual book: 20 orders of ¥300
        ordinary = _checkout(client, platform_headers, merchant["id"], ORDINARY_MINOR, index)
        assert ordinary["decision"]["outcome"] == "approved"  # type: ignore[index]

    created = _checkout(client, platform_headers, merchant["id"], LARGE_MINOR, 20)
    order, decision = created["order"], created["decision"]
    assert isinstance(order, dict) and isinstance(decision, dict)
    assert decision["outcome"] == "review"
    assert [reason["code"] for reason in decision["reasons"]] == [
        "held_for_review",
        "abnormal_large_for_merchant",
    ]
    assert order["status"] == "review"

    analyst_id, analyst = _operator(runtime)
    record = client.get(f"/v1/risk/decisions/{order['id']}", headers=analyst).json()
    assert [hit["id"] for hit in record["rule_hits"]] == ["abnormal_large_for_merchant"]
    assert record["score"] == 30
    assert record["features"]["merchant_orders_90d"] == 20.0
    assert record["features"]["merchant_amount_vs_average"] == pytest.approx(
        LARGE_MINOR / ORDINARY_MINOR
    )

    # Shipping is refused while the order is held, and nothing moves.
    merchant_headers = bearer(merchant["api_key"])
    entries_before = _journal_entries(runtime)
    refused = client.post(f"/v1/orders/{order['id']}/ship", headers=merchant_headers, json=SHIPMENT)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "order_state_conflict"
    held = client.get(f"/v1/orders/{order['id']}", headers=platform_headers).json()
    assert held["status"] == "review"
    assert held.get("tracking_number") is None
    assert _journal_entries(runtime) == entries_before

    # The merchant was told, signed, in its own terms, before it could ship.
    run_drain(runtime)
    events = [
        (json.loads(item.body), item)
        for item in webhook_server.received
        if _order_of(json.loads(item.body)) == order["id"]
    ]
    assert sorted(body["type"] for body, _ in events) == ["order.review", "risk.merchant_warning"]
    [warning] = [item for body, item in events if body["type"] == "risk.merchant_warning"]
    verified = Webhook(merchant["webhook_secret"]).verify(warning.body, warning.headers)
    assert verified["data"]["action"] == "do_not_ship"
    assert verified["data"]["reasons"] == [WARNING]
    # No other order of this merchant drew a warning.
    assert [
        json.loads(item.body)["data"]["order_id"]
        for item in webhook_server.received
        if json.loads(item.body)["type"] == "risk.merchant_warning"
    ] == [order["id"]]
    with runtime.work(read_only=True) as work:
        actions = work.session.execute(
            select(RiskAction.subject_id, RiskAction.order_id, RiskAction.reason).where(
                RiskAction.action == "merchant_warning"
            )
        ).all()
    assert [tuple(action) for action in actions] == [(merchant["id"], order["id"], WARNING)]

    # Cleared by an analyst, the order ships.
    [case] = client.get(
        "/v1/risk/cases", headers=analyst, params={"status": "open", "type": "order"}
    ).json()["data"]
    assert case["subject_ids"] == [order["id"], order["shopper_id"]]
    resolved = client.post(
        f"/v1/risk/cases/{case['id']}/resolve",
        headers=analyst,
        json={"outcome": "legitimate", "note": "A company's bulk purchase, confirmed by phone."},
    )
    assert resolved.status_code == 200, resolved.text
    shipped = client.post(f"/v1/orders/{order['id']}/ship", headers=merchant_headers, json=SHIPMENT)
    assert shipped.status_code == 200, shipped.text
    assert shipped.json()["status"] == "shipped"
    assert analyst_id


def test_an_order_of_the_usual_size_draws_no_warning(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    merchant = create_merchant(client, platform_headers)
    for index in range(20):
        _checkout(client, platform_headers, merchant["id"], ORDINARY_MINOR, index)
    # Just under five times the average: approved, no warning.
    created = _checkout(client, platform_headers, merchant["id"], 4 * ORDINARY_MINOR, 20)
    assert created["decision"]["outcome"] == "approved"  # type: ignore[index]
    with runtime.work(read_only=True) as work:
        assert (
            work.session.scalar(
                select(func.count())
                .select_from(RiskAction)
                .where(RiskAction.action == "merchant_warning")
            )
            == 0
        )


def _order_of(event: dict[str, Any]) -> str | None:
    """The order an event is about: an order event carries the order, a warning its id."""
    data = event["data"]
    return str(data["order"]["id"]) if "order" in data else data.get("order_id")


def _operator(runtime: Runtime) -> tuple[str, dict[str, str]]:
    with runtime.work() as work:
        row, token = create_operator(
            work.session, email="analyst@example.com", role="risk_analyst", now=work.now
        )
        return row.id, bearer(token)
