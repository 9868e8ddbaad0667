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
