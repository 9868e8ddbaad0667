from __future__ import annotations

from fastapi.testclient import TestClient

from tests.factories import bearer, checkout_body, create_merchant, enrol


def test_checkout_ship_deliver_pay(client: TestClient, platform_headers: dict[str, str]) -> None:
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    response = client.post(
        "/v1/checkouts",
        headers={**platform_headers, "Idempotency-Key": "c-1"},
        json=checkout_body(shopper["id"], merchant["id"], 30_000),
    )
    assert response.status_code == 201
    order = response.json()["order"]
    assert response.json()["decision"]["outcome"] == "approved"
    shipped = client.post(
        f"/v1/orders/{order['id']}/ship",
        headers=bearer(merchant["api_key"]),
        json={"carrier": "SF", "tracking_number": "SF1234567890"},
    )
    assert shipped.json()["status"] == "shipped"
    delivered = client.post(f"/v1/orders/{order['id']}/confirm-receipt", headers=platform_headers)
    assert delivered.json()["status"] == "delivered"
    paid = client.post(
        "/v1/payments",
        headers={**platform_headers, "Idempotency-Key": "p-1"},
        json={"shopper_id": shopper["id"], "amount_minor": 30_000, "method": "alipay"},
    )
    assert paid.status_code == 201
    assert paid.json()["unapplied_minor"] == 0
    assert (
        client.get(f"/v1/orders/{order['id']}", headers=platform_headers).json()["status"]
        == "repaid"
    )
