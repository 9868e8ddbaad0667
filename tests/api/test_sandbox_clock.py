"""The sandbox test clock over HTTP: auto-confirmation, due dates, overdue, freezing, unfreezing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import make_runtime
from tests.factories import bearer, checkout_body, create_merchant, enrol
from usefirst.api.app import create_app
from usefirst.collections.models import SweepRun
from usefirst.identity.service import create_api_key
from usefirst.kit.clock import business_day_start
from usefirst.repayment.schedule import add_months
from usefirst.runtime import Runtime

SHIPMENT = {"carrier": "SF Express", "tracking_number": "SF1234567890"}
TIME_ZONE = "Asia/Shanghai"


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert error["field"] == field


def clock(client: TestClient, headers: dict[str, str]) -> tuple[datetime, date]:
    response = client.get("/v1/sandbox/clock", headers=headers)
    assert response.status_code == 200, response.text
    return datetime.fromisoformat(response.json()["now"]), date.fromisoformat(
        response.json()["business_on"]
    )


def advance(client: TestClient, headers: dict[str, str], **amount: int) -> datetime:
    response = client.post("/v1/sandbox/clock/advance", headers=headers, json=amount)
    assert response.status_code == 200, response.text
    return datetime.fromisoformat(response.json()["now"])


def order(client: TestClient, headers: dict[str, str], order_id: str) -> dict[str, Any]:
    return dict(client.get(f"/v1/orders/{order_id}", headers=headers).json())


def credit(client: TestClient, headers: dict[str, str], shopper_id: str) -> dict[str, Any]:
    return dict(client.get(f"/v1/shoppers/{shopper_id}/credit", headers=headers).json())


def statement(client: TestClient, headers: dict[str, str], shopper_id: str) -> dict[str, Any]:
    return dict(client.get(f"/v1/shoppers/{shopper_id}/statement", headers=headers).json())


def checkout(
    client: TestClient,
    headers: dict[str, str],
    shopper_id: str,
    merchant_id: str,
    amount_minor: int,
    plan: str = "pay_after_delivery",
) -> dict[str, Any]:
    response = client.post(
        "/v1/checkouts",
        headers=headers,
        json=checkout_body(shopper_id, merchant_id, amount_minor, plan),
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_clock_moves_forward_and_sweeps_every_day(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    start, today = clock(client, platform_headers)
    assert advance(client, platform_headers, days=3) == start + timedelta(days=3)
    assert advance(client, platform_headers, seconds=90) == start + timedelta(days=3, seconds=90)
    now, business_on = clock(client, platform_headers)
    assert now == start + timedelta(days=3, seconds=90)
    assert business_on == (now + timedelta(hours=8)).date()  # Asia/Shanghai, UTC+8
    with runtime.work(read_only=True) as work:
        swept = list(
            work.session.scalars(select(SweepRun.business_on).order_by(SweepRun.business_on))
        )
    assert swept == [
        today + timedelta(days=offset) for offset in range((business_on - today).days + 1)
    ]

    merchant = create_merchant(client, platform_headers)
    assert_error(
        client.post(
            "/v1/sandbox/clock/advance", headers=bearer(merchant["api_key"]), json={"days": 1}
        ),
        403,
        "forbidden",
    )
    assert_error(client.get("/v1/sandbox/clock"), 401, "unauthenticated")
    for bad, field in [({"days": -1}, "days"), ({"hours": 1}, "hours"), ({"days": 3651}, "days")]:
        assert_error(
            client.post("/v1/sandbox/clock/advance", headers=platform_headers, json=bad),
            422,
            "validation_error",
            field,
        )
    assert clock(client, platform_headers)[0] == now


def test_auto_confirm_due_date_overdue_freeze_and_unfreeze(
    client: TestClient, platform_headers: dict[str, str]
) -> None:
    _, day_zero = clock(client, platform_headers)
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    order_id = checkout(client, platform_headers, shopper["id"], merchant["id"], 30_000)["order"][
        "id"
    ]
    shipped = client.post(
        f"/v1/orders/{order_id}/ship", headers=bearer(merchant["api_key"]), json=SHIPMENT
    )
    assert shipped.status_code == 200

    advance(client, platform_headers, days=9)
    assert order(client, platform_headers, order_id)["status"] == "shipped"
    advance(client, platform_headers, days=1)  # auto_confirm_days = 10
    delivered = order(client, platform_headers, order_id)
    assert delivered["status"] == "delivered"
    confirmed_on = day_zero + timedelta(days=10)
    assert datetime.fromisoformat(delivered["shipment"]["delivered_at"]) == business_day_start(
        confirmed_on, TIME_ZONE
    )
    due_on = confirmed_on + timedelta(days=7)  # pay_within_days = 7
    assert [(i["due_on"], i["status"]) for i in delivered["instalments"]] == [
        (due_on.isoformat(), "pending")
    ]
    events = client.get(
        "/v1/events", headers=platform_headers, params={"type": "order.delivered"}
    ).json()["data"]
    assert [event["data"]["confirmation"] for event in events] == ["automatic"]

    advance(client, platform_headers, days=7)  # the due date itself: not late yet
    assert clock(client, platform_headers)[1] == due_on
    body = statement(client, platform_headers, shopper["id"])
    assert (body["outstanding_minor"], body["overdue_minor"], body["next_due_on"]) == (
        30_000,
        0,
        due_on.isoformat(),
    )
    assert order(client, platform_headers, order_id)["status"] == "delivered"
    assert credit(client, platform_headers, shopper["id"])["status"] == "active"

    advance(client, platform_headers, days=1)
    assert order(client, platform_headers, order_id)["status"] == "overdue"
    assert order(client, platform_headers, order_id)["instalments"][0]["status"] == "overdue"
    body = statement(client, platform_headers, shopper["id"])
    # One day late: a late fee of 0.05 % of the overdue principal (15 fen) is owed too.
    assert (body["outstanding_minor"], body["overdue_minor"], body["next_due_on"]) == (
        30_015,
        30_015,
        None,
    )
    assert body["orders"][0]["instalments"][0]["days_past_due"] == 1
    assert body["orders"][0]["instalments"][0]["late_fees_minor"] == 15
    line = credit(client, platform_headers, shopper["id"])
    assert (line["status"], line["used_minor"], line["available_minor"]) == ("frozen", 30_000, 0)
    assert [reason["code"] for reason in line["reasons"]] == ["frozen_overdue"]

    # Frozen credit: a new checkout is recorded and declined, the line untouched.
    declined = checkout(client, platform_headers, shopper["id"], merchant["id"], 1_000)
    assert declined["decision"]["outcome"] == "declined"
    assert [r["code"] for r in declined["decision"]["reasons"]] == ["frozen_overdue"]
    assert credit(client, platform_headers, shopper["id"]) == line

    advance(client, platform_headers, days=2)
    body = statement(client, platform_headers, shopper["id"])
    assert body["orders"][0]["instalments"][0]["days_past_due"] == 3
    assert body["orders"][0]["instalments"][0]["late_fees_minor"] == 45
    assert body["outstanding_minor"] == 30_045

    paid = client.post(
        "/v1/payments",
        headers=platform_headers,
        json={"shopper_id": shopper["id"], "amount_minor": 30_045, "method": "alipay"},
    )
    assert paid.json()["allocations"][0]["fees_minor"] == 45
    assert paid.status_code == 201
    assert order(client, platform_headers, order_id)["status"] == "repaid"
    line = credit(client, platform_headers, shopper["id"])
    # Paid late: active again, but the limit does not grow.
    assert (line["status"], line["limit_minor"], line["used_minor"], line["available_minor"]) == (
        "active",
        100_000,
        0,
        100_000,
    )
    assert [reason["code"] for reason in line["reasons"]] == ["overdue_cleared"]
    again = checkout(client, platform_headers, shopper["id"], merchant["id"], 1_000)
    assert again["decision"]["outcome"] == "approved"


def test_instalments_fall_due_monthly_and_paying_the_late_one_clears_overdue(
    client: TestClient, platform_headers: dict[str, str]
) -> None:
    _, today = clock(client, platform_headers)
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    order_id = checkout(
        client, platform_headers, shopper["id"], merchant["id"], 10_000, "instalments_3"
    )["order"]["id"]
    client.post(f"/v1/orders/{order_id}/ship", headers=bearer(merchant["api_key"]), json=SHIPMENT)
    client.post(f"/v1/orders/{order_id}/confirm-receipt", headers=platform_headers)
    due = [add_months(today, months) for months in (1, 2, 3)]
    assert [i["due_on"] for i in order(client, platform_headers, order_id)["instalments"]] == [
        day.isoformat() for day in due
    ]

    advance(client, platform_headers, days=(due[0] - today).days)
    assert order(client, platform_headers, order_id)["status"] == "delivered"
    advance(client, platform_headers, days=1)
    view = order(client, platform_headers, order_id)
    assert view["status"] == "overdue"
    assert [i["status"] for i in view["instalments"]] == ["overdue", "pending", "pending"]
    body = statement(client, platform_headers, shopper["id"])
    # A day's late fee on the 3 334 overdue principal: 0.05 % rounds to 2 fen.
    assert (body["outstanding_minor"], body["overdue_minor"], body["next_due_on"]) == (
        10_152,
        3_386,
        due[1].isoformat(),
    )
    assert [i["days_past_due"] for i in body["orders"][0]["instalments"]] == [1, 0, 0]
    assert [i["late_fees_minor"] for i in body["orders"][0]["instalments"]] == [2, 0, 0]
    assert credit(client, platform_headers, shopper["id"])["status"] == "frozen"

    # A partial payment that leaves the late instalment unpaid keeps everything frozen.
    client.post(
        "/v1/payments",
        headers=platform_headers,
        json={"shopper_id": shopper["id"], "amount_minor": 3_000, "method": "alipay"},
    )
    assert order(client, platform_headers, order_id)["status"] == "overdue"
    assert credit(client, platform_headers, shopper["id"])["status"] == "frozen"
    assert statement(client, platform_headers, shopper["id"])["overdue_minor"] == 386

    client.post(
        "/v1/payments",
        headers=platform_headers,
        json={"shopper_id": shopper["id"], "amount_minor": 386, "method": "alipay"},
    )
    view = order(client, platform_headers, order_id)
    assert view["status"] == "delivered"
    assert [i["status"] for i in view["instalments"]] == ["paid", "pending", "pending"]
    line = credit(client, platform_headers, shopper["id"])
    assert (line["status"], line["used_minor"]) == ("active", 10_000 - 3_334)
    body = statement(client, platform_headers, shopper["id"])
    assert (body["outstanding_minor"], body["overdue_minor"], body["next_due_on"]) == (
        6_766,
        0,
        due[1].isoformat(),
    )


@pytest.fixture
def production_client(database_url: str) -> Iterator[tuple[TestClient, dict[str, str]]]:
    runtime = make_runtime(database_url, sandbox=False)
    with runtime.work() as work:
        key = create_api_key(work.session, kind="platform", now=work.now)
    try:
        with TestClient(create_app(runtime)) as client:
            yield client, bearer(key)
    finally:
        runtime.database.dispose()


def test_outside_sandbox_mode_the_clock_paths_are_404(
    production_client: tuple[TestClient, dict[str, str]],
) -> None:
    client, headers = production_client
    assert_error(client.get("/v1/sandbox/clock", headers=headers), 404, "not_found")
    assert_error(
        client.post("/v1/sandbox/clock/advance", headers=headers, json={"days": 10}),
        404,
        "not_found",
    )
    # The rest of the API works as usual.
    shopper = enrol(client, headers)
    assert client.get(f"/v1/shoppers/{shopper['id']}", headers=headers).status_code == 200
