"""Console sign-in without a browser: password + TOTP enrolment, lockout, replay, sessions, CSRF,
cookie flags and security headers, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import make_runtime
from tests.factories import create_merchant
from usefirst.api.app import create_app
from usefirst.console import auth
from usefirst.console.web import CONTENT_SECURITY_POLICY
from usefirst.identity.models import ConsoleAccount, ConsoleSession
from usefirst.identity.service import create_operator
from usefirst.kit.clock import system_now
from usefirst.runtime import Runtime

PASSWORD = "correct horse battery"


def add_operator(runtime: Runtime, email: str, role: str) -> str:
    with runtime.work() as work:
        operator, _ = create_operator(work.session, email=email, role=role, now=work.now)
        auth.create_account(
            work.session, email=email, password=PASSWORD, operator_id=operator.id, now=work.now
        )
        return operator.id


def login_form_token(client: TestClient) -> str:
    page = client.get("/console/login")
    assert page.status_code == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match is not None
    return match.group(1)


def post_password(client: TestClient, email: str, password: str) -> object:
    token = login_form_token(client)
    return client.post(
        "/console/login",
        data={"email": email, "password": password, "csrf_token": token},
        follow_redirects=False,
    )


def account_row(runtime: Runtime, email: str) -> ConsoleAccount:
    with runtime.work(read_only=True) as work:
        row = work.session.scalar(select(ConsoleAccount).where(ConsoleAccount.email == email))
        assert row is not None
        work.session.expunge(row)
        return row


def sign_in(client: TestClient, email: str) -> str:
    """Password, then TOTP enrolment; returns the TOTP secret the page showed."""
    response = post_password(client, email, PASSWORD)
    assert response.status_code == 303  # type: ignore[attr-defined]
    assert response.headers["location"] == "/console/second-factor"  # type: ignore[attr-defined]
    page = client.get("/console/second-factor")
    secret_match = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', page.text)
    assert secret_match is not None
    assert 'src="data:image/svg+xml' in page.text  # the QR code, drawn server-side
    secret = secret_match.group(1)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    done = client.post(
        "/console/second-factor",
        data={"code": pyotp.TOTP(secret).now(), "csrf_token": csrf.group(1)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] in ("/console/dashboard", "/console/merchant")
    return secret


@pytest.fixture
def console(runtime: Runtime) -> TestClient:
    return TestClient(create_app(runtime))


def test_enrolment_then_dashboard(runtime: Runtime, console: TestClient) -> None:
    add_operator(runtime, "analyst@example.com", "risk_analyst")
    assert console.get("/console/dashboard", follow_redirects=False).headers["location"] == (
        "/console/login"
    )
    secret = sign_in(console, "analyst@example.com")
    row = account_row(runtime, "analyst@example.com")
    assert row.totp_enrolled_at is not None
    assert row.totp_secret_encrypted is not None and secret not in row.totp_secret_encrypted
    assert row.last_totp_step == int(system_now().timestamp()) // 30 or (
        row.last_totp_step == int(system_now().timestamp()) // 30 - 1
    )
    page = console.get("/console/dashboard")
    assert page.status_code == 200
    assert '<strong id="outstanding">¥0.00</strong>' in page.text
    assert '<strong id="overdue-orders">0</strong>' in page.text


def test_second_sign_in_asks_for_code_and_refuses_a_replayed_one(
    runtime: Runtime, console: TestClient
) -> None:
    add_operator(runtime, "collector@example.com", "collector")
    secret = sign_in(console, "collector@example.com")
    used_step = account_row(runtime, "collector@example.com").last_totp_step
    console.cookies.clear()

    assert post_password(console, "collector@example.com", PASSWORD).status_code == 303  # type: ignore[attr-defined]
    page = console.get("/console/second-factor")
    assert "totp-secret" not in page.text  # enrolled: the secret is never shown again
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    replay = console.post(
        "/console/second-factor",
        data={"code": pyotp.TOTP(secret).at(used_step * 30), "csrf_token": csrf.group(1)},
        follow_redirects=False,
    )
    assert replay.status_code == 401
    assert (
        "The code is wrong or already used." in replay.text or "验证码不正确或已使用" in replay.text
    )
    assert account_row(runtime, "collector@example.com").last_totp_step == used_step
    fresh = console.post(
        "/console/second-factor",
        data={"code": pyotp.TOTP(secret).at((used_step + 1) * 30), "csrf_token": csrf.group(1)},
        follow_redirects=False,
    )
    assert fresh.status_code == 303
    assert account_row(runtime, "collector@example.com").last_totp_step == used_step + 1


def test_five_wrong_passwords_lock_the_account(runtime: Runtime, console: TestClient) -> None:
    add_operator(runtime, "admin@example.com", "admin")
    for attempt in range(4):
        response = post_password(console, "admin@example.com", "wrong password!!")
        assert response.status_code == 401  # type: ignore[attr-defined]
        assert account_row(runtime, "admin@example.com").failed_attempts == attempt + 1
    fifth = post_password(console, "admin@example.com", "wrong password!!")
    assert fifth.status_code == 401  # type: ignore[attr-defined]
    locked = account_row(runtime, "admin@example.com")
    assert locked.locked_until is not None
    assert timedelta(minutes=14) < locked.locked_until - system_now() <= timedelta(minutes=15)
    # The right password does not open a locked account, and no session is created.
    refused = post_password(console, "admin@example.com", PASSWORD)
    assert refused.status_code == 401  # type: ignore[attr-defined]
    assert "UTC" in refused.text  # type: ignore[attr-defined]
    with runtime.work(read_only=True) as work:
        assert work.session.scalars(select(ConsoleSession)).all() == []


def test_unknown_email_and_wrong_password_read_the_same(
    runtime: Runtime, console: TestClient
) -> None:
    add_operator(runtime, "support@example.com", "support")
    unknown = post_password(console, "nobody@example.com", PASSWORD)
    wrong = post_password(console, "support@example.com", "not the password")
    assert unknown.status_code == wrong.status_code == 401  # type: ignore[attr-defined]
    message = re.compile(r'<p class="error" role="alert">([^<]+)</p>')
    assert message.search(unknown.text).group(1) == message.search(wrong.text).group(1)  # type: ignore[attr-defined, union-attr]


def test_login_without_csrf_token_is_rejected_and_counts_nothing(
    runtime: Runtime, console: TestClient
) -> None:
    add_operator(runtime, "admin@example.com", "admin")
    login_form_token(console)
    response = console.post(
        "/console/login",
        data={"email": "admin@example.com", "password": PASSWORD, "csrf_token": "forged"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert auth.SESSION_COOKIE not in response.cookies
    assert account_row(runtime, "admin@example.com").failed_attempts == 0
    with runtime.work(read_only=True) as work:
        assert work.session.scalars(select(ConsoleSession)).all() == []


def test_sign_out_needs_the_session_csrf_token(runtime: Runtime, console: TestClient) -> None:
    add_operator(runtime, "admin@example.com", "admin")
    sign_in(console, "admin@example.com")
    forged = console.post("/console/logout", data={"csrf_token": "x"}, follow_redirects=False)
    assert forged.status_code == 403
    assert console.get("/console/dashboard").status_code == 200  # still signed in
    page = console.get("/console/dashboard")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    out = console.post(
        "/console/logout", data={"csrf_token": token.group(1)}, follow_redirects=False
    )
    assert out.status_code == 303
    with runtime.work(read_only=True) as work:
        rows = work.session.scalars(select(ConsoleSession)).all()
        assert [row.ended_at is not None for row in rows] == [True]


def test_idle_session_expires(runtime: Runtime, console: TestClient) -> None:
    add_operator(runtime, "admin@example.com", "admin")
    sign_in(console, "admin@example.com")
    with runtime.work() as work:
        row = work.session.scalars(select(ConsoleSession)).one()
        row.last_seen_at = system_now() - timedelta(minutes=31)
    response = console.get("/console/dashboard", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"
    with runtime.work(read_only=True) as work:
        assert work.session.scalars(select(ConsoleSession)).one().ended_at is not None


def test_merchant_staff_cannot_open_operator_pages(
    runtime: Runtime, console: TestClient, platform_headers: dict[str, str]
) -> None:
    api = TestClient(create_app(runtime))
    merchant = create_merchant(api, platform_headers)
    with runtime.work() as work:
        auth.create_account(
            work.session,
            email="staff@shop.example.com",
            password=PASSWORD,
            merchant_id=merchant["id"],
            now=work.now,
        )
    sign_in(console, "staff@shop.example.com")
    response = console.get("/console/dashboard")
    assert response.status_code == 403
    # Their start page is the merchant portal.
    home = console.get("/console", follow_redirects=False)
    assert home.headers["location"] == "/console/merchant"


def test_headers_and_cookie_flags(runtime: Runtime, console: TestClient) -> None:
    page = console.get("/console/login")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain HTTP in this test
    assert "<script" not in page.text


def test_cookies_are_secure_behind_tls(database_url: str) -> None:
    runtime = make_runtime(database_url, console_secure_cookies=True)
    try:
        add_operator(runtime, "admin@example.com", "admin")
        client = TestClient(create_app(runtime), base_url="https://testserver")
        response = post_password(client, "admin@example.com", PASSWORD)
        session_cookie = [
            value
            for name, value in response.headers.multi_items()  # type: ignore[attr-defined]
            if name == "set-cookie" and value.startswith(auth.SESSION_COOKIE)
        ]
        assert len(session_cookie) == 1
        assert "Secure" in session_cookie[0]
        assert "HttpOnly" in session_cookie[0]
        assert "SameSite=strict" in session_cookie[0] or "SameSite=Strict" in session_cookie[0]
    finally:
        runtime.database.dispose()


def test_dashboard_counts_complaints_awaiting_a_response(
    runtime: Runtime, console: TestClient, platform_headers: dict[str, str]
) -> None:
    from tests.factories import enrol

    api = TestClient(create_app(runtime))
    shopper = enrol(api, platform_headers)
    filed = api.post(
        "/v1/complaints",
        json={"shopper_id": shopper["id"], "category": "billing", "description": "double charge"},
        headers=platform_headers,
    )
    assert filed.status_code == 201, filed.text
    add_operator(runtime, "admin@example.com", "admin")
    sign_in(console, "admin@example.com")
    page = console.get("/console/dashboard?lang=en")
    assert '<strong id="complaints-waiting">1</strong>' in page.text
    assert '<span id="complaints-overdue">0 past their deadline</span>' in page.text
    assert '<strong id="open-risk-cases">0</strong>' in page.text
    assert (
        api.post(
            "/v1/sandbox/clock/advance", json={"days": 16}, headers=platform_headers
        ).status_code
        == 200
    )
    page = console.get("/console/dashboard?lang=en")
    assert '<span id="complaints-overdue">1 past their deadline</span>' in page.text
