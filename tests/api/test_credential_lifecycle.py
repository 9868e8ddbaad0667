"""Credential lifecycle over HTTP, on SQLite and PostgreSQL: revoked and expired keys are refused
with their own codes and change nothing; rotation keeps the old key for the overlap only;
operator tokens expire, carry a role and are issued only against a fresh TOTP code; every
credential event is in the audit chain."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.factories import bearer, create_merchant, enrol
from usefirst.console import auth
from usefirst.identity import service as identity_service
from usefirst.identity.models import ApiKey, Operator, Shopper
from usefirst.identity.service import create_api_key, create_operator
from usefirst.kit.clock import system_now
from usefirst.privacy import audit
from usefirst.privacy.models import AuditEntry
from usefirst.runtime import Runtime

PASSWORD = "correct horse battery"
SHOPPER = {
    "external_id": "u-after",
    "name": "张三",
    "national_id": "11010519491231002X",
    "phone": "+8613800138000",
    "consent": {"privacy_policy_version": "2026-01", "credit_report_authorized": True},
}


def new_platform_key(runtime: Runtime) -> str:
    with runtime.work() as work:
        return create_api_key(work.session, kind="platform", now=work.now)


def shopper_count(runtime: Runtime) -> int:
    with runtime.work(read_only=True) as work:
        return int(work.session.scalar(select(func.count()).select_from(Shopper)) or 0)


def key_count(runtime: Runtime) -> int:
    with runtime.work(read_only=True) as work:
        return int(work.session.scalar(select(func.count()).select_from(ApiKey)) or 0)


def key_row(runtime: Runtime, key_id: str) -> ApiKey:
    with runtime.work(read_only=True) as work:
        row = work.session.get(ApiKey, key_id)
        assert row is not None
        work.session.expunge(row)
        return row


def key_id_of(runtime: Runtime, secret: str) -> str:
    with runtime.work(read_only=True) as work:
        principal = identity_service.authenticate(work.session, secret=secret)
        assert principal is not None
        return principal.key_id


def audit_trail(runtime: Runtime) -> list[tuple[str, str, str | None]]:
    with runtime.work(read_only=True) as work:
        assert audit.verify_chain(work.session).is_intact
        return [
            (entry.actor, entry.action, entry.reference_id)
            for entry in work.session.scalars(select(AuditEntry).order_by(AuditEntry.seq))
        ]


def new_operator(runtime: Runtime, role: str, email: str | None = None) -> tuple[str, str]:
    """(operator id, its first API token)."""
    with runtime.work() as work:
        operator, token = create_operator(
            work.session, email=email or f"{role}@example.com", role=role, now=work.now
        )
        return operator.id, token


def assert_refused(response: Any, code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == code


def test_a_revoked_key_is_refused_and_changes_nothing(
    client: TestClient, runtime: Runtime, platform_headers: dict[str, str]
) -> None:
    admin_id, admin_token = new_operator(runtime, "admin")
    spare = new_platform_key(runtime)
    spare_id = key_id_of(runtime, spare)
    forgotten: list[str] = []
    runtime.credential_listeners.append(forgotten.append)
    enrol(client, bearer(spare))

    revoked = client.post(
        f"/v1/api-keys/{spare_id}/revoke",
        headers=bearer(admin_token),
        json={"reason": "leaked in a build log"},
    )
    assert revoked.status_code == 200, revoked.text
    view = revoked.json()
    assert (view["id"], view["state"], view["revoked_reason"]) == (
        spare_id,
        "revoked",
        "leaked in a build log",
    )
    assert "secret" not in view and "secret_hash" not in view
    row = key_row(runtime, spare_id)
    assert forgotten == [row.secret_hash]  # the hook a per-process cache listens on

    before = shopper_count(runtime)
    assert_refused(
        client.post("/v1/shoppers", headers=bearer(spare), json=SHOPPER), "api_key_revoked"
    )
    assert shopper_count(runtime) == before == 1
    assert_refused(client.get("/v1/events", headers=bearer(spare)), "api_key_revoked")
    assert client.get("/v1/events", headers=platform_headers).status_code == 200

    # Revoking again changes nothing and records nothing more.
    again = client.post(
        f"/v1/api-keys/{spare_id}/revoke", headers=bearer(admin_token), json={"reason": "again"}
    )
    assert again.status_code == 200
    assert again.json()["revoked_reason"] == "leaked in a build log"
    assert key_row(runtime, spare_id).revoked_at == row.revoked_at
    assert audit_trail(runtime) == [(f"operator:{admin_id}", "credential.revoked", spare_id)]


def test_an_expired_key_is_refused_and_changes_nothing(
    client: TestClient, runtime: Runtime
) -> None:
    issued_at = system_now() - timedelta(days=3)
    with runtime.work() as work:
        key, secret = identity_service.issue_api_key(
            work.session, kind="platform", now=issued_at, expires_at=issued_at + timedelta(days=2)
        )
        key_id = key.id
    before = shopper_count(runtime)
    assert_refused(
        client.post("/v1/shoppers", headers=bearer(secret), json=SHOPPER), "api_key_expired"
    )
    assert shopper_count(runtime) == before == 0
    assert key_row(runtime, key_id).last_used_at is None  # a refused key was not "used"


def test_a_sandbox_clock_moved_forward_does_not_expire_keys(
    client: TestClient, runtime: Runtime, platform_headers: dict[str, str]
) -> None:
    _, token = new_operator(runtime, "admin")
    assert (
        client.post(
            "/v1/sandbox/clock/advance", json={"days": 120}, headers=platform_headers
        ).status_code
        == 200
    )
    # Operator tokens live 30 days of wall time; the test clock's 120 days do not count.
    assert client.get("/v1/ledger/trial-balance", headers=bearer(token)).status_code == 200


def test_rotation_keeps_the_old_key_for_the_overlap_only(
    client: TestClient, runtime: Runtime, platform_headers: dict[str, str]
) -> None:
    merchant = create_merchant(client, platform_headers)
    old_id = key_id_of(runtime, merchant["api_key"])
    started = system_now()
    rotated = client.post(
        f"/v1/api-keys/{old_id}/rotate",
        headers=bearer(merchant["api_key"]),
        json={"overlap_hours": 2},
    )
    assert rotated.status_code == 201, rotated.text
    answer = rotated.json()
    new_secret = answer["new"]["secret"]
    assert new_secret.startswith("uf_mer_") and new_secret != merchant["api_key"]
    assert answer["old"]["state"] == "expiring"
    assert answer["old"]["replaced_by_key_id"] == answer["new"]["id"]
    assert (answer["new"]["merchant_id"], answer["new"]["state"]) == (merchant["id"], "active")
    old = key_row(runtime, old_id)
    assert old.expires_at is not None
    assert timedelta(hours=2) <= old.expires_at - started <= timedelta(hours=2, seconds=30)
    # Both keys work during the overlap, as the same merchant.
    for secret in (merchant["api_key"], new_secret):
        seen = client.get(f"/v1/merchants/{merchant['id']}", headers=bearer(secret))
        assert seen.status_code == 200, seen.text
    # A rotated key is not rotated twice; its replacement is.
    twice = client.post(
        f"/v1/api-keys/{old_id}/rotate", headers=platform_headers, json={"overlap_hours": 1}
    )
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "api_key_not_usable"
    # An overlap of zero ends the replaced key at once.
    again = client.post(
        f"/v1/api-keys/{answer['new']['id']}/rotate",
        headers=platform_headers,
        json={"overlap_hours": 0},
    )
    assert again.status_code == 201, again.text
    assert_refused(
        client.get(f"/v1/merchants/{merchant['id']}", headers=bearer(new_secret)),
        "api_key_expired",
    )
    third = again.json()["new"]["secret"]
    assert client.get(f"/v1/merchants/{merchant['id']}", headers=bearer(third)).status_code == 200
    actions = [action for _, action, _ in audit_trail(runtime)]
    # The merchant's first key (POST /v1/merchants), then its two rotations.
    assert actions == ["credential.issued", "credential.rotated", "credential.rotated"]


def test_keys_are_listed_to_whoever_may_manage_them_and_last_use_is_recorded(
    client: TestClient, runtime: Runtime, platform_headers: dict[str, str]
) -> None:
    first = create_merchant(client, platform_headers, name="First")
    second = create_merchant(client, platform_headers, name="Second")
    _, admin_token = new_operator(runtime, "admin")
    assert (
        client.get(f"/v1/merchants/{first['id']}", headers=bearer(first["api_key"])).status_code
        == 200
    )

    own = client.get("/v1/api-keys", headers=bearer(first["api_key"]))
    assert own.status_code == 200
    [view] = own.json()["data"]
    assert (view["kind"], view["merchant_id"], view["state"]) == ("merchant", first["id"], "active")
    assert view["last_used_at"] is not None
    second_key_id = key_id_of(runtime, second["api_key"])
    # Another merchant's key does not exist for this merchant.
    for path in (f"/v1/api-keys/{second_key_id}/revoke", f"/v1/api-keys/{second_key_id}/rotate"):
        body = {"reason": "x"} if path.endswith("revoke") else {}
        answer = client.post(path, headers=bearer(first["api_key"]), json=body)
        assert answer.status_code == 404, answer.text
    assert key_row(runtime, second_key_id).revoked_at is None

    everything = client.get("/v1/api-keys", headers=bearer(admin_token)).json()["data"]
    assert sorted(view["kind"] for view in everything) == [
        "merchant",
        "merchant",
        "operator",
        "platform",
    ]
    platform_view = client.get("/v1/api-keys", headers=platform_headers).json()["data"]
    assert "operator" not in {view["kind"] for view in platform_view}
    # Support operators cannot manage keys at all.
    _, support_token = new_operator(runtime, "support")
    assert client.get("/v1/api-keys", headers=bearer(support_token)).status_code == 403


def enrolled_console_operator(runtime: Runtime, role: str) -> tuple[str, str, str]:
    """An operator with a console sign-in and TOTP enrolled: (id, first token, TOTP secret)."""
    operator_id, token = new_operator(runtime, role)
    secret = pyotp.random_base32()
    with runtime.work() as work:
        account = auth.create_account(
            work.session,
            email=f"{role}@example.com",
            password=PASSWORD,
            operator_id=operator_id,
            now=work.now,
        )
        account.totp_secret_encrypted = runtime.cipher.encrypt(secret, field="totp_secret")
        account.totp_enrolled_at = work.now
    return operator_id, token, secret


def test_operator_tokens_need_a_fresh_code_and_expire_in_30_days(
    client: TestClient, runtime: Runtime
) -> None:
    operator_id, token, totp_secret = enrolled_console_operator(runtime, "compliance")
    keys_before = key_count(runtime)
    wrong = client.post("/v1/operator-tokens", headers=bearer(token), json={"totp_code": "000000"})
    assert_refused(wrong, "second_factor_required")
    assert key_count(runtime) == keys_before

    code = pyotp.TOTP(totp_secret).now()
    issued = client.post("/v1/operator-tokens", headers=bearer(token), json={"totp_code": code})
    assert issued.status_code == 201, issued.text
    view = issued.json()
    assert (view["kind"], view["operator_id"], view["role"]) == (
        "operator",
        operator_id,
        "compliance",
    )
    expires_at = key_row(runtime, view["id"]).expires_at
    assert expires_at is not None
    assert (
        timedelta(days=30) - timedelta(minutes=1) < expires_at - system_now() <= timedelta(days=30)
    )
    assert client.get("/v1/api-keys", headers=bearer(view["secret"])).status_code == 403
    # The same code again is a replay.
    replay = client.post("/v1/operator-tokens", headers=bearer(token), json={"totp_code": code})
    assert_refused(replay, "second_factor_required")
    # Not another role, nor longer than 90 days.
    other_role = client.post(
        "/v1/operator-tokens",
        headers=bearer(token),
        json={"totp_code": code, "role": "admin"},
    )
    assert other_role.status_code == 422
    too_long = client.post(
        "/v1/operator-tokens",
        headers=bearer(token),
        json={"totp_code": code, "expires_in_days": 91},
    )
    assert too_long.status_code == 422
    assert key_count(runtime) == keys_before + 1
    assert [action for _, action, _ in audit_trail(runtime)] == ["credential.issued"]
    # Operator tokens are never rotated (a token would prolong itself).
    _, admin_token = new_operator(runtime, "admin")
    rotated = client.post(f"/v1/api-keys/{view['id']}/rotate", headers=bearer(admin_token), json={})
    assert rotated.status_code == 409


def test_an_operator_without_a_second_factor_cannot_issue_tokens(
    client: TestClient, runtime: Runtime
) -> None:
    _, token = new_operator(runtime, "admin")
    keys_before = key_count(runtime)
    refused = client.post(
        "/v1/operator-tokens", headers=bearer(token), json={"totp_code": "123456"}
    )
    assert_refused(refused, "second_factor_required")
    assert key_count(runtime) == keys_before


def test_a_token_bound_to_a_role_stops_when_the_role_changes(
    client: TestClient, runtime: Runtime
) -> None:
    admin_id, admin_token, totp_secret = enrolled_console_operator(runtime, "admin")
    narrowed = client.post(
        "/v1/operator-tokens",
        headers=bearer(admin_token),
        json={"totp_code": pyotp.TOTP(totp_secret).now(), "role": "support", "expires_in_days": 7},
    )
    assert narrowed.status_code == 201, narrowed.text
    support_token = narrowed.json()["secret"]
    # Acts as support: events yes, the ledger no.
    assert client.get("/v1/events", headers=bearer(support_token)).status_code == 200
    assert client.get("/v1/ledger/trial-balance", headers=bearer(support_token)).status_code == 403
    with runtime.work() as work:
        operator = work.session.get(Operator, admin_id)
        assert operator is not None
        operator.role = "collector"
    # A role changed in the database, outside the engine, reaches a process once its memory of
    # authenticated keys lapses (USEFIRST_CREDENTIAL_CACHE_SECONDS): empty it rather than wait.
    client.app.state.credential_cache.clear()  # type: ignore[attr-defined]
    assert_refused(client.get("/v1/events", headers=bearer(support_token)), "api_key_revoked")


@pytest.mark.parametrize("kind", ["platform", "merchant"])
def test_admins_issue_keys_that_may_expire(
    client: TestClient, runtime: Runtime, platform_headers: dict[str, str], kind: str
) -> None:
    admin_id, admin_token = new_operator(runtime, "admin")
    merchant = create_merchant(client, platform_headers)
    body: dict[str, Any] = {"kind": kind, "label": "ci", "expires_in_days": 10}
    if kind == "merchant":
        body["merchant_id"] = merchant["id"]
    created = client.post("/v1/api-keys", headers=bearer(admin_token), json=body)
    assert created.status_code == 201, created.text
    view = created.json()
    expires_at = key_row(runtime, view["id"]).expires_at
    assert expires_at is not None
    assert (
        timedelta(days=10) - timedelta(minutes=1) < expires_at - system_now() <= timedelta(days=10)
    )
    assert client.get("/v1/api-keys", headers=bearer(view["secret"])).status_code == 200
    assert audit_trail(runtime) == [
        ("platform", "credential.issued", key_id_of(runtime, merchant["api_key"])),
        (f"operator:{admin_id}", "credential.issued", view["id"]),
    ]
    if kind == "platform":
        # Only admins issue platform keys.
        refused = client.post("/v1/api-keys", headers=platform_headers, json=body)
        assert refused.status_code == 403


def test_the_key_made_with_a_merchant_is_in_the_audit_chain(
    client: TestClient, runtime: Runtime, platform_headers: dict[str, str]
) -> None:
    admin_id, admin_token = new_operator(runtime, "admin")
    by_platform = create_merchant(client, platform_headers)
    by_admin = create_merchant(client, bearer(admin_token), name="Second Shop")
    first_key = key_id_of(runtime, by_platform["api_key"])
    second_key = key_id_of(runtime, by_admin["api_key"])
    assert audit_trail(runtime) == [
        ("platform", "credential.issued", first_key),
        (f"operator:{admin_id}", "credential.issued", second_key),
    ]
    with runtime.work(read_only=True) as work:
        fields = [
            entry.fields
            for entry in work.session.scalars(select(AuditEntry).order_by(AuditEntry.seq))
        ]
    assert fields == [
        ["kind:merchant", f"holder:{by_platform['id']}"],
        ["kind:merchant", f"holder:{by_admin['id']}"],
    ]
    # A merchant refused (an unknown category) issues no key and records nothing.
    keys_before = key_count(runtime)
    refused = client.post(
        "/v1/merchants", headers=platform_headers, json={"name": "X" * 201, "category": "shop"}
    )
    assert refused.status_code == 422
    assert key_count(runtime) == keys_before
    assert len(audit_trail(runtime)) == 2


def test_an_operator_revokes_their_own_token_but_no_one_elses(
    client: TestClient, runtime: Runtime, platform_headers: dict[str, str]
) -> None:
    collector_id, collector_token = new_operator(runtime, "collector")
    _, other_token = new_operator(runtime, "risk_analyst")
    own_id = key_id_of(runtime, collector_token)
    other_id = key_id_of(runtime, other_token)
    refused = client.post(
        f"/v1/api-keys/{other_id}/revoke",
        headers=bearer(collector_token),
        json={"reason": "not mine"},
    )
    assert refused.status_code == 404
    assert key_row(runtime, other_id).revoked_at is None
    done = client.post(
        f"/v1/api-keys/{own_id}/revoke",
        headers=bearer(collector_token),
        json={"reason": "leaving the team"},
    )
    assert done.status_code == 200, done.text
    assert_refused(
        client.get("/v1/collections/queue", headers=bearer(collector_token)), "api_key_revoked"
    )
    assert client.get("/v1/risk/cases", headers=bearer(other_token)).status_code == 200
    assert audit_trail(runtime) == [(f"operator:{collector_id}", "credential.revoked", own_id)]
