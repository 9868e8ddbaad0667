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
from sqlalchemy import func, select

from tests.collections.dunning_env import SHIPMENT
from tests.console.browser import ARTEFACTS, require_browser, serve, sign_in_with_enrolment
from tests.console.test_browser_sign_in import browser
from tests.console.test_collections_pages import DUE
from tests.console.test_compliance_pages import file_complaint
from tests.console.test_risk_pages import SHOP_ADDRESS
from tests.console.test_sign_in import PASSWORD, add_operator
from tests.disputes.dispute_env import PNG_BYTES, open_dispute_env
from tests.factories import bearer, checkout_body, create_merchant, enrol
from usefirst.console import (
    auth,
    collections_pages,
    compliance_pages,
    credential_pages,
    hardship_pages,
    merchant_pages,
    reconciliation_pages,
    risk_pages,
    support_pages,
)
from usefirst.console.codes import CODE_FAMILIES
from usefirst.disputes.models import DisputeEvidence
from usefirst.kit.models import ConfigVersion
from usefirst.privacy.models import AuditEntry
from usefirst.rails import service as rails_service
from usefirst.risk import decision as risk_decision
from usefirst.risk.models import RiskCase

__all__ = ["browser"]

WIDTHS = (1280, 1920)
SHOTS = ARTEFACTS / "walk"
# A stored code is ASCII in lower case; none may be a whole table cell, figure or badge on a
# Chinese page (the English labels of some codes are the same word, so English is checked by the
# untranslated marker only).
LATE_PHONE = "+8613912345678"
RAW_CODES = {
    code for codes in CODE_FAMILIES.values() for code in codes if re.fullmatch(r"[a-z_+\-]+", code)
}
CELLS = "td, th, strong, .badge, li, option, label, h1, h2, h3"
JSON_DUMP = re.compile(r'\{\s*"[A-Za-z_]+"\s*:')


@pytest.fixture(autouse=True)
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(risk_decision, "default_model", lambda: None)


@pytest.fixture(autouse=True)
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two rows a page, so that the walk opens every list's second page too."""
    monkeypatch.setattr(risk_pages, "CASE_PAGE_SIZE", 2)
    for module in (
        collections_pages,
        compliance_pages,
        credential_pages,
        merchant_pages,
        hardship_pages,
        support_pages,
        reconciliation_pages,
    ):
        monkeypatch.setattr(module, "PAGE_SIZE", 2)


def next_page_of(page: Any, base_url: str, path: str) -> str:
    """The path of a list's second page, as its own next-page link gives it."""
    page.goto(f"{base_url}{path}")
    href = page.locator("#next-page").get_attribute("href")
    assert href, f"{path} has no second page"
    return str(href)


