"""Each role walks its pages in a real browser, in Chinese and in English, with data on every page:
no page shows a code without its label or a JSON dump, the resolve form's labels are tied to their
inputs, a refused form keeps what was typed, error pages keep the menu, and axe-core finds no
serious or critical accessibility problem. Screenshots of every page at 1280 and 1920 px wide, in
both languages, land in test-artifacts/console/walk/."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.collections.dunning_env import SHIPMENT
from tests.console.browser import ARTEFACTS, require_browser, serve, sign_in_with_enrolment
from tests.console.test_browser_sign_in import browser
from tests.console.test_collections_pages import DUE
from tests.console.test_compliance_pages import file_complaint
from tests.console.test_risk_pages import SHOP_ADDRESS
from tests.console.test_sign_in import PASSWORD, add_operator
from tests.disputes.dispute_env import PNG_BYTES, open_dispute_env
from tests.factories import bearer, checkout_body, create_merchant, enrol
from usefirst.console import auth
from usefirst.console.codes import CODE_FAMILIES
from usefirst.risk import decision as risk_decision
from usefirst.risk.models import RiskCase

__all__ = ["browser"]

WIDTHS = (1280, 1920)
SHOTS = ARTEFACTS / "walk"
# A stored code is ASCII in lower case; none may be a whole table cell, figure or badge on a
# Chinese page (the English labels of some codes are the same word, so English is checked by the
# untranslated marker only).
RAW_CODES = {
    code for codes in CODE_FAMILIES.values() for code in codes if re.fullmatch(r"[a-z_+\-]+", code)
}
CELLS = "td, th, strong, .badge, li, option, label, h1, h2, h3"
JSON_DUMP = re.compile(r'\{\s*"[A-Za-z_]+"\s*:')


@pytest.fixture(autouse=True)
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(risk_decision, "default_model", lambda: None)


def _axe() -> Any:
    from axe_playwright_python.sync_playwright import Axe

    return Axe()


def check_page(page: Any, name: str, language: str, axe: Any, problems: list[str]) -> None:
    """Everything a walked page must satisfy; problems are collected so that one run reports
    them all."""
    untranslated = page.locator(".untranslated").evaluate_all("els => els.map(e => e.outerHTML)")
    if untranslated:
        problems.append(f"{name} [{language}]: codes without a label: {untranslated}")
    text = page.inner_text("body")
    if JSON_DUMP.search(text):
        problems.append(f"{name} [{language}]: a JSON dump on the page")
    if language == "zh":
        raw = sorted({cell.strip() for cell in page.locator(CELLS).all_inner_texts()} & RAW_CODES)
        if raw:
            problems.append(f"{name} [zh]: raw codes shown: {raw}")
        results = axe.run(page, options={"resultTypes": ["violations"]})
        assert results.response["testEngine"]["name"] == "axe-core"  # the check really ran
        serious = [
            f"{violation['id']} ({len(violation['nodes'])})"
            for violation in results.response["violations"]
            if violation.get("impact") in ("serious", "critical")
        ]
        if serious:
            problems.append(f"{name}: axe serious/critical: {serious}")
    # The menu on one line (it wrapped to two lines at 1440 px and four at 1280 px in English).
    menu_lines = page.evaluate(
        "(() => { const nav = document.querySelector('nav[aria-label=main]');"
        " if (!nav) return 1; const line = parseFloat(getComputedStyle(nav).lineHeight) || 21;"
        " return Math.round(nav.getBoundingClientRect().height / line); })()"
    )
    if menu_lines > 1:
        problems.append(f"{name} [{language}]: the menu takes {menu_lines} lines")
    # Nothing wider than the window at 1280 px: the layout holds from 1280 up.
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    if overflow > 0:
        problems.append(f"{name} [{language}]: {overflow} px wider than the window")


def walk(
    page: Any, base_url: str, role: str, paths: dict[str, str], axe: Any, problems: list[str]
) -> None:
    for language in ("zh", "en"):
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            for name, path in paths.items():
                separator = "&" if "?" in path else "?"
                page.goto(f"{base_url}{path}{separator}lang={language}")
                if width == WIDTHS[0]:
                    check_page(page, f"{role}/{name}", language, axe, problems)
                page.screenshot(
                    path=str(SHOTS / f"{role}-{name}-{language}-{width}.png"), full_page=True
                )


def test_every_role_walks_its_pages_in_both_languages(
    sqlite_template: Path, tmp_path: Path, browser: Any
) -> None:
    require_browser()
    database = tmp_path / "walk.db"
    shutil.copyfile(sqlite_template, database)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with open_dispute_env(f"sqlite:///{database}", tmp_path) as denv:
        env, client, platform = denv.env, denv.client, denv.platform
        runtime = env.runtime
        # An account in collections, seven days late, and one the shopper promised to pay.
        late_shopper = env.enrol()
        late = env.buy(late_shopper["id"], 30_000)
        # A held order with its case: it ships to the merchant's own address.
        shop = create_merchant(client, platform, name="望京数码旗舰店", address=SHOP_ADDRESS)
        held_shopper = enrol(client, platform)
        held = client.post(
            "/v1/checkouts",
            headers=platform,
            json=checkout_body(held_shopper["id"], shop["id"], amount_minor=45_000),
        ).json()["order"]
        assert held["status"] == "review"
        # A disputed order with evidence, on the merchant whose staff walk the portal.
        merchant = env.merchant()
        buyer = env.enrol()
        body = checkout_body(buyer["id"], merchant["id"], 26_800)
        disputed = client.post("/v1/checkouts", headers=platform, json=body).json()["order"]
        shipped = client.post(
            f"/v1/orders/{disputed['id']}/ship", headers=bearer(merchant["api_key"]), json=SHIPMENT
        )
        assert shipped.status_code == 200, shipped.text
        dispute = denv.open(disputed["id"])
        uploaded = denv.upload(
            dispute["id"],
            PNG_BYTES,
            headers=bearer(merchant["api_key"]),
            filename="parcel.png",
            content_type="image/png",
        )
        assert uploaded.status_code == 201, uploaded.text
        complaint = file_complaint(
            client, platform, late_shopper["id"], "collection_conduct", "催收电话打到了我的单位。"
        )
        env.advance_to_day(DUE + timedelta(days=7), hour=15)
        with runtime.work() as work:
            case_id = str(
                work.session.scalars(
                    select(RiskCase.id).where(RiskCase.status == "open").limit(1)
                ).one()
            )
        add_operator(runtime, "admin-walk@example.com", "admin")
        add_operator(runtime, "compliance-walk@example.com", "compliance")
        with runtime.work() as work:
            auth.create_account(
                work.session,
                email="staff@shop.example",
                password=PASSWORD,
                merchant_id=merchant["id"],
                now=work.now,
            )

        axe = _axe()
        problems: list[str] = []
        with serve(runtime) as base_url:
            page = browser.new_page()
            sign_in_with_enrolment(page, base_url, "admin-walk@example.com", PASSWORD)
            page.wait_for_url(f"{base_url}/console/dashboard")
            walk(
                page,
                base_url,
                "admin",
                {
                    "dashboard": "/console/dashboard",
                    "collections": "/console/collections",
                    "account": f"/console/collections/{late['id']}",
                    "risk": "/console/risk",
                    "case": f"/console/risk/cases/{case_id}",
                    "audit": "/console/compliance/audit",
                    "complaints": "/console/compliance/complaints",
                    "complaint": f"/console/compliance/complaints/{complaint}",
                    "rules": "/console/config/rules",
                    "ladder": "/console/config/ladder",
                    "unknown-path": "/console/nonexistent",
                    "unknown-order": "/console/collections/ord_nope",
                    "bad-query": "/console/compliance/audit?before=abc",
                },
                axe,
                problems,
            )
            # Error pages are console pages: the menu stays, the status is right.
            for path, status in (
                ("/console/nonexistent", 404),
                ("/console/collections/ord_nope", 404),
                ("/console/config/nope", 404),
                ("/console/compliance/audit?before=abc", 422),
            ):
                response = page.goto(f"{base_url}{path}")
                assert response.status == status, path
                assert page.locator("nav[aria-label=main] a").count() >= 5, path

            # The resolve form: every radio button has its own label.
            page.goto(f"{base_url}/console/risk/cases/{case_id}?lang=zh")
            for outcome in ("confirmed_fraud", "legitimate"):
                radio = page.locator(f"#resolve-form input[value={outcome}]")
                radio_id = radio.get_attribute("id")
                assert page.locator(f"label[for='{radio_id}']").count() == 1
            page.click("label[for='outcome-legitimate']")
            assert page.is_checked("#resolve-form input[value=legitimate]")
            assert page.locator("label[for='resolve-note']").count() == 1

            # A refused call record keeps what was typed: the second call of the day is refused.
            page.goto(f"{base_url}/console/collections/{late['id']}?lang=zh")
            page.select_option("select[name=outcome]", "no_answer")
            page.fill("input[name=note]", "第一次")
            page.click("form[action$='/calls'] button[type=submit]")
            page.wait_for_selector("p.ok")
            page.select_option("select[name=outcome]", "promise_to_pay")
            page.fill("input[name=promise_amount]", "120.50")
            page.fill("input[name=note]", "下周五发工资后还")
            page.click("form[action$='/calls'] button[type=submit]")
            page.wait_for_selector("p.error")
            assert page.input_value("select[name=outcome]") == "promise_to_pay"
            assert page.input_value("input[name=promise_amount]") == "120.50"
            assert page.input_value("input[name=note]") == "下周五发工资后还"
            assert re.search(r"[\u4e00-\u9fff]", page.inner_text("p.error"))
            page.close()

            page = browser.new_page()
            sign_in_with_enrolment(page, base_url, "compliance-walk@example.com", PASSWORD)
            page.wait_for_url(f"{base_url}/console/dashboard")
            walk(
                page,
                base_url,
                "compliance",
                {"shopper": f"/console/compliance/shoppers/{late_shopper['id']}"},
                axe,
                problems,
            )
            # A page this role may not open: refused on a console page that keeps the menu and
            # links only to pages the role opens.
            response = page.goto(f"{base_url}/console/risk?lang=zh")
            assert response.status == 403
            for href in page.locator("main a").evaluate_all("els => els.map(e => e.href)"):
                assert page.request.get(href).status == 200, href
            page.close()

            page = browser.new_page()
            sign_in_with_enrolment(page, base_url, "staff@shop.example", PASSWORD)
            page.wait_for_url(f"{base_url}/console/merchant")
            walk(
                page,
                base_url,
                "merchant",
                {
                    "home": "/console/merchant",
                    "orders": "/console/merchant/orders",
                    "order": f"/console/merchant/orders/{disputed['id']}",
                    "disputes": "/console/merchant/disputes",
                    "dispute": f"/console/merchant/disputes/{dispute['id']}",
                    "settlements": "/console/merchant/settlements",
                },
                axe,
                problems,
            )
            response = page.goto(f"{base_url}/console/dashboard?lang=zh")
            assert response.status == 403
            assert page.locator("nav[aria-label=main] a").count() >= 1
            for href in page.locator("main a").evaluate_all("els => els.map(e => e.href)"):
                assert page.request.get(href).status == 200, href
            # The merchant portal is usable on a phone: nothing wider than a 390-px screen.
            page.set_viewport_size({"width": 390, "height": 844})
            for path in ("/console/merchant", "/console/merchant/orders"):
                page.goto(f"{base_url}{path}?lang=zh")
                overflow = page.evaluate("document.documentElement.scrollWidth - 390")
                if overflow > 0:
                    problems.append(f"merchant{path} at 390 px: {overflow} px too wide")
                page.screenshot(
                    path=str(SHOTS / f"merchant-{path.rsplit('/', 1)[-1]}-zh-390.png"),
                    full_page=True,
                )
            page.close()
        assert problems == [], "\n".join(problems)
