"""Every operation documents its 2xx body with a schema (a response model for JSON, a media type
and string schema for files), and what the money paths send (they return their own JSON,
unvalidated by FastAPI, to stay lean) is exactly what their models say, on both databases."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from pydantic import BaseModel

from tests.factories import checkout_body, create_merchant, enrol
from usefirst.api import responses

JSON_TYPES = ("application/json",)
# The evidence download is the file as uploaded: a JSON evidence file is any JSON document.
ANY_JSON_DOWNLOADS = {("get", "/v1/disputes/{dispute_id}/evidence/{evidence_id}/content")}


def untyped_successes(document: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    untyped = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            successes = {
                status: answer
                for status, answer in operation["responses"].items()
                if status.startswith("2")
            }
            if not successes:
                untyped.append((method, path, "-", "no 2xx answer documented"))
            for status, answer in successes.items():
                content = answer.get("content")
                if status == "204":
                    continue
                if not content:
                    untyped.append((method, path, status, "no content"))
                    continue
                for media_type, described in content.items():
                    schema = described.get("schema", {})
                    if media_type in JSON_TYPES:
                        if (method, path) in ANY_JSON_DOWNLOADS:
                            continue
                        reference = schema.get("$ref", "")
                        if not reference.startswith("#/components/schemas/"):
                            untyped.append((method, path, status, f"{media_type}: {schema}"))
                    elif schema.get("type") != "string":
                        untyped.append((method, path, status, f"{media_type}: {schema}"))
    return untyped


def test_every_operation_documents_a_typed_success_body(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert untyped_successes(document) == []
    operations = sum(len(item) for item in document["paths"].values())
    assert operations >= 78
    schemas = document["components"]["schemas"]
    # The models forbid what they do not name, so a client knows every field it can get.
    assert schemas["OrderOut"]["additionalProperties"] is False
    assert schemas["CheckoutOut"]["required"] == ["order", "decision"]
    assert schemas["DecisionOut"]["properties"]["outcome"]["enum"] == [
        "approved",
        "review",
        "step_up",
        "declined",
    ]
    money = document["paths"]["/v1/checkouts"]["post"]["responses"]["201"]
    assert money["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CheckoutOut"
    }
    pdf = document["paths"]["/v1/legal/cases/{case_id}/evidence.pdf"]["get"]["responses"]["200"]
    assert pdf["content"] == {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}


def test_a_document_without_models_is_reported(client: TestClient) -> None:
    """The check itself can fail: FastAPI's default answer of an untyped dict is caught."""
    document = {
        "paths": {
            "/v1/x": {
                "get": {
                    "responses": {
                        "200": {
                            "content": {
                                "application/json": {
                                    "schema": {"type": "object", "additionalProperties": True}
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert untyped_successes(document) == [
        (
            "get",
            "/v1/x",
            "200",
            "application/json: {'type': 'object', 'additionalProperties': True}",
        )
    ]


def conforms(model: type[BaseModel], body: Any) -> None:
    """``body`` is what ``model`` describes: every field it names, none it does not, with
    JSON types (strict: no string read as a number)."""
    model.model_validate_json(json.dumps(body), strict=True)


def test_the_money_paths_send_what_their_models_describe(
    client: TestClient, platform_headers: dict[str, str]
) -> None:
    merchant = create_merchant(client, platform_headers)
    conforms(responses.NewMerchantOut, merchant)
    merchant_headers = {"Authorization": f"Bearer {merchant['api_key']}"}
    shopper = enrol(client, platform_headers)
    conforms(responses.ShopperOut, shopper)

    placed = client.post(
        "/v1/checkouts",
        headers={**platform_headers, "Idempotency-Key": "co-models"},
        json=checkout_body(shopper["id"], merchant["id"], 30_000, plan="instalments_3"),
    )
    assert placed.status_code == 201, placed.text
    conforms(responses.CheckoutOut, placed.json())
    order_id = placed.json()["order"]["id"]
    replayed = client.post(
        "/v1/checkouts",
        headers={**platform_headers, "Idempotency-Key": "co-models"},
        json=checkout_body(shopper["id"], merchant["id"], 30_000, plan="instalments_3"),
    )
    assert replayed.json() == placed.json()

    shipped = client.post(
        f"/v1/orders/{order_id}/ship",
        headers=merchant_headers,
        json={"carrier": "SF", "tracking_number": "SF1234567890"},
    )
    assert shipped.status_code == 200, shipped.text
    conforms(responses.OrderOut, shipped.json())
    assert shipped.json()["shipment"]["carrier"] == "SF"

    received = client.post(f"/v1/orders/{order_id}/confirm-receipt", headers=platform_headers)
    assert received.status_code == 200, received.text
    conforms(responses.OrderOut, received.json())
    assert received.json()["status"] == "delivered"

    paid = client.post(
        "/v1/payments",
        headers={**platform_headers, "Idempotency-Key": "pay-models"},
        json={
            "shopper_id": shopper["id"],
            "order_id": order_id,
            "amount_minor": 10_000,
            "method": "alipay",
        },
    )
    assert paid.status_code == 201, paid.text
    conforms(responses.PaymentOut, paid.json())
    assert paid.json()["allocations"] != []

    refunded = client.post(
        f"/v1/orders/{order_id}/refunds",
        headers={**merchant_headers, "Idempotency-Key": "refund-models"},
        json={"amount_minor": 1_000, "reason": "one item returned"},
    )
    assert refunded.status_code == 201, refunded.text
    conforms(responses.RefundOut, refunded.json())

    # The validated routes answer the same order as the money paths built it.
    seen = client.get(f"/v1/orders/{order_id}", headers=platform_headers)
    assert seen.status_code == 200
    conforms(responses.OrderOut, seen.json())
    assert seen.json()["instalments"] == refunded.json()["order"]["instalments"]
