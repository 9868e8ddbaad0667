"""Data export (everything about one shopper, nothing about another) and erasure (no personal data
left, financial records and a balanced ledger kept; refused while a debt is open)."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, text

from tests.api.test_pii_at_rest import raw_database
from tests.factories import checkout_body, enrol
from tests.privacy.privacy_env import (
    merchant_of,
    operator_headers,
    shopper_with_repaid_order,
)
from usefirst.flows.privacy_requests import EXPORTERS
from usefirst.flows.reconcile import audit as ledger_audit
from usefirst.identity.models import Shopper
from usefirst.kit.personal_data import encrypted_columns
from usefirst.models import shopper_tables
from usefirst.privacy import audit
from usefirst.runtime import Runtime

ADDRESS_A = "上海市浦东新区世纪大道 88 号 1201 室"
ADDRESS_B = "北京市海淀区中关村大街 27 号"


def two_shoppers(client: TestClient, platform_headers: dict[str, str]) -> tuple[Any, Any]:
    merchant = merchant_of(client, platform_headers)
    a = shopper_with_repaid_order(
        client,
        platform_headers,
        merchant,
        external_id="u-a",
        name="欧阳明月",
        phone="+8613912345678",
        email="ouyang.mingyue@example.org",
        address=ADDRESS_A,
    )
    b = shopper_with_repaid_order(
        client,
        platform_headers,
        merchant,
        external_id="u-b",
        name="司马光",
        phone="+8613700001111",
        email="sima.guang@example.org",
        address=ADDRESS_B,
        amount_minor=8_000,
    )
    for shopper, words in ((a, "someone looked at my data"), (b, "charged twice")):
        filed = client.post(
            "/v1/complaints",
            headers=platform_headers,
            json={
                "shopper_id": shopper.shopper["id"],
                "category": "privacy" if shopper is a else "billing",
                "description": words,
            },
        )
        assert filed.status_code == 201, filed.text
    return a, b


def test_export_holds_everything_about_the_shopper_and_nothing_else(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    a, b = two_shoppers(client, platform_headers)
    compliance = operator_headers(runtime, "compliance")
    response = client.get(f"/v1/shoppers/{a.shopper['id']}/export", headers=compliance)
    assert response.status_code == 200, response.text
    export = response.json()
    sections = export["sections"]
    exporters = list(EXPORTERS)
    claimed = {table for exporter in exporters for table in exporter.tables}
    assert set(sections) == {exporter.section for exporter in exporters} | {
        table.name for table in shopper_tables() if table.name not in claimed
    }
    assert export["shopper_id"] == a.shopper["id"]
    identity = sections["identity"]
    assert {key: identity[key] for key in ("name", "national_id", "phone", "email")} == {
        "name": "欧阳明月",
        "national_id": a.national_id,
        "phone": "+8613912345678",
        "email": "ouyang.mingyue@example.org",
    }
    assert identity["external_id"] == "u-a"
    assert identity["enrolment_device_id"] == "device-u-a"
    assert not any(key.endswith("_encrypted") for key in identity)
    [order] = sections["orders"]
    assert order["id"] == a.order_id
    assert order["shipping_address"] == ADDRESS_A
    assert order["amount_minor"] == 12_000 and order["status"] == "repaid"
    assert [row["seq"] for row in sections["instalments"]] == [1]
    assert [row["id"] for row in sections["payments"]] == [a.payment_id]
    assert sections["payments"][0]["amount_minor"] == 12_000
    [complaint] = sections["complaints"]
    assert complaint["description"] == "someone looked at my data"
    assert [row["privacy_policy_version"] for row in sections["consents"]] == ["2026-01"]
    assert sections["credit_lines"][0]["shopper_id"] == a.shopper["id"]
    ledger_amounts = sorted((row["entry_kind"], row["amount_minor"]) for row in sections["ledger"])
    assert ledger_amounts == [("order_activation", 12_000), ("shopper_payment", -12_000)]
    [entry] = sections["audit_entries"]
    assert (entry["action"], entry["subject_shopper_id"]) == ("shopper.export", a.shopper["id"])
    assert entry["reference_id"] == export["export_id"]

    document = json.dumps(export, ensure_ascii=False)
    for foreign in (
        b.shopper["id"],
        b.order_id,
        b.payment_id,
        b.national_id,
        "司马光",
        ADDRESS_B,
        "charged twice",
    ):
        assert foreign not in document, f"another shopper's data in the export: {foreign}"

    with runtime.work(read_only=True) as work:
        entries = audit.entries_about(work.session, shopper_id=a.shopper["id"])
        assert [e.action for e in entries] == ["shopper.export"]
        assert audit.verify_chain(work.session).is_intact


def test_export_and_erasure_are_for_compliance_only(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    shopper = enrol(client, platform_headers)
    for role in ("admin", "support", "collector", "risk_analyst"):
        headers = operator_headers(runtime, role)
        export = client.get(f"/v1/shoppers/{shopper['id']}/export", headers=headers)
        erasure = client.post(f"/v1/shoppers/{shopper['id']}/erasure", headers=headers)
        assert (export.status_code, erasure.status_code) == (403, 403), role
    for headers in (platform_headers, {}):
        assert client.get(f"/v1/shoppers/{shopper['id']}/export", headers=headers).status_code in (
            401,
            403,
        )
    compliance = operator_headers(runtime, "compliance")
    missing = client.get("/v1/shoppers/shp_missing/export", headers=compliance)
    assert missing.status_code == 404
    missing = client.post("/v1/shoppers/shp_missing/erasure", headers=compliance)
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "No such shopper."
    with runtime.work(read_only=True) as work:
        assert audit.verify_chain(work.session).rows_checked == 0


def signal_events(runtime: Runtime) -> list[tuple[Any, ...]]:
    with runtime.database.engine.connect() as connection:
        return sorted(
            tuple(row)
            for row in connection.execute(
                text(
                    "SELECT kind, key_hash, created_at, order_id, shopper_id, merchant_id,"
                    " amount_minor, is_held FROM risk_signal_events"
                )
            )
        )


def test_erasure_leaves_no_personal_data_and_keeps_the_ledger_balanced(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    a, b = two_shoppers(client, platform_headers)
    compliance = operator_headers(runtime, "compliance")
    with runtime.work(read_only=True) as work:
        before = ledger_audit(work.session)
    signals_before = signal_events(runtime)
    response = client.post(f"/v1/shoppers/{a.shopper['id']}/erasure", headers=compliance)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "erased" and result["shopper_id"] == a.shopper["id"]
    # The online signals' rows of the erased shopper keep everything but their keyed hash (the
    # column a cluster shards them by: each row is replaced); the other shopper's are untouched.
    erased_signals = [row for row in signals_before if row[4] == a.shopper["id"]]
    assert len(erased_signals) == 3
    assert result["erased"]["risk_signal_events"] == 3
    assert signal_events(runtime) == sorted(
        (row[0], f"erased:{a.shopper['id']}", *row[2:]) if row in erased_signals else row
        for row in signals_before
    )
    assert result["erased"]["shoppers"] == 1
    assert result["erased"]["look-ups"] == 2
    assert result["erased"]["orders"] == 1
    assert result["erased"]["complaints"] == 1
    retained = {item["record"]: item for item in result["retained"]}
    assert {"orders", "payments", "instalments", "ledger_postings", "consents", "audit_log"} <= set(
        retained
    )
    assert retained["ledger_postings"]["count"] == 2
    assert "anti-money-laundering" in retained["orders"]["reason"]

    stored = raw_database(runtime)
    for value in (
        "欧阳明月",
        a.national_id,
        "+8613912345678",
        "13912345678",
        "ouyang.mingyue@example.org",
        ADDRESS_A,
        "世纪大道",
        "device-u-a",
        "someone looked at my data",
        "欧***",
        a.shopper["national_id_masked"],
    ):
        for form in {value.encode(), json.dumps(value)[1:-1].encode()}:
            assert form not in stored, f"erased data found at rest: {value}"
    # The other shopper is untouched, and its data still decrypts.
    with runtime.work(read_only=True) as work:
        erased = work.session.get(Shopper, a.shopper["id"])
        kept = work.session.get(Shopper, b.shopper["id"])
        assert erased is not None and kept is not None
        assert erased.status == "erased"
        assert runtime.cipher.decrypt(kept.name_encrypted, field="name") == "司马光"
        for table in shopper_tables():
            for column in encrypted_columns(table):
                values = work.session.execute(
                    select(table.c[column]).where(table.c.shopper_id == a.shopper["id"])
                ).scalars()
                assert all(v is None or not v.startswith("v1:") for v in values), column
        after = ledger_audit(work.session)
        assert after.is_balanced and after.problems == []
        assert (after.entries, after.debits_minor) == (before.entries, before.debits_minor)
        [entry] = [
            e
            for e in audit.entries_about(work.session, shopper_id=a.shopper["id"])
            if e.action == "shopper.erasure"
        ]
        assert entry.reference_id == result["id"]
        assert audit.verify_chain(work.session).is_intact

    trial = client.get("/v1/ledger/trial-balance", headers=operator_headers(runtime, "admin"))
    assert trial.json()["debits_minor"] == trial.json()["credits_minor"]
    again = client.post(f"/v1/shoppers/{a.shopper['id']}/erasure", headers=compliance)
    assert again.status_code == 409 and again.json()["error"]["code"] == "shopper_erased"
    # The person may enrol again: the national ID and external id were released.
    fresh = client.post(
        "/v1/shoppers",
        headers=platform_headers,
        json={
            "external_id": "u-a",
            "name": "欧阳明月",
            "national_id": a.national_id,
            "phone": "+8613912345678",
            "consent": {"privacy_policy_version": "2026-01", "credit_report_authorized": True},
        },
    )
    assert fresh.status_code == 201 and fresh.json()["id"] != a.shopper["id"]


def snapshot(runtime: Runtime) -> list[str]:
    with runtime.database.engine.connect() as connection:
        rows = []
        for table in ("shoppers", "orders", "shopper_national_id_lookup", "credit_lines"):
            for row in connection.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2")):
                rows.append(f"{table}: {tuple(row)}")
        return rows


def test_erasure_is_refused_while_a_debt_is_open_and_changes_nothing(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    merchant = merchant_of(client, platform_headers)
    shopper = enrol(client, platform_headers)
    placed = client.post(
        "/v1/checkouts",
        headers={**platform_headers, "Idempotency-Key": "co-open"},
        json=checkout_body(shopper["id"], merchant["id"], 5_000),
    )
    order_id = placed.json()["order"]["id"]
    compliance = operator_headers(runtime, "compliance")
    before = snapshot(runtime)
    response = client.post(f"/v1/shoppers/{shopper['id']}/erasure", headers=compliance)
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "debt_outstanding"
    assert order_id in error["message"] and "approved" in error["message"]
    assert snapshot(runtime) == before
    with runtime.work(read_only=True) as work:
        # The merchant's key issued, nothing after it.
        assert audit.verify_chain(work.session).rows_checked == 1


def test_erasure_is_refused_while_an_overpayment_is_held(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    merchant = merchant_of(client, platform_headers)
    held = shopper_with_repaid_order(
        client,
        platform_headers,
        merchant,
        external_id="u-held",
        name="王五",
        phone="+8613600002222",
        email="wang@example.org",
        address=ADDRESS_B,
    )
    overpaid = client.post(
        "/v1/payments",
        headers=platform_headers,
        json={"shopper_id": held.shopper["id"], "amount_minor": 500, "method": "alipay"},
    )
    assert overpaid.status_code == 201 and overpaid.json()["unapplied_minor"] == 500
    compliance = operator_headers(runtime, "compliance")
    before = snapshot(runtime)
    response = client.post(f"/v1/shoppers/{held.shopper['id']}/erasure", headers=compliance)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "credit_balance_held"
    assert "500" in response.json()["error"]["message"]
    assert snapshot(runtime) == before


def test_an_erasure_retried_with_its_key_replays_the_result(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    shopper = enrol(client, platform_headers)
    compliance = {**operator_headers(runtime, "compliance"), "Idempotency-Key": "erase-1"}
    first = client.post(f"/v1/shoppers/{shopper['id']}/erasure", headers=compliance)
    again = client.post(f"/v1/shoppers/{shopper['id']}/erasure", headers=compliance)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    export = client.get(f"/v1/shoppers/{shopper['id']}/export", headers=compliance).json()
    identity = export["sections"]["identity"]
    assert (identity["status"], identity["name"], identity["national_id"]) == ("erased", None, None)
    assert identity["external_id"] == f"erased:{shopper['id']}"
    assert [e["action"] for e in export["sections"]["audit_entries"]] == [
        "shopper.erasure",
        "shopper.export",
    ]
