"""Events over HTTP (order, pagination, per-merchant scope) and their delivery as signed webhooks
to a real HTTP server, with retries."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.conftest import make_runtime
from tests.factories import bearer, checkout_body, create_merchant, enrol
from usefirst.api.app import create_app
from usefirst.identity.service import create_api_key
from usefirst.kit.clock import TestClock
from usefirst.kit.models import OutboxMessage
from usefirst.kit.outbox import DrainResult, drain
from usefirst.notify.service import WebhookSender
from usefirst.runtime import Runtime

SHIPMENT = {"carrier": "SF Express", "tracking_number": "SF1234567890"}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookServer:
    url: str
    status: int = 200
    received: list[Received] = field(default_factory=list)


@pytest.fixture
def webhook_server() -> Iterator[WebhookServer]:
    server_state = WebhookServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            server_state.received.append(
                Received(
                    path=self.path,
                    headers={key.lower(): value for key, value in self.headers.items()},
                    body=body,
                )
            )
            self.send_response(server_state.status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/usefirst"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def run_drain(runtime: Runtime, max_attempts: int = 3) -> DrainResult:
    sender = WebhookSender(
        database=runtime.database, settings=runtime.settings, cipher=runtime.cipher
    )
    try:
        return drain(
            runtime.database,
            clock=runtime.clock,
            handlers={"webhook": sender},
            max_attempts=max_attempts,
        )
    finally:
        sender.client.close()


def move_clock(runtime: Runtime, delta: timedelta) -> datetime:
    """Move the sandbox clock without sweeping (retries are due by the clock)."""
    assert isinstance(runtime.clock, TestClock)
    with runtime.work() as work:
        return runtime.clock.advance(work.session, delta)


def outbox(runtime: Runtime) -> list[dict[str, Any]]:
    with runtime.work(read_only=True) as work:
        return [
            {
                "payload": row.payload,
                "attempts": row.attempts,
                "available_at": row.available_at,
                "delivered_at": row.delivered_at,
                "failed_at": row.failed_at,
                "last_error": row.last_error,
            }
            # Webhooks only: an approved order also plans the shopper's agreement notice.
            for row in work.session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.topic == "webhook")
                .order_by(OutboxMessage.id)
            )
        ]


def subject(event: dict[str, Any]) -> str | None:
    """The order an event is about (None for a payment that named no order)."""
    data = event["data"]
    return data["order"]["id"] if "order" in data else data["order_id"]


def place(
    client: TestClient, headers: dict[str, str], shopper_id: str, merchant_id: str, amount: int
) -> str:
    response = client.post(
        "/v1/checkouts", headers=headers, json=checkout_body(shopper_id, merchant_id, amount)
    )
    assert response.status_code == 201, response.text
    return str(response.json()["order"]["id"])


def ship(client: TestClient, merchant: dict[str, Any], order_id: str) -> None:
    response = client.post(
        f"/v1/orders/{order_id}/ship", headers=bearer(merchant["api_key"]), json=SHIPMENT
    )
    assert response.status_code == 200, response.text


def deliver(client: TestClient, headers: dict[str, str], order_id: str) -> None:
    response = client.post(f"/v1/orders/{order_id}/confirm-receipt", headers=headers)
    assert response.status_code == 200, response.text


def pay(client: TestClient, headers: dict[str, str], shopper_id: str, amount: int) -> None:
    response = client.post(
        "/v1/payments",
        headers=headers,
        json={"shopper_id": shopper_id, "amount_minor": amount, "method": "alipay"},
    )
    assert response.status_code == 201, response.text


def events(client: TestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = client.get("/v1/events", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_events_list_the_lifecycle_in_order_with_pagination_and_merchant_scope(
    client: TestClient, platform_headers: dict[str, str]
) -> None:
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    other = create_merchant(client, platform_headers, name="Other")
    order_id = place(client, platform_headers, shopper["id"], merchant["id"], 30_000)
    ship(client, merchant, order_id)
    deliver(client, platform_headers, order_id)
    pay(client, platform_headers, shopper["id"], 30_000)
    other_order = place(client, platform_headers, shopper["id"], other["id"], 1_000)

    everything = events(client, platform_headers)
    assert everything["has_more"] is False
    listed = everything["data"]
    # The reported payment (no order named) is received after the order it repaid is repaid.
    assert [(event["type"], subject(event)) for event in listed] == [
        ("order.approved", order_id),
        ("order.shipped", order_id),
        ("order.delivered", order_id),
        ("order.repaid", order_id),
        ("payment.received", None),
        ("order.approved", other_order),
    ]
    assert [event["data"]["order"]["status"] for event in listed if "order" in event["data"]] == [
        "approved",
        "shipped",
        "delivered",
        "repaid",
        "approved",
    ]
    for event in listed:
        assert set(event) == {"id", "type", "created_at", "data"}
        assert event["id"].startswith("evt_")
        assert event["created_at"].endswith("Z")
    assert listed[2]["data"]["confirmation"] == "shopper"
    assert [event["id"] for event in listed] == sorted(event["id"] for event in listed)

    pages = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["starting_after"] = cursor
        page = events(client, platform_headers, **params)
        pages.append((len(page["data"]), page["has_more"]))
        cursor = page["data"][-1]["id"] if page["data"] else None
        if not page["has_more"]:
            break
    assert pages == [(2, True), (2, True), (2, False)]
    exactly = events(client, platform_headers, limit=6)
    assert (len(exactly["data"]), exactly["has_more"]) == (6, False)
    tail = events(client, platform_headers, starting_after=listed[4]["id"])
    assert tail == {"data": [listed[5]], "has_more": False}

    approved = events(client, platform_headers, type="order.approved")["data"]
    assert [event["id"] for event in approved] == [listed[0]["id"], listed[5]["id"]]
    assert events(client, platform_headers, type="order.overdue") == {"data": [], "has_more": False}

    # A merchant sees its orders' events, not the shopper's payment.
    mine = events(client, bearer(merchant["api_key"]))
    assert mine == {"data": listed[:4], "has_more": False}
    theirs = events(client, bearer(other["api_key"]))
    assert theirs == {"data": [listed[5]], "has_more": False}
    # Paging past another merchant's event shows nothing of it either.
    page = events(client, bearer(other["api_key"]), starting_after=listed[0]["id"], limit=1)
    assert page == {"data": [listed[5]], "has_more": False}


def test_events_of_one_transaction_keep_their_order(
    client: TestClient, platform_headers: dict[str, str]
) -> None:
    """Held credit repays an order on delivery: delivered and repaid happen in one request."""
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    pay(client, platform_headers, shopper["id"], 10_000)  # all held: nothing owed yet
    order_ids = []
    for _ in range(6):
        order_id = place(client, platform_headers, shopper["id"], merchant["id"], 1_000)
        ship(client, merchant, order_id)
        deliver(client, platform_headers, order_id)
        order_ids.append(order_id)
    listed = events(client, platform_headers)["data"]
    expected: list[tuple[str, str | None]] = [("payment.received", None)]  # all held as credit
    for order_id in order_ids:
        expected += [
            ("order.approved", order_id),
            ("order.shipped", order_id),
            ("order.delivered", order_id),
            ("order.repaid", order_id),
        ]
    assert [(event["type"], subject(event)) for event in listed] == expected


def test_webhooks_are_delivered_signed_to_the_merchant(
    client: TestClient,
    platform_headers: dict[str, str],
    runtime: Runtime,
    webhook_server: WebhookServer,
) -> None:
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers, webhook_url=webhook_server.url)
    silent = create_merchant(client, platform_headers, name="No hooks")
    order_id = place(client, platform_headers, shopper["id"], merchant["id"], 30_000)
    ship(client, merchant, order_id)
    place(client, platform_headers, shopper["id"], silent["id"], 1_000)  # no webhook_url
    assert [row["payload"]["destination"] for row in outbox(runtime)] == ["merchant", "merchant"]
    assert webhook_server.received == []  # nothing is sent inside the request

    result = run_drain(runtime)
    assert (result.delivered, result.retried, result.failed) == (2, 0, 0)
    listed = events(client, bearer(merchant["api_key"]))["data"]
    assert [event["type"] for event in listed] == ["order.approved", "order.shipped"]
    received = sorted(webhook_server.received, key=lambda item: item.headers["webhook-id"])
    assert [item.headers["webhook-id"] for item in received] == [event["id"] for event in listed]
    for item, event in zip(received, listed, strict=True):
        assert item.path == "/hooks/usefirst"
        assert item.headers["content-type"] == "application/json"
        assert json.loads(item.body) == event
        verified = Webhook(merchant["webhook_secret"]).verify(item.body, item.headers)
        assert verified == event
        with pytest.raises(WebhookVerificationError):
            Webhook(silent["webhook_secret"]).verify(item.body, item.headers)
        tampered = item.body.replace(b"30000", b"30001")
        assert tampered != item.body
        with pytest.raises(WebhookVerificationError):
            Webhook(merchant["webhook_secret"]).verify(tampered, item.headers)
    rows = outbox(runtime)
    assert [(row["attempts"], row["failed_at"]) for row in rows] == [(1, None), (1, None)]
    assert all(row["delivered_at"] is not None for row in rows)

    # Delivered once: a second drain sends nothing.
    assert run_drain(runtime) == DrainResult()
    assert len(webhook_server.received) == 2


def test_failing_endpoint_is_retried_with_backoff_then_marked_failed(
    client: TestClient,
    platform_headers: dict[str, str],
    runtime: Runtime,
    webhook_server: WebhookServer,
) -> None:
    webhook_server.status = 500
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers, webhook_url=webhook_server.url)
    place(client, platform_headers, shopper["id"], merchant["id"], 30_000)
    (queued,) = outbox(runtime)
    assert queued["attempts"] == 0

    first = run_drain(runtime)
    assert (first.delivered, first.retried, first.failed) == (0, 1, 0)
    (row,) = outbox(runtime)
    assert row["attempts"] == 1
    assert row["delivered_at"] is None and row["failed_at"] is None
    assert "500" in row["last_error"]
    first_available = row["available_at"]
    assert first_available > queued["available_at"]

    # Not due yet: nothing is sent.
    assert run_drain(runtime) == DrainResult()
    assert len(webhook_server.received) == 1

    now = move_clock(runtime, timedelta(seconds=30))
    assert now == first_available
    second = run_drain(runtime)
    assert (second.delivered, second.retried, second.failed) == (0, 1, 0)
    (row,) = outbox(runtime)
    assert row["attempts"] == 2
    assert row["available_at"] == now + timedelta(seconds=60)  # backoff doubles

    now = move_clock(runtime, timedelta(seconds=60))
    third = run_drain(runtime)
    assert (third.delivered, third.retried, third.failed) == (0, 0, 1)
    (row,) = outbox(runtime)
    assert row["attempts"] == 3
    assert row["failed_at"] == now
    assert row["delivered_at"] is None

    # Failed for good: never picked up again, even if the endpoint recovers.
    webhook_server.status = 200
    move_clock(runtime, timedelta(days=1))
    assert run_drain(runtime) == DrainResult()
    assert len(webhook_server.received) == 3
    assert len({item.headers["webhook-id"] for item in webhook_server.received}) == 1
    # Every attempt carried the same, validly signed event.
    for item in webhook_server.received:
        Webhook(merchant["webhook_secret"]).verify(item.body, item.headers)


def test_platform_webhook_receives_every_event(
    database_url: str, webhook_server: WebhookServer
) -> None:
    secret = "whsec_" + base64.b64encode(b"platform-webhook-secret-32-bytes").decode()
    runtime = make_runtime(
        database_url, platform_webhook_url=webhook_server.url, platform_webhook_secret=secret
    )
    try:
        with runtime.work() as work:
            headers = bearer(create_api_key(work.session, kind="platform", now=work.now))
        with TestClient(create_app(runtime)) as client:
            shopper = enrol(client, headers)
            merchant = create_merchant(client, headers)  # no webhook of its own
            order_id = place(client, headers, shopper["id"], merchant["id"], 2_000)
            ship(client, merchant, order_id)
            assert run_drain(runtime).delivered == 2
            listed = events(client, headers)["data"]
        received = sorted(webhook_server.received, key=lambda item: item.headers["webhook-id"])
        assert [Webhook(secret).verify(item.body, item.headers) for item in received] == listed
    finally:
        runtime.database.dispose()
