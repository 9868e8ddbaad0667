"""Compliance in the console (no browser): the audit log with chain verification, complaints with
deadlines and responses, export and erasure through the privacy services; CSRF, roles, escaping."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.console.test_sign_in import add_operator, sign_in
from tests.factories import checkout_body, enrol
from tests.privacy.privacy_env import merchant_of, operator_headers, shopper_with_repaid_order
from tests.privacy.test_audit import tamper
from tests.privacy.test_export_erasure import snapshot
from usefirst.console import compliance_pages
from usefirst.privacy import audit
from usefirst.privacy.models import AuditEntry, ComplaintResponse
from usefirst.runtime import Runtime

HOSTILE = "<script>alert(1)</script>"


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def audit_rows(runtime: Runtime) -> list[tuple[int, str, str, str | None]]:
    with runtime.work(read_only=True) as work:
        return [
            (row.seq, row.actor, row.action, row.subject_shopper_id)
            for row in work.session.scalars(select(AuditEntry).order_by(AuditEntry.seq))
        ]


def responses_to(runtime: Runtime, complaint_id: str) -> int:
    with runtime.work(read_only=True) as work:
        count = work.session.scalar(
            select(func.count())
            .select_from(ComplaintResponse)
            .where(ComplaintResponse.complaint_id == complaint_id)
        )
        return int(count or 0)


def file_complaint(
    client: TestClient, headers: dict[str, str], shopper_id: str, category: str, text: str
) -> str:
    filed = client.post(
        "/v1/complaints",
        headers=headers,
        json={"shopper_id": shopper_id, "category": category, "description": text},
    )
    assert filed.status_code == 201, filed.text
    return str(filed.json()["id"])


def test_audit_log_shows_api_reads_and_the_chain_check(
    client: TestClient,
    platform_headers: dict[str, str],
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shopper = enrol(client, platform_headers)
    other = enrol(client, platform_headers)
    admin = operator_headers(runtime, "admin", "admin-api@example.com")
    for subject in (shopper, other, shopper):
        read = client.get(f"/v1/shoppers/{subject['id']}?unmasked=true", headers=admin)
        assert read.status_code == 200, read.text
    rows = audit_rows(runtime)
    assert [(seq, action, subject) for seq, _, action, subject in rows] == [
        (1, "shopper.read_unmasked", shopper["id"]),
        (2, "shopper.read_unmasked", other["id"]),
        (3, "shopper.read_unmasked", shopper["id"]),
    ]
    admin_operator_id = rows[0][1]
    add_operator(runtime, "compliance@example.com", "compliance")
    sign_in(client, "compliance@example.com")

    page = client.get("/console/compliance/audit?lang=en")
    assert page.status_code == 200
    assert (
        '<p id="chain-status" class="ok" role="status">Audit chain intact. Rows checked: 3.</p>'
        in (page.text)
    )
    assert re.findall(r'<tr data-seq="(\d+)"', page.text) == ["3", "2", "1"]  # newest first
    assert f"<td>{admin_operator_id}</td>" in page.text
    assert f"<td>GET /v1/shoppers/{shopper['id']}?unmasked=true by a admin</td>" in page.text

    filtered = client.get(f"/console/compliance/audit?shopper_id={shopper['id']}")
    assert re.findall(r'<tr data-seq="(\d+)"', filtered.text) == ["3", "1"]

    monkeypatch.setattr(compliance_pages, "AUDIT_PAGE_SIZE", 2)
    first = client.get("/console/compliance/audit")
    assert re.findall(r'<tr data-seq="(\d+)"', first.text) == ["3", "2"]
    assert 'href="/console/compliance/audit?before=2"' in first.text
    older = client.get("/console/compliance/audit?before=2")
    assert re.findall(r'<tr data-seq="(\d+)"', older.text) == ["1"]
    assert 'id="older"' not in older.text

    # Viewing the log reads no shopper's data: it adds nothing to the chain.
    assert len(audit_rows(runtime)) == 3
    tamper(runtime, "UPDATE audit_log SET purpose = 'nothing to see' WHERE seq = 2")
    broken = client.get("/console/compliance/audit?lang=en")
    assert broken.status_code == 200
    assert (
        '<p id="chain-status" class="error" role="alert" data-broken-seq="2">Audit chain broken. '
        "Rows checked: 1. First broken row: 2 — row content does not match its hash (the row "
        "was altered).</p>"
    ) in broken.text
    assert '<tr data-seq="2" class="error">' in broken.text
    with runtime.work(read_only=True) as work:
        report = audit.verify_chain(work.session)  # what `usefirst audit verify` reports
    assert report.first_break is not None and report.first_break.seq == 2
    assert report.rows_checked == 1


def test_complaints_deadlines_responses_csrf_and_escaping(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    shopper = enrol(client, platform_headers)
    admin = operator_headers(runtime, "admin", "admin-api@example.com")
    assert (
        client.get(f"/v1/shoppers/{shopper['id']}?unmasked=true", headers=admin).status_code == 200
    )
    # Filed first but answered in time: not overdue, so listed after the overdue one.
    answered_early = file_complaint(client, platform_headers, shopper["id"], "billing", "fee?")
    support = operator_headers(runtime, "support", "support-api@example.com")
    reply = client.post(
        f"/v1/complaints/{answered_early}/responses", headers=support, json={"message": "ok"}
    )
    assert reply.status_code == 201, reply.text
    late = file_complaint(client, platform_headers, shopper["id"], "privacy", HOSTILE)
    advanced = client.post("/v1/sandbox/clock/advance", headers=platform_headers, json={"days": 16})
    assert advanced.status_code == 200, advanced.text
    fresh = file_complaint(client, platform_headers, shopper["id"], "billing", "charged twice")
    compliance_id = add_operator(runtime, "compliance@example.com", "compliance")
    sign_in(client, "compliance@example.com")

    listing = client.get("/console/compliance/complaints?lang=en")
    assert listing.status_code == 200
    assert re.findall(r'<tr data-complaint="([^"]+)"', listing.text) == [
        late,
        answered_early,
        fresh,
    ]
    assert f'<tr data-complaint="{late}" class="overdue error">' in listing.text
    assert f'<tr data-complaint="{fresh}">' in listing.text

    page = client.get(f"/console/compliance/complaints/{late}?lang=en")
    assert page.status_code == 200
    assert HOSTILE not in page.text
    assert '<p id="complaint-description">&lt;script&gt;alert(1)&lt;/script&gt;</p>' in page.text
    assert "Overdue" in page.text
    # A privacy complaint shows who read the shopper's data.
    trail = page.text.split('id="access-trail"', 1)[1]
    assert "<td>shopper.read_unmasked</td>" in trail
    assert f"<td>GET /v1/shoppers/{shopper['id']}?unmasked=true by a admin</td>" in trail

    rejected = client.post(
        f"/console/compliance/complaints/{late}/responses",
        data={"csrf_token": "forged", "message": "we looked into it"},
        follow_redirects=False,
    )
    assert rejected.status_code == 403
    assert responses_to(runtime, late) == 0

    answered = client.post(
        f"/console/compliance/complaints/{late}/responses",
        data={
            "csrf_token": csrf_of(page.text),
            "message": "Only our collector read it, to call you.",
        },
        follow_redirects=False,
    )
    assert answered.status_code == 303
    assert answered.headers["location"] == f"/console/compliance/complaints/{late}?responded=1"
    view = client.get(f"/v1/complaints/{late}", headers=platform_headers).json()
    assert view["status"] == "answered"
    assert [(r["operator_id"], r["message"], r["closes_complaint"]) for r in view["responses"]] == [
        (compliance_id, "Only our collector read it, to call you.", False)
    ]
    after = client.get("/console/compliance/complaints?lang=en")
    assert f'<tr data-complaint="{late}">' in after.text  # answered: no longer overdue

    closed = client.post(
        f"/console/compliance/complaints/{late}/responses",
        data={"csrf_token": csrf_of(page.text), "message": "Closing.", "closes": "on"},
        follow_redirects=False,
    )
    assert closed.status_code == 303
    again = client.post(
        f"/console/compliance/complaints/{late}/responses?lang=en",
        data={"csrf_token": csrf_of(page.text), "message": "One more."},
    )
    assert again.status_code == 409
    assert "The complaint is closed; it takes no more responses." in again.text
    assert responses_to(runtime, late) == 2


def test_export_and_erasure(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    merchant = merchant_of(client, platform_headers)
    owing = enrol(client, platform_headers)
    placed = client.post(
        "/v1/checkouts",
        headers={**platform_headers, "Idempotency-Key": "co-open"},
        json=checkout_body(owing["id"], merchant["id"], 5_000),
    )
    order_id = placed.json()["order"]["id"]
    settled = shopper_with_repaid_order(
        client,
        platform_headers,
        merchant,
        external_id="u-settled",
        name="欧阳明月",
        phone="+8613912345678",
        email="oy@example.org",
        address="上海市浦东新区世纪大道 88 号",
    )
    compliance_id = add_operator(runtime, "compliance@example.com", "compliance")
    sign_in(client, "compliance@example.com")

    page = client.get(f"/console/compliance/shoppers/{owing['id']}?lang=en")
    assert page.status_code == 200
    token = csrf_of(page.text)

    exported = client.post(
        f"/console/compliance/shoppers/{settled.shopper['id']}/export",
        data={"csrf_token": token},
    )
    assert exported.status_code == 200
    assert exported.headers["content-type"] == "application/json"
    document = json.loads(exported.text)
    assert exported.headers["content-disposition"] == (
        f'attachment; filename="export-{document["export_id"]}.json"'
    )
    assert document["shopper_id"] == settled.shopper["id"]
    assert document["sections"]["identity"]["name"] == "欧阳明月"
    assert audit_rows(runtime)[-1][1:] == (compliance_id, "shopper.export", settled.shopper["id"])
    rows_after_export = audit_rows(runtime)

    forged = client.post(
        f"/console/compliance/shoppers/{settled.shopper['id']}/export", data={"csrf_token": "x"}
    )
    assert forged.status_code == 403
    assert audit_rows(runtime) == rows_after_export

    before = snapshot(runtime)
    mistyped = client.post(
        f"/console/compliance/shoppers/{owing['id']}/erasure?lang=en",
        data={"csrf_token": token, "confirm": "yes"},
    )
    assert mistyped.status_code == 409
    assert "The confirmation does not match the shopper id; nothing was changed." in mistyped.text
    refused = client.post(
        f"/console/compliance/shoppers/{owing['id']}/erasure?lang=en",
        data={"csrf_token": token, "confirm": owing["id"]},
    )
    assert refused.status_code == 409
    assert (
        f"Erasure refused: the shopper has open orders or unpaid balances: {order_id} (approved"
        in refused.text
    )
    assert snapshot(runtime) == before
    assert audit_rows(runtime) == rows_after_export

    erased = client.post(
        f"/console/compliance/shoppers/{settled.shopper['id']}/erasure?lang=en",
        data={"csrf_token": token, "confirm": settled.shopper["id"]},
    )
    assert erased.status_code == 200
    assert '<strong id="shopper-status">erased</strong>' in erased.text
    retained = erased.text.split('id="retained"', 1)[1]
    assert "<td>ledger_postings</td>" in retained and "<td>audit_log</td>" in retained
    assert "The append-only PII access log" in retained
    assert audit_rows(runtime)[-1][1:] == (compliance_id, "shopper.erasure", settled.shopper["id"])
    assert (
        'id="erase"' not in client.get(f"/console/compliance/shoppers/{settled.shopper['id']}").text
    )


def test_roles(client: TestClient, platform_headers: dict[str, str], runtime: Runtime) -> None:
    shopper = enrol(client, platform_headers)
    complaint = file_complaint(client, platform_headers, shopper["id"], "other", "hello")
    add_operator(runtime, "collector@example.com", "collector")
    sign_in(client, "collector@example.com")
    dashboard = client.get("/console/dashboard")
    assert "/console/compliance/audit" not in dashboard.text
    token = csrf_of(dashboard.text)
    for path in (
        "/console/compliance/audit",
        "/console/compliance/complaints",
        f"/console/compliance/complaints/{complaint}",
        f"/console/compliance/shoppers/{shopper['id']}",
    ):
        assert client.get(path).status_code == 403, path
    for path, data in (
        (f"/console/compliance/complaints/{complaint}/responses", {"message": "hi"}),
        (f"/console/compliance/shoppers/{shopper['id']}/export", {}),
        (f"/console/compliance/shoppers/{shopper['id']}/erasure", {"confirm": shopper["id"]}),
    ):
        assert client.post(path, data={"csrf_token": token, **data}).status_code == 403, path
    assert audit_rows(runtime) == []
    with runtime.work(read_only=True) as work:
        assert work.session.scalar(select(func.count()).select_from(ComplaintResponse)) == 0

    # An admin reads the log and works complaints; export and erasure stay with compliance,
    # as in the API.
    client.cookies.clear()
    add_operator(runtime, "admin@example.com", "admin")
    sign_in(client, "admin@example.com")
    assert client.get("/console/compliance/audit").status_code == 200
    assert client.get(f"/console/compliance/complaints/{complaint}").status_code == 200
    assert client.get(f"/console/compliance/shoppers/{shopper['id']}").status_code == 403
