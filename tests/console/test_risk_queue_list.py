"""The open-case list scales: keyset pages, filters, search by id, sort; the menu shows how many
cases wait."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape

import pytest
from fastapi.testclient import TestClient

from tests.console.test_risk_pages import HOSTILE, SHOP_ADDRESS, case_of, held_order
from tests.console.test_sign_in import add_operator, sign_in
from tests.factories import create_merchant
from usefirst.console import risk_pages
from usefirst.risk import decision as risk_decision
from usefirst.runtime import Runtime


@pytest.fixture(autouse=True)
def small_pages(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(risk_decision, "default_model", lambda: None)
    monkeypatch.setattr(risk_pages, "CASE_PAGE_SIZE", 2)
    yield


def listed(html: str) -> list[str]:
    table = html.split('id="cases"')[1].split("</table>")[0]
    return re.findall(r'<a href="/console/risk/cases/(cas_[^"]+)">', table)


def test_cases_page_filter_search_and_sort(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    merchant = create_merchant(client, platform_headers, name=HOSTILE, address=SHOP_ADDRESS)
    amounts = (20_000, 45_000, 30_000, 38_000, 26_000)
    orders = []
    for amount in amounts:
        orders.append(held_order(client, platform_headers, merchant, amount))
        runtime.advance_test_clock(seconds=60)
    cases = [case_of(runtime, order["id"]) for order in orders]
    add_operator(runtime, "analyst@example.com", "risk_analyst")
    sign_in(client, "analyst@example.com")

    first = client.get("/console/risk?lang=en")
    assert '<a href="/console/risk">Risk review</a><span class="count"' in first.text
    assert re.search(r'<span class="count"[^>]*>5</span>', first.text)
    assert '<span class="muted" id="case-total">(5)</span>' in first.text
    seen: list[str] = []
    page = first
    while True:
        seen += listed(page.text)
        following = re.search(r'<a href="([^"]+)" id="next-page">', page.text)
        if following is None:
            break
        page = client.get(unescape(following.group(1)))
        assert page.status_code == 200
    assert seen == cases  # oldest first, every case once, across three pages

    largest = client.get("/console/risk?sort=largest")
    by_amount = [case for _, case in sorted(zip(amounts, cases, strict=True), reverse=True)]
    assert listed(largest.text) == by_amount[:2]
    following = re.search(r'<a href="([^"]+)" id="next-page">', largest.text)
    assert following is not None
    assert listed(client.get(unescape(following.group(1))).text) == by_amount[2:4]

    assert listed(client.get(f"/console/risk?q={cases[3]}").text) == [cases[3]]
    assert listed(client.get(f"/console/risk?q={orders[1]['id']}").text) == [cases[1]]
    assert listed(client.get("/console/risk?min_amount=300").text) == [cases[1], cases[2]]
    assert listed(client.get("/console/risk?status=assigned").text) == []
    assert listed(client.get("/console/risk?mine=on").text) == []

    for bad_query in ("sort=sideways", "min_amount=abc", "case_type=nope"):
        bad = client.get(f"/console/risk?{bad_query}&lang=zh")
        assert bad.status_code == 422, bad_query
        assert '<nav aria-label="main">' in bad.text
