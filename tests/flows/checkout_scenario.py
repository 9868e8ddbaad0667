"""A recorded sequence of peak-day calls and everything they wrote, normalised for comparison.

``play(runtime, client)`` runs, over HTTP at a fixed sandbox time: an approved checkout, its
idempotent replay and a reuse of its key with another body (409), a decline for credit, a
step-up (a new account sharing a phone that spends its whole line on a phone), a review (shipping to the merchant's own address), a
limit race (two orders that each fit the limit but not together), a checkout without a key, and
the approved order shipped, its receipt confirmed and paid (with a replay). It returns every
response and the rows of every table these calls write, ids replaced by stable placeholders
(numbered per kind in the order they were made) and the values that are random by design left
out (ciphertexts, one-time code hashes, decision latency).

The fixture ``checkout_recording.json`` beside this file is this output from the engine before
the lean checkout (issue 14), so ``test_checkout_recording`` fails if the lean path writes or
answers anything differently. Re-record it only for a deliberate behaviour change (a retuned
rule, a new notice), never to make a speed-up pass, from the repository's root on both
databases (the script refuses to write when the two differ)::

    .venv/bin/python -m tests.flows.checkout_scenario postgresql://…/a_scratch_database

and commit the fixture on its own, saying which responses and rows changed and why: the diff of
the JSON is the review. Columns in ``ADDED_SINCE_RECORDING`` are left out of the recording and
checked by the test instead (their values are random or checked against other columns).
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from usefirst.identity.service import create_api_key
from usefirst.identity.validation import national_id_check_character
from usefirst.kit.db import Base
from usefirst.risk import signals
from usefirst.runtime import Runtime

FIXTURE = Path(__file__).with_name("checkout_recording.json")

# Columns that later features added to the recorded tables, with the value (or the check) every
# recorded row must meet in them: the recording predates them; anything else is a difference.
ADDED_SINCE_RECORDING: dict[str, dict[str, object]] = {
    # Due-date extensions (payment rails): none in the recorded sequence. The late fees a
    # hardship plan carries onto an instalment (migration 0064): none on a checkout's.
    "instalments": {
        "extended_days": 0,
        "late_fees_carried_minor": lambda value: value is None,
    },
    # The id of the request that wrote the message (operations): made per request.
    # The outbox's distribution key (Citus layout, migration 0039): checked against the row.
    "outbox_messages": {
        "request_id": lambda value: re.fullmatch("[0-9a-f]{32}", value),
        "shard_key": None,
    },
    # The distribution key (Citus layout, migration 0029): checked against the row below.
    "events": {"shard_key": None},
    "journal_entries": {"shard_key": None},
    "ledger_postings": {"shard_key": None},
}

# Features a decision records that the recording predates (the online signals, issue 19): left
# out of each recorded decision's features, and checked there as numbers.
FEATURES_ADDED_SINCE_RECORDING = signals.SIGNAL_NAMES

FIXED_NOW = datetime(2026, 11, 11, 2, 0, tzinfo=UTC)
TABLES = (
    "orders",
    "instalments",
    "credit_lines",
    "risk_decisions",
    "risk_link_observations",
    "risk_cases",
    "risk_actions",
    "risk_step_up_challenges",
    "events",
    "outbox_messages",
    "idempotency_records",
    "payments",
    "allocations",
    "journal_entries",
    "ledger_postings",
    "ledger_accounts",
)
# Random by design (decision latency, a one-time code's hash) or a hash over random ids.
RANDOM_BY_DESIGN = ("latency_micros", "code_hash", "request_fingerprint")
ID = re.compile(r"\b([a-z]{2,4})_(0[0-9A-Z]{25})\b")
MERCHANT_ADDRESS = "北京市朝阳区建国路1号"


def national_id(serial: int) -> str:
    birth = date(1985, 3, 1) + timedelta(days=serial)
    first = f"110105{birth:%Y%m%d}{serial % 1000:03d}"
    return first + national_id_check_character(first)


def checkout(
    shopper_id: str, merchant_id: str, amount: int, address: str, category: str = "electronics"
) -> dict[str, Any]:
    return {
        "shopper_id": shopper_id,
        "merchant_id": merchant_id,
        "currency": "CNY",
        "items": [
            {
                "sku": "sku-1",
                "name": "Headphones",
                "category": category,
                "quantity": 1,
                "unit_price_minor": amount,
            }
        ],
        "plan": "pay_after_delivery",
        "shipping_address": address,
        "device_id": "device-1",
        "ip": "203.0.113.7",
    }


class Caller:
    """The platform's calls at ``FIXED_NOW`` on the sandbox clock, each response recorded."""

    def __init__(self, runtime: Runtime, client: TestClient) -> None:
        with runtime.work() as work:
            runtime.clock.set(work.session, FIXED_NOW)  # type: ignore[attr-defined]
        with runtime.work() as work:
            secret = create_api_key(work.session, kind="platform", now=work.now)
        self.platform = {"Authorization": "Bearer " + secret}
        self.client = client
        self.responses: list[Any] = []

    def post(self, path: str, body: Any, key: str | None = None, headers: Any = None) -> Any:
        sent = dict(headers or self.platform)
        if key is not None:
            sent["Idempotency-Key"] = key
        response = self.client.post(path, headers=sent, json=body)
        self.responses.append(
            [
                path,
                response.status_code,
                response.headers.get("Idempotent-Replayed"),
                response.json(),
            ]
        )
        return response.json()

    def enrol(self, serial: int, *, external_id: str, phone: str) -> str:
        """A shopper enrolled by the platform (not recorded: its id is in every later call)."""
        body = {
            "external_id": external_id,
            "name": "张三",
            "national_id": national_id(serial),
            "phone": phone,
            "consent": {"privacy_policy_version": "2026-01", "credit_report_authorized": True},
        }
        response = self.client.post("/v1/shoppers", headers=self.platform, json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


def play(runtime: Runtime, client: TestClient) -> dict[str, Any]:
    caller = Caller(runtime, client)
    platform = caller.platform
    responses = caller.responses
    post = caller.post

    def enrol(serial: int, phone: str) -> str:
        return caller.enrol(serial, external_id=f"scenario-{serial}", phone=phone)

    def merchant(name: str, **extra: Any) -> dict[str, Any]:
        response = client.post(
            "/v1/merchants",
            headers=platform,
            json={"name": name, "category": "electronics", **extra},
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    shop = merchant("Scenario Shop", webhook_url="https://merchant.example/webhooks/usefirst")
    own_address_shop = merchant("Own Address Shop", address=MERCHANT_ADDRESS)
    home = "上海市浦东新区世纪大道 100 号"
    first = enrol(1, "+8613800000001")

    approved = post("/v1/checkouts", checkout(first, shop["id"], 30_000, home), key="k-approve")
    post("/v1/checkouts", checkout(first, shop["id"], 30_000, home), key="k-approve")
    post("/v1/checkouts", checkout(first, shop["id"], 1, home), key="k-approve")
    post("/v1/checkouts", checkout(first, shop["id"], 150_000, home), key="k-over-limit")

    enrol(2, "+8613800000002")
    shares_phone = enrol(3, "+8613800000002")
    # Rules 2026-12-07.1: a shared phone alone gives points; with the whole line spent on a
    # phone by a new account (resellable_goods, young_account_maxes_limit) they reach a step-up.
    post(
        "/v1/checkouts",
        checkout(shares_phone, shop["id"], 100_000, home, category="phones"),
        key="k-step-up",
    )

    reviewed = enrol(4, "+8613800000004")
    post(
        "/v1/checkouts",
        checkout(reviewed, own_address_shop["id"], 25_000, MERCHANT_ADDRESS),
        key="k-review",
    )

    racer = enrol(5, "+8613800000005")
    post("/v1/checkouts", checkout(racer, shop["id"], 60_000, home), key="k-race-1")
    post("/v1/checkouts", checkout(racer, shop["id"], 60_000, home), key="k-race-2")
    post("/v1/checkouts", checkout(racer, shop["id"], 10_000, home))

    order_id = approved["order"]["id"]
    merchant_headers = {"Authorization": f"Bearer {shop['api_key']}"}
    post(
        f"/v1/orders/{order_id}/ship",
        {"carrier": "SF Express", "tracking_number": "SF1234567890"},
        headers=merchant_headers,
    )
    delivered = post(f"/v1/orders/{order_id}/confirm-receipt", None)
    owed = sum(row["amount_minor"] for row in delivered["instalments"])
    payment = {"shopper_id": first, "amount_minor": owed, "order_id": order_id, "method": "alipay"}
    post("/v1/payments", payment, key="p-1")
    post("/v1/payments", payment, key="p-1")

    tables: dict[str, list[dict[str, Any]]] = {}
    with runtime.work(read_only=True) as work:
        for name in TABLES:
            table = Base.metadata.tables[name]
            rows = [dict(row._mapping) for row in work.session.execute(select(table))]
            for row in rows:
                for column in list(row):
                    if column.endswith("_encrypted") or column in RANDOM_BY_DESIGN:
                        del row[column]
            tables[name] = sorted(
                rows, key=lambda row: json.dumps(row, sort_keys=True, default=str)
            )
    return normalise({"responses": responses, "tables": tables})


def normalise(recording: dict[str, Any]) -> dict[str, Any]:
    """Ids → ``<prefix>#<n>`` numbered per prefix in the order they were made (ids sort by
    creation time); everything through JSON, so both databases compare alike."""
    text = json.dumps(
        _without_ciphertext(recording), sort_keys=True, default=str, ensure_ascii=False
    )
    ids = sorted({match.group(0) for match in ID.finditer(text)})
    numbers: dict[str, int] = {}
    placeholders: dict[str, str] = {}
    for found in ids:
        prefix = found.split("_", 1)[0]
        numbers[prefix] = numbers.get(prefix, 0) + 1
        placeholders[found] = f"{prefix}#{numbers[prefix]}"
    text = ID.sub(lambda match: placeholders[match.group(0)], text)
    data: dict[str, Any] = json.loads(text)
    # Rows were sorted with their raw ids; sort again now that ids are stable names.
    for name, rows in data["tables"].items():
        data["tables"][name] = sorted(rows, key=lambda row: json.dumps(row, sort_keys=True))
    return data


def _without_ciphertext(value: Any) -> Any:
    """Ciphertexts have random nonces: every ``*_encrypted`` key is left out, at any depth."""
    if isinstance(value, dict):
        return {
            key: _without_ciphertext(item)
            for key, item in value.items()
            if not str(key).endswith("_encrypted")
        }
    if isinstance(value, list):
        return [_without_ciphertext(item) for item in value]
    return value


def record(database_url: str) -> dict[str, Any]:
    from tests.conftest import make_runtime
    from usefirst.api.app import create_app
    from usefirst.risk import decision as risk_decision

    risk_decision.default_model = lambda: None  # type: ignore[assignment]
    runtime = make_runtime(database_url)
    try:
        with TestClient(create_app(runtime)) as client:
            recording = play(runtime, client)
    finally:
        runtime.database.dispose()
    for name, rows in recording["tables"].items():
        added = ADDED_SINCE_RECORDING.get(name, {})
        recording["tables"][name] = [
            {column: value for column, value in row.items() if column not in added} for row in rows
        ]
    recording["tables"]["risk_decisions"] = [
        without_added_features(row) for row in recording["tables"]["risk_decisions"]
    ]
    return recording


def without_added_features(row: dict[str, Any]) -> dict[str, Any]:
    """A decision's features without those the recording predates (checked as numbers)."""
    features = row["features"]
    assert all(isinstance(features[name], float) for name in FEATURES_ADDED_SINCE_RECORDING)
    kept = {k: v for k, v in features.items() if k not in FEATURES_ADDED_SINCE_RECORDING}
    return {**row, "features": kept}


def main(argv: list[str]) -> int:
    from usefirst.kit.migrate import upgrade

    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{scratch}/scenario.db"
        upgrade(url)
        recording = record(url)
    if argv:
        from sqlalchemy import create_engine, text

        from usefirst.kit.db import normalize_database_url

        engine = create_engine(normalize_database_url(argv[0]))
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        upgrade(argv[0])
        if record(argv[0]) != recording:
            raise SystemExit("PostgreSQL and SQLite recordings differ")
    FIXTURE.write_text(
        json.dumps(recording, sort_keys=True, indent=1, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    print(f"wrote {FIXTURE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
