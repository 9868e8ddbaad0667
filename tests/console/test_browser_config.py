"""A risk analyst edits the rules in a real browser: a bad file is rejected with its lines and
nothing changes; a fixed one is backtested, then saved and in force."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.console.browser import screenshot, serve, sign_in_with_enrolment
from tests.console.test_browser_sign_in import browser, browser_runtime
from tests.console.test_config_pages import BAD_RULES, NEW_RULES, rules_in_force, version_count
from tests.console.test_risk_pages import no_model
from tests.console.test_sign_in import PASSWORD, add_operator
from tests.factories import bearer, checkout_body, create_merchant, enrol
from usefirst.api.app import create_app
from usefirst.identity.service import create_api_key
from usefirst.runtime import Runtime

__all__ = ["browser", "browser_runtime", "no_model"]


def test_analyst_edits_rules_bad_file_rejected_then_saved(
    browser_runtime: Runtime, browser: Any, tmp_path: Path
) -> None:
    with browser_runtime.work() as work:
        secret = create_api_key(work.session, kind="platform", now=work.now)
    platform = bearer(secret)
    api = TestClient(create_app(browser_runtime))
    merchant = create_merchant(api, platform)
    for _ in range(2):
        shopper = enrol(api, platform)
        placed = api.post("/v1/checkouts", headers=platform, json=checkout_body(
            shopper["id"], merchant["id"], amount_minor=30_000))  # fmt: skip
        assert placed.json()["order"]["status"] == "approved"
    add_operator(browser_runtime, "analyst@example.com", "risk_analyst")
    bad_file = tmp_path / "my-rules.toml"
    bad_file.write_text(BAD_RULES, encoding="utf-8")
    with serve(browser_runtime) as base_url:
        page = browser.new_page()
        sign_in_with_enrolment(page, base_url, "analyst@example.com", PASSWORD)
        page.wait_for_url(f"{base_url}/console/dashboard")
        page.click("nav >> text=Risk rules")
        page.wait_for_selector("textarea[name=content]")
        assert "no version saved in the console yet" in page.inner_text("#in-force")

        page.set_input_files("input[name=upload]", str(bad_file))
        page.click("main form button[type=submit]")
        page.wait_for_selector("#problems")
        assert page.locator("#problems .problem-line").all_inner_texts()[0] == "line 17"
        assert page.locator("#problems .problem-reason").all_inner_texts()[0] == (
            "thresholds.review_at must be a positive integer"
        )
        assert page.locator("#problems li").count() == 2
        screenshot(page, "config-rules-rejected")
        assert version_count(browser_runtime) == 0
        assert rules_in_force(browser_runtime) == "2026-12-07.3"

        # Fixed in the text area this time (the file input is empty again).
        page.fill("textarea[name=content]", NEW_RULES)
        page.click("main form button[type=submit]")
        page.wait_for_selector("#valid")
        assert page.inner_text("#changed-outcomes") == "Orders whose outcome would change: 2 of 2"
        assert '+id = "big_orders"' in page.inner_text("#diff")
        screenshot(page, "config-rules-preview")
        page.fill("input[name=note]", "hold orders of 250 yuan or more")
        page.click("text=Save as a new version")
        page.wait_for_selector("p.ok")
        assert page.inner_text("p.ok") == "Saved as version 1; it is in force now."
        assert "hold orders of 250 yuan or more" in page.inner_text("#versions")
    assert version_count(browser_runtime) == 1
    assert rules_in_force(browser_runtime) == "ops-big-orders"
