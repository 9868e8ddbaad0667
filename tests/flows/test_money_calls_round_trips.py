"""Ship, confirm receipt and payment on PostgreSQL (issue 14): their statements and round trips
are counted, so that a regression fails and each saving is pinned."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.factories import bearer, checkout_body, create_merchant, enrol
from tests.flows import test_checkout_one_statement as counted
from tests.flows.test_checkout_one_statement import RoundTrips

# The checkout's counting fixtures: a runtime on the system clock, a platform key, the counter.
runtime = counted.runtime
headers = counted.headers
round_trips = counted.round_trips

pytestmark = pytest.mark.postgresql

SHIPMENT = {"carrier": "SF Express", "tracking_number": "SF1000000001"}


def test_ship_receipt_and_payment_take_the_pinned_statements_and_round_trips(
    client: TestClient, headers: dict[str, str], round_trips: RoundTrips
) -> None:
    shopper = enrol(client, headers)["id"]
    merchant = create_merchant(client, headers, webhook_url="https://merchant.example/hooks")
    merchant_headers = bearer(merchant["api_key"])
    orders = []
    for key in ("warm", "counted"):
        response = client.post(
            "/v1/checkouts",
            headers={**headers, "Idempotency-Key": key},
            json=checkout_body(shopper, merchant["id"], 1_000),
        )
        assert response.status_code == 201, response.text
        orders.append(response.json()["order"]["id"])

    counts: dict[str, tuple[int, int]] = {}
    for serial, order_id in enumerate(orders):
        # The first order of each call warms the process (rules and model in force, key cache).
        round_trips.clear()
        shipped = client.post(
            f"/v1/orders/{order_id}/ship",
            headers=merchant_headers,
            json={**SHIPMENT, "tracking_number": f"SF{1_000_000_000 + serial}"},
        )
        assert shipped.status_code == 200, shipped.text
        counts["ship"] = (len(round_trips.statements), round_trips.round_trips)

        round_trips.clear()
        delivered = client.post(f"/v1/orders/{order_id}/confirm-receipt", headers=headers)
        assert delivered.status_code == 200, delivered.text
        counts["confirm_receipt"] = (len(round_trips.statements), round_trips.round_trips)

        round_trips.clear()
        paid = client.post(
            "/v1/payments",
            headers={**headers, "Idempotency-Key": f"pay-{serial}"},
            json={
                "shopper_id": shopper,
                "amount_minor": sum(row["amount_minor"] for row in delivered.json()["instalments"]),
                "currency": "CNY",
                "order_id": order_id,
                "method": "alipay",
                "external_ref": f"pay-{serial}",
            },
        )
        assert paid.status_code == 201, paid.text
        counts["payment"] = (len(round_trips.statements), round_trips.round_trips)

    assert counts == {
        "ship": (10, 11),
        "confirm_receipt": (28, 29),
        # The payment.received event (issue 18: a receipt for payments the platform reports)
        # is one statement with its outbox messages; the limit raised by this on-time repayment
        # is announced in the statement that records the change (credit.service._record_changes).
        "payment": (29, 29),
    }, "\n".join(round_trips.statements)