def form_fields(page: Any, selector: str) -> dict[str, str]:
    """A rendered form's fields as the browser would send them."""
    fields: dict[str, str] = page.evaluate(
        "sel => Object.fromEntries(new FormData(document.querySelector(sel)))", selector
    )
    return fields


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
        late_shopper = env.enrol(phone=LATE_PHONE)
        late = env.buy(late_shopper["id"], 30_000)
        for amount in (52_000, 12_800):
            env.buy(env.enrol()["id"], amount)
        # A held order with its case: it ships to the merchant's own address.
        shop = create_merchant(client, platform, name="望京数码旗舰店", address=SHOP_ADDRESS)
        held_shopper = enrol(client, platform)
        held = client.post(
            "/v1/checkouts",
            headers=platform,
            json=checkout_body(held_shopper["id"], shop["id"], amount_minor=45_000),
        ).json()["order"]
        assert held["status"] == "review"
        for amount in (38_000, 26_000):
            more = client.post(
                "/v1/checkouts",
                headers=platform,
                json=checkout_body(enrol(client, platform)["id"], shop["id"], amount_minor=amount),
            ).json()["order"]
            assert more["status"] == "review"
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
        for category, text in (("billing", "重复扣款。"), ("privacy", "我的数据保存多久？")):
            file_complaint(client, platform, buyer["id"], category, text)
        clean_shopper = enrol(client, platform)  # owes nothing: erasure is allowed
        env.advance_to_day(DUE + timedelta(days=7), hour=15)
        # The shopper's options: three orders under hardship (one answered with a plan), a
        # shopper holding an overpayment, and reconciliation breaks of different ages.
        hardship_ids = []
        for amount in (24_000, 18_000, 9_900):
            relief = env.buy(env.enrol()["id"], amount, plan="instalments_3")
            opened = client.post(
                f"/v1/orders/{relief['id']}/hardship",
                headers={**platform, "Idempotency-Key": f"walk-{relief['id']}"},
                json={"reason": "生病住院，收入中断两个月"},
            )
            assert opened.status_code == 201, opened.text
            hardship_ids.append((relief["id"], opened.json()["id"]))
        planned = client.post(
            f"/v1/hardship-requests/{hardship_ids[2][1]}/decision",
            headers=env.collector,
            json={"decision": "plan", "plan_months": 4, "note": "分四个月"},
        )
        assert planned.status_code == 200, planned.text
        relief_order, relief_request = hardship_ids[0]
        overpaid = env.enrol()
        paid_order = env.buy(overpaid["id"], 10_000)
        env.pay(overpaid["id"], 10_000, paid_order["id"])
        env.pay(overpaid["id"], 2_500)
        extendable = env.buy(env.enrol()["id"], 36_000, plan="instalments_3")
        with runtime.work() as work:
            for days, kind, ours, theirs in (
                (1, "missing_on_provider", 15_000, None),
                (4, "amount_mismatch", 12_000, 11_000),
                (9, "unknown_charge", None, 8_800),
            ):
                rails_service.record_break(
                    work.session,
                    provider="sandbox",
                    statement_on=work.today - timedelta(days=days),
                    kind=kind,
                    line_key=f"walk-{days}",
                    provider_charge_id=f"sbx_ch_walk_{days}",
                    our_amount_minor=ours,
                    their_amount_minor=theirs,
                    now=work.now,
                )
        with runtime.work() as work:
            case_id = str(
                work.session.scalars(
                    select(RiskCase.id).where(RiskCase.status == "open").limit(1)
                ).one()
            )
        add_operator(runtime, "admin-walk@example.com", "admin")
        add_operator(runtime, "compliance-walk@example.com", "compliance")
        add_operator(runtime, "support-walk@example.com", "support")
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
            second_pages = {
                f"{name}-page-2": next_page_of(page, base_url, path)
                for name, path in (
                    ("held", "/console/risk/held"),
                    ("risk", "/console/risk?sort=largest"),
                    ("collections", "/console/collections"),
                    ("complaints", "/console/compliance/complaints"),
                    ("credentials", "/console/credentials"),
                    ("hardship", "/console/hardship"),
                    ("orders", "/console/orders"),
                    ("reconciliation", "/console/reconciliation"),
                )
            }
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
                    "held": "/console/risk/held",
                    "risk-by-merchant": "/console/risk?q=望京",
                    "collections-by-phone": "/console/collections?q=13912345678",
                    "collections-filtered": "/console/collections?sort=largest&min_amount=200",
                    "complaints-filtered": "/console/compliance/complaints?category=billing",
                    "audit-by-phone": "/console/compliance/audit?q=13912345678",
                    "credentials": "/console/credentials",
                    "hardship": "/console/hardship",
                    "hardship-request": f"/console/hardship/{relief_request}",
                    "orders": "/console/orders",
                    "order": f"/console/orders/{late['id']}",
                    "reconciliation": "/console/reconciliation",
                    **second_pages,
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

            # A control character in a form field: the request guard refuses it with a console
            # page that keeps what was typed (less the character) and says why beside the field.
            page.goto(f"{base_url}/console/compliance/complaints/{complaint}?lang=zh")
            page.fill("textarea[name=message]", "已核实\x1b，我们会改进。")
            page.click("form[action$='/responses'] button[type=submit]")
            page.wait_for_selector("#refused-form")
            assert page.locator("nav[aria-label=main] a").count() >= 5
            assert (
                page.input_value("#refused-form textarea[name=message]") == "已核实，我们会改进。"
            )
            assert re.search(r"[\u4e00-\u9fff]", page.inner_text("#refused-reason"))
            check_page(page, "admin/form-refused", "zh", axe, problems)
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 900})
                page.screenshot(
                    path=str(SHOTS / f"admin-form-refused-zh-{width}.png"), full_page=True
                )
            page.click("#refused-form button[type=submit]")  # sent again as shown: stored
            page.wait_for_url(re.compile(r".*responded=1"))

            # The rules saved from one preview, posted twice: one version, the second told so.
            page.goto(f"{base_url}/console/config/rules?lang=zh")
            page.click("form[action$='/check'] button[type=submit]")
            page.wait_for_selector("form[action$='/save']")
            page.fill("form[action$='/save'] input[name=note]", "走查")
            fields = form_fields(page, "form[action$='/save']")
            for _ in range(2):
                saved = page.request.post(f"{base_url}/console/config/rules/save", form=fields)
                assert saved.status == 200
            assert saved.url.endswith("?repeated=1")
            with runtime.work(read_only=True) as work:
                assert work.session.scalar(select(func.count()).select_from(ConfigVersion)) == 1
            page.close()

            page = browser.new_page()
            sign_in_with_enrolment(page, base_url, "support-walk@example.com", PASSWORD)
            page.wait_for_url(f"{base_url}/console/dashboard")
            walk(
                page,
                base_url,
                "support",
                {
                    "orders": "/console/orders",
                    "orders-page-2": next_page_of(page, base_url, "/console/orders"),
                    "orders-by-phone": "/console/orders?q=13912345678",
                    "order-in-hardship": f"/console/orders/{relief_order}",
                    "order-extendable": f"/console/orders/{extendable['id']}",
                    "shopper": f"/console/shoppers/{overpaid['id']}",
                    "hardship": "/console/hardship",
                    "hardship-page-2": next_page_of(page, base_url, "/console/hardship"),
                    "hardship-open": f"/console/hardship/{relief_request}",
                    "hardship-plan": f"/console/hardship/{hardship_ids[2][1]}",
                },
                axe,
                problems,
            )
            # A refused extension keeps what was typed, with the reason beside it in Chinese.
            order_path = f"/console/orders/{extendable['id']}"
            page.goto(f"{base_url}{order_path}?lang=zh")
            page.fill("#extension-days", "30")
            page.click("#extension-form button[type=submit]")
            page.wait_for_selector("#extension-error")
            assert page.input_value("#extension-days") == "30"
            assert re.search(r"[\u4e00-\u9fff]", page.inner_text("#extension-error"))
            check_page(page, "support/extension-refused", "zh", axe, problems)
            page.screenshot(
                path=str(SHOTS / "support-extension-refused-zh-1280.png"), full_page=True
            )
            # The extension done, then the form posted twice answers a request once.
            page.fill("#extension-days", "5")
            page.click("#extension-form button[type=submit]")
            page.wait_for_selector("#extended")
            page.screenshot(path=str(SHOTS / "support-extended-zh-1280.png"), full_page=True)
            request_path = f"/console/hardship/{relief_request}"
            page.goto(f"{base_url}{request_path}?lang=zh")
            page.click("label[for='decision-settlement']")
            assert page.is_checked("#decision-settlement")
            page.fill("#settlement-amount", "150.00")
            page.fill("#decision-note-input", "一次性结清")
            fields = form_fields(page, "#decision-form")
            for _ in range(2):
                answered = page.request.post(f"{base_url}{request_path}/decision", form=fields)
                assert answered.status == 200
            assert answered.url.endswith("?repeated=1")
            page.goto(f"{base_url}{request_path}?lang=zh")
            assert page.inner_text("#hardship-status") == "已提供减免结清"
            assert page.inner_text("#settlement-terms").startswith("支付 ¥150.00 即结清")
            page.screenshot(
                path=str(SHOTS / "support-hardship-offered-zh-1280.png"), full_page=True
            )
            # The overpayment refunded through the platform.
            page.goto(f"{base_url}/console/shoppers/{overpaid['id']}?lang=zh")
            page.click("label[for='via-platform']")
            page.fill("#refund-ref", "walk-transfer-1")
            page.click("#refund-form button[type=submit]")
            page.wait_for_selector("#refunded")
            assert page.inner_text("#credit-held") == "¥0.00"
            page.screenshot(path=str(SHOTS / "support-refunded-zh-1280.png"), full_page=True)
            response = page.goto(f"{base_url}/console/reconciliation?lang=zh")
            assert response.status == 403
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
            # Erasure: a mistyped confirmation is kept with the reason beside it; the form
            # posted twice erases once.
            shopper_path = f"/console/compliance/shoppers/{clean_shopper['id']}"
            page.goto(f"{base_url}{shopper_path}?lang=zh")
            page.fill("#erase-confirm", "shp_typo")
            page.click("#erase")
            page.wait_for_selector("#erasure-error")
            assert page.input_value("#erase-confirm") == "shp_typo"
            assert re.search(r"[\u4e00-\u9fff]", page.inner_text("#erasure-error"))
            page.fill("#erase-confirm", clean_shopper["id"])
            fields = form_fields(page, f"form[action='{shopper_path}/erasure']")
            for _ in range(2):
                erased = page.request.post(f"{base_url}{shopper_path}/erasure", form=fields)
                assert erased.status == 200
            assert erased.url.endswith("?repeated=1")
            with runtime.work(read_only=True) as work:
                erasures = work.session.scalar(
                    select(func.count())
                    .select_from(AuditEntry)
                    .where(
                        AuditEntry.action == "shopper.erasure",
                        AuditEntry.subject_shopper_id == clean_shopper["id"],
                    )
                )
            assert erasures == 1
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
                    "orders-filtered": "/console/merchant/orders?sort=largest&min_amount=100",
                },
                axe,
                problems,
            )
            # Evidence posted twice with one form: stored once, the second post told so.
            page.goto(f"{base_url}/console/merchant/disputes/{dispute['id']}?lang=zh")
            fields = form_fields(page, "form[action$='/evidence']")
            with runtime.work(read_only=True) as work:
                before = work.session.scalar(select(func.count()).select_from(DisputeEvidence))
            for _ in range(2):
                sent = page.request.post(
                    f"{base_url}/console/merchant/disputes/{dispute['id']}/evidence",
                    multipart={
                        **fields,
                        "file": {
                            "name": "receipt.png",
                            "mimeType": "image/png",
                            "buffer": PNG_BYTES + b"2",
                        },
                    },
                )
                assert sent.status == 200
            assert sent.url.endswith("?repeated=1")
            with runtime.work(read_only=True) as work:
                after = work.session.scalar(select(func.count()).select_from(DisputeEvidence))
            assert after == before + 1
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
