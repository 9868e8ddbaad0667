"""A risk analyst clears a held order in a real browser: queue, case page, resolve."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.console.browser import screenshot, serve, sign_in_with_enrolment
from tests.console.test_browser_sign_in import browser, browser_runtime
from tests.console.test_risk_pages import HOSTILE, SHOP_ADDRESS, case_of, held_order
from tests.console.test_sign_in import PASSWORD, add_operator
from tests.factories import bearer, create_merchant
from usefirst.api.app import create_app
from usefirst.identity.service import create_api_key
from usefirst.risk import decision as risk_decision
from usefirst.runtime import Runtime

__all__ = ["browser", "browser_runtime"]


@pytest.fixture(autouse=True)
def no_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(risk_decision, "default_model", lambda: None)
    yield


def test_analyst_clears_a_held_order(browser_runtime: Runtime, browser: Any) -> None:
    with browser_runtime.work() as work:
        secret = create_api_key(work.session, kind="platform", now=work.now)
    platform = bearer(secret)
    api = TestClient(create_app(browser_runtime))
    merchant = create_merchant(api, platform, name=HOSTILE, address=SHOP_ADDRESS)
    order = held_order(api, platform, merchant, 30_000)
    case_id = case_of(browser_runtime, order["id"])
    add_operator(browser_runtime, "analyst@example.com", "risk_analyst")
    with serve(browser_runtime) as base_url:
        page = browser.new_page()
        dialogs: list[str] = []

        def on_dialog(dialog: Any) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        sign_in_with_enrolment(page, base_url, "analyst@example.com", PASSWORD)
        page.wait_for_url(f"{base_url}/console/dashboard")
        page.click("nav >> text=Risk review")
        page.wait_for_selector("#held-orders")
        screenshot(page, "risk-queue")
        page.click(f"#held-orders >> text={case_id}")
        page.wait_for_selector("#ring svg")
        assert page.inner_text("#case-status") == "open"
        assert page.locator("#ring svg g.node").count() == 3
        assert page.inner_text(".merchant-name") == HOSTILE  # shown as text, never run
        page.click("#assign-form button")
        page.wait_for_selector("p.ok")
        page.check("input[name=outcome][value=legitimate]")
        page.fill("input[name=note]", "The shopper works at the shop.")
        screenshot(page, "risk-case")
        page.click("#resolve-form button[type=submit]")
        page.wait_for_selector("#resolution")
        assert page.inner_text("#case-status") == "resolved"
        assert dialogs == []
    status = api.get(f"/v1/orders/{order['id']}", headers=platform).json()["status"]
    assert status == "approved"
