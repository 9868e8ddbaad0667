"""Sign-in in a real browser: TOTP enrolment, lockout, role separation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_runtime
from tests.console.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    require_browser,
    screenshot,
    serve,
    sign_in_with_enrolment,
)
from tests.console.test_sign_in import PASSWORD, add_operator
from tests.factories import create_merchant
from usefirst.api.app import create_app
from usefirst.console import auth
from usefirst.identity.service import create_api_key
from usefirst.runtime import Runtime


@pytest.fixture
def browser_runtime(sqlite_template: Path, tmp_path: Path) -> Iterator[Runtime]:
    require_browser()
    path = tmp_path / "usefirst.db"
    path.write_bytes(sqlite_template.read_bytes())
    runtime = make_runtime(f"sqlite:///{path}")
    yield runtime
    runtime.database.dispose()


@pytest.fixture
def browser() -> Iterator[Any]:
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def test_first_sign_in_enrols_totp_and_opens_the_dashboard(
    browser_runtime: Runtime, browser: Any
) -> None:
    add_operator(browser_runtime, "admin@example.com", "admin")
    with serve(browser_runtime) as base_url:
        page = browser.new_page()
        page.goto(f"{base_url}/console/dashboard")
        assert page.url.endswith("/console/login")
        screenshot(page, "login")
        sign_in_with_enrolment(page, base_url, "admin@example.com", PASSWORD)
        page.wait_for_url(f"{base_url}/console/dashboard")
        assert page.inner_text("#outstanding") == "¥0.00"
        assert page.locator("figure.chart").count() == 3
        screenshot(page, "dashboard")
        cookies = {cookie["name"]: cookie for cookie in page.context.cookies()}
        session_cookie = cookies[auth.SESSION_COOKIE]
        assert session_cookie["httpOnly"] is True
        assert session_cookie["sameSite"] == "Strict"
        # Signing out ends the session: the dashboard asks for a sign-in again.
        page.click("header form button")
        page.wait_for_url(f"{base_url}/console/login")
        page.goto(f"{base_url}/console/dashboard")
        assert page.url.endswith("/console/login")


def test_five_wrong_passwords_lock_the_account_in_the_browser(
    browser_runtime: Runtime, browser: Any
) -> None:
    add_operator(browser_runtime, "collector@example.com", "collector")
    with serve(browser_runtime) as base_url:
        page = browser.new_page()
        for _ in range(5):
            page.goto(f"{base_url}/console/login?lang=en")
            page.fill("input[name=email]", "collector@example.com")
            page.fill("input[name=password]", "not my password")
            page.click("main button[type=submit]")
        assert "locked until" in page.inner_text("p.error")
        page.goto(f"{base_url}/console/login?lang=en")
        page.fill("input[name=email]", "collector@example.com")
        page.fill("input[name=password]", PASSWORD)
        page.click("main button[type=submit]")
        assert "locked until" in page.inner_text("p.error")
        screenshot(page, "locked")


def test_merchant_staff_is_refused_operator_pages(browser_runtime: Runtime, browser: Any) -> None:
    with browser_runtime.work() as work:
        platform_key = create_api_key(work.session, kind="platform", now=work.now)
    merchant = create_merchant(
        TestClient(create_app(browser_runtime)), {"Authorization": f"Bearer {platform_key}"}
    )
    with browser_runtime.work() as work:
        auth.create_account(
            work.session,
            email="staff@shop.example.com",
            password=PASSWORD,
            merchant_id=merchant["id"],
            now=work.now,
        )
    with serve(browser_runtime) as base_url:
        page = browser.new_page()
        sign_in_with_enrolment(page, base_url, "staff@shop.example.com", PASSWORD)
        page.wait_for_load_state()
        response = page.goto(f"{base_url}/console/dashboard?lang=en")
        assert response is not None and response.status == 403
        assert "does not give access" in page.inner_text("p.error")


def test_collector_cannot_open_a_risk_case(browser_runtime: Runtime, browser: Any) -> None:
    add_operator(browser_runtime, "collector@example.com", "collector")
    with serve(browser_runtime) as base_url:
        page = browser.new_page()
        sign_in_with_enrolment(page, base_url, "collector@example.com", PASSWORD)
        page.wait_for_url(f"{base_url}/console/dashboard")
        assert page.locator("nav a[href='/console/risk']").count() == 0
        response = page.goto(f"{base_url}/console/risk/cases/cas_01ANYCASE?lang=en")
        assert response is not None and response.status == 403
        assert "does not give access" in page.inner_text("p.error")
        response = page.goto(f"{base_url}/console/risk?lang=en")
        assert response is not None and response.status == 403
