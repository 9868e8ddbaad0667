"""A collector records a call outcome in a real browser."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tests.collections.dunning_env import open_env
from tests.console.browser import require_browser, screenshot, serve, sign_in_with_enrolment
from tests.console.test_browser_sign_in import browser
from tests.console.test_collections_pages import DUE
from tests.console.test_sign_in import PASSWORD
from usefirst.console import auth
from usefirst.identity.models import Operator

__all__ = ["browser"]


def test_collector_records_a_promise_and_is_refused_a_second_call(
    sqlite_template: Path, tmp_path: Path, browser: Any
) -> None:
    require_browser()
    database = tmp_path / "usefirst.db"
    database.write_bytes(sqlite_template.read_bytes())
    with open_env(f"sqlite:///{database}", tmp_path) as env:
        shopper = env.enrol()
        order = env.buy(shopper["id"], 30_000)
        env.advance_to_day(DUE + timedelta(days=7))
        with env.runtime.work() as work:
            collector = work.session.scalar(
                select(Operator).where(Operator.email == "collector@example.com")
            )
            assert collector is not None
            auth.create_account(
                work.session,
                email="collector@example.com",
                password=PASSWORD,
                operator_id=collector.id,
                now=work.now,
            )
        with serve(env.runtime) as base_url:
            page = browser.new_page()
            sign_in_with_enrolment(page, base_url, "collector@example.com", PASSWORD)
            page.wait_for_url(f"{base_url}/console/dashboard")
            page.click("nav >> text=Collections")
            page.wait_for_selector("#queue")
            screenshot(page, "collections-queue")
            page.click(f"text={order['id']}")
            page.wait_for_selector("#contacts")
            page.select_option("select[name=outcome]", "promise_to_pay")
            page.fill("input[name=promise_on]", (DUE + timedelta(days=10)).isoformat())
            page.fill("input[name=promise_amount]", "301.05")
            page.fill("input[name=note]", "will pay on payday")
            page.click("main form button[type=submit]")
            page.wait_for_selector("p.ok")
            assert "will pay on payday" in page.inner_text("#contacts")
            screenshot(page, "collections-account")
            page.select_option("select[name=outcome]", "reached")
            page.click("main form button[type=submit]")
            assert page.inner_text("p.error") == "The shopper was already called today."
        calls = [c for c in env.contacts(shopper["id"]) if c["channel"] == "call"]
        assert [(c["outcome"], c["promise_minor"]) for c in calls] == [("promise_to_pay", 30_105)]
