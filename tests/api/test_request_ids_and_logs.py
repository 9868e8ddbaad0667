"""Structured logs and request ids: one id per HTTP request (a sane incoming X-Request-Id kept,
anything else replaced), returned as a header, stored with the outbox message the request wrote
and sent on the webhook the worker delivers; JSON lines; and no personal data in any log line of
a whole scenario."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.api.test_events_and_webhooks import (
    SHIPMENT,
    WebhookServer,
    place,
    run_drain,
    webhook_server,  # noqa: F401  (a fixture)
)
from tests.factories import bearer, checkout_body, create_merchant, enrol, national_id
from tests.privacy.privacy_env import operator_headers, shopper_with_repaid_order
from usefirst.kit.logs import configure_logging, redact_text
from usefirst.kit.models import OutboxMessage
from usefirst.runtime import Runtime

HEX_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Every log line of the test, as the production JSON format writes it."""
    buffer = io.StringIO()
    configure_logging(log_format="json", level="INFO", stream=buffer)
    try:
        yield buffer
    finally:
        root = logging.getLogger()
        for handler in list(root.handlers):
            if handler.get_name() == "usefirst":
                root.removeHandler(handler)
        root.setLevel(logging.WARNING)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_every_response_carries_a_request_id_and_a_sane_incoming_one_is_kept(
    client: TestClient, json_logs: io.StringIO
) -> None:
    fresh = client.get("/healthz")
    other = client.get("/healthz")
    assert HEX_ID.fullmatch(fresh.headers["x-request-id"])
    assert fresh.headers["x-request-id"] != other.headers["x-request-id"]

    kept = client.get("/healthz", headers={"X-Request-Id": "edge-7f3a9c21.01"})
    assert kept.headers["x-request-id"] == "edge-7f3a9c21.01"
    for insane in ("short", "has space in it", "x" * 129, '"quoted-request-id"', "-leading-dash"):
        replaced = client.get("/healthz", headers={"X-Request-Id": insane})
        assert HEX_ID.fullmatch(replaced.headers["x-request-id"]), insane

    # (Under /v1/ a request without a key is 401 before routing; outside it, an unknown path.)
    missing = client.get("/nowhere/at/all")
    assert missing.status_code == 404
    assert HEX_ID.fullmatch(missing.headers["x-request-id"])

    logged = [line for line in lines(json_logs) if line["event"] == "http_request"]
    assert [line["request_id"] for line in logged[:3]] == [
        fresh.headers["x-request-id"],
        other.headers["x-request-id"],
        "edge-7f3a9c21.01",
    ]
    assert logged[0] == {
        "event": "http_request",
        "level": "info",
        "logger": "usefirst.http",
        "timestamp": logged[0]["timestamp"],
        "request_id": fresh.headers["x-request-id"],
        "method": "GET",
        "route": "/healthz",
        "status": 200,
        "duration_ms": logged[0]["duration_ms"],
    }
    assert logged[0]["timestamp"].endswith("Z")
    # The raw path a client sent never reaches the logs: unknown paths are "unmatched".
    assert logged[-1]["route"] == "unmatched"
    assert "/v1/nowhere" not in json_logs.getvalue()


def test_the_request_id_travels_with_the_outbox_message_onto_the_webhook(
    client: TestClient,
    platform_headers: dict[str, str],
    runtime: Runtime,
    webhook_server: WebhookServer,  # noqa: F811
    json_logs: io.StringIO,
) -> None:
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers, webhook_url=webhook_server.url)
    checkout = client.post(
        "/v1/checkouts",
        headers={**platform_headers, "X-Request-Id": "checkout-0001-abcd"},
        json=checkout_body(shopper["id"], merchant["id"], 30_000),
    )
    assert checkout.status_code == 201, checkout.text
    assert checkout.headers["x-request-id"] == "checkout-0001-abcd"
    shipped = client.post(
        f"/v1/orders/{checkout.json()['order']['id']}/ship",
        headers=bearer(merchant["api_key"]),
        json=SHIPMENT,
    )
    ship_request_id = shipped.headers["x-request-id"]

    with runtime.work(read_only=True) as work:
        stored = [
            (row.topic, row.payload.get("destination"), row.request_id)
            for row in work.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        ]
    # The approved order's agreement notice is planned from a message of the checkout too.
    assert stored == [
        ("webhook", "merchant", "checkout-0001-abcd"),
        ("shopper_notice", None, "checkout-0001-abcd"),
        ("webhook", "merchant", ship_request_id),
    ]

    assert run_drain(runtime).delivered == 2
    received = sorted(webhook_server.received, key=lambda item: item.headers["webhook-id"])
    assert [item.headers["x-request-id"] for item in received] == [
        "checkout-0001-abcd",
        ship_request_id,
    ]
    deliveries = [line for line in lines(json_logs) if line["event"] == "outbox_delivery"]
    assert [(line["request_id"], line["outcome"], line["topic"]) for line in deliveries] == [
        ("checkout-0001-abcd", "delivered", "webhook"),
        (ship_request_id, "delivered", "webhook"),
    ]


