"""Every unmasked PII read the API serves is in the audit chain: the unmasked shopper view, credit
bureau files (made and downloaded) and the legal evidence pack. Erased shoppers drop out of
bureau files instead of breaking them."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.factories import bearer, checkout_body, create_merchant, enrol, issued_key_id
from tests.privacy.privacy_env import operator_headers, shopper_with_repaid_order
from usefirst.collections.models import DelinquentOrder, LegalCase
from usefirst.identity.models import Operator
from usefirst.orders.models import Order
from usefirst.privacy import audit
from usefirst.privacy.models import AuditEntry
from usefirst.runtime import Runtime


def trail(runtime: Runtime) -> list[tuple[str, str, str | None, list[str], str | None]]:
    with runtime.work(read_only=True) as work:
        assert audit.verify_chain(work.session).is_intact
        return [
            (e.actor, e.action, e.subject_shopper_id, list(e.fields), e.reference_id)
            for e in work.session.scalars(select(AuditEntry).order_by(AuditEntry.seq))
        ]


def operator_id(runtime: Runtime, email: str) -> str:
    with runtime.work(read_only=True) as work:
        return str(work.session.scalars(select(Operator.id).where(Operator.email == email)).one())


def delivered_order(
    client: TestClient, platform_headers: dict[str, str], merchant: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    shopper = enrol(client, platform_headers)
    placed = client.post(
        "/v1/checkouts",
        headers=platform_headers,
        json=checkout_body(shopper["id"], merchant["id"], 6_000),
    )
    order_id = placed.json()["order"]["id"]
    client.post(
        f"/v1/orders/{order_id}/ship",
        headers=bearer(merchant["api_key"]),
        json={"carrier": "SF", "tracking_number": f"SF{order_id[-8:]}"},
    )
    client.post(f"/v1/orders/{order_id}/confirm-receipt", headers=platform_headers)
    return shopper, order_id


def test_the_unmasked_shopper_view_is_for_admin_and_compliance_and_audited(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    shopper = enrol(client, platform_headers, name="欧阳明月", email="oy@example.org")
    for role in ("support",):
        headers = operator_headers(runtime, role)
        masked = client.get(f"/v1/shoppers/{shopper['id']}", headers=headers)
        assert masked.status_code == 200 and "unmasked" not in masked.json()
        denied = client.get(f"/v1/shoppers/{shopper['id']}?unmasked=true", headers=headers)
        assert denied.status_code == 403
    assert (
        client.get(f"/v1/shoppers/{shopper['id']}?unmasked=true", headers=platform_headers)
    ).status_code == 403
    assert trail(runtime) == []
    compliance = operator_headers(runtime, "compliance")
    shown = client.get(f"/v1/shoppers/{shopper['id']}?unmasked=true", headers=compliance)
    assert shown.status_code == 200
    assert shown.json()["unmasked"]["name"] == "欧阳明月"
    assert shown.json()["unmasked"]["email"] == "oy@example.org"
    assert trail(runtime) == [
        (
            operator_id(runtime, "compliance@example.com"),
            "shopper.read_unmasked",
            shopper["id"],
            ["name", "national_id", "phone", "email"],
            None,
        )
    ]


def test_bureau_files_are_audited_when_made_and_when_downloaded(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    merchant = create_merchant(client, platform_headers)
    first, first_order = delivered_order(client, platform_headers, merchant)
    second, second_order = delivered_order(client, platform_headers, merchant)
    erased = shopper_with_repaid_order(
        client,
        platform_headers,
        merchant,
        external_id="u-erased",
        name="司马光",
        phone="+8613700001111",
        email="sima@example.org",
        address="北京市海淀区中关村大街 27 号",
    )
    with runtime.work() as work:
        today = work.today
        for order in work.session.scalars(
            select(Order).where(Order.id.in_([first_order, second_order, erased.order_id]))
        ):
            work.session.add(
                DelinquentOrder(
                    shopper_id=order.shopper_id,
                    order_id=order.id,
                    bureau_reported_on=today,
                    charged_off_minor=0,
                    updated_at=work.now,
                )
            )
    compliance = operator_headers(runtime, "compliance")
    response = client.post(f"/v1/shoppers/{erased.shopper['id']}/erasure", headers=compliance)
    assert response.status_code == 200, response.text
    already = len(trail(runtime))

    collector = operator_headers(runtime, "collector")
    collector_id = operator_id(runtime, "collector@example.com")
    subjects = sorted([first["id"], second["id"]])
    for file_format in ("metro2", "jsonl"):
        made = client.post(
            "/v1/bureau/files",
            headers=collector,
            json={"period": f"{today:%Y-%m}", "format": file_format},
        )
        assert made.status_code == 201, made.text
        file_id = made.json()["id"]
        assert made.json()["records"] == 2
        content = client.get(f"/v1/bureau/files/{file_id}/content", headers=collector)
        assert content.status_code == 200
        entries = trail(runtime)[already:]
        already += len(entries)
        assert entries == [
            (
                "system:bureau-file",
                "bureau_file.create",
                subject,
                ["name", "national_id", "phone"],
                file_id,
            )
            for subject in subjects
        ] + [
            (collector_id, "bureau_file.read", subject, ["name", "birth_date", "phone"], file_id)
            for subject in subjects
        ]


def test_the_legal_evidence_pack_is_audited(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    merchant = create_merchant(client, platform_headers)
    shopper, order_id = delivered_order(client, platform_headers, merchant)
    with runtime.work() as work:
        work.session.add(
            LegalCase(
                shopper_id=shopper["id"],
                id="lgl_TEST0001",
                order_id=order_id,
                status="referred",
                claimed_principal_minor=6_000,
                claimed_fees_minor=0,
                currency="CNY",
                opened_at=work.now,
                updated_at=work.now,
            )
        )
    collector = operator_headers(runtime, "collector")
    pdf = client.get("/v1/legal/cases/lgl_TEST0001/evidence.pdf", headers=collector)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert trail(runtime) == [
        (
            "platform",
            "credential.issued",
            None,
            ["kind:merchant", f"holder:{merchant['id']}"],
            issued_key_id(runtime, merchant["api_key"]),
        ),
        (
            operator_id(runtime, "collector@example.com"),
            "legal_evidence.read",
            shopper["id"],
            ["name"],
            "lgl_TEST0001",
        ),
    ]
