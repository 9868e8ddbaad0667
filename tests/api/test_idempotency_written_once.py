"""The idempotency record is written once, with the response, at the end of the work: a retry
runs into the recorded key, its own work is rolled back and the recorded response replayed,
whatever the retry's work would have done now; a failed first attempt leaves no record."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.factories import bearer, checkout_body, create_merchant, enrol
from usefirst.kit.models import Event, IdempotencyRecord, OutboxMessage
from usefirst.ledger.models import JournalEntry
from usefirst.orders.models import Order
from usefirst.repayment.models import Payment
from usefirst.runtime import Runtime


def counts(runtime: Runtime) -> dict[str, int]:
    with runtime.work(read_only=True) as work:
        return {
            model.__name__: int(work.session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (IdempotencyRecord, Order, Payment, JournalEntry, Event, OutboxMessage)
        }


def delivered_order(client: TestClient, headers: dict[str, str]) -> tuple[str, str, int]:
    shopper = enrol(client, headers)
    merchant = create_merchant(client, headers)
    created = client.post(
        "/v1/checkouts", headers=headers, json=checkout_body(shopper["id"], merchant["id"])
    ).json()
    order_id = created["order"]["id"]
    shipped = client.post(
        f"/v1/orders/{order_id}/ship",
        headers=bearer(merchant["api_key"]),
        json={"carrier": "SF Express", "tracking_number": "SF1234567890"},
    )
    assert shipped.status_code == 200, shipped.text
    delivered = client.post(f"/v1/orders/{order_id}/confirm-receipt", headers=headers)
    assert delivered.status_code == 200, delivered.text
    owed = sum(row["amount_minor"] for row in delivered.json()["instalments"])
    return shopper["id"], order_id, owed


def test_a_retry_whose_work_would_now_differ_replays_and_changes_nothing(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    shopper_id, order_id, owed = delivered_order(client, platform_headers)
    body: dict[str, Any] = {
        "shopper_id": shopper_id,
        "amount_minor": owed,
        "order_id": order_id,
        "method": "alipay",
    }
    keyed = {**platform_headers, "Idempotency-Key": "pay-all"}
    first = client.post("/v1/payments", headers=keyed, json=body)
    assert first.status_code == 201, first.text
    assert first.headers.get("Idempotent-Replayed") is None
    before = counts(runtime)

    # The order is repaid now: run again, the payment would be applied differently (or refused);
    # the retry gets the first response and leaves every table as it was.
    again = client.post("/v1/payments", headers=keyed, json=body)
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert counts(runtime) == before

    # The same key for a request that fails in its work is still "reused", not the work's error.
    other = client.post("/v1/payments", headers=keyed, json={**body, "shopper_id": "shp_unknown"})
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert counts(runtime) == before


def test_a_failed_first_attempt_leaves_no_record_and_can_be_retried(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    keyed = {**platform_headers, "Idempotency-Key": "try-again"}
    before = counts(runtime)
    failed = client.post(
        "/v1/checkouts", headers=keyed, json=checkout_body("shp_unknown", merchant["id"])
    )
    assert failed.status_code == 404
    assert counts(runtime) == before

    retried = client.post(
        "/v1/checkouts", headers=keyed, json=checkout_body(shopper["id"], merchant["id"])
    )
    assert retried.status_code == 201, retried.text
    assert retried.headers.get("Idempotent-Replayed") is None
    after = counts(runtime)
    assert after["IdempotencyRecord"] == before["IdempotencyRecord"] + 1
    assert after["Order"] == before["Order"] + 1
    with runtime.work(read_only=True) as work:
        record = work.session.scalars(
            select(IdempotencyRecord).where(IdempotencyRecord.key == "try-again")
        ).one()
        stored = (record.status_code, record.response_body)
    assert stored == (201, retried.json())