def test_a_sweep_is_a_job_with_a_request_id_of_its_own(
    runtime: Runtime, json_logs: io.StringIO
) -> None:
    with runtime.work() as work:
        today = work.today
    runtime.sweep(today)
    runtime.sweep(today)
    sweeps = [line for line in lines(json_logs) if line["event"] == "sweep"]
    assert [line["business_on"] for line in sweeps] == [today.isoformat()] * 2
    assert all(HEX_ID.fullmatch(line["request_id"]) for line in sweeps)
    assert sweeps[0]["request_id"] != sweeps[1]["request_id"]


def test_redaction_masks_what_looks_like_personal_data() -> None:
    the_national_id = national_id()
    text = (
        f"refused {the_national_id} for +8613912345678 and 139 1234 5678, "
        "mail ouyang.mingyue@example.org; order ord_01JD3K8Q2M4N5P6R7S8T9V0W1X, 30000 fen"
    )
    assert redact_text(text) == (
        "refused [redacted] for [redacted] and [redacted], "
        "mail [redacted]; order ord_01JD3K8Q2M4N5P6R7S8T9V0W1X, 30000 fen"
    )


def test_a_whole_scenario_logs_no_personal_data(
    client: TestClient,
    platform_headers: dict[str, str],
    runtime: Runtime,
    webhook_server: WebhookServer,  # noqa: F811
    json_logs: io.StringIO,
) -> None:
    """Enrolment, checkout, payment, reminders, collections (overdue, late fees, the call queue,
    the bureau), webhooks and the data export, at the production log level."""
    merchant = create_merchant(client, platform_headers, webhook_url=webhook_server.url)
    repaid = shopper_with_repaid_order(
        client,
        platform_headers,
        merchant,
        external_id="u-log-a",
        name="欧阳明月",
        phone="+8613912345678",
        email="ouyang.mingyue@example.org",
        address="上海市浦东新区世纪大道 88 号 1201 室",
    )
    late_id = national_id()
    late = enrol(
        client,
        platform_headers,
        external_id="u-log-b",
        name="司马光",
        national_id=late_id,
        phone="+8613700001111",
        email="sima.guang@example.org",
    )
    body = checkout_body(late["id"], merchant["id"], 20_000, plan="instalments_3")
    body["shipping_address"] = "北京市海淀区中关村大街 27 号"
    order = client.post("/v1/checkouts", headers=platform_headers, json=body)
    assert order.status_code == 201, order.text
    order_id = order.json()["order"]["id"]
    assert (
        client.post(
            f"/v1/orders/{order_id}/ship", headers=bearer(merchant["api_key"]), json=SHIPMENT
        ).status_code
        == 200
    )
    assert (
        client.post(f"/v1/orders/{order_id}/confirm-receipt", headers=platform_headers).status_code
        == 200
    )
    place(client, platform_headers, late["id"], merchant["id"], 1_000)
    advanced = client.post("/v1/sandbox/clock/advance", headers=platform_headers, json={"days": 75})
    assert advanced.status_code == 200, advanced.text
    compliance = operator_headers(runtime, "compliance")
    for shopper_id in (repaid.shopper["id"], late["id"]):
        assert (
            client.get(f"/v1/shoppers/{shopper_id}/export", headers=compliance).status_code == 200
        )
    runtime.deliver_outbox()

    logged = lines(json_logs)
    events = {line["event"] for line in logged}
    # The scenario really ran and was logged: requests, sweeps and deliveries.
    assert {"http_request", "sweep", "outbox_delivery"} <= events
    assert len([line for line in logged if line["event"] == "sweep"]) >= 75
    with runtime.work(read_only=True) as work:
        overdue = work.session.scalars(
            select(OutboxMessage.topic).where(OutboxMessage.topic == "contact")
        ).all()
    assert overdue, "the late shopper was reminded"

    text = json_logs.getvalue()
    personal = [
        repaid.national_id,
        repaid.name,
        repaid.phone,
        repaid.phone.removeprefix("+86"),
        repaid.email,
        repaid.address,
        "上海市浦东新区",
        late_id,
        "司马光",
        "+8613700001111",
        "13700001111",
        "sima.guang@example.org",
        "北京市海淀区中关村大街 27 号",
        "中关村",
    ]
    found = [value for value in personal if value in text]
    assert found == []
    # The same holds for every decoded value (no escaped form slips through).
    decoded = json.dumps(logged, ensure_ascii=False)
    assert [value for value in personal if value in decoded] == []
