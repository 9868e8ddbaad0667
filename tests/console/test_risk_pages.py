"""Risk review in the console (no browser): the queue of held orders and cases, the case page
with its decision record and ring picture, assigning, resolving both ways (the held order
proceeds or is declined), CSRF rejection with nothing changed, role separation and escaping."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.console.test_sign_in import add_operator, sign_in
from tests.factories import checkout_body, create_merchant, enrol
from usefirst.console.risk_graph import build_ring_graph
from usefirst.risk import decision as risk_decision
from usefirst.risk.models import LinkObservation
from usefirst.runtime import Runtime

HOSTILE = "<script>alert(1)</script>"
SHOP_ADDRESS = "北京市朝阳区建国路1号"
NOW = datetime(2026, 11, 23, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The scores shown are the rules' alone, whatever model artefact is installed.
    monkeypatch.setattr(risk_decision, "default_model", lambda: None)
    yield


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def held_order(
    client: TestClient, headers: dict[str, str], merchant: dict[str, Any], amount_minor: int
) -> dict[str, Any]:
    """A checkout shipping to the merchant's own address: held for review, with a case."""
    shopper = enrol(client, headers)
    response = client.post(
        "/v1/checkouts",
        headers=headers,
        json=checkout_body(shopper["id"], merchant["id"], amount_minor=amount_minor),
    )
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()["order"]
    assert order["status"] == "review"
    return order


def case_of(runtime: Runtime, order_id: str) -> str:
    from usefirst.risk import cases as case_service

    with runtime.work(read_only=True) as work:
        [case] = [
            case
            for case in case_service.list_cases(
                work.session, status=None, case_type=None, starting_after=None, limit=100
            )
            if order_id in case.evidence["order_ids"]
        ]
        return case.id


def order_status(client: TestClient, headers: dict[str, str], order_id: str) -> str:
    status: str = client.get(f"/v1/orders/{order_id}", headers=headers).json()["status"]
    return status


