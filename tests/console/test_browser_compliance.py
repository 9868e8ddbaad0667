"""Compliance in a real browser: sign in, read the verified audit log, answer a complaint."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.console.browser import require_browser, screenshot, serve, sign_in_with_enrolment
from tests.console.test_browser_sign_in import browser, browser_runtime
from tests.console.test_sign_in import PASSWORD, add_operator
from tests.factories import bearer, enrol
from tests.privacy.privacy_env import operator_headers
from usefirst.api.app import create_app
from usefirst.identity.service import create_api_key
from usefirst.privacy import complaints as complaint_service
from usefirst.runtime import Runtime

__all__ = ["browser", "browser_runtime"]


def test_compliance_reads_the_audit_log_and_answers_a_complaint(
    browser_runtime: Runtime, browser: Any
) -> None:
    require_browser()
    with browser_runtime.work() as work:
        platform = bearer(create_api_key(work.session, kind="platform", now=work.now))
    with TestClient(create_app(browser_runtime)) as client:
        shopper = enrol(client, platform)
        admin = operator_headers(browser_runtime, "admin", "admin-api@example.com")
        read = client.get(f"/v1/shoppers/{shopper['id']}?unmasked=true", headers=admin)
        assert read.status_code == 200, read.text
        filed = client.post(
            "/v1/complaints",
            headers=platform,
            json={
                "shopper_id": shopper["id"],
                "category": "privacy",
                "description": "Who has been reading my data?",
            },
        )
        assert filed.status_code == 201, filed.text
        complaint_id = filed.json()["id"]
    add_operator(browser_runtime, "compliance@example.com", "compliance")

    with serve(browser_runtime) as base_url:
        page = browser.new_page()
        sign_in_with_enrolment(page, base_url, "compliance@example.com", PASSWORD)
        page.wait_for_url(f"{base_url}/console/dashboard")
        page.click("nav >> text=PII access audit log")
        page.wait_for_selector("#audit")
        assert page.inner_text("#chain-status") == "Audit chain intact. Rows checked: 1."
        assert "shopper.read_unmasked" in page.inner_text("#audit")
        screenshot(page, "compliance-audit")

        page.click("nav >> text=Complaints")
        page.wait_for_selector("#complaints")
        page.click(f"text={complaint_id}")
        page.wait_for_selector("#access-trail")
        assert "shopper.read_unmasked" in page.inner_text("#access-trail")
        page.fill("textarea[name=message]", "Only our admin, to check your identity.")
        page.click("main form button[type=submit]")
        page.wait_for_selector("p.ok")
        assert page.inner_text("#complaint-status") == "answered"
        assert "Only our admin, to check your identity." in page.inner_text("#responses")
        screenshot(page, "compliance-complaint")
    with browser_runtime.work(read_only=True) as work:
        complaint = complaint_service.get_complaint(work.session, complaint_id=complaint_id)
        assert complaint.status == "answered" and complaint.responded_at is not None
