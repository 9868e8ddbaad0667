"""Every console list is paged on the server (keyset), filtered, sorted and searched the same way:
by id, by phone through identity's keyed hash (the number is never decrypted to search) and by
merchant. Held orders, the call queue, complaints, the audit log, credentials and the merchant's
orders are walked page by page here; the risk queue has its own test (test_risk_queue_list)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.collections.dunning_env import open_env
from tests.console.test_collections_pages import DUE
from tests.console.test_compliance_pages import file_complaint
from tests.console.test_risk_pages import SHOP_ADDRESS, case_of, csrf_of
from tests.console.test_sign_in import PASSWORD, add_operator, sign_in
from tests.factories import checkout_body, create_merchant, enrol
from usefirst.console import (
    auth,
    collections_pages,
    compliance_pages,
    credential_pages,
    i18n,
    listing,
    risk_pages,
)
from usefirst.identity import service as identity_service
from usefirst.identity.models import Operator
from usefirst.privacy import audit
from usefirst.risk import decision as risk_decision
from usefirst.runtime import Runtime

KNOWN_PHONE = "+8613912345678"


@pytest.fixture(autouse=True)
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(risk_decision, "default_model", lambda: None)


def walk_pages(
    client: TestClient, path: str, rows_of: Callable[[str], list[str]]
) -> tuple[list[str], int]:
    """Every row of a list, following its next-page links; and how many pages it took."""
    seen: list[str] = []
    page = client.get(path)
    assert page.status_code == 200, page.text
    pages = 1
    while True:
        seen += rows_of(page.text)
        following = re.search(r'<a href="([^"]+)" id="next-page">', page.text)
        if following is None:
            return seen, pages
        page = client.get(unescape(following.group(1)))
        assert page.status_code == 200
        pages += 1


def held_rows(html: str) -> list[str]:
    table = html.split('id="held-orders"')[1].split("</table>")[0]
    return re.findall(r"<td>(ord_[0-9A-Za-z]+)</td>", table)


def cases_listed(html: str) -> list[str]:
    table = html.split('id="cases"')[1].split("</table>")[0]
    return re.findall(r'<a href="/console/risk/cases/(cas_[^"]+)">', table)


def held_at(
    client: TestClient, headers: dict[str, str], merchant: dict[str, Any], amount: int, **shopper
) -> dict[str, Any]:
    buyer = enrol(client, headers, **shopper)
    response = client.post(
        "/v1/checkouts",
        headers=headers,
        json=checkout_body(buyer["id"], merchant["id"], amount_minor=amount),
    )
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()["order"]
    assert order["status"] == "review"
    return order


def test_phone_search_goes_through_the_blind_index(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    shopper = enrol(client, platform_headers, phone=KNOWN_PHONE)
    enrol(client, platform_headers, phone="+8613912345679")
    with runtime.work(read_only=True) as work:
        for typed in (KNOWN_PHONE, "13912345678", "139 1234 5678", "+86 139-1234-5678"):
            assert identity_service.shoppers_with_phone(
                work.session, phone=typed, cipher=runtime.cipher
            ) == [shopper["id"]], typed
        for typed in ("1391234567", "ord_13912345678", "+8613900000000", "望京"):
            assert (
                identity_service.shoppers_with_phone(
                    work.session, phone=typed, cipher=runtime.cipher
                )
                == []
            ), typed
        search = listing.search_of(work.session, " 13912345678 ", cipher=runtime.cipher)
        assert search == listing.Search(text="13912345678", shopper_ids=(shopper["id"],))


def test_held_orders_and_cases_page_filter_and_search(
    runtime: Runtime,
    client: TestClient,
    platform_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(risk_pages, "CASE_PAGE_SIZE", 2)
    wangjing = create_merchant(
        client, platform_headers, name="望京数码旗舰店", address=SHOP_ADDRESS
    )
    other = create_merchant(client, platform_headers, name="Harbour Gadgets", address=SHOP_ADDRESS)
    orders = []
    for merchant, amount, phone in (
        (wangjing, 20_000, None),
        (wangjing, 45_000, KNOWN_PHONE),
        (other, 30_000, None),
        (wangjing, 38_000, None),
        (other, 26_000, None),
    ):
        overrides = {"phone": phone} if phone else {}
        orders.append(held_at(client, platform_headers, merchant, amount, **overrides))
        runtime.advance_test_clock(seconds=60)
    ids = [order["id"] for order in orders]
    analyst_id = add_operator(runtime, "analyst@example.com", "risk_analyst")
    sign_in(client, "analyst@example.com")

    seen, pages = walk_pages(client, "/console/risk/held?lang=en", held_rows)
    assert (seen, pages) == (ids, 3)  # oldest first, each once, across three pages
    first = client.get("/console/risk/held")
    assert '<span class="muted" id="list-total">(5)</span>' in first.text
    by_amount = [ids[1], ids[3], ids[2], ids[4], ids[0]]
    assert walk_pages(client, "/console/risk/held?sort=largest", held_rows)[0] == by_amount

    # Search: by phone (with or without +86), merchant name, merchant id, order id.
    for phone in ("13912345678", "%2B8613912345678"):
        assert held_rows(client.get(f"/console/risk/held?q={phone}").text) == [ids[1]]
        assert cases_listed(client.get(f"/console/risk?q={phone}").text) == [
            case_of(runtime, ids[1])
        ]
    assert walk_pages(client, "/console/risk/held?q=望京", held_rows)[0] == [ids[0], ids[1], ids[3]]
    assert walk_pages(client, f"/console/risk/held?q={other['id']}", held_rows)[0] == [
        ids[2],
        ids[4],
    ]
    assert held_rows(client.get(f"/console/risk/held?q={ids[4]}").text) == [ids[4]]
    assert held_rows(client.get("/console/risk/held?q=13900000000").text) == []
    # Filters: minimum amount, status, age (every order here was held today).
    assert walk_pages(client, "/console/risk/held?min_amount=300", held_rows)[0] == [
        ids[1],
        ids[2],
        ids[3],
    ]
    assert held_rows(client.get("/console/risk/held?status=step_up").text) == []
    assert held_rows(client.get("/console/risk/held?min_days=1").text) == []
    runtime.advance_test_clock(days=2)
    assert walk_pages(client, "/console/risk/held?min_days=1", held_rows)[0] == ids
    assert len(walk_pages(client, "/console/risk?min_days=2", cases_listed)[0]) == 5
    # Assignee: a case taken by the analyst, the others nobody's.
    cases = [case_of(runtime, order_id) for order_id in ids]
    token = csrf_of(client.get(f"/console/risk/cases/{cases[2]}").text)
    taken = client.post(
        f"/console/risk/cases/{cases[2]}/assign", data={"csrf_token": token}, follow_redirects=False
    )
    assert taken.status_code == 303
    assert cases_listed(client.get(f"/console/risk?assignee={analyst_id}").text) == [cases[2]]
    assert cases_listed(client.get("/console/risk?mine=on").text) == [cases[2]]
    unassigned = walk_pages(client, "/console/risk?assignee=none", cases_listed)[0]
    assert unassigned == [case for case in cases if case != cases[2]]
    # The risk page shows the first held orders and links to the full list with its count.
    queue = client.get("/console/risk?lang=en")
    assert held_rows(queue.text) == ids
    assert 'id="all-held">All held orders, with filters (5)</a>' in queue.text

    for bad in ("sort=sideways", "min_amount=1.5", "min_days=x", "status=approved"):
        refused = client.get(f"/console/risk/held?{bad}&lang=zh")
        assert refused.status_code == 422, bad
        assert '<nav aria-label="main">' in refused.text


def test_call_queue_filters_sorts_searches_and_pages(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collections_pages, "PAGE_SIZE", 2)
    with open_env(database_url, tmp_path) as env:
        known = env.enrol(phone=KNOWN_PHONE)
        orders = [env.buy(known["id"], 30_000)]
        for amount in (50_000, 12_000):
            orders.append(env.buy(env.enrol()["id"], amount))
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
        sign_in(env.client, "collector@example.com")

        def rows(html: str) -> list[str]:
            if 'id="queue"' not in html:
                return []
            table = html.split('id="queue"')[1].split("</table>")[0]
            return re.findall(r'<a href="/console/collections/(ord_[^"]+)">', table)

        ids = [order["id"] for order in orders]
        largest_first = [ids[1], ids[0], ids[2]]
        # Seven days late each: priority (owed × days) and amount give the same order here.
        assert walk_pages(env.client, "/console/collections?lang=en", rows) == (largest_first, 2)
        assert walk_pages(env.client, "/console/collections?sort=largest", rows)[0] == (
            largest_first
        )
        page = env.client.get("/console/collections?lang=en")
        assert '<span class="muted" id="list-total">(3)</span>' in page.text
        assert rows(env.client.get("/console/collections?q=13912345678").text) == [ids[0]]
        assert rows(env.client.get(f"/console/collections?q={known['id']}").text) == [ids[0]]
        assert rows(env.client.get(f"/console/collections?q={ids[2]}").text) == [ids[2]]
        merchant = env.merchant()
        assert len(walk_pages(env.client, f"/console/collections?q={merchant['id']}", rows)[0]) == 3
        assert rows(env.client.get("/console/collections?min_amount=300").text) == ids[:2][::-1]
        assert rows(env.client.get("/console/collections?min_days=8").text) == []
        assert walk_pages(env.client, "/console/collections?bucket=1-30", rows)[0] == largest_first
        assert rows(env.client.get("/console/collections?bucket=31-60").text) == []
        assert rows(env.client.get("/console/collections?promise=with").text) == []
        assert env.client.get("/console/collections?bucket=nope").status_code == 422


def test_complaints_and_audit_log_filter_search_and_page(
    runtime: Runtime,
    client: TestClient,
    platform_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(compliance_pages, "PAGE_SIZE", 2)
    known = enrol(client, platform_headers, phone=KNOWN_PHONE)
    other = enrol(client, platform_headers)
    filed = []
    for shopper, category in (
        (known, "billing"),
        (other, "privacy"),
        (known, "collection_conduct"),
        (other, "billing"),
    ):
        filed.append(file_complaint(client, platform_headers, shopper["id"], category, "问题"))
        runtime.advance_test_clock(seconds=60)
    add_operator(runtime, "compliance@example.com", "compliance")
    sign_in(client, "compliance@example.com")

    def rows(html: str) -> list[str]:
        return re.findall(r'<tr data-complaint="([^"]+)"', html)

    # By deadline (all open, each filed a minute after the other), two to a page.
    assert walk_pages(client, "/console/compliance/complaints?lang=en", rows) == (filed, 2)
    assert walk_pages(client, "/console/compliance/complaints?sort=newest", rows)[0] == filed[::-1]
    assert walk_pages(client, "/console/compliance/complaints?q=13912345678", rows)[0] == [
        filed[0],
        filed[2],
    ]
    assert rows(client.get(f"/console/compliance/complaints?q={filed[3]}").text) == [filed[3]]
    assert walk_pages(client, "/console/compliance/complaints?category=billing", rows)[0] == [
        filed[0],
        filed[3],
    ]
    assert rows(client.get("/console/compliance/complaints?status=closed").text) == []
    assert rows(client.get("/console/compliance/complaints?overdue=on").text) == []
    runtime.advance_test_clock(days=30)
    assert walk_pages(client, "/console/compliance/complaints?overdue=on", rows)[0] == filed
    assert client.get("/console/compliance/complaints?category=nope").status_code == 422

    # The audit log, narrowed to one shopper by phone: the reads of that shopper's data only.
    with runtime.work() as work:
        for shopper in (known, other, known):
            audit.record_access(
                work.session,
                actor="system:test",
                action="shopper.read",
                subject_shopper_id=shopper["id"],
                fields=["phone"],
                purpose="data export requested under the shopper's right of access",
                now=work.now,
            )

    def seqs(html: str) -> list[str]:
        return re.findall(r'<tr data-seq="(\d+)"', html)

    reads = seqs(client.get("/console/compliance/audit?action=shopper.read").text)
    assert len(reads) == 3
    by_phone = client.get("/console/compliance/audit?q=13912345678&action=shopper.read&lang=zh")
    assert seqs(by_phone.text) == [reads[0], reads[2]]
    assert "<td>顾客行使查阅权，申请导出数据</td>" in by_phone.text  # the purpose, translated
    assert seqs(client.get("/console/compliance/audit?q=13900000000").text) == []


def test_credentials_filter_and_page(
    runtime: Runtime,
    client: TestClient,
    platform_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    merchant = create_merchant(client, platform_headers, name="望京数码旗舰店")
    add_operator(runtime, "admin@example.com", "admin")
    sign_in(client, "admin@example.com")

    def rows(html: str) -> list[str]:
        return re.findall(r'<tr data-key="([^"]+)"', html)

    with runtime.work(read_only=True) as work:
        keys = [(key.id, key.merchant_id) for key in identity_service.list_api_keys(work.session)]
    every = [key_id for key_id, _ in keys]
    merchant_keys = [key_id for key_id, owner in keys if owner == merchant["id"]]
    assert merchant_keys and len(every) > len(merchant_keys)
    monkeypatch.setattr(credential_pages, "PAGE_SIZE", 1)
    assert walk_pages(client, "/console/credentials?lang=en", rows) == (every, len(every))
    assert rows(client.get("/console/credentials?q=望京").text) == merchant_keys
    assert rows(client.get("/console/credentials?kind=merchant").text) == merchant_keys
    assert rows(client.get("/console/credentials?state=revoked").text) == []
    assert client.get("/console/credentials?kind=nope").status_code == 422


def test_free_text_reads_in_the_operators_language() -> None:
    reason = (
        "3 linked shoppers around merchant mer_1 share identifiers (1 device, 2 ip); "
        "ring score 0.87"
    )
    assert i18n.free_text(reason, "zh") == (
        "围绕商户 mer_1 的 3 名关联顾客共用标识（1 device, 2 ip）；团伙评分 0.87"
    )
    assert i18n.free_text(reason, "en") == reason
    book = (
        "Merchant's book changed abruptly: pay-later volume 500000 in 30 days vs 20000 a month "
        "before; buyers' default rate 30% in 30 days vs 2% before"
    )
    assert i18n.free_text(book, "zh") == (
        "商户经营数据突变：30 天内先用后付交易额 500000（此前每月 20000）；"
        "30 天内买家违约率 30%（此前 2%）"
    )
    two = (
        "The order was delivered to the merchant's own address.; "
        "The first instalment was missed with nothing paid."
    )
    assert i18n.free_text(two, "zh") == "订单送到了商户自己的地址。首期未还，且分文未付。"
    assert i18n.free_text("something new", "zh") == "something new"
    assert i18n.free_text("held at checkout: ships_to_merchant, nope", "zh") == (
        "下单时被暂扣：订单收货地址或手机号与商户本身相同；nope"
    )
    warning = "The delivery address or phone number of this order is your own shop's."
    assert i18n.free_text(warning, "zh") == "该订单的收货地址或手机号就是贵店自己的。"