def test_queue_lists_held_orders_and_cases_oldest_and_largest_first(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    merchant = create_merchant(client, platform_headers, name=HOSTILE, address=SHOP_ADDRESS)
    oldest = held_order(client, platform_headers, merchant, 20_000)
    runtime.advance_test_clock(seconds=60)
    small = held_order(client, platform_headers, merchant, 30_000)
    large = held_order(client, platform_headers, merchant, 45_000)  # held at the same moment
    add_operator(runtime, "analyst@example.com", "risk_analyst")
    sign_in(client, "analyst@example.com")

    queue = client.get("/console/risk?lang=en")
    assert queue.status_code == 200
    assert 'href="/console/risk">Risk review</a>' in queue.text  # the nav link
    held = queue.text.split('id="held-orders"')[1].split("</table>")[0]
    positions = [held.index(order["id"]) for order in (oldest, large, small)]
    assert positions == sorted(positions)
    assert re.findall(r"¥[\d,.]+", held) == ["¥200.00", "¥450.00", "¥300.00"]
    assert held.count("<td>review</td>") == 3
    assert HOSTILE not in queue.text
    assert held.count("<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>") == 3
    cases = queue.text.split('id="cases"')[1].split("</table>")[0]
    case_ids = [case_of(runtime, order["id"]) for order in (oldest, large, small)]
    case_positions = [cases.index(case_id) for case_id in case_ids]
    assert case_positions == sorted(case_positions)
    assert cases.count("<td>order</td>") == 3
    for order, case_id in zip((oldest, large, small), case_ids, strict=True):
        row = held.split(order["id"])[1].split("</tr>")[0]
        assert f'href="/console/risk/cases/{case_id}"' in row


def test_case_page_shows_the_decision_record_history_and_ring(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    merchant = create_merchant(client, platform_headers, name=HOSTILE, address=SHOP_ADDRESS)
    order = held_order(client, platform_headers, merchant, 30_000)
    case_id = case_of(runtime, order["id"])
    add_operator(runtime, "analyst@example.com", "risk_analyst")
    sign_in(client, "analyst@example.com")

    page = client.get(f"/console/risk/cases/{case_id}?lang=en")
    assert page.status_code == 200
    html = page.text
    assert HOSTILE not in html
    assert '<span class="merchant-name">&lt;script&gt;alert(1)&lt;/script&gt;</span>' in html
    assert '<strong id="amount-at-risk">¥300.00</strong>' in html
    decision = html.split(f'id="decision-{order["id"]}"')[1].split("</section>")[0]
    assert '<strong class="score">50</strong>' in decision
    assert '<span class="model-version">—</span>' in decision  # no model in this test
    assert (
        "<code>held_for_review</code>" in decision and "<code>ships_to_merchant</code>" in decision
    )
    assert "<code>ships_to_merchant</code>" in decision.split('class="rule-hits"')[1]
    assert "<td>link_merchant_own</td><td>1.0</td>" in decision
    assert f"<h3>{order['shopper_id']} · " in html  # the shopper's history
    # The ring: the merchant, the shopper and the shared address on one circle.
    ring = html.split('id="ring"')[1].split("</svg>")[0]
    assert ring.count("<circle cx=") == 3
    assert '<g class="node node-merchant">' in ring and '<g class="node node-address">' in ring
    assert '<circle cx="320.0" cy="60.0" r="16"' in ring  # the merchant, at the top
    assert '<circle cx="475.9" cy="330.0" r="11"' in ring
    assert '<circle cx="164.1" cy="330.0" r="11"' in ring
    assert ring.count("<line ") == 3  # shopper–merchant, address–shopper, address–merchant
    assert "&lt;script&gt;" in ring and "<script>" not in ring
    missing = client.get("/console/risk/cases/cas_missing?lang=en")
    assert missing.status_code == 404
    assert "There is no such case." in missing.text


def test_resolving_legitimate_lets_the_order_proceed(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    merchant = create_merchant(client, platform_headers, address=SHOP_ADDRESS)
    order = held_order(client, platform_headers, merchant, 30_000)
    case_id = case_of(runtime, order["id"])
    analyst_id = add_operator(runtime, "analyst@example.com", "risk_analyst")
    sign_in(client, "analyst@example.com")
    page = client.get(f"/console/risk/cases/{case_id}?lang=en")

    assigned = client.post(
        f"/console/risk/cases/{case_id}/assign",
        data={"csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert assigned.status_code == 303
    page = client.get(f"/console/risk/cases/{case_id}?lang=en")
    assert f'<strong id="assignee">{analyst_id}</strong>' in page.text
    assert 'id="assign-form"' not in page.text

    empty_note = client.post(
        f"/console/risk/cases/{case_id}/resolve?lang=en",
        data={"csrf_token": csrf_of(page.text), "outcome": "legitimate", "note": " "},
    )
    assert empty_note.status_code == 409
    assert "note must have 1 to 2000 characters." in empty_note.text
    assert order_status(client, platform_headers, order["id"]) == "review"

    resolved = client.post(
        f"/console/risk/cases/{case_id}/resolve",
        data={
            "csrf_token": csrf_of(page.text),
            "outcome": "legitimate",
            "note": "The shopper works at the shop.",
        },
        follow_redirects=False,
    )
    assert resolved.status_code == 303
    assert resolved.headers["location"] == f"/console/risk/cases/{case_id}?resolved=1"
    assert order_status(client, platform_headers, order["id"]) == "approved"
    after = client.get(f"/console/risk/cases/{case_id}?lang=en")
    assert '<strong id="case-status">resolved</strong>' in after.text
    assert "Resolution: Legitimate (clear)" in after.text
    assert 'id="resolve-form"' not in after.text
    assert order["id"] not in client.get("/console/risk").text.split('id="held-orders"')[1]


def test_resolving_confirmed_fraud_declines_the_order(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    merchant = create_merchant(client, platform_headers, address=SHOP_ADDRESS)
    order = held_order(client, platform_headers, merchant, 30_000)
    case_id = case_of(runtime, order["id"])
    add_operator(runtime, "admin@example.com", "admin")
    sign_in(client, "admin@example.com")
    page = client.get(f"/console/risk/cases/{case_id}")
    resolved = client.post(
        f"/console/risk/cases/{case_id}/resolve",
        data={
            "csrf_token": csrf_of(page.text),
            "outcome": "confirmed_fraud",
            "note": "Cash-out with the shop owner.",
        },
        follow_redirects=False,
    )
    assert resolved.status_code == 303
    assert order_status(client, platform_headers, order["id"]) == "declined"
    credit = client.get(f"/v1/shoppers/{order['shopper_id']}/credit", headers=platform_headers)
    assert (credit.json()["used_minor"], credit.json()["status"]) == (0, "closed")


def test_resolve_without_the_csrf_token_changes_nothing(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    merchant = create_merchant(client, platform_headers, address=SHOP_ADDRESS)
    order = held_order(client, platform_headers, merchant, 30_000)
    case_id = case_of(runtime, order["id"])
    add_operator(runtime, "analyst@example.com", "risk_analyst")
    sign_in(client, "analyst@example.com")
    for token in ("", "not-the-token"):
        refused = client.post(
            f"/console/risk/cases/{case_id}/resolve?lang=en",
            data={"csrf_token": token, "outcome": "legitimate", "note": "looks fine"},
            follow_redirects=False,
        )
        assert refused.status_code == 403
        assert "The form expired." in refused.text
    assert order_status(client, platform_headers, order["id"]) == "review"
    page = client.get(f"/console/risk/cases/{case_id}")
    assert '<strong id="case-status">open</strong>' in page.text


def test_a_collector_cannot_open_risk_pages(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    merchant = create_merchant(client, platform_headers, address=SHOP_ADDRESS)
    order = held_order(client, platform_headers, merchant, 30_000)
    case_id = case_of(runtime, order["id"])
    add_operator(runtime, "collector@example.com", "collector")
    sign_in(client, "collector@example.com")
    csrf = csrf_of(client.get("/console/dashboard").text)
    assert 'href="/console/risk"' not in client.get("/console/dashboard").text
    assert client.get("/console/risk").status_code == 403
    assert client.get(f"/console/risk/cases/{case_id}").status_code == 403
    refused = client.post(
        f"/console/risk/cases/{case_id}/resolve",
        data={"csrf_token": csrf, "outcome": "legitimate", "note": "not mine to say"},
        follow_redirects=False,
    )
    assert refused.status_code == 403
    assert order_status(client, platform_headers, order["id"]) == "review"


def test_ring_graph_layout_is_deterministic_from_ring_evidence() -> None:
    evidence = {
        "order_ids": [],
        "signals": [
            {
                "reason": "ring",
                "observed_at": "2026-11-23T00:00:00Z",
                "evidence": {
                    "members": ["shp_b", "shp_a", "shp_c"],
                    "merchant_id": "mer_1",
                    "shared_links": [{"kind": "device", "value_ref": "abc", "shoppers": 2}],
                },
            }
        ],
    }
    graph = build_ring_graph(subject_ids=["mer_1", "shp_a"], evidence=evidence)
    assert [(node.key, node.kind) for node in graph.nodes] == [
        ("mer_1", "merchant"),
        ("shp_a", "shopper"),
        ("shp_b", "shopper"),
        ("shp_c", "shopper"),
        ("device:abc", "device"),
    ]
    assert [(node.x, node.y) for node in graph.nodes] == [
        (320.0, 60.0),  # the merchant first, at the top, then clockwise
        (491.2, 184.4),
        (425.8, 385.6),
        (214.2, 385.6),
        (148.8, 184.4),
    ]
    assert sorted((edge.source.key, edge.target.key) for edge in graph.edges) == [
        ("mer_1", "shp_a"),
        ("mer_1", "shp_b"),
        ("mer_1", "shp_c"),
    ]
    # The members holding the shared device are found among their link observations.
    observed = [
        LinkObservation(shopper_id=shopper_id, order_id=f"ord_{shopper_id}", kind=kind,
                        value_hash=value_hash, merchant_id="mer_1", observed_at=NOW)
        for shopper_id, kind, value_hash in (
            ("shp_a", "device", "abc123"), ("shp_b", "device", "abc123"),
            ("shp_c", "device", "ffff00"), ("shp_c", "ip", "abc123"),
        )
    ]  # fmt: skip
    linked = build_ring_graph(
        subject_ids=["mer_1", "shp_a"], evidence=evidence, observations=observed
    )
    assert sorted(
        (edge.source.key, edge.target.key) for edge in linked.edges if "device:abc" in (
            edge.source.key, edge.target.key)
    ) == [("device:abc", "shp_a"), ("device:abc", "shp_b")]  # fmt: skip
    again = build_ring_graph(subject_ids=["mer_1", "shp_a"], evidence=evidence)
    assert [(node.x, node.y) for node in again.nodes] == [(node.x, node.y) for node in graph.nodes]
