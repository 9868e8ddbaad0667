"""Refunds over HTTP: first reduce what is owed (latest instalments first), then return money."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.factories import bearer, checkout_body, create_merchant, enrol
from usefirst.ledger.models import JournalEntry, LedgerPosting
from usefirst.orders.models import Refund
from usefirst.runtime import Runtime

SHIPMENT = {"carrier": "SF Express", "tracking_number": "SF1234567890"}


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert error["field"] == field


def place(
    client: TestClient,
    headers: dict[str, str],
    merchant: dict[str, Any],
    shopper_id: str,
    amount_minor: int,
    plan: str = "pay_after_delivery",
    *,
    until: str = "delivered",
) -> dict[str, Any]:
    response = client.post(
        "/v1/checkouts",
        headers=headers,
        json=checkout_body(shopper_id, merchant["id"], amount_minor, plan),
    )
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()["order"]
    if until == "approved":
        return order
    shipped = client.post(
        f"/v1/orders/{order['id']}/ship", headers=bearer(merchant["api_key"]), json=SHIPMENT
    )
    assert shipped.status_code == 200, shipped.text
    if until == "shipped":
        return dict(shipped.json())
    delivered = client.post(f"/v1/orders/{order['id']}/confirm-receipt", headers=headers)
    assert delivered.status_code == 200, delivered.text
    return dict(delivered.json())


def refund(
    client: TestClient,
    merchant: dict[str, Any],
    order_id: str,
    amount_minor: int,
    *,
    key: str | None = None,
) -> Any:
    headers = bearer(merchant["api_key"])
    if key:
        headers["Idempotency-Key"] = key
    return client.post(
        f"/v1/orders/{order_id}/refunds",
        headers=headers,
        json={"amount_minor": amount_minor, "reason": "customer returned the goods"},
    )


def pay(client: TestClient, headers: dict[str, str], shopper_id: str, amount_minor: int) -> None:
    response = client.post(
        "/v1/payments",
        headers=headers,
        json={"shopper_id": shopper_id, "amount_minor": amount_minor, "method": "alipay"},
    )
    assert response.status_code == 201, response.text


def used(client: TestClient, headers: dict[str, str], shopper_id: str) -> int:
    return int(
        client.get(f"/v1/shoppers/{shopper_id}/credit", headers=headers).json()["used_minor"]
    )


def outstanding(client: TestClient, headers: dict[str, str], shopper_id: str) -> int:
    return int(
        client.get(f"/v1/shoppers/{shopper_id}/statement", headers=headers).json()[
            "outstanding_minor"
        ]
    )


def state(runtime: Runtime) -> tuple[int, int, int]:
    with runtime.work(read_only=True) as work:
        return (
            int(work.session.scalar(select(func.count()).select_from(Refund)) or 0),
            int(work.session.scalar(select(func.count()).select_from(JournalEntry)) or 0),
            int(work.session.scalar(select(func.count()).select_from(LedgerPosting)) or 0),
        )


def entry_kinds(runtime: Runtime, order_id: str) -> list[str]:
    with runtime.work(read_only=True) as work:
        return list(
            work.session.scalars(
                select(JournalEntry.kind)
                .where(JournalEntry.order_id == order_id)
                .order_by(JournalEntry.id)
            )
        )


def test_partial_refund_reduces_the_latest_instalments_first(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    order = place(client, platform_headers, merchant, shopper["id"], 10_000, "instalments_3")
    assert used(client, platform_headers, shopper["id"]) == 10_000

    response = refund(client, merchant, order["id"], 4_000)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("ref_")
    assert body["order_id"] == order["id"]
    assert body["amount_minor"] == 4_000
    assert body["currency"] == "CNY"
    assert body["reduced_debt_minor"] == 4_000
    # Instalment 3 (3 333) is refunded whole, so its 50 plan fee is waived; 667 comes off #2.
    assert body["waived_fees_minor"] == 50
    assert body["returned_to_shopper_minor"] == 0
    assert body["reason"] == "customer returned the goods"
    view = body["order"]
    assert view["status"] == "delivered"
    assert view["refunded_minor"] == 4_000
    assert [
        (i["seq"], i["principal_minor"], i["fees_minor"], i["amount_minor"], i["status"])
        for i in view["instalments"]
    ] == [
        (1, 3_334, 50, 3_384, "pending"),
        (2, 2_666, 50, 2_716, "pending"),
        (3, 0, 0, 0, "cancelled"),
    ]
    assert used(client, platform_headers, shopper["id"]) == 6_000
    assert outstanding(client, platform_headers, shopper["id"]) == 6_100
    assert entry_kinds(runtime, order["id"])[-2:] == ["refund_reducing_debt", "fee_waiver"]

    # More than what is left of the order: 409 and nothing moves.
    before = state(runtime)
    order_before = client.get(f"/v1/orders/{order['id']}", headers=platform_headers).json()
    assert_error(
        refund(client, merchant, order["id"], 6_001), 409, "refund_exceeds_order", "amount_minor"
    )
    assert state(runtime) == before
    assert client.get(f"/v1/orders/{order['id']}", headers=platform_headers).json() == order_before
    assert used(client, platform_headers, shopper["id"]) == 6_000
    assert outstanding(client, platform_headers, shopper["id"]) == 6_100

    # The rest of the order, exactly: refunded, nothing owed, the limit free again.
    rest = refund(client, merchant, order["id"], 6_000)
    assert rest.status_code == 201, rest.text
    assert rest.json()["reduced_debt_minor"] == 6_000
    assert rest.json()["waived_fees_minor"] == 100
    assert rest.json()["order"]["status"] == "refunded"
    assert used(client, platform_headers, shopper["id"]) == 0
    assert outstanding(client, platform_headers, shopper["id"]) == 0


def test_refund_after_full_payment_returns_money_to_the_shopper(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    order = place(client, platform_headers, merchant, shopper["id"], 30_000)
    pay(client, platform_headers, shopper["id"], 30_000)

    first = refund(client, merchant, order["id"], 10_000)
    assert first.status_code == 201, first.text
    assert (
        first.json()["reduced_debt_minor"],
        first.json()["waived_fees_minor"],
        first.json()["returned_to_shopper_minor"],
    ) == (0, 0, 10_000)
    assert first.json()["order"]["status"] == "repaid"
    assert first.json()["order"]["refunded_minor"] == 10_000
    assert entry_kinds(runtime, order["id"])[-1] == "refund_to_shopper"

    before = state(runtime)
    assert_error(refund(client, merchant, order["id"], 20_001), 409, "refund_exceeds_order")
    assert state(runtime) == before

    second = refund(client, merchant, order["id"], 20_000)
    assert second.json()["returned_to_shopper_minor"] == 20_000
    assert second.json()["order"]["status"] == "refunded"
    assert used(client, platform_headers, shopper["id"]) == 0
    # Nothing is left to refund on a refunded order.
    before = state(runtime)
    assert_error(refund(client, merchant, order["id"], 1), 409, "order_state_conflict")
    assert state(runtime) == before


def test_refund_of_a_partly_paid_order_splits_debt_and_money(
    client: TestClient, platform_headers: dict[str, str]
) -> None:
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    order = place(client, platform_headers, merchant, shopper["id"], 30_000)
    pay(client, platform_headers, shopper["id"], 10_000)

    response = refund(client, merchant, order["id"], 25_000)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (
        body["reduced_debt_minor"],
        body["waived_fees_minor"],
        body["returned_to_shopper_minor"],
    ) == (20_000, 0, 5_000)
    # What was left owed is gone, so the order is settled.
    assert body["order"]["status"] == "repaid"
    assert [
        (i["amount_minor"], i["paid_minor"], i["status"]) for i in body["order"]["instalments"]
    ] == [(10_000, 10_000, "paid")]
    assert used(client, platform_headers, shopper["id"]) == 0
    assert outstanding(client, platform_headers, shopper["id"]) == 0


def test_refund_before_delivery_shrinks_the_schedule(
    client: TestClient, platform_headers: dict[str, str]
) -> None:
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    order = place(
        client, platform_headers, merchant, shopper["id"], 30_000, "instalments_3", until="shipped"
    )
    response = refund(client, merchant, order["id"], 12_000)
    assert response.status_code == 201, response.text
    assert (
        response.json()["reduced_debt_minor"],
        response.json()["returned_to_shopper_minor"],
    ) == (12_000, 0)
    view = response.json()["order"]
    assert view["status"] == "shipped"
    # 18 000 re-split, with the plan fee recomputed on it (1.5 % = 270).
    assert [(i["principal_minor"], i["fees_minor"], i["status"]) for i in view["instalments"]] == [
        (6_000, 90, "scheduled")
    ] * 3
    assert used(client, platform_headers, shopper["id"]) == 18_000
    delivered = client.post(f"/v1/orders/{order['id']}/confirm-receipt", headers=platform_headers)
    assert [i["amount_minor"] for i in delivered.json()["instalments"]] == [6_090] * 3
    assert outstanding(client, platform_headers, shopper["id"]) == 18_270


def test_refund_permissions_states_validation_and_idempotency(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    other = create_merchant(client, platform_headers, name="Other")
    approved = place(client, platform_headers, merchant, shopper["id"], 5_000, until="approved")
    order = place(client, platform_headers, merchant, shopper["id"], 30_000)
    path = f"/v1/orders/{order['id']}/refunds"
    body = {"amount_minor": 1_000, "reason": "damaged"}

    assert_error(client.post(path, headers=platform_headers, json=body), 403, "forbidden")
    assert_error(client.post(path, headers=bearer(other["api_key"]), json=body), 404, "not_found")
    assert_error(refund(client, merchant, approved["id"], 1_000), 409, "order_state_conflict")
    merchant_headers = bearer(merchant["api_key"])
    for bad, field in [
        ({**body, "amount_minor": 0}, "amount_minor"),
        ({**body, "reason": "  "}, "reason"),
        ({"amount_minor": 1_000}, "reason"),
        ({**body, "to_card": True}, "to_card"),
    ]:
        assert_error(
            client.post(path, headers=merchant_headers, json=bad), 422, "validation_error", field
        )
    assert state(runtime)[0] == 0

    first = refund(client, merchant, order["id"], 1_000, key="refund-1")
    again = refund(client, merchant, order["id"], 1_000, key="refund-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert_error(
        refund(client, merchant, order["id"], 2_000, key="refund-1"), 409, "idempotency_key_reused"
    )
    assert state(runtime)[0] == 1
    assert used(client, platform_headers, shopper["id"]) == 5_000 + 29_000
