"""Shared set-up for privacy tests: operators by role, and a shopper with a finished order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from tests.factories import bearer, checkout_body, create_merchant, national_id
from usefirst.identity.service import create_operator
from usefirst.runtime import Runtime


def operator_headers(runtime: Runtime, role: str, email: str | None = None) -> dict[str, str]:
    with runtime.work() as work:
        _, token = create_operator(
            work.session, email=email or f"{role}@example.com", role=role, now=work.now
        )
    return bearer(token)


@dataclass
class ShopperWithHistory:
    shopper: dict[str, Any]
    national_id: str
    name: str
    phone: str
    email: str
    address: str
    order_id: str
    payment_id: str


def shopper_with_repaid_order(
    client: TestClient,
    platform_headers: dict[str, str],
    merchant: dict[str, Any],
    *,
    external_id: str,
    name: str,
    phone: str,
    email: str,
    address: str,
    amount_minor: int = 12_000,
) -> ShopperWithHistory:
    the_national_id = national_id()
    response = client.post(
        "/v1/shoppers",
        headers=platform_headers,
        json={
            "external_id": external_id,
            "name": name,
            "national_id": the_national_id,
            "phone": phone,
            "email": email,
            "consent": {"privacy_policy_version": "2026-01", "credit_report_authorized": True},
            "device_id": f"device-{external_id}",
            "ip": "198.51.100.7",
        },
    )
    assert response.status_code == 201, response.text
    shopper = response.json()
    body = checkout_body(shopper["id"], merchant["id"], amount_minor)
    body["shipping_address"] = address
    body["device_id"] = f"device-{external_id}"
    body["ip"] = "198.51.100.7"
    checkout = client.post(
        "/v1/checkouts",
        headers={**platform_headers, "Idempotency-Key": f"co-{external_id}"},
        json=body,
    )
    assert checkout.status_code == 201, checkout.text
    order_id = checkout.json()["order"]["id"]
    shipped = client.post(
        f"/v1/orders/{order_id}/ship",
        headers=bearer(merchant["api_key"]),
        json={"carrier": "SF", "tracking_number": f"SF-{external_id}"},
    )
    assert shipped.status_code == 200, shipped.text
    confirmed = client.post(f"/v1/orders/{order_id}/confirm-receipt", headers=platform_headers)
    assert confirmed.status_code == 200, confirmed.text
    paid = client.post(
        "/v1/payments",
        headers={**platform_headers, "Idempotency-Key": f"pay-{external_id}"},
        json={"shopper_id": shopper["id"], "amount_minor": amount_minor, "method": "alipay"},
    )
    assert paid.status_code == 201, paid.text
    return ShopperWithHistory(
        shopper=shopper,
        national_id=the_national_id,
        name=name,
        phone=phone,
        email=email,
        address=address,
        order_id=order_id,
        payment_id=paid.json()["id"],
    )


def merchant_of(client: TestClient, platform_headers: dict[str, str]) -> dict[str, Any]:
    return create_merchant(client, platform_headers)
