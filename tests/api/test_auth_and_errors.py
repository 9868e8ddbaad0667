"""Authentication, authorisation by key kind and operator role, the error body, the trial balance
and the operational endpoints, over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import bearer, checkout_body, create_merchant, enrol, national_id, phone
from usefirst.identity.service import create_operator
from usefirst.runtime import Runtime

SHIPMENT = {"carrier": "SF Express", "tracking_number": "SF1234567890"}


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert set(error) <= {"code", "message", "field"}
    if field is None:
        assert "field" not in error
    else:
        assert error["field"] == field


def enrol_body() -> dict[str, Any]:
    return {
        "external_id": "u-1",
        "name": "张三",
        "national_id": national_id(),
        "phone": phone(),
        "consent": {"privacy_policy_version": "2026-01", "credit_report_authorized": True},
    }


@pytest.fixture
def operators(runtime: Runtime) -> dict[str, dict[str, str]]:
    tokens = {}
    with runtime.work() as work:
        for role in ("admin", "risk_analyst", "collector", "compliance", "support"):
            _, token = create_operator(
                work.session, email=f"{role}@usefirst.example", role=role, now=work.now
            )
            tokens[role] = bearer(token)
    return tokens


def place_and_deliver(
    client: TestClient,
    headers: dict[str, str],
    merchant: dict[str, Any],
    shopper_id: str,
    amount_minor: int,
    plan: str = "pay_after_delivery",
) -> str:
    response = client.post(
        "/v1/checkouts",
        headers=headers,
        json=checkout_body(shopper_id, merchant["id"], amount_minor, plan),
    )
    order_id = str(response.json()["order"]["id"])
    client.post(f"/v1/orders/{order_id}/ship", headers=bearer(merchant["api_key"]), json=SHIPMENT)
    delivered = client.post(f"/v1/orders/{order_id}/confirm-receipt", headers=headers)
    assert delivered.json()["status"] == "delivered"
    return order_id


def test_missing_or_wrong_keys_are_401(
    client: TestClient, platform_headers: dict[str, str]
) -> None:
    shopper = enrol(client, platform_headers)
    requests = [
        ("GET", f"/v1/shoppers/{shopper['id']}", None),
        ("POST", "/v1/checkouts", checkout_body(shopper["id"], "mer_x")),
        (
            "POST",
            "/v1/payments",
            {"shopper_id": shopper["id"], "amount_minor": 1, "method": "alipay"},
        ),
        ("GET", "/v1/events", None),
        ("GET", "/v1/ledger/trial-balance", None),
        ("GET", "/v1/orders/ord_x", None),
    ]
    for headers in (
        {},
        {"Authorization": "Bearer uf_plat_not-a-real-key"},
        {"Authorization": platform_headers["Authorization"] + "x"},
        {"Authorization": "Bearer "},
        {"Authorization": platform_headers["Authorization"].replace("Bearer ", "Basic ")},
        {"Authorization": platform_headers["Authorization"].replace("Bearer ", "")},
    ):
        for method, path, body in requests:
            response = client.request(method, path, headers=headers, json=body)
            assert_error(response, 401, "unauthenticated")
    # The right key still works.
    assert client.get(f"/v1/shoppers/{shopper['id']}", headers=platform_headers).status_code == 200


def test_merchant_keys_cannot_use_platform_endpoints(
    client: TestClient, platform_headers: dict[str, str]
) -> None:
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    order_id = client.post(
        "/v1/checkouts", headers=platform_headers, json=checkout_body(shopper["id"], merchant["id"])
    ).json()["order"]["id"]
    merchant_headers = bearer(merchant["api_key"])
    for method, path, body in [
        ("POST", "/v1/shoppers", enrol_body()),
        ("GET", f"/v1/shoppers/{shopper['id']}", None),
        ("GET", f"/v1/shoppers/{shopper['id']}/credit", None),
        ("GET", f"/v1/shoppers/{shopper['id']}/statement", None),
        ("POST", "/v1/merchants", {"name": "x", "category": "y"}),
        ("POST", "/v1/checkouts", checkout_body(shopper["id"], merchant["id"])),
        (
            "POST",
            "/v1/payments",
            {"shopper_id": shopper["id"], "amount_minor": 1, "method": "alipay"},
        ),
        ("POST", f"/v1/orders/{order_id}/confirm-receipt", None),
        ("GET", "/v1/ledger/trial-balance", None),
        ("GET", "/v1/sandbox/clock", None),
        ("POST", "/v1/sandbox/clock/advance", {"days": 1}),
    ]:
        response = client.request(method, path, headers=merchant_headers, json=body)
        assert_error(response, 403, "forbidden")
    # The order was not touched by any of that.
    view = client.get(f"/v1/orders/{order_id}", headers=merchant_headers).json()
    assert view["status"] == "approved"


def test_operator_roles_reach_only_their_endpoints(
    client: TestClient, platform_headers: dict[str, str], operators: dict[str, dict[str, str]]
) -> None:
    shopper = enrol(client, platform_headers)
    sid = shopper["id"]
    allowed = {
        "/v1/ledger/trial-balance": {"admin"},
        f"/v1/shoppers/{sid}": {"admin", "support", "compliance"},
        f"/v1/shoppers/{sid}/credit": {"admin", "support", "risk_analyst"},
        f"/v1/shoppers/{sid}/statement": {"admin", "support", "collector"},
        "/v1/events": {"admin", "support"},
    }
    for path, roles in allowed.items():
        for role, headers in operators.items():
            response = client.get(path, headers=headers)
            if role in roles:
                assert response.status_code == 200, (path, role, response.text)
            else:
                assert_error(response, 403, "forbidden")
    # Masked PII only, for every role that may read a shopper.
    assert client.get(f"/v1/shoppers/{sid}", headers=operators["support"]).json() == shopper
    # Operators do not act for the marketplace.
    for headers in operators.values():
        response = client.post("/v1/checkouts", headers=headers, json=checkout_body(sid, "mer_x"))
        assert_error(response, 403, "forbidden")
    # The platform key is not an admin.
    assert_error(client.get("/v1/ledger/trial-balance", headers=platform_headers), 403, "forbidden")


def test_trial_balance_has_exact_sums_after_a_known_flow(
    client: TestClient, platform_headers: dict[str, str], operators: dict[str, dict[str, str]]
) -> None:
    empty = client.get("/v1/ledger/trial-balance", headers=operators["admin"]).json()
    assert empty == {"accounts": [], "debits_minor": 0, "credits_minor": 0}

    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)  # fee 60 bps
    sid, mid = shopper["id"], merchant["id"]
    place_and_deliver(client, platform_headers, merchant, sid, 10_000, "instalments_3")
    one_shot = place_and_deliver(client, platform_headers, merchant, sid, 30_000)
    paid = client.post(
        "/v1/payments",
        headers=platform_headers,
        json={"shopper_id": sid, "amount_minor": 45_200, "method": "alipay"},
    )
    assert paid.json()["unapplied_minor"] == 5_050  # 30 000 + 10 150 owed
    refunded = client.post(
        f"/v1/orders/{one_shot}/refunds",
        headers=bearer(merchant["api_key"]),
        json={"amount_minor": 1_000, "reason": "scratched"},
    )
    assert refunded.json()["returned_to_shopper_minor"] == 1_000

    response = client.get("/v1/ledger/trial-balance", headers=operators["admin"])
    assert response.status_code == 200
    body = response.json()
    assert body["debits_minor"] == body["credits_minor"] == 86_590
    accounts = {
        line["account"]: (
            line["kind"],
            line["debits_minor"],
            line["credits_minor"],
            line["balance_minor"],
        )
        for line in body["accounts"]
    }
    assert all(line["currency"] == "CNY" for line in body["accounts"])
    assert accounts == {
        "instalment_fee_income::CNY": ("instalment_fee_income", 0, 150, -150),
        "merchant_fee_income::CNY": ("merchant_fee_income", 0, 240, -240),
        f"merchant_payable:{mid}:CNY": ("merchant_payable", 240 + 1_000, 40_000, -38_760),
        "platform_cash::CNY": ("platform_cash", 45_200, 1_000, 44_200),
        f"shopper_receivable:{sid}:CNY": ("shopper_receivable", 40_150, 40_150, 0),
        f"shopper_unapplied_credit:{sid}:CNY": ("shopper_unapplied_credit", 0, 5_050, -5_050),
    }
    assert_error(
        client.get("/v1/ledger/trial-balance", headers=operators["collector"]), 403, "forbidden"
    )


def test_error_bodies_have_one_shape(client: TestClient, platform_headers: dict[str, str]) -> None:
    assert_error(client.get("/v1/nowhere", headers=platform_headers), 404, "not_found")
    assert_error(client.delete("/v1/shoppers", headers=platform_headers), 405, "method_not_allowed")
    assert_error(client.get("/v1/orders/ord_nope", headers=platform_headers), 404, "not_found")
    malformed = client.post(
        "/v1/shoppers",
        headers={**platform_headers, "content-type": "application/json"},
        content=b'{"external_id": ',
    )
    assert_error(malformed, 422, "validation_error")
    assert_error(
        client.post("/v1/shoppers", headers=platform_headers, json=[1, 2]), 422, "validation_error"
    )
    assert_error(
        client.post("/v1/shoppers", headers=platform_headers, json={"external_id": 5}),
        422,
        "validation_error",
        "external_id",
    )
    assert_error(
        client.get("/v1/events?limit=0", headers=platform_headers), 422, "validation_error", "limit"
    )
    assert_error(
        client.get("/v1/events?limit=501", headers=platform_headers),
        422,
        "validation_error",
        "limit",
    )
    assert_error(
        client.post(
            "/v1/orders/ord_nope/confirm-receipt", headers=platform_headers, json={"when": "now"}
        ),
        422,
        "validation_error",
        "when",
    )


def test_operational_endpoints(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    client.get("/v1/nowhere")
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "usefirst_http_requests_total" in metrics.text
    assert 'route="/healthz",status="200"' in metrics.text
    openapi = client.get("/openapi.json").json()
    for path in (
        "/v1/shoppers",
        "/v1/shoppers/{shopper_id}/statement",
        "/v1/merchants/{merchant_id}",
        "/v1/checkouts",
        "/v1/orders/{order_id}/refunds",
        "/v1/payments",
        "/v1/events",
        "/v1/sandbox/clock/advance",
        "/v1/ledger/trial-balance",
    ):
        assert path in openapi["paths"], path
