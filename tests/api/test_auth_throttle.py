"""Failed API keys are throttled per client address (PyPI ``limits``): past the limit every key
from that address is 429 with Retry-After, in the JSON error shape, until the window moves on;
other addresses are not affected. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.conftest import make_runtime
from tests.factories import bearer
from usefirst.api.app import create_app
from usefirst.identity import service
from usefirst.identity.models import Shopper
from usefirst.identity.service import create_api_key
from usefirst.kit.clock import system_now
from usefirst.runtime import Runtime

SHOPPER = {
    "external_id": "u-throttled",
    "name": "张三",
    "national_id": "11010519491231002X",
    "phone": "+8613800138000",
    "consent": {"privacy_policy_version": "2026-01", "credit_report_authorized": True},
}


@pytest.fixture
def throttled_runtime(database_url: str) -> Iterator[Runtime]:
    runtime = make_runtime(database_url, api_key_failures_per_address="3/10 minutes")
    yield runtime
    runtime.database.dispose()


def shopper_count(runtime: Runtime) -> int:
    with runtime.work(read_only=True) as work:
        return int(work.session.scalar(select(func.count()).select_from(Shopper)) or 0)


def test_wrong_keys_from_one_address_are_throttled_with_retry_after(
    throttled_runtime: Runtime,
) -> None:
    runtime = throttled_runtime
    with runtime.work() as work:
        good_key = create_api_key(work.session, kind="platform", now=work.now)
    app = create_app(runtime)
    attacker = TestClient(app, client=("198.51.100.7", 40000))
    neighbour = TestClient(app, client=("203.0.113.9", 40000))

    for attempt in range(3):
        response = attacker.get("/v1/events", headers=bearer(f"uf_plat_guess{attempt}"))
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthenticated"
    throttled = attacker.post("/v1/shoppers", headers=bearer("uf_plat_guess3"), json=SHOPPER)
    assert throttled.status_code == 429
    assert throttled.json() == {
        "error": {
            "code": "too_many_failed_attempts",
            "message": "Too many failed authentication attempts from this address; retry later.",
        }
    }
    retry_after = int(throttled.headers["Retry-After"])
    assert 1 <= retry_after <= 600
    # Refused before the key is looked at: even the right key learns nothing from this address.
    right_key = attacker.post("/v1/shoppers", headers=bearer(good_key), json=SHOPPER)
    assert right_key.status_code == 429
    assert shopper_count(runtime) == 0
    # Requests without any key are not guesses: still a plain 401.
    assert attacker.get("/v1/events").status_code == 401

    # Another address is not affected, and its right key works.
    assert neighbour.get("/v1/events", headers=bearer(good_key)).status_code == 200
    created = neighbour.post("/v1/shoppers", headers=bearer(good_key), json=SHOPPER)
    assert created.status_code == 201, created.text
    assert shopper_count(runtime) == 1


def test_revoked_and_expired_keys_count_as_failures(throttled_runtime: Runtime) -> None:
    runtime = throttled_runtime
    issued_at = system_now() - timedelta(days=2)
    with runtime.work() as work:
        _, expired = service.issue_api_key(
            work.session, kind="platform", now=issued_at, expires_at=issued_at + timedelta(days=1)
        )
    client = TestClient(create_app(runtime), client=("198.51.100.8", 40000))
    codes = [
        client.get("/v1/events", headers=bearer(expired)).json()["error"]["code"] for _ in range(4)
    ]
    assert codes == ["api_key_expired"] * 3 + ["too_many_failed_attempts"]
