"""The console's API-key page, on SQLite and PostgreSQL: admins see every key (never a secret)
and revoke one with a reason, audited as on the API; other roles are refused."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.console.test_sign_in import add_operator, sign_in
from tests.factories import bearer
from usefirst.api.app import create_app
from usefirst.identity.models import ApiKey
from usefirst.identity.service import create_api_key
from usefirst.privacy import audit
from usefirst.privacy.models import AuditEntry
from usefirst.runtime import Runtime


def csrf_of(page_text: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page_text)
    assert found is not None
    return found.group(1)


def test_admins_list_and_revoke_keys_in_the_console(runtime: Runtime) -> None:
    admin_id = add_operator(runtime, "admin@example.com", "admin")
    with runtime.work() as work:
        platform_key = create_api_key(work.session, kind="platform", now=work.now, label="shop")
        key_id = work.session.scalars(select(ApiKey.id).where(ApiKey.kind == "platform")).one()
    client = TestClient(create_app(runtime))
    api = TestClient(create_app(runtime))
    assert api.get("/v1/events", headers=bearer(platform_key)).status_code == 200
    sign_in(client, "admin@example.com")

    page = client.get("/console/credentials?lang=en")
    assert page.status_code == 200
    assert f'<tr data-key="{key_id}" data-state="active">' in page.text
    assert platform_key not in page.text

    csrf = csrf_of(page.text)
    missing_csrf = client.post(f"/console/credentials/{key_id}/revoke", data={"reason": "rotating"})
    assert missing_csrf.status_code == 403
    no_reason = client.post(
        f"/console/credentials/{key_id}/revoke", data={"reason": " ", "csrf_token": csrf}
    )
    assert no_reason.status_code == 422
    assert api.get("/v1/events", headers=bearer(platform_key)).status_code == 200

    done = client.post(
        f"/console/credentials/{key_id}/revoke",
        data={"reason": "shop changed hands", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert done.status_code == 303
    refused = api.get("/v1/events", headers=bearer(platform_key))
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "api_key_revoked"
    assert (
        f'<tr data-key="{key_id}" data-state="revoked">' in client.get("/console/credentials").text
    )
    with runtime.work(read_only=True) as work:
        assert audit.verify_chain(work.session).is_intact
        trail = [
            (entry.actor, entry.action, entry.reference_id)
            for entry in work.session.scalars(select(AuditEntry).order_by(AuditEntry.seq))
        ]
    assert trail == [(f"operator:{admin_id}", "credential.revoked", key_id)]


def test_other_roles_cannot_open_the_key_page(runtime: Runtime) -> None:
    add_operator(runtime, "compliance@example.com", "compliance")
    client = TestClient(create_app(runtime))
    sign_in(client, "compliance@example.com")
    assert client.get("/console/credentials").status_code == 403
