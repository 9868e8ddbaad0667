"""Merchant onboarding and look-up over HTTP: secrets shown once, each merchant sees only itself."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.factories import bearer, create_merchant
from usefirst.identity.models import ApiKey
from usefirst.merchants.models import Merchant
from usefirst.runtime import Runtime


def counts(runtime: Runtime) -> tuple[int, int]:
    with runtime.work(read_only=True) as work:
        merchants = work.session.scalar(select(func.count()).select_from(Merchant)) or 0
        keys = work.session.scalar(select(func.count()).select_from(ApiKey)) or 0
    return int(merchants), int(keys)


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert error["field"] == field


def test_create_merchant_shows_secrets_once(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    response = client.post(
        "/v1/merchants",
        headers=platform_headers,
        json={
            "name": "  Good Shop ",
            "category": "Electronics",
            "webhook_url": "https://shop.example.com/hooks",
            "settlement_days": 3,
            "fee_rate_bps": 120,
        },
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["id"].startswith("mer_")
    assert created["status"] == "active"
    assert created["name"] == "Good Shop"
    assert created["category"] == "electronics"
    assert created["webhook_url"] == "https://shop.example.com/hooks"
    assert created["settlement_days"] == 3
    assert created["fee_rate_bps"] == 120
    assert created["api_key"].startswith("uf_mer_")
    assert created["webhook_secret"].startswith("whsec_")

    for headers in (platform_headers, bearer(created["api_key"])):
        fetched = client.get(f"/v1/merchants/{created['id']}", headers=headers)
        assert fetched.status_code == 200, fetched.text
        body = fetched.json()
        assert "api_key" not in body
        assert "webhook_secret" not in body
        assert created["api_key"] not in fetched.text
        assert created["webhook_secret"] not in fetched.text
        assert body == {
            key: value for key, value in created.items() if key not in ("api_key", "webhook_secret")
        }

    # Neither secret is stored in the clear.
    with runtime.work(read_only=True) as work:
        merchant = work.session.get(Merchant, created["id"])
        assert merchant is not None
        assert created["webhook_secret"] not in merchant.webhook_secret_encrypted
        hashes = list(work.session.scalars(select(ApiKey.secret_hash)))
    assert created["api_key"] not in hashes


def test_defaults_and_each_merchant_sees_only_itself(
    client: TestClient, platform_headers: dict[str, str]
) -> None:
    first = create_merchant(client, platform_headers)
    second = create_merchant(client, platform_headers, name="Other Shop")
    assert first["settlement_days"] == 1
    assert first["fee_rate_bps"] == 60
    assert first["webhook_url"] is None
    assert first["api_key"] != second["api_key"]
    assert first["webhook_secret"] != second["webhook_secret"]

    own = client.get(f"/v1/merchants/{first['id']}", headers=bearer(first["api_key"]))
    assert own.status_code == 200
    assert own.json()["name"] == "Test Shop"
    other = client.get(f"/v1/merchants/{second['id']}", headers=bearer(first["api_key"]))
    assert_error(other, 404, "not_found")
    # Same answer as for a merchant that does not exist: no existence leak.
    missing = client.get("/v1/merchants/mer_nope", headers=bearer(first["api_key"]))
    assert_error(missing, 404, "not_found")
    assert other.json() == missing.json()
    assert_error(client.get("/v1/merchants/mer_nope", headers=platform_headers), 404, "not_found")


def test_only_the_platform_creates_merchants_and_bad_bodies_change_nothing(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    merchant = create_merchant(client, platform_headers)
    before = counts(runtime)
    body = {"name": "Sneaky", "category": "toys"}
    assert_error(
        client.post("/v1/merchants", headers=bearer(merchant["api_key"]), json=body),
        403,
        "forbidden",
    )
    assert_error(client.post("/v1/merchants", json=body), 401, "unauthenticated")
    for bad, field in [
        ({**body, "webhook_url": "ftp://example.com/x"}, "webhook_url"),
        ({**body, "webhook_url": "not a url"}, "webhook_url"),
        ({**body, "fee_rate_bps": -1}, "fee_rate_bps"),
        ({**body, "fee_rate_bps": 5_001}, "fee_rate_bps"),
        ({**body, "settlement_days": 91}, "settlement_days"),
        ({**body, "name": "   "}, "name"),
        ({"name": "No category"}, "category"),
        ({**body, "api_key": "uf_mer_mine"}, "api_key"),
        ({**body, "status": "banned"}, "status"),
    ]:
        response = client.post("/v1/merchants", headers=platform_headers, json=bad)
        assert_error(response, 422, "validation_error", field)
    assert counts(runtime) == before
