"""Console forms and error pages: a form posted twice stores one record and says so; a refused
form keeps what was typed, with the reason in the operator's language; unknown paths, ids and bad
query strings under /console answer with a console page that keeps the menu."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from tests.collections.dunning_env import open_env
from tests.console.test_collections_pages import DUE, csrf_of
from tests.console.test_compliance_pages import file_complaint, responses_to
from tests.console.test_sign_in import PASSWORD, add_operator, sign_in
from tests.factories import enrol
from usefirst.console import auth
from usefirst.console.web import CONTENT_SECURITY_POLICY
from usefirst.identity.models import Operator
from usefirst.runtime import Runtime


def form_token_of(html: str) -> str:
    match = re.search(r'name="form_token" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def test_a_complaint_reply_posted_twice_is_stored_once(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    shopper = enrol(client, platform_headers)
    complaint = file_complaint(client, platform_headers, shopper["id"], "billing", "charged twice")
    add_operator(runtime, "compliance@example.com", "compliance")
    sign_in(client, "compliance@example.com")
    page = client.get(f"/console/compliance/complaints/{complaint}?lang=zh")
    form = {
        "csrf_token": csrf_of(page.text),
        "form_token": form_token_of(page.text),
        "message": "已退还重复扣款。",
    }
    first = client.post(
        f"/console/compliance/complaints/{complaint}/responses", data=form, follow_redirects=False
    )
    assert first.status_code == 303
    assert first.headers["location"].endswith("?responded=1")
    second = client.post(
        f"/console/compliance/complaints/{complaint}/responses", data=form, follow_redirects=False
    )
    assert second.status_code == 303
    assert second.headers["location"].endswith("?repeated=1")
    assert responses_to(runtime, complaint) == 1
    told = client.get(second.headers["location"])
    assert "该表单已提交过，本次未做任何更改。" in told.text
    # A fresh rendering of the form carries a new token: a second, deliberate reply is stored.
    again = client.get(f"/console/compliance/complaints/{complaint}")
    assert form_token_of(again.text) != form["form_token"]
    third = client.post(
        f"/console/compliance/complaints/{complaint}/responses",
        data={**form, "form_token": form_token_of(again.text), "message": "补充说明。"},
        follow_redirects=False,
    )
    assert third.headers["location"].endswith("?responded=1")
    assert responses_to(runtime, complaint) == 2


def test_a_refused_call_keeps_what_was_typed_and_a_repeat_records_nothing(
    database_url: str, tmp_path: Path
) -> None:
    with open_env(database_url, tmp_path) as env:
        shopper = env.enrol()
        order = env.buy(shopper["id"], 30_000)
        env.advance_to_day(DUE + timedelta(days=7))
        with env.runtime.work() as work:
            collector = work.session.query(Operator).filter_by(email="collector@example.com").one()
            auth.create_account(
                work.session,
                email="collector@example.com",
                password=PASSWORD,
                operator_id=collector.id,
                now=work.now,
            )
        client = env.client
        sign_in(client, "collector@example.com")
        path = f"/console/collections/{order['id']}"
        page = client.get(f"{path}?lang=zh")
        form = {
            "csrf_token": csrf_of(page.text),
            "form_token": form_token_of(page.text),
            "outcome": "no_answer",
            "note": "第一次",
        }
        first = client.post(f"{path}/calls", data=form, follow_redirects=False)
        assert first.status_code == 303
        repeat = client.post(f"{path}/calls", data=form, follow_redirects=False)
        assert repeat.headers["location"] == f"{path}?repeated=1"
        calls = [c for c in env.contacts(shopper["id"]) if c["channel"] == "call"]
        assert len(calls) == 1
        # Refused (one call a day): the page says why, in Chinese, and keeps the typed values.
        page = client.get(path)
        refused = client.post(
            f"{path}/calls",
            data={
                "csrf_token": csrf_of(page.text),
                "form_token": form_token_of(page.text),
                "outcome": "promise_to_pay",
                "promise_amount": "120.50",
                "note": "下周五发工资后还",
            },
        )
        assert refused.status_code == 409
        assert re.search(
            r'<p class="error" role="alert" id="call-error">[^<]*[\u4e00-\u9fff]', refused.text
        )
        assert '<option value="promise_to_pay" selected>' in refused.text
        assert 'value="120.50"' in refused.text
        assert 'value="下周五发工资后还"' in refused.text
        assert len([c for c in env.contacts(shopper["id"]) if c["channel"] == "call"]) == 1


def test_error_pages_are_console_pages(runtime: Runtime, client: TestClient) -> None:
    add_operator(runtime, "admin@example.com", "admin")
    sign_in(client, "admin@example.com")
    for path, status in (
        ("/console/nonexistent", 404),
        ("/console/collections/ord_nope", 404),
        ("/console/config/nope", 404),
        ("/console/compliance/audit?before=abc", 422),
    ):
        response = client.get(f"{path}{'&' if '?' in path else '?'}lang=zh")
        assert response.status_code == status, path
        assert response.headers["content-type"].startswith("text/html"), path
        assert '<nav aria-label="main">' in response.text, path
        assert 'href="/console/dashboard"' in response.text, path
    # The API keeps answering in JSON.
    assert client.get("/v1/nonexistent").headers["content-type"].startswith("application/json")


def test_a_merchant_refused_an_operator_page_keeps_the_portal_menu(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    from tests.factories import create_merchant

    merchant = create_merchant(client, platform_headers)
    with runtime.work() as work:
        auth.create_account(
            work.session,
            email="staff@shop.example",
            password=PASSWORD,
            merchant_id=merchant["id"],
            now=work.now,
        )
    sign_in(client, "staff@shop.example")
    refused = client.get("/console/dashboard?lang=zh")
    assert refused.status_code == 403
    assert '<nav aria-label="main">' in refused.text
    main = refused.text.split("<main>", 1)[1]
    assert re.findall(r'href="([^"]+)"', main) == ["/console/merchant"]
    assert client.get("/console/merchant").status_code == 200


def test_config_save_posted_twice_stores_one_version(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    from tests.console.test_config_pages import NEW_RULES, check_in_editor, version_count

    add_operator(runtime, "analyst@example.com", "risk_analyst")
    sign_in(client, "analyst@example.com")
    preview = check_in_editor(client, "rules", NEW_RULES)
    assert preview.status_code == 200
    form = {
        "csrf_token": csrf_of(preview.text),
        "form_token": form_token_of(preview.text),
        "based_on": "0",
        "content": NEW_RULES,
        "note": "hold big orders",
    }
    first = client.post("/console/config/rules/save", data=form, follow_redirects=False)
    assert first.headers["location"] == "/console/config/rules?saved=1"
    second = client.post("/console/config/rules/save", data=form, follow_redirects=False)
    assert second.status_code == 303
    assert second.headers["location"] == "/console/config/rules?repeated=1"
    assert version_count(runtime) == 1
    told = client.get(f"{second.headers['location']}&lang=zh")
    assert '<p class="ok" role="status" id="repeated">该表单已提交过，本次未做任何更改。</p>' in (
        told.text
    )


def test_erasure_posted_twice_erases_once_and_a_mistyped_confirmation_is_kept(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    from tests.console.test_compliance_pages import audit_rows

    shopper = enrol(client, platform_headers)
    add_operator(runtime, "compliance@example.com", "compliance")
    sign_in(client, "compliance@example.com")
    path = f"/console/compliance/shoppers/{shopper['id']}"
    page = client.get(f"{path}?lang=zh")
    form = {"csrf_token": csrf_of(page.text), "form_token": form_token_of(page.text)}
    before = audit_rows(runtime)
    mistyped = client.post(f"{path}/erasure?lang=zh", data={**form, "confirm": "shp_typo"})
    assert mistyped.status_code == 409
    # The reason sits next to the field, in Chinese, and the field keeps what was typed.
    assert re.search(
        r'<input id="erase-confirm" name="confirm"[^>]* value="shp_typo" aria-invalid="true"'
        r' aria-describedby="erasure-error">\s*<p class="error field-error" role="alert"'
        r' id="erasure-error">[^<]*[\u4e00-\u9fff]',
        mistyped.text,
    )
    assert audit_rows(runtime) == before
    erased = client.post(f"{path}/erasure", data={**form, "confirm": shopper["id"]})
    assert erased.status_code == 200
    assert 'id="erasure-result"' in erased.text
    assert "<td>征信历史：按信用记录保存期限保留。</td>" in erased.text  # why, in Chinese
    after = audit_rows(runtime)
    assert [row[2] for row in after[len(before) :]] == ["shopper.erasure"]
    again = client.post(
        f"{path}/erasure", data={**form, "confirm": shopper["id"]}, follow_redirects=False
    )
    assert again.status_code == 303
    assert again.headers["location"] == f"{path}?repeated=1"
    assert audit_rows(runtime) == after


def test_evidence_posted_twice_is_stored_once(database_url: str, tmp_path: Path) -> None:
    from tests.console.test_merchant_pages import merchant_console, two_merchants
    from tests.disputes.dispute_env import PNG_BYTES, open_dispute_env

    with open_dispute_env(database_url, tmp_path) as denv:
        world = two_merchants(denv)
        console = merchant_console(denv.env.runtime, world["a"]["id"], "staff@a.example.com")
        path = f"/console/merchant/disputes/{world['dispute_a']}"
        page = console.get(path)
        data = {"csrf_token": csrf_of(page.text), "form_token": form_token_of(page.text)}
        files = {"file": ("parcel.png", PNG_BYTES, "image/png")}
        first = console.post(f"{path}/evidence", data=data, files=files, follow_redirects=False)
        assert first.headers["location"] == f"{path}?uploaded=1"
        counts = denv.row_counts()
        second = console.post(f"{path}/evidence", data=data, files=files, follow_redirects=False)
        assert second.status_code == 303
        assert second.headers["location"] == f"{path}?repeated=1"
        assert denv.row_counts() == counts
        assert len(denv.stored_files()) == 1


def test_a_form_the_request_guard_refuses_comes_back_as_a_console_page(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    shopper = enrol(client, platform_headers)
    complaint = file_complaint(client, platform_headers, shopper["id"], "billing", "charged twice")
    add_operator(runtime, "compliance@example.com", "compliance")
    sign_in(client, "compliance@example.com")
    path = f"/console/compliance/complaints/{complaint}"
    page = client.get(f"{path}?lang=zh")
    form = {
        "csrf_token": csrf_of(page.text),
        "form_token": form_token_of(page.text),
        "message": "已退还\x1b重复扣款。",
    }
    refused = client.post(f"{path}/responses", data=form)
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("text/html")
    assert refused.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert refused.headers["x-frame-options"] == "DENY"
    assert '<nav aria-label="main">' in refused.text
    assert f'<form method="post" action="{path}/responses" id="refused-form">' in refused.text
    # What was typed comes back without the refused character, beside the reason in Chinese.
    assert re.search(
        r'<textarea id="refused-\d+" name="message" rows="4" aria-invalid="true"'
        r' aria-describedby="refused-reason">已退还重复扣款。</textarea>\s*'
        r'<p class="error field-error" id="refused-reason">[^<]*[\u4e00-\u9fff]',
        refused.text,
    )
    assert f'<input type="hidden" name="form_token" value="{form["form_token"]}">' in refused.text
    assert responses_to(runtime, complaint) == 0
    # Sent again as the page shows it, the reply is stored, once.
    fixed = {**form, "message": "已退还重复扣款。"}
    sent = client.post(f"{path}/responses", data=fixed, follow_redirects=False)
    assert sent.headers["location"].endswith("?responded=1")
    assert responses_to(runtime, complaint) == 1
    # Before sign-in too: the email is kept, the password never shown again.
    client.cookies.clear()
    login = client.get("/console/login?lang=en")
    refused_login = client.post(
        "/console/login?lang=en",
        data={
            "email": "a\x00@example.com",
            "password": "secret",
            "csrf_token": csrf_of(login.text),
        },
    )
    assert refused_login.status_code == 422
    assert 'name="email" value="a@example.com"' in refused_login.text
    assert 'name="password" value="" type="password"' in refused_login.text
    assert "secret" not in refused_login.text
    # The API keeps answering a bad body in JSON.
    api = client.post(
        "/v1/complaints", headers=platform_headers, content=b'{"shopper_id": "\\u0000"}'
    )
    assert api.status_code == 422
    assert api.headers["content-type"].startswith("application/json")
