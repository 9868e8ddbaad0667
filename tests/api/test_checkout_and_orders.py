"""Checkout decisions and the order lifecycle over HTTP: approve, decline, idempotency, ship,
confirm receipt, cancel."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.factories import bearer, checkout_body, create_merchant, enrol
from usefirst.kit.models import Event, IdempotencyRecord
from usefirst.orders.models import Order
from usefirst.repayment.models import Instalment
from usefirst.repayment.schedule import add_months
from usefirst.runtime import Runtime

SHIPMENT = {"carrier": "SF Express", "tracking_number": "SF1234567890"}


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    if field is not None:
        assert body["error"]["field"] == field


def clock(client: TestClient, headers: dict[str, str]) -> tuple[datetime, date]:
    body = client.get("/v1/sandbox/clock", headers=headers).json()
    return datetime.fromisoformat(body["now"]), date.fromisoformat(body["business_on"])


def credit(client: TestClient, headers: dict[str, str], shopper_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/shoppers/{shopper_id}/credit", headers=headers)
    assert response.status_code == 200
    return dict(response.json())


def checkout(
    client: TestClient,
    headers: dict[str, str],
    shopper_id: str,
    merchant_id: str,
    amount_minor: int = 30_000,
    plan: str = "pay_after_delivery",
) -> dict[str, Any]:
    response = client.post(
        "/v1/checkouts",
        headers=headers,
        json=checkout_body(shopper_id, merchant_id, amount_minor, plan),
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def count(runtime: Runtime, model: Any) -> int:
    with runtime.work(read_only=True) as work:
        return int(work.session.scalar(select(func.count()).select_from(model)) or 0)


def test_pay_after_delivery_checkout_is_approved_and_reserves_the_limit(
    client: TestClient, platform_headers: dict[str, str]
) -> None:
    now, _ = clock(client, platform_headers)
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    other_merchant = create_merchant(client, platform_headers, name="Other")
    items = [
        {"sku": "a", "name": "Cup", "category": "home", "quantity": 2, "unit_price_minor": 12_000},
        {"sku": "b", "name": "Tea", "category": "food", "quantity": 1, "unit_price_minor": 6_000},
    ]
    body = {**checkout_body(shopper["id"], merchant["id"]), "items": items}
    response = client.post("/v1/checkouts", headers=platform_headers, json=body)
    assert response.status_code == 201, response.text
    decision = response.json()["decision"]
    assert decision["outcome"] == "approved"
    assert [reason["code"] for reason in decision["reasons"]] == ["within_credit_limit"]
    assert datetime.fromisoformat(decision["decided_at"]) == now
    order = response.json()["order"]
    assert order["id"].startswith("ord_")
    assert order["shopper_id"] == shopper["id"]
    assert order["merchant_id"] == merchant["id"]
    assert order["amount_minor"] == 30_000  # the sum of the items
    assert order["currency"] == "CNY"
    assert order["plan"] == "pay_after_delivery"
    assert order["status"] == "approved"
    assert order["items"] == items
    assert order["shipment"] is None
    assert datetime.fromisoformat(order["created_at"]) == now
    assert [
        (i["seq"], i["due_on"], i["amount_minor"], i["paid_minor"], i["status"])
        for i in order["instalments"]
    ] == [(1, None, 30_000, 0, "scheduled")]
    assert "shipping_address" not in response.text
    assert "建国路" not in response.text

    line = credit(client, platform_headers, shopper["id"])
    assert (line["limit_minor"], line["used_minor"], line["available_minor"]) == (
        100_000,
        30_000,
        70_000,
    )

    by_platform = client.get(f"/v1/orders/{order['id']}", headers=platform_headers)
    by_merchant = client.get(f"/v1/orders/{order['id']}", headers=bearer(merchant["api_key"]))
    assert by_platform.status_code == by_merchant.status_code == 200
    assert by_platform.json() == by_merchant.json() == order
    assert_error(
        client.get(f"/v1/orders/{order['id']}", headers=bearer(other_merchant["api_key"])),
        404,
        "not_found",
    )
    assert_error(client.get("/v1/orders/ord_nope", headers=platform_headers), 404, "not_found")


def test_instalment_plans_split_principal_and_fee_exactly(
    client: TestClient, platform_headers: dict[str, str]
) -> None:
    _, today = clock(client, platform_headers)
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    three = checkout(
        client, platform_headers, shopper["id"], merchant["id"], 10_000, "instalments_3"
    )
    # Principal 10 000 split 3334/3333/3333 (earliest carries the remainder); fee 50 bps a month
    # for 3 months = 150, 50 on each instalment.
    assert [
        (i["seq"], i["principal_minor"], i["fees_minor"], i["amount_minor"], i["status"])
        for i in three["order"]["instalments"]
    ] == [
        (1, 3334, 50, 3384, "scheduled"),
        (2, 3333, 50, 3383, "scheduled"),
        (3, 3333, 50, 3383, "scheduled"),
    ]
    six = checkout(client, platform_headers, shopper["id"], merchant["id"], 60_000, "instalments_6")
    assert [(i["principal_minor"], i["fees_minor"]) for i in six["order"]["instalments"]] == [
        (10_000, 300)
    ] * 6
    # Plan fees never use the credit limit: only principal does.
    assert credit(client, platform_headers, shopper["id"])["used_minor"] == 70_000

    order_id = three["order"]["id"]
    client.post(f"/v1/orders/{order_id}/ship", headers=bearer(merchant["api_key"]), json=SHIPMENT)
    delivered = client.post(f"/v1/orders/{order_id}/confirm-receipt", headers=platform_headers)
    assert delivered.status_code == 200
    assert [(i["due_on"], i["status"]) for i in delivered.json()["instalments"]] == [
        (add_months(today, 1).isoformat(), "pending"),
        (add_months(today, 2).isoformat(), "pending"),
        (add_months(today, 3).isoformat(), "pending"),
    ]


def test_over_the_limit_is_declined_and_leaves_the_limit_untouched(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    before = credit(client, platform_headers, shopper["id"])

    declined = checkout(client, platform_headers, shopper["id"], merchant["id"], 100_001)
    assert declined["decision"]["outcome"] == "declined"
    assert [r["code"] for r in declined["decision"]["reasons"]] == ["credit_limit_exceeded"]
    assert declined["order"]["status"] == "declined"
    assert declined["order"]["instalments"] == []
    assert credit(client, platform_headers, shopper["id"]) == before
    # The decline is recorded.
    fetched = client.get(f"/v1/orders/{declined['order']['id']}", headers=platform_headers)
    assert fetched.json()["status"] == "declined"
    assert count(runtime, Order) == 1

    assert (
        checkout(client, platform_headers, shopper["id"], merchant["id"], 60_000)["decision"][
            "outcome"
        ]
        == "approved"
    )
    again = checkout(client, platform_headers, shopper["id"], merchant["id"], 40_001)
    assert again["decision"]["outcome"] == "declined"
    assert [r["code"] for r in again["decision"]["reasons"]] == ["credit_limit_exceeded"]
    assert credit(client, platform_headers, shopper["id"])["used_minor"] == 60_000
    exact = checkout(client, platform_headers, shopper["id"], merchant["id"], 40_000)
    assert exact["decision"]["outcome"] == "approved"
    line = credit(client, platform_headers, shopper["id"])
    assert (line["used_minor"], line["available_minor"]) == (100_000, 0)

    # A declined order can be neither shipped nor cancelled.
    order_id = declined["order"]["id"]
    assert_error(
        client.post(
            f"/v1/orders/{order_id}/ship", headers=bearer(merchant["api_key"]), json=SHIPMENT
        ),
        409,
        "order_state_conflict",
    )
    assert_error(
        client.post(f"/v1/orders/{order_id}/cancel", headers=platform_headers),
        409,
        "order_state_conflict",
    )
    assert client.get(f"/v1/orders/{order_id}", headers=platform_headers).json() == fetched.json()


def test_checkout_idempotency_replays_and_rejects_a_changed_body(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    body = checkout_body(shopper["id"], merchant["id"], 30_000)
    headers = {**platform_headers, "Idempotency-Key": "checkout-1"}
    first = client.post("/v1/checkouts", headers=headers, json=body)
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    events_after_first = count(runtime, Event)
    for _ in range(3):
        replay = client.post("/v1/checkouts", headers=headers, json=body)
        assert replay.status_code == 201
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json() == first.json()
    assert count(runtime, Order) == 1
    assert count(runtime, Event) == events_after_first
    assert credit(client, platform_headers, shopper["id"])["used_minor"] == 30_000

    changed = {**body, "plan": "instalments_3"}
    assert_error(
        client.post("/v1/checkouts", headers=headers, json=changed),
        409,
        "idempotency_key_reused",
    )
    assert count(runtime, Order) == 1
    assert credit(client, platform_headers, shopper["id"])["used_minor"] == 30_000

    # A declined answer is replayed too, status included.
    big = checkout_body(shopper["id"], merchant["id"], 90_000)
    declined_headers = {**platform_headers, "Idempotency-Key": "checkout-2"}
    declined = client.post("/v1/checkouts", headers=declined_headers, json=big)
    replayed = client.post("/v1/checkouts", headers=declined_headers, json=big)
    assert declined.status_code == replayed.status_code == 201
    assert replayed.json() == declined.json()
    assert replayed.json()["decision"]["outcome"] == "declined"
    assert count(runtime, Order) == 2

    # A new key is a new checkout; an over-long key is refused before anything happens.
    other = client.post(
        "/v1/checkouts", headers={**platform_headers, "Idempotency-Key": "checkout-3"}, json=body
    )
    assert other.json()["order"]["id"] != first.json()["order"]["id"]
    assert_error(
        client.post(
            "/v1/checkouts", headers={**platform_headers, "Idempotency-Key": "k" * 256}, json=body
        ),
        422,
        "validation_error",
        "Idempotency-Key",
    )
    assert count(runtime, Order) == 3
    assert count(runtime, IdempotencyRecord) == 3
    assert credit(client, platform_headers, shopper["id"])["used_minor"] == 60_000


def test_checkout_rejects_bad_requests_and_records_nothing(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    body = checkout_body(shopper["id"], merchant["id"])
    item = body["items"][0]
    for bad, status, code, field in [
        ({**body, "coupon": "FREE"}, 422, "validation_error", "coupon"),
        ({**body, "plan": "instalments_12"}, 422, "validation_error", "plan"),
        ({**body, "items": []}, 422, "validation_error", "items"),
        ({**body, "items": [{**item, "quantity": 0}]}, 422, "validation_error", "items.0.quantity"),
        (
            {**body, "items": [{**item, "unit_price_minor": -1}]},
            422,
            "validation_error",
            "items.0.unit_price_minor",
        ),
        ({**body, "items": [{**item, "unit_price_minor": 0}]}, 422, "validation_error", "items"),
        ({**body, "items": [{**item, "extra": 1}]}, 422, "validation_error", "items.0.extra"),
        ({**body, "currency": "USD"}, 422, "validation_error", "currency"),
        ({**body, "shipping_address": "  "}, 422, "validation_error", "shipping_address"),
        ({**body, "shopper_id": "shp_nope"}, 404, "not_found", None),
        ({**body, "merchant_id": "mer_nope"}, 404, "not_found", None),
    ]:
        assert_error(
            client.post("/v1/checkouts", headers=platform_headers, json=bad), status, code, field
        )
    merchant_headers = bearer(merchant["api_key"])
    assert_error(
        client.post("/v1/checkouts", headers=merchant_headers, json=body), 403, "forbidden"
    )
    assert count(runtime, Order) == 0
    assert credit(client, platform_headers, shopper["id"])["used_minor"] == 0


def test_ship_and_confirm_receipt(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    now, today = clock(client, platform_headers)
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    other_merchant = create_merchant(client, platform_headers, name="Other")
    order = checkout(client, platform_headers, shopper["id"], merchant["id"])["order"]
    path = f"/v1/orders/{order['id']}"

    assert_error(
        client.post(f"{path}/ship", headers=platform_headers, json=SHIPMENT), 403, "forbidden"
    )
    assert_error(
        client.post(f"{path}/ship", headers=bearer(other_merchant["api_key"]), json=SHIPMENT),
        404,
        "not_found",
    )
    merchant_headers = bearer(merchant["api_key"])
    assert_error(
        client.post(
            f"{path}/ship",
            headers=merchant_headers,
            json={"carrier": "SF", "tracking_number": "123"},
        ),
        422,
        "validation_error",
        "tracking_number",
    )
    assert_error(
        client.post(f"{path}/ship", headers=merchant_headers, json={"carrier": "SF"}),
        422,
        "validation_error",
        "tracking_number",
    )
    # Receipt cannot be confirmed before shipment.
    assert_error(
        client.post(f"{path}/confirm-receipt", headers=platform_headers),
        409,
        "order_state_conflict",
    )
    assert client.get(path, headers=platform_headers).json() == order

    shipped = client.post(f"{path}/ship", headers=merchant_headers, json=SHIPMENT)
    assert shipped.status_code == 200, shipped.text
    assert shipped.json()["status"] == "shipped"
    shipment = shipped.json()["shipment"]
    assert shipment["carrier"] == "SF Express"
    assert shipment["tracking_number"] == "SF1234567890"
    assert datetime.fromisoformat(shipment["shipped_at"]) == now
    assert shipment["delivered_at"] is None
    assert [i["status"] for i in shipped.json()["instalments"]] == ["scheduled"]
    assert_error(
        client.post(f"{path}/ship", headers=merchant_headers, json=SHIPMENT),
        409,
        "order_state_conflict",
    )

    assert_error(client.post(f"{path}/confirm-receipt", headers=merchant_headers), 403, "forbidden")
    assert_error(
        client.post("/v1/orders/ord_nope/confirm-receipt", headers=platform_headers),
        404,
        "not_found",
    )
    delivered = client.post(f"{path}/confirm-receipt", headers=platform_headers)
    assert delivered.status_code == 200, delivered.text
    view = delivered.json()
    assert view["status"] == "delivered"
    assert datetime.fromisoformat(view["shipment"]["delivered_at"]) == now
    assert [
        (i["due_on"], i["amount_minor"], i["paid_minor"], i["status"]) for i in view["instalments"]
    ] == [((today + timedelta(days=7)).isoformat(), 30_000, 0, "pending")]
    assert_error(
        client.post(f"{path}/confirm-receipt", headers=platform_headers),
        409,
        "order_state_conflict",
    )
    assert client.get(path, headers=merchant_headers).json() == view
    with runtime.work(read_only=True) as work:
        statuses = list(work.session.scalars(select(Instalment.status)))
    assert statuses == ["pending"]


def test_cancel_before_shipment_releases_the_limit_and_not_after(
    client: TestClient, platform_headers: dict[str, str]
) -> None:
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    other_merchant = create_merchant(client, platform_headers, name="Other")
    merchant_headers = bearer(merchant["api_key"])
    first = checkout(client, platform_headers, shopper["id"], merchant["id"], 30_000)["order"]
    second = checkout(
        client, platform_headers, shopper["id"], merchant["id"], 20_000, "instalments_3"
    )["order"]
    assert credit(client, platform_headers, shopper["id"])["used_minor"] == 50_000

    assert_error(
        client.post(f"/v1/orders/{first['id']}/cancel", headers=bearer(other_merchant["api_key"])),
        404,
        "not_found",
    )
    cancelled = client.post(f"/v1/orders/{first['id']}/cancel", headers=merchant_headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert [i["status"] for i in cancelled.json()["instalments"]] == ["cancelled"]
    line = credit(client, platform_headers, shopper["id"])
    assert (line["used_minor"], line["available_minor"]) == (20_000, 80_000)
    assert_error(
        client.post(f"/v1/orders/{first['id']}/cancel", headers=platform_headers),
        409,
        "order_state_conflict",
    )
    assert credit(client, platform_headers, shopper["id"])["used_minor"] == 20_000

    # The platform may cancel too, but not once the goods are on their way.
    client.post(f"/v1/orders/{second['id']}/ship", headers=merchant_headers, json=SHIPMENT)
    shipped = client.get(f"/v1/orders/{second['id']}", headers=platform_headers).json()
    for headers in (platform_headers, merchant_headers):
        assert_error(
            client.post(f"/v1/orders/{second['id']}/cancel", headers=headers),
            409,
            "order_state_conflict",
        )
    assert client.get(f"/v1/orders/{second['id']}", headers=platform_headers).json() == shipped
    assert credit(client, platform_headers, shopper["id"])["used_minor"] == 20_000

    third = checkout(client, platform_headers, shopper["id"], merchant["id"], 5_000)["order"]
    by_platform = client.post(f"/v1/orders/{third['id']}/cancel", headers=platform_headers)
    assert by_platform.json()["status"] == "cancelled"
    assert credit(client, platform_headers, shopper["id"])["used_minor"] == 20_000
