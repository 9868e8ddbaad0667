"""Shared set-up for the collections end-to-end tests: a sandbox engine on a fixed start date,
its HTTP client with platform, collector and admin keys, and small API helpers.

The sandbox clock starts on a fixed instant (a Tuesday, 12:00 in Asia/Shanghai) so month ends,
bureau periods and reminder days are the same on every run. Everything after that goes through the
HTTP API, the test clock included; the database is read directly only to compare whole tables.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import make_runtime
from tests.factories import bearer, checkout_body, create_merchant, enrol
from usefirst.api.app import create_app
from usefirst.flows.reconcile import audit
from usefirst.identity.service import create_api_key, create_operator
from usefirst.kit.clock import TestClock
from usefirst.kit.db import Base
from usefirst.runtime import Runtime

TIME_ZONE = ZoneInfo("Asia/Shanghai")
# 2027-03-02 12:00 in Shanghai. Delivered that day, a pay-after-delivery order falls due on 03-09.
START = datetime(2027, 3, 2, 4, 0, tzinfo=UTC)
SHIPMENT = {"carrier": "SF Express", "tracking_number": "SF1234567890"}


def local_at(day: date, hour: int, minute: int = 0) -> datetime:
    """The UTC instant of ``hour:minute`` on ``day`` in Asia/Shanghai."""
    return datetime.combine(day, time(hour, minute), tzinfo=TIME_ZONE).astimezone(UTC)


def parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def instant(value: str) -> datetime:
    """An API time that must be there."""
    moment = parse_time(value)
    assert moment is not None
    return moment


def local_day(value: str) -> date:
    return instant(value).astimezone(TIME_ZONE).date()


# --- a real SMTP server ---------------------------------------------------------------------


class RecordingHandler:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def messages(self) -> list[EmailMessage]:
        parsed = []
        for envelope in self.envelopes:
            raw = envelope.original_content
            assert isinstance(raw, bytes)
            message = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            parsed.append(message)
        return parsed


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def smtp_server() -> Iterator[tuple[RecordingHandler, int]]:
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


# --- the engine and its API -----------------------------------------------------------------


@dataclass
class Env:
    runtime: Runtime
    client: TestClient
    platform: dict[str, str]
    collector: dict[str, str]
    admin: dict[str, str]
    collector_id: str
    sms_log: Path
    merchants: list[dict[str, Any]] = field(default_factory=list)

    # clock

    def now(self) -> datetime:
        response = self.client.get("/v1/sandbox/clock", headers=self.platform)
        assert response.status_code == 200, response.text
        moment = parse_time(response.json()["now"])
        assert moment is not None
        return moment

    def today(self) -> date:
        return self.now().astimezone(TIME_ZONE).date()

    def advance(self, *, days: int = 0, seconds: int = 0) -> datetime:
        response = self.client.post(
            "/v1/sandbox/clock/advance",
            headers=self.platform,
            json={"days": days, "seconds": seconds},
        )
        assert response.status_code == 200, response.text
        moment = parse_time(response.json()["now"])
        assert moment is not None
        return moment

    def advance_to(self, moment: datetime) -> None:
        delta = moment - self.now()
        assert delta >= timedelta(0), f"the clock is already past {moment}"
        whole_days, rest = divmod(int(delta.total_seconds()), 86_400)
        assert self.advance(days=whole_days, seconds=rest) == moment

    def advance_to_day(self, day: date, hour: int = 12, minute: int = 0) -> None:
        self.advance_to(local_at(day, hour, minute))

    # shoppers, merchants, orders

    def enrol(self, **overrides: Any) -> dict[str, Any]:
        return enrol(self.client, self.platform, **overrides)

    def merchant(self) -> dict[str, Any]:
        if not self.merchants:
            self.merchants.append(create_merchant(self.client, self.platform))
        return self.merchants[0]

    def buy(
        self, shopper_id: str, amount_minor: int = 30_000, plan: str = "pay_after_delivery"
    ) -> dict[str, Any]:
        """Check out, ship and confirm receipt today: the repayment clock starts today."""
        merchant = self.merchant()
        response = self.client.post(
            "/v1/checkouts",
            headers=self.platform,
            json=checkout_body(shopper_id, merchant["id"], amount_minor, plan),
        )
        assert response.status_code == 201, response.text
        order = response.json()["order"]
        assert order["status"] == "approved", response.text
        shipped = self.client.post(
            f"/v1/orders/{order['id']}/ship", headers=bearer(merchant["api_key"]), json=SHIPMENT
        )
        assert shipped.status_code == 200, shipped.text
        delivered = self.client.post(
            f"/v1/orders/{order['id']}/confirm-receipt", headers=self.platform
        )
        assert delivered.status_code == 200, delivered.text
        return dict(delivered.json())

    def order(self, order_id: str) -> dict[str, Any]:
        response = self.client.get(f"/v1/orders/{order_id}", headers=self.platform)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def credit(self, shopper_id: str) -> dict[str, Any]:
        response = self.client.get(f"/v1/shoppers/{shopper_id}/credit", headers=self.platform)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def statement(self, shopper_id: str) -> dict[str, Any]:
        response = self.client.get(f"/v1/shoppers/{shopper_id}/statement", headers=self.platform)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def pay(
        self, shopper_id: str, amount_minor: int, order_id: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "shopper_id": shopper_id,
            "amount_minor": amount_minor,
            "currency": "CNY",
            "method": "alipay",
        }
        if order_id is not None:
            body["order_id"] = order_id
        response = self.client.post("/v1/payments", headers=self.platform, json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def late_fees(self, order_id: str) -> int:
        return sum(row["late_fees_minor"] for row in self.order(order_id)["instalments"])

    # collections

    def contacts(self, shopper_id: str) -> list[dict[str, Any]]:
        response = self.client.get(f"/v1/shoppers/{shopper_id}/contacts", headers=self.collector)
        assert response.status_code == 200, response.text
        return list(response.json()["data"])

    def queue(self) -> list[dict[str, Any]]:
        response = self.client.get(
            "/v1/collections/queue", headers=self.collector, params={"limit": 500}
        )
        assert response.status_code == 200, response.text
        return list(response.json()["data"])

    def call(self, order_id: str, **body: Any) -> Any:
        return self.client.post(
            f"/v1/collections/{order_id}/contacts", headers=self.collector, json=body
        )

    def events(self, event_type: str) -> list[dict[str, Any]]:
        response = self.client.get(
            "/v1/events", headers=self.platform, params={"type": event_type, "limit": 500}
        )
        assert response.status_code == 200, response.text
        assert response.json()["has_more"] is False
        return list(response.json()["data"])

    def bureau_file(self, period: str, file_format: str) -> tuple[dict[str, Any], str]:
        created = self.client.post(
            "/v1/bureau/files",
            headers=self.collector,
            json={"period": period, "format": file_format},
        )
        assert created.status_code == 201, created.text
        return dict(created.json()), self.bureau_content(created.json()["id"])

    def bureau_content(self, file_id: str) -> str:
        response = self.client.get(f"/v1/bureau/files/{file_id}/content", headers=self.collector)
        assert response.status_code == 200, response.text
        return str(response.text)

    def bureau_files(self) -> list[dict[str, Any]]:
        response = self.client.get("/v1/bureau/files", headers=self.collector)
        assert response.status_code == 200, response.text
        return list(response.json()["data"])

    def month_end_file(self, period: str, file_format: str) -> str:
        """The file of ``period`` the sweep wrote at the start of the next month's first day
        (the one the bureau receives)."""
        year, month = (int(part) for part in period.split("-"))
        written_at = local_at(date(year + month // 12, month % 12 + 1, 1), 0)
        [row] = [
            f
            for f in self.bureau_files()
            if (f["period"], f["format"]) == (period, file_format)
            and parse_time(f["created_at"]) == written_at
        ]
        return self.bureau_content(row["id"])

    def jsonl_records(self, period: str) -> dict[str, dict[str, Any]]:
        """A new JSONL bureau file for ``period``, its records by order id."""
        _, content = self.bureau_file(period, "jsonl")
        return jsonl_records(content)

    def legal_cases(self) -> list[dict[str, Any]]:
        response = self.client.get("/v1/legal/cases", headers=self.collector)
        assert response.status_code == 200, response.text
        return list(response.json()["data"])

    def trial_balance(self) -> dict[str, Any]:
        response = self.client.get("/v1/ledger/trial-balance", headers=self.admin)
        assert response.status_code == 200, response.text
        body = dict(response.json())
        assert body["debits_minor"] == body["credits_minor"]
        return body

    def account_balances(self) -> dict[str, int]:
        """Debit-positive balance per ledger account code."""
        return {line["account"]: line["balance_minor"] for line in self.trial_balance()["accounts"]}

    def assert_ledger_clean(self) -> None:
        with self.runtime.work(read_only=True) as work:
            report = audit(work.session)
        assert report.problems == []
        assert report.is_balanced

    # channels

    def sms_lines(self) -> list[dict[str, Any]]:
        if not self.sms_log.exists():
            return []
        return [json.loads(line) for line in self.sms_log.read_text("utf-8").splitlines()]

    def push_events(self) -> list[dict[str, Any]]:
        return self.events("notification.push")


def jsonl_records(content: str) -> dict[str, dict[str, Any]]:
    records = [json.loads(line) for line in content.splitlines()]
    return {record["account_number"]: record for record in records}


def balance(balances: dict[str, int], kind: str, owner: str = "") -> int:
    return balances.get(f"{kind}:{owner}:CNY", 0)


@contextmanager
def open_env(database_url: str, tmp_path: Path, **settings: Any) -> Iterator[Env]:
    sms_log = tmp_path / "sms.jsonl"
    runtime = make_runtime(database_url, sms_log_path=sms_log, **settings)
    with runtime.work() as work:
        clock = runtime.clock
        assert isinstance(clock, TestClock)
        clock.set(work.session, START)
    with runtime.work() as work:
        platform_key = create_api_key(work.session, kind="platform", now=work.now)
        collector, collector_token = create_operator(
            work.session, email="collector@example.com", role="collector", now=work.now
        )
        _, admin_token = create_operator(
            work.session, email="admin@example.com", role="admin", now=work.now
        )
    try:
        with TestClient(create_app(runtime)) as client:
            yield Env(
                runtime=runtime,
                client=client,
                platform=bearer(platform_key),
                collector=bearer(collector_token),
                admin=bearer(admin_token),
                collector_id=collector.id,
                sms_log=sms_log,
            )
    finally:
        runtime.database.dispose()


# --- whole-database snapshots ---------------------------------------------------------------


KEY_LAST_USE = ("api_keys", "last_used_at")


def dump_tables(
    runtime: Runtime, tables: list[str] | None = None
) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the given tables (all of them by default), in primary-key order."""
    metadata = Base.metadata
    with runtime.database.transaction(read_only=True) as session:
        names = tables or sorted(metadata.tables)
        dump: dict[str, list[tuple[Any, ...]]] = {}
        for name in names:
            table = metadata.tables[name]
            order = list(table.primary_key.columns) or list(table.columns)
            # A key's first use in a minute is recorded (api_keys.last_used_at) whatever the
            # request then turns out to be: the credential's bookkeeping, not the request's work.
            columns = [column for column in table.columns if (name, column.name) != KEY_LAST_USE]
            rows = session.execute(select(*columns).order_by(*order)).all()
            dump[name] = [tuple(row) for row in rows]
    return dump
