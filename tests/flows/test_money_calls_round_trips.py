"""Ship, confirm receipt and payments on PostgreSQL (issue 14): their statements and round trips
are counted, so that a regression fails and each saving is pinned. Ship, confirm receipt and
payments, of part of what the order owes or of the rest (the order repaid), take their lean
paths."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.factories import bearer, checkout_body, create_merchant, enrol, skip_on_citus
from tests.flows import test_checkout_one_statement as counted
from tests.flows.test_checkout_one_statement import RoundTrips

# The checkout's counting fixtures: a runtime on the system clock, a platform key, the counter.
runtime = counted.runtime
headers = counted.headers
round_trips = counted.round_trips

pytestmark = pytest.mark.postgresql

SHIPMENT = {"carrier": "SF Express", "tracking_number": "SF1000000001"}


def test_ship_receipt_and_payment_take_the_pinned_statements_and_round_trips(
    client: TestClient, headers: dict[str, str], round_trips: RoundTrips, postgres_url: str
) -> None:
    skip_on_citus(
        postgres_url,
        "it pins the statements of one PostgreSQL; a cluster takes the path docs/operations.md"
        " describes (a payment on the previous path), counted in BENCHMARKS.md",
    )
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

        owed = sum(row["amount_minor"] for row in delivered.json()["instalments"])
        for name, amount_minor in (("payment", owed // 2), ("payment_repaying", owed - owed // 2)):
            round_trips.clear()
            paid = client.post(
                "/v1/payments",
                headers={**headers, "Idempotency-Key": f"{name}-{serial}"},
                json={
                    "shopper_id": shopper,
                    "amount_minor": amount_minor,
                    "currency": "CNY",
                    "order_id": order_id,
                    "method": "alipay",
                    "external_ref": f"{name}-{serial}",
                },
            )
            assert paid.status_code == 201, paid.text
            counts[name] = (len(round_trips.statements), round_trips.round_trips)

    assert counts == {
        # Lean (flows/fulfilment.py, ``ship_with_view``): the order by id with the BEGIN; the
        # line and the order locked, the order's risk facts, the other orders with its tracking
        # number, its instalments and the merchant in one round trip; the order, the risk
        # counters and the order.shipped event with its outbox messages as one statement; the
        # COMMIT.
        "ship": (8, 4),
        # Lean (flows/fulfilment.py, ``confirm_receipt_with_view``): the order by id with the
        # BEGIN; the line and the order locked, the order's instalments locked, the shopper's
        # delivered or overdue orders, their instalments' standing and risk facts, the
        # merchant, the held credit and the order's open case in one round trip; the risk
        # counters with the entries' accounts and postings, then the order, instalments,
        # entries' headers, the quick "received" case and its action and the order.delivered
        # event with its outbox messages, sent together; the COMMIT.
        "confirm_receipt": (12, 4),
        # Lean (flows/payments.py, ``pay_answered``): the shopper, the line, the open
        # instalments, what the order's other instalments owe (the receipt's "left"), the order
        # and its risk facts read in one round trip with the BEGIN; the entry's postings, then
        # payment, allocations, instalments, released credit, the entry's header, the
        # payment.received event with its outbox messages (issue 18) and the idempotency
        # record, sent together; the COMMIT.
        "payment": (8, 3),
        # Lean too (flows/payments.py, ``_repay_lean``): the same reads with the BEGIN; the
        # order's instalments, what the on-time repayment reads of the line and the merchant in
        # one round trip; the entry's postings, then payment, allocations, instalments, the line
        # (credit released and grown) with its change and the message announcing it, the order
        # repaid, the entry's header, the order.repaid and payment.received events with their
        # outbox messages and the idempotency record, sent together; the COMMIT. (Before: 31
        # statements, 27 round trips.)
        "payment_repaying": (11, 4),
    }, "\n".join(round_trips.statements)
