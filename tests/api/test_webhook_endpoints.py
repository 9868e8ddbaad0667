"""Webhook endpoints, on SQLite and PostgreSQL, with real HTTP receivers: destinations on
loopback, link-local, private and metadata ranges are refused (and allowed by the operator's
setting), also at delivery time; URL changes; secret rotation signs with both secrets during the
overlap; an event is redelivered once more with the same id."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.api.test_events_and_webhooks import (  # the suite's real receiver, reused
    WebhookServer,
    outbox,
    place,
    run_drain,
    webhook_server,
)
from tests.conftest import make_runtime
from tests.factories import bearer, create_merchant, enrol, issued_key_id
from usefirst.api.app import create_app
from usefirst.identity.service import create_api_key
from usefirst.kit.clock import system_now
from usefirst.kit.models import OutboxMessage
from usefirst.merchants.models import Merchant
from usefirst.merchants.webhooks import CheckedDestination, is_public_address
from usefirst.privacy import audit
from usefirst.privacy.models import AuditEntry
from usefirst.runtime import Runtime

__all__ = ["webhook_server"]

REFUSED_URLS = [
    "http://127.0.0.1:8080/hooks",  # loopback
    "http://127.1.2.3/hooks",
    "http://localhost/hooks",  # resolves to loopback
    "http://[::1]/hooks",
    "http://169.254.169.254/latest/meta-data/",  # link-local: cloud metadata
    "http://[fe80::1]/hooks",
    "http://10.1.2.3/hooks",  # private
    "http://172.16.0.9/hooks",
    "http://192.168.1.10/hooks",
    "http://[fd00:ec2::254]/hooks",  # unique local (an IPv6 metadata address)
    "http://100.100.100.200/hooks",  # shared address space (a cloud metadata address)
    "http://0.0.0.0/hooks",  # unspecified
    "http://[::ffff:127.0.0.1]/hooks",  # IPv4-mapped loopback
    "http://[64:ff9b::a9fe:a9fe]/hooks",  # NAT64 of 169.254.169.254
    "http://224.0.0.1/hooks",  # multicast
]
PUBLIC_URL = "https://93.184.215.14/hooks"  # a public address literal: no DNS needed


@pytest.fixture
def guarded_runtime(database_url: str) -> Iterator[Runtime]:
    runtime = make_runtime(database_url, webhook_allow_private_destinations=False)
    yield runtime
    runtime.database.dispose()


@pytest.fixture
def guarded(guarded_runtime: Runtime) -> tuple[TestClient, dict[str, str]]:
    with guarded_runtime.work() as work:
        key = create_api_key(work.session, kind="platform", now=work.now)
    return TestClient(create_app(guarded_runtime)), bearer(key)


def merchants(runtime: Runtime) -> list[tuple[str, str | None]]:
    with runtime.work(read_only=True) as work:
        return [
            (row.id, row.webhook_url)
            for row in work.session.scalars(select(Merchant).order_by(Merchant.id))
        ]


def audit_actions(runtime: Runtime) -> list[tuple[str, str | None]]:
    with runtime.work(read_only=True) as work:
        assert audit.verify_chain(work.session).is_intact
        return [
            (entry.action, entry.reference_id)
            for entry in work.session.scalars(select(AuditEntry).order_by(AuditEntry.seq))
        ]


def test_every_internal_range_is_refused_when_set(
    guarded_runtime: Runtime, guarded: tuple[TestClient, dict[str, str]]
) -> None:
    client, platform = guarded
    merchant = create_merchant(client, platform, webhook_url=PUBLIC_URL)
    before = merchants(guarded_runtime)
    for url in REFUSED_URLS:
        created = client.post(
            "/v1/merchants",
            headers=platform,
            json={"name": "S", "category": "c", "webhook_url": url},
        )
        assert created.status_code == 422, (url, created.text)
        assert created.json()["error"]["code"] == "webhook_destination_refused"
        assert created.json()["error"]["field"] == "webhook_url"
        changed = client.put(
            f"/v1/merchants/{merchant['id']}/webhook-endpoint",
            headers=platform,
            json={"webhook_url": url},
        )
        assert changed.status_code == 422, (url, changed.text)
        assert changed.json()["error"]["code"] == "webhook_destination_refused"
    assert merchants(guarded_runtime) == before  # no merchant made, no URL changed
    # Only the first merchant's key: no key issued, no URL change recorded.
    assert audit_actions(guarded_runtime) == [
        ("credential.issued", issued_key_id(guarded_runtime, merchant["api_key"]))
    ]


def test_the_setting_allows_local_receivers(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    assert runtime.settings.webhook_allow_private_destinations is True
    merchant = create_merchant(client, platform_headers, webhook_url="http://127.0.0.1:9/hooks")
    assert merchant["webhook_url"] == "http://127.0.0.1:9/hooks"


def test_a_destination_that_turned_internal_is_refused_at_delivery(
    guarded_runtime: Runtime,
    guarded: tuple[TestClient, dict[str, str]],
    webhook_server: WebhookServer,
) -> None:
    client, platform = guarded
    merchant = create_merchant(client, platform, webhook_url=PUBLIC_URL)
    # The name pointed to a public address when it was set; now it points inward (DNS
    # rebinding, here written straight into the row).
    with guarded_runtime.work() as work:
        work.session.execute(
            update(Merchant)
            .where(Merchant.id == merchant["id"])
            .values(webhook_url=webhook_server.url.replace("127.0.0.1", "localhost"))
        )
    shopper = enrol(client, platform)
    place(client, platform, shopper["id"], merchant["id"], 1_000)
    result = run_drain(guarded_runtime)
    assert (result.delivered, result.retried) == (0, 1)
    assert webhook_server.received == []
    [row] = outbox(guarded_runtime)
    assert row["delivered_at"] is None
    assert "is not a public address" in row["last_error"]


def test_the_delivery_connects_to_the_address_it_checked() -> None:
    destination = CheckedDestination(
        url="https://shop.example/hooks?x=1",
        host="shop.example",
        address=ipaddress.ip_address("93.184.215.14"),
    )
    assert destination.connect_url() == "https://93.184.215.14/hooks?x=1"
    assert destination.host_header() == "shop.example"
    six = CheckedDestination(
        url="http://shop.example:8443/h",
        host="shop.example",
        address=ipaddress.ip_address("2606:2800:21f:cb07:6820:80da:af6b:8b2c"),
    )
    assert six.connect_url() == "http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:8443/h"
    assert six.host_header() == "shop.example:8443"
    assert is_public_address(ipaddress.ip_address("8.8.8.8"))
    assert not is_public_address(ipaddress.ip_address("::ffff:10.0.0.1"))


def test_a_url_change_sends_the_next_webhooks_to_the_new_receiver(
    client: TestClient,
    platform_headers: dict[str, str],
    runtime: Runtime,
    webhook_server: WebhookServer,
) -> None:
    merchant = create_merchant(client, platform_headers, webhook_url="http://127.0.0.1:9/old")
    changed = client.put(
        f"/v1/merchants/{merchant['id']}/webhook-endpoint",
        headers=bearer(merchant["api_key"]),
        json={"webhook_url": webhook_server.url},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["webhook_url"] == webhook_server.url
    shopper = enrol(client, platform_headers)
    place(client, platform_headers, shopper["id"], merchant["id"], 1_000)
    assert run_drain(runtime).delivered == 1
    assert [item.path for item in webhook_server.received] == ["/hooks/usefirst"]
    assert audit_actions(runtime) == [
        ("credential.issued", issued_key_id(runtime, merchant["api_key"])),
        ("webhook.url_changed", merchant["id"]),
    ]
    # Another merchant cannot change it.
    other = create_merchant(client, platform_headers, name="Other")
    refused = client.put(
        f"/v1/merchants/{merchant['id']}/webhook-endpoint",
        headers=bearer(other["api_key"]),
        json={"webhook_url": None},
    )
    assert refused.status_code == 404
    assert dict(merchants(runtime))[merchant["id"]] == webhook_server.url


def signatures_verified_by(item: Any, secrets: list[str]) -> list[bool]:
    verified = []
    for secret in secrets:
        try:
            Webhook(secret).verify(item.body, item.headers)
        except WebhookVerificationError:
            verified.append(False)
        else:
            verified.append(True)
    return verified


def test_secret_rotation_signs_with_both_secrets_during_the_overlap(
    client: TestClient,
    platform_headers: dict[str, str],
    runtime: Runtime,
    webhook_server: WebhookServer,
) -> None:
    merchant = create_merchant(client, platform_headers, webhook_url=webhook_server.url)
    old_secret = merchant["webhook_secret"]
    started = system_now()
    rotated = client.post(
        f"/v1/merchants/{merchant['id']}/webhook-secret/rotate",
        headers=bearer(merchant["api_key"]),
        json={"overlap_hours": 6},
    )
    assert rotated.status_code == 201, rotated.text
    new_secret = rotated.json()["webhook_secret"]
    assert new_secret.startswith("whsec_") and new_secret != old_secret
    with runtime.work(read_only=True) as work:
        row = work.session.get(Merchant, merchant["id"])
        assert row is not None and row.previous_webhook_secret_expires_at is not None
        assert (
            timedelta(hours=6)
            <= row.previous_webhook_secret_expires_at - started
            <= timedelta(hours=6, seconds=30)
        )
        assert old_secret not in (
            row.webhook_secret_encrypted,
            row.previous_webhook_secret_encrypted,
        )
        assert row.previous_webhook_secret_encrypted is not None
        # Bound to its own column's field, as key rotation (`usefirst keys`) expects.
        previous = runtime.cipher.decrypt(
            row.previous_webhook_secret_encrypted, field="previous_webhook_secret"
        )
        assert previous == old_secret

    shopper = enrol(client, platform_headers)
    place(client, platform_headers, shopper["id"], merchant["id"], 1_000)
    assert run_drain(runtime).delivered == 1
    [during] = webhook_server.received
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert signatures_verified_by(during, [old_secret, new_secret]) == [True, True]

    # A rotation with no overlap: only the newest secret signs.
    newest = client.post(
        f"/v1/merchants/{merchant['id']}/webhook-secret/rotate",
        headers=platform_headers,
        json={"overlap_hours": 0},
    ).json()["webhook_secret"]
    place(client, platform_headers, shopper["id"], merchant["id"], 2_000)
    assert run_drain(runtime).delivered == 1
    after = webhook_server.received[1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert signatures_verified_by(after, [old_secret, new_secret, newest]) == [False, False, True]
    assert audit_actions(runtime) == [
        ("credential.issued", issued_key_id(runtime, merchant["api_key"])),
        ("webhook.secret_rotated", merchant["id"]),
        ("webhook.secret_rotated", merchant["id"]),
    ]


def test_redelivery_sends_the_same_event_once_more(
    client: TestClient,
    platform_headers: dict[str, str],
    runtime: Runtime,
    webhook_server: WebhookServer,
) -> None:
    merchant = create_merchant(client, platform_headers, webhook_url=webhook_server.url)
    other = create_merchant(client, platform_headers, name="Other")
    shopper = enrol(client, platform_headers)
    place(client, platform_headers, shopper["id"], merchant["id"], 1_000)
    assert run_drain(runtime).delivered == 1
    [first] = webhook_server.received
    event_id = first.headers["webhook-id"]

    assert (
        client.post(
            f"/v1/events/{event_id}/redeliver", headers=bearer(other["api_key"])
        ).status_code
        == 404
    )
    assert run_drain(runtime).delivered == 0
    again = client.post(f"/v1/events/{event_id}/redeliver", headers=bearer(merchant["api_key"]))
    assert again.status_code == 202, again.text
    assert again.json() == {"event_id": event_id, "destinations": ["merchant"]}
    assert run_drain(runtime).delivered == 1
    assert run_drain(runtime).delivered == 0  # once more, not again and again
    assert len(webhook_server.received) == 2
    second = webhook_server.received[1]
    assert second.headers["webhook-id"] == event_id
    assert json.loads(second.body) == json.loads(first.body)
    assert Webhook(merchant["webhook_secret"]).verify(second.body, second.headers)["id"] == event_id
    # No endpoint to send to: 409, nothing queued.
    with runtime.work(read_only=True) as work:
        queued = work.session.scalar(select(func.count()).select_from(OutboxMessage))
    platform_only = client.post(
        f"/v1/events/{event_id}/redeliver",
        headers=platform_headers,
        json={"destinations": ["platform"]},
    )
    assert platform_only.status_code == 409
    with runtime.work(read_only=True) as work:
        assert work.session.scalar(select(func.count()).select_from(OutboxMessage)) == queued
