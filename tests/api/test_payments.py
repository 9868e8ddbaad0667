"""Payments and statements over HTTP: full, partial (waterfall), scoped, overpaid, idempotent."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.factories import bearer, checkout_body, create_merchant, enrol
from usefirst.ledger.models import JournalEntry
from usefirst.repayment.models import Allocation, Payment
from usefirst.repayment.schedule import add_months
from usefirst.runtime import Runtime

SHIPMENT = {"carrier": "SF Express", "tracking_number": "SF1234567890"}


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert error["field"] == field


def business_today(client: TestClient, headers: dict[str, str]) -> date:
    return date.fromisoformat(
        client.get("/v1/sandbox/clock", headers=headers).json()["business_on"]
    )


def place(
    client: TestClient,
    headers: dict[str, str],
    merchant: dict[str, Any],
    shopper_id: str,
    amount_minor: int,
    plan: str = "pay_after_delivery",
    *,
    deliver: bool = True,
) -> dict[str, Any]:
    """Check out, and (by default) ship and confirm receipt; returns the order view."""
    response = client.post(
        "/v1/checkouts",
        headers=headers,
        json=checkout_body(shopper_id, merchant["id"], amount_minor, plan),
    )
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()["order"]
    assert order["status"] == "approved"
    if not deliver:
        return order
    shipped = client.post(
        f"/v1/orders/{order['id']}/ship", headers=bearer(merchant["api_key"]), json=SHIPMENT
    )
    assert shipped.status_code == 200, shipped.text
    delivered = client.post(f"/v1/orders/{order['id']}/confirm-receipt", headers=headers)
    assert delivered.status_code == 200, delivered.text
    return dict(delivered.json())


def pay(
    client: TestClient,
    headers: dict[str, str],
    shopper_id: str,
    amount_minor: int,
    *,
    key: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    request_headers = {**headers, "Idempotency-Key": key} if key else headers
    response = client.post(
        "/v1/payments",
        headers=request_headers,
        json={"shopper_id": shopper_id, "amount_minor": amount_minor, "method": "alipay", **extra},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def order(client: TestClient, headers: dict[str, str], order_id: str) -> dict[str, Any]:
    return dict(client.get(f"/v1/orders/{order_id}", headers=headers).json())


def credit(client: TestClient, headers: dict[str, str], shopper_id: str) -> dict[str, Any]:
    return dict(client.get(f"/v1/shoppers/{shopper_id}/credit", headers=headers).json())


def statement(client: TestClient, headers: dict[str, str], shopper_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/shoppers/{shopper_id}/statement", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def allocations(payment: dict[str, Any]) -> list[tuple[str, int, int, int]]:
    return [
        (a["order_id"], a["seq"], a["fees_minor"], a["principal_minor"])
        for a in payment["allocations"]
    ]


def test_statement_lists_open_orders_with_instalments_and_totals(
    client: TestClient, platform_headers: dict[str, str]
) -> None:
    today = business_today(client, platform_headers)
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    empty = statement(client, platform_headers, shopper["id"])
    assert empty["orders"] == []
    assert (empty["outstanding_minor"], empty["overdue_minor"], empty["next_due_on"]) == (
        0,
        0,
        None,
    )

    later = place(client, platform_headers, merchant, shopper["id"], 10_000, "instalments_3")
    sooner = place(client, platform_headers, merchant, shopper["id"], 30_000)
    place(client, platform_headers, merchant, shopper["id"], 5_000, deliver=False)  # not owed yet

    body = statement(client, platform_headers, shopper["id"])
    assert body["shopper_id"] == shopper["id"]
    assert body["currency"] == "CNY"
    assert body["outstanding_minor"] == 10_150 + 30_000
    assert body["overdue_minor"] == 0
    assert body["next_due_on"] == (today + timedelta(days=7)).isoformat()
    assert body["unapplied_credit_minor"] == 0
    by_order = {item["order_id"]: item for item in body["orders"]}
    assert set(by_order) == {later["id"], sooner["id"]}
    assert by_order[sooner["id"]]["status"] == "delivered"
    assert by_order[sooner["id"]]["amount_minor"] == 30_000
    assert [
        (
            i["seq"],
            i["due_on"],
            i["amount_due_minor"],
            i["paid_minor"],
            i["fees_minor"],
            i["days_past_due"],
        )
        for i in by_order[sooner["id"]]["instalments"]
    ] == [(1, (today + timedelta(days=7)).isoformat(), 30_000, 0, 0, 0)]
    assert [
        (
            i["seq"],
            i["due_on"],
            i["amount_due_minor"],
            i["paid_minor"],
            i["fees_minor"],
            i["days_past_due"],
        )
        for i in by_order[later["id"]]["instalments"]
    ] == [
        (1, add_months(today, 1).isoformat(), 3384, 0, 50, 0),
        (2, add_months(today, 2).isoformat(), 3383, 0, 50, 0),
        (3, add_months(today, 3).isoformat(), 3383, 0, 50, 0),
    ]

    pay(client, platform_headers, shopper["id"], 30_100)
    body = statement(client, platform_headers, shopper["id"])
    assert [item["order_id"] for item in body["orders"]] == [later["id"]]
    assert body["outstanding_minor"] == 10_050
    assert body["next_due_on"] == add_months(today, 1).isoformat()
    assert [(i["amount_due_minor"], i["paid_minor"]) for i in body["orders"][0]["instalments"]] == [
        (3284, 100),
        (3383, 0),
        (3383, 0),
    ]


def test_full_payment_repays_the_order_and_grows_the_limit(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    delivered = place(client, platform_headers, merchant, shopper["id"], 30_000)
    assert credit(client, platform_headers, shopper["id"])["used_minor"] == 30_000

    payment = pay(
        client, platform_headers, shopper["id"], 30_000, method="wechat", external_ref="wx-1"
    )
    assert payment["id"].startswith("pay_")
    assert payment["shopper_id"] == shopper["id"]
    assert payment["amount_minor"] == 30_000
    assert payment["currency"] == "CNY"
    assert payment["method"] == "wechat"
    assert payment["external_ref"] == "wx-1"
    assert payment["order_id"] is None
    assert allocations(payment) == [(delivered["id"], 1, 0, 30_000)]
    assert payment["unapplied_minor"] == 0

    repaid = order(client, platform_headers, delivered["id"])
    assert repaid["status"] == "repaid"
    assert [(i["paid_minor"], i["status"]) for i in repaid["instalments"]] == [(30_000, "paid")]
    line = credit(client, platform_headers, shopper["id"])
    # Repaid on time: the limit grows by 20 % (cold-start policy).
    assert (line["limit_minor"], line["used_minor"], line["available_minor"]) == (
        120_000,
        0,
        120_000,
    )
    assert [r["code"] for r in line["reasons"]] == ["on_time_repayment"]
    body = statement(client, platform_headers, shopper["id"])
    assert (body["orders"], body["outstanding_minor"], body["next_due_on"]) == ([], 0, None)


def test_partial_payments_pay_fees_then_principal_oldest_due_first(
    client: TestClient, platform_headers: dict[str, str]
) -> None:
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    instalments = place(client, platform_headers, merchant, shopper["id"], 10_000, "instalments_3")
    one_shot = place(client, platform_headers, merchant, shopper["id"], 30_000)
    plan_id, one_id = instalments["id"], one_shot["id"]

    # Oldest due first: the pay-after-delivery order (7 days) before the first monthly instalment.
    first = pay(client, platform_headers, shopper["id"], 20_000)
    assert allocations(first) == [(one_id, 1, 0, 20_000)]
    second = pay(client, platform_headers, shopper["id"], 10_030)
    assert allocations(second) == [(one_id, 1, 0, 10_000), (plan_id, 1, 30, 0)]
    assert order(client, platform_headers, one_id)["status"] == "repaid"
    third = pay(client, platform_headers, shopper["id"], 3_400)
    # Fees before principal within an instalment, then on to the next instalment.
    assert allocations(third) == [(plan_id, 1, 20, 3_334), (plan_id, 2, 46, 0)]
    assert third["unapplied_minor"] == 0

    view = order(client, platform_headers, plan_id)
    assert view["status"] == "delivered"
    assert [(i["paid_minor"], i["status"]) for i in view["instalments"]] == [
        (3_384, "paid"),
        (46, "pending"),
        (0, "pending"),
    ]
    # Only principal frees the limit: 40 000 used, 30 000 + 3 334 principal repaid.
    assert credit(client, platform_headers, shopper["id"])["used_minor"] == 6_666
    assert statement(client, platform_headers, shopper["id"])["outstanding_minor"] == 6_720

    last = pay(client, platform_headers, shopper["id"], 6_720, method="bank_card")
    assert allocations(last) == [(plan_id, 2, 4, 3_333), (plan_id, 3, 50, 3_333)]
    assert order(client, platform_headers, plan_id)["status"] == "repaid"
    assert credit(client, platform_headers, shopper["id"])["used_minor"] == 0


def test_payment_for_one_order_touches_only_that_order(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    shopper = enrol(client, platform_headers)
    stranger = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    older = place(client, platform_headers, merchant, shopper["id"], 30_000)
    plan = place(client, platform_headers, merchant, shopper["id"], 10_000, "instalments_3")
    theirs = place(client, platform_headers, merchant, stranger["id"], 1_000)

    scoped = pay(client, platform_headers, shopper["id"], 3_384, order_id=plan["id"])
    assert scoped["order_id"] == plan["id"]
    assert allocations(scoped) == [(plan["id"], 1, 50, 3_334)]
    assert order(client, platform_headers, older["id"])["instalments"][0]["paid_minor"] == 0

    # More than the order owes: the rest is held, not spread to other orders.
    rest = pay(client, platform_headers, shopper["id"], 7_000, order_id=plan["id"])
    assert allocations(rest) == [(plan["id"], 2, 50, 3_333), (plan["id"], 3, 50, 3_333)]
    assert rest["unapplied_minor"] == 234
    assert order(client, platform_headers, plan["id"])["status"] == "repaid"
    assert order(client, platform_headers, older["id"])["instalments"][0]["paid_minor"] == 0
    assert statement(client, platform_headers, shopper["id"])["unapplied_credit_minor"] == 234

    with runtime.work(read_only=True) as work:
        payments_before = work.session.scalar(select(func.count()).select_from(Payment))
    for order_id in (theirs["id"], "ord_nope"):
        response = client.post(
            "/v1/payments",
            headers=platform_headers,
            json={
                "shopper_id": shopper["id"],
                "amount_minor": 100,
                "method": "alipay",
                "order_id": order_id,
            },
        )
        assert_error(response, 404, "not_found")
    assert_error(
        client.post(
            "/v1/payments",
            headers=platform_headers,
            json={
                "shopper_id": shopper["id"],
                "amount_minor": 100,
                "method": "alipay",
                "order_id": theirs["id"],
            },
        ),
        404,
        "not_found",
        "order_id",
    )
    with runtime.work(read_only=True) as work:
        assert work.session.scalar(select(func.count()).select_from(Payment)) == payments_before
    assert order(client, platform_headers, theirs["id"])["instalments"][0]["paid_minor"] == 0


def test_overpayment_is_held_and_applied_when_the_next_order_is_delivered(
    client: TestClient, platform_headers: dict[str, str]
) -> None:
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    first = place(client, platform_headers, merchant, shopper["id"], 30_000)
    overpaid = pay(client, platform_headers, shopper["id"], 35_000)
    assert allocations(overpaid) == [(first["id"], 1, 0, 30_000)]
    assert overpaid["unapplied_minor"] == 5_000
    assert statement(client, platform_headers, shopper["id"])["unapplied_credit_minor"] == 5_000
    # Nothing owed at all: the whole payment is held.
    assert pay(client, platform_headers, shopper["id"], 500)["unapplied_minor"] == 500
    assert statement(client, platform_headers, shopper["id"])["unapplied_credit_minor"] == 5_500

    # Held credit is applied when an order is delivered, not at checkout or shipment.
    small = place(client, platform_headers, merchant, shopper["id"], 4_000, deliver=False)
    assert statement(client, platform_headers, shopper["id"])["unapplied_credit_minor"] == 5_500
    client.post(
        f"/v1/orders/{small['id']}/ship", headers=bearer(merchant["api_key"]), json=SHIPMENT
    )
    assert statement(client, platform_headers, shopper["id"])["unapplied_credit_minor"] == 5_500
    delivered = client.post(f"/v1/orders/{small['id']}/confirm-receipt", headers=platform_headers)
    assert delivered.status_code == 200
    assert order(client, platform_headers, small["id"])["status"] == "repaid"
    assert [
        (i["paid_minor"], i["status"])
        for i in order(client, platform_headers, small["id"])["instalments"]
    ] == [(4_000, "paid")]
    assert statement(client, platform_headers, shopper["id"])["unapplied_credit_minor"] == 1_500

    big = place(client, platform_headers, merchant, shopper["id"], 8_000)
    assert big["status"] == "delivered"
    assert [(i["amount_minor"], i["paid_minor"], i["status"]) for i in big["instalments"]] == [
        (8_000, 1_500, "pending")
    ]
    body = statement(client, platform_headers, shopper["id"])
    assert (body["unapplied_credit_minor"], body["outstanding_minor"]) == (0, 6_500)
    line = credit(client, platform_headers, shopper["id"])
    assert line["used_minor"] == 6_500


def test_twenty_retries_with_one_key_make_one_payment(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    delivered = place(client, platform_headers, merchant, shopper["id"], 30_000)
    body = {"shopper_id": shopper["id"], "amount_minor": 10_000, "method": "alipay"}
    headers = {**platform_headers, "Idempotency-Key": "pay-once"}
    responses = [client.post("/v1/payments", headers=headers, json=body) for _ in range(20)]
    assert {response.status_code for response in responses} == {201}
    assert all(response.json() == responses[0].json() for response in responses)
    assert "Idempotent-Replayed" not in responses[0].headers
    assert all(r.headers["Idempotent-Replayed"] == "true" for r in responses[1:])

    with runtime.work(read_only=True) as work:
        assert work.session.scalar(select(func.count()).select_from(Payment)) == 1
        assert work.session.scalar(select(func.count()).select_from(Allocation)) == 1
        assert (
            work.session.scalar(
                select(func.count())
                .select_from(JournalEntry)
                .where(JournalEntry.kind == "shopper_payment")
            )
            == 1
        )
    assert (
        order(client, platform_headers, delivered["id"])["instalments"][0]["paid_minor"] == 10_000
    )
    assert credit(client, platform_headers, shopper["id"])["used_minor"] == 20_000

    changed = client.post("/v1/payments", headers=headers, json={**body, "amount_minor": 10_001})
    assert_error(changed, 409, "idempotency_key_reused", "Idempotency-Key")
    with runtime.work(read_only=True) as work:
        assert work.session.scalar(select(func.count()).select_from(Payment)) == 1


def test_bad_payments_are_refused_and_record_nothing(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    place(client, platform_headers, merchant, shopper["id"], 30_000)
    body = {"shopper_id": shopper["id"], "amount_minor": 1_000, "method": "alipay"}
    for bad, status, code, field in [
        ({**body, "amount_minor": 0}, 422, "validation_error", "amount_minor"),
        ({**body, "amount_minor": -5}, 422, "validation_error", "amount_minor"),
        ({**body, "amount_minor": 10.5}, 422, "validation_error", "amount_minor"),
        ({**body, "method": "cash"}, 422, "validation_error", "method"),
        ({**body, "currency": "USD"}, 422, "validation_error", "currency"),
        ({**body, "tip_minor": 1}, 422, "validation_error", "tip_minor"),
        ({**body, "shopper_id": "shp_nope"}, 404, "not_found", None),
    ]:
        assert_error(
            client.post("/v1/payments", headers=platform_headers, json=bad), status, code, field
        )
    assert_error(
        client.post("/v1/payments", headers=bearer(merchant["api_key"]), json=body),
        403,
        "forbidden",
    )
    with runtime.work(read_only=True) as work:
        assert work.session.scalar(select(func.count()).select_from(Payment)) == 0
    assert credit(client, platform_headers, shopper["id"])["used_minor"] == 30_000
