"""PII at rest: after enrolment and a full order over HTTP, the raw database holds no plaintext
name, national ID, phone, email or shipping address; only ciphertext, keyed hashes and masks."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.factories import bearer, checkout_body, create_merchant, national_id
from usefirst.collections.bureau import bureau_file_text
from usefirst.flows.bureau_reporting import create_bureau_file
from usefirst.runtime import Runtime

NAME = "欧阳明月"
PHONE = "+8613912345678"
EMAIL = "ouyang.mingyue@example.org"
ADDRESS = "上海市浦东新区世纪大道 88 号 1201 室"


def encodings(value: str) -> list[bytes]:
    """The ways a value could be stored: UTF-8, and JSON-escaped (SQLite JSON is ASCII-escaped)."""
    escaped = json.dumps(value)[1:-1]
    forms = {value.encode("utf-8"), escaped.encode("ascii")}
    return sorted(forms)


def plaintexts(the_national_id: str) -> dict[str, list[bytes]]:
    return {
        "name": encodings(NAME),
        "national_id": encodings(the_national_id) + encodings(the_national_id.lower()),
        "phone": encodings(PHONE) + encodings(PHONE[3:]),  # E.164 and the national number
        "email": encodings(EMAIL) + encodings(EMAIL.split("@")[0]),
        "shipping_address": encodings(ADDRESS) + encodings("世纪大道"),
    }


def raw_database(runtime: Runtime) -> bytes:
    """Every stored byte: the SQLite file (and its WAL), or every row of every PostgreSQL table."""
    if runtime.database.is_sqlite:
        runtime.database.dispose()
        path = Path(runtime.database.url.removeprefix("sqlite:///"))
        assert path.exists()
        chunks = [path.read_bytes()]
        for suffix in ("-wal", "-journal"):
            extra = path.with_name(path.name + suffix)
            if extra.exists():
                chunks.append(extra.read_bytes())
        return b"\n".join(chunks)
    with runtime.database.engine.connect() as connection:
        tables = [
            row[0]
            for row in connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
            )
        ]
        assert "shoppers" in tables and "orders" in tables
        rows = []
        for table in tables:
            for (row,) in connection.execute(text(f'SELECT t::text FROM "{table}" AS t')):
                rows.append(f"{table}: {row}")
    return "\n".join(rows).encode("utf-8")


def test_no_plaintext_pii_is_stored(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    the_national_id = national_id()
    response = client.post(
        "/v1/shoppers",
        headers={**platform_headers, "Idempotency-Key": "enrol-pii"},
        json={
            "external_id": "u-pii",
            "name": NAME,
            "national_id": the_national_id,
            "phone": PHONE,
            "email": EMAIL,
            "consent": {"privacy_policy_version": "2026-01", "credit_report_authorized": True},
            "device_id": "device-pii",
            "ip": "198.51.100.7",
        },
    )
    assert response.status_code == 201, response.text
    shopper = response.json()
    merchant = create_merchant(client, platform_headers)
    body = checkout_body(shopper["id"], merchant["id"], 12_000)
    body["shipping_address"] = ADDRESS
    checkout = client.post(
        "/v1/checkouts", headers={**platform_headers, "Idempotency-Key": "co-pii"}, json=body
    )
    order_id = checkout.json()["order"]["id"]
    client.post(
        f"/v1/orders/{order_id}/ship",
        headers=bearer(merchant["api_key"]),
        json={"carrier": "SF", "tracking_number": "SF0000000001"},
    )
    client.post(f"/v1/orders/{order_id}/confirm-receipt", headers=platform_headers)
    paid = client.post(
        "/v1/payments",
        headers=platform_headers,
        json={"shopper_id": shopper["id"], "amount_minor": 12_000, "method": "alipay"},
    )
    assert paid.status_code == 201
    assert client.get(f"/v1/orders/{order_id}", headers=platform_headers).json()["status"] == (
        "repaid"
    )

    # A credit-bureau file reporting the account (both formats) holds the name, national ID and
    # phone as the bureau needs them: stored encrypted too. (The account is marked as reported,
    # as the +30 days step of the dunning ladder would have, so that it is in the files.)
    with runtime.work() as work:
        work.session.execute(
            text(
                "INSERT INTO delinquent_orders (shopper_id, order_id, bureau_reported_on,"
                " charged_off_minor, updated_at) SELECT shopper_id, id, :today, 0, updated_at"
                " FROM orders WHERE id = :order_id"
            ),
            {"today": work.today, "order_id": order_id},
        )
    with runtime.work() as work:
        for file_format in ("metro2", "jsonl"):
            made = create_bureau_file(
                work.session,
                period=f"{work.today:%Y-%m}",
                file_format=file_format,
                cipher=runtime.cipher,
                settings=runtime.settings,
                today=work.today,
                now=work.now,
            )
            assert made.records == 1
            # Metro 2 carries the romanised name in full (and the birth date); JSON lines the
            # shopper id beside masked identifiers.
            expected = "OUYANG" if file_format == "metro2" else shopper["id"]
            assert expected in bureau_file_text(made, runtime.cipher)

    stored = raw_database(runtime)
    # The scan does see the data: the shopper, its masks and ciphertexts are there.
    assert shopper["id"].encode() in stored
    assert shopper["national_id_masked"].encode() in stored
    assert shopper["phone_masked"].encode() in stored
    assert b"v1:k1:" in stored
    assert order_id.encode() in stored
    assert b"OUYANG" not in stored, "the bureau file's romanised name found at rest"
    for what, forms in plaintexts(the_national_id).items():
        for form in forms:
            assert form not in stored, f"plaintext {what} found at rest: {form!r}"
