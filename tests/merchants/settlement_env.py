"""A sandbox engine for the settlement and standing tests: fixed start date, platform, admin,
risk-analyst and merchant keys, and small API helpers. Time moves only through the test clock, so
every payout is made by the daily sweep exactly as in production."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from tests.conftest import make_runtime
from tests.factories import bearer, checkout_body, create_merchant, enrol
from usefirst.api.app import create_app
from usefirst.flows.reconcile import audit
from usefirst.identity.service import create_api_key, create_operator
from usefirst.kit.clock import TestClock
from usefirst.merchants.settlement import settlement_statement
from usefirst.runtime import Runtime

TIME_ZONE = ZoneInfo("Asia/Shanghai")
# 2027-03-02 12:00 in Shanghai (a Tuesday).
START = datetime(2027, 3, 2, 4, 0, tzinfo=UTC)
_tracking = itertools.count(1)


def local_at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=TIME_ZONE).astimezone(UTC)


@dataclass
class Env:
    runtime: Runtime
    client: TestClient
    platform: dict[str, str]
    admin: dict[str, str]
    analyst: dict[str, str]
    admin_id: str

    # clock

    def now(self) -> datetime:
        response = self.client.get("/v1/sandbox/clock", headers=self.platform)
        assert response.status_code == 200, response.text
        return datetime.fromisoformat(response.json()["now"].replace("Z", "+00:00"))

    def today(self) -> date:
        return self.now().astimezone(TIME_ZONE).date()

    def advance_to_day(self, day: date, hour: int = 12) -> None:
        delta = local_at(day, hour) - self.now()
        assert delta >= timedelta(0)
        days, seconds = divmod(int(delta.total_seconds()), 86_400)
        response = self.client.post(
            "/v1/sandbox/clock/advance",
            headers=self.platform,
            json={"days": days, "seconds": seconds},
        )
        assert response.status_code == 200, response.text

    # merchants, shoppers, orders

    def merchant(self, **overrides: Any) -> dict[str, Any]:
        return create_merchant(self.client, self.platform, **overrides)

    def shopper(self) -> str:
        return str(enrol(self.client, self.platform)["id"])

    def checkout(self, merchant: dict[str, Any], amount_minor: int) -> dict[str, Any]:
        response = self.client.post(
            "/v1/checkouts",
            headers=self.platform,
            json=checkout_body(self.shopper(), merchant["id"], amount_minor),
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    def deliver(self, merchant: dict[str, Any], amount_minor: int) -> str:
        """Check out, ship and confirm receipt now; returns the order id."""
        created = self.checkout(merchant, amount_minor)
        assert created["decision"]["outcome"] == "approved", created
        order_id = str(created["order"]["id"])
        shipped = self.client.post(
            f"/v1/orders/{order_id}/ship",
            headers=bearer(merchant["api_key"]),
            json={"carrier": "SF Express", "tracking_number": f"SF{next(_tracking):010d}"},
        )
        assert shipped.status_code == 200, shipped.text
        delivered = self.client.post(
            f"/v1/orders/{order_id}/confirm-receipt", headers=self.platform
        )
        assert delivered.status_code == 200, delivered.text
        return order_id

    def refund(self, merchant: dict[str, Any], order_id: str, amount_minor: int) -> None:
        response = self.client.post(
            f"/v1/orders/{order_id}/refunds",
            headers=bearer(merchant["api_key"]),
            json={"amount_minor": amount_minor, "reason": "returned"},
        )
        assert response.status_code == 201, response.text

    # settlement

    def balance(self, merchant_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = self.client.get(
            f"/v1/merchants/{merchant_id}/balance", headers=headers or self.platform
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def settlements(self, merchant_id: str) -> list[dict[str, Any]]:
        response = self.client.get(
            f"/v1/merchants/{merchant_id}/settlements",
            headers=self.platform,
            params={"limit": 500},
        )
        assert response.status_code == 200, response.text
        assert response.json()["has_more"] is False
        return list(reversed(response.json()["data"]))  # oldest first

    def account_balances(self) -> dict[str, int]:
        response = self.client.get("/v1/ledger/trial-balance", headers=self.admin)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["debits_minor"] == body["credits_minor"]
        return {line["account"]: line["balance_minor"] for line in body["accounts"]}

    def events(self, event_type: str) -> list[dict[str, Any]]:
        response = self.client.get(
            "/v1/events", headers=self.platform, params={"type": event_type, "limit": 500}
        )
        assert response.status_code == 200, response.text
        return list(response.json()["data"])

    def assert_reconciled(self, merchant_id: str) -> None:
        with self.runtime.work(read_only=True) as work:
            report = audit(work.session)
            assert report.problems == []
            checked = settlement_statement(work.session, merchant_id=merchant_id, currency="CNY")
        assert checked.problems == []
        assert checked.pending_minor == checked.ledger_payable_minor
        assert checked.settled_minor == 0


@contextmanager
def open_env(database_url: str, **settings: Any) -> Iterator[Env]:
    runtime = make_runtime(database_url, **settings)
    with runtime.work() as work:
        clock = runtime.clock
        assert isinstance(clock, TestClock)
        clock.set(work.session, START)
    with runtime.work() as work:
        platform_key = create_api_key(work.session, kind="platform", now=work.now)
        admin, admin_token = create_operator(
            work.session, email="admin@example.com", role="admin", now=work.now
        )
        _, analyst_token = create_operator(
            work.session, email="analyst@example.com", role="risk_analyst", now=work.now
        )
    try:
        with TestClient(create_app(runtime)) as client:
            yield Env(
                runtime=runtime,
                client=client,
                platform=bearer(platform_key),
                admin=bearer(admin_token),
                analyst=bearer(analyst_token),
                admin_id=admin.id,
            )
    finally:
        runtime.database.dispose()
