"""API keys remembered per process: for how long, what is forgotten, and that a revoked key
stops working in this process as soon as its revocation calls the forget hook."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from usefirst.api.credential_cache import (
    CredentialCache,
    forget_all_credentials,
    forget_credential,
)
from usefirst.identity.models import ApiKey
from usefirst.identity.service import Principal
from usefirst.runtime import Runtime

PLATFORM = Principal(kind="platform", key_id="key_a")
MERCHANT = Principal(kind="merchant", key_id="key_b", merchant_id="merchant_1")


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_remembered_key_is_trusted_for_the_ttl_then_looked_up_again() -> None:
    clock = FakeMonotonic()
    cache = CredentialCache(ttl_seconds=5.0, monotonic=clock)
    assert cache.get("secret-a") is None
    cache.remember("secret-a", PLATFORM)
    assert cache.get("secret-a") == PLATFORM
    assert cache.get("secret-b") is None
    clock.now += 4.999
    assert cache.get("secret-a") == PLATFORM
    clock.now += 0.001
    assert cache.get("secret-a") is None


def test_forget_drops_one_key_and_forget_all_drops_every_key_in_every_cache() -> None:
    first, second = CredentialCache(), CredentialCache()
    for cache in (first, second):
        cache.remember("secret-a", PLATFORM)
        cache.remember("secret-b", MERCHANT)
    forget_credential("key_a")
    for cache in (first, second):
        assert cache.get("secret-a") is None
        assert cache.get("secret-b") == MERCHANT
    forget_all_credentials()
    assert first.get("secret-b") is None and second.get("secret-b") is None


def test_a_zero_ttl_remembers_nothing_and_the_size_is_bounded() -> None:
    assert CredentialCache(ttl_seconds=0).get("x") is None
    off = CredentialCache(ttl_seconds=0)
    off.remember("secret-a", PLATFORM)
    assert off.get("secret-a") is None
    small = CredentialCache(max_entries=2)
    small.remember("one", PLATFORM)
    small.remember("two", PLATFORM)
    small.remember("three", MERCHANT)
    assert small.get("one") is None
    assert small.get("two") == PLATFORM and small.get("three") == MERCHANT


def test_a_revoked_key_is_refused_at_once_after_the_forget_hook(
    client: TestClient, runtime: Runtime, platform_key: str
) -> None:
    headers = {"Authorization": f"Bearer {platform_key}"}
    assert client.get("/v1/orders/order_none", headers=headers).status_code == 404
    with runtime.work() as work:
        key_id = work.session.scalars(select(ApiKey.id)).one()
        work.session.execute(update(ApiKey).values(revoked_at=work.now))
    # Within the TTL the process still trusts what it looked up a moment ago ...
    assert client.get("/v1/orders/order_none", headers=headers).status_code == 404
    # ... until revocation tells it to forget the key.
    forget_credential(key_id)
    response = client.get("/v1/orders/order_none", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "api_key_revoked"


def test_an_unknown_key_is_never_remembered(
    client: TestClient, runtime: Runtime, platform_key: str
) -> None:
    headers = {"Authorization": "Bearer not-a-key"}
    assert client.get("/v1/orders/order_none", headers=headers).status_code == 401
    assert client.get("/v1/orders/order_none", headers=headers).status_code == 401
