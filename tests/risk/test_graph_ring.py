"""Link analysis end to end: a ring built through the HTTP API ends as one ring case listing
exactly its merchant and mules; a family sharing a device and an honest buyer at the same
merchant stay out; a second run updates the ring instead of duplicating it."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.factories import bearer, checkout_from, create_merchant, enrol
from usefirst.flows import config_publishing, risk_monitoring
from usefirst.identity.service import create_operator
from usefirst.kit.business_day import DailyContext
from usefirst.risk import cases, graph
from usefirst.risk.models import GraphRun, Ring, RiskCase
from usefirst.risk.rules import DEFAULT_RULES_FILE
from usefirst.runtime import Runtime

RING_DEVICE = "ring-device-1"
RING_IP = "198.51.100.7"
RING_ADDRESS = "深圳市南山区科技园路 88 号 3 栋 1201 室"
REUSED_TRACKING = "SF100000000001"


def _checkout(client: TestClient, headers: dict[str, str], **checkout: Any) -> dict[str, Any]:
    """The order of a checkout taken over HTTP (tests.factories.checkout_from)."""
    return dict(checkout_from(client, headers, **checkout)["order"])


def _ring_cases(runtime: Runtime) -> list[dict[str, Any]]:
    with runtime.work(read_only=True) as work:
        return [
            cases.case_view(case, with_evidence=True)
            for case in work.session.scalars(select(RiskCase).where(RiskCase.case_type == "ring"))
        ]


def _run(runtime: Runtime) -> graph.GraphRunSummary:
    with runtime.work() as work:
        return risk_monitoring.run_graph(
            work.session, cipher=runtime.cipher, settings=runtime.settings, now=work.now
        )


def _build_ring(
    client: TestClient, platform_headers: dict[str, str]
) -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
    colluding = create_merchant(client, platform_headers, name="数码回收", category="electronics")
    mules = [
        enrol(client, platform_headers, device_id=RING_DEVICE, ip=RING_IP)["id"] for _ in range(5)
    ]
    ring_orders = [
        _checkout(
            client,
            platform_headers,
            shopper_id=mule,
            merchant_id=colluding["id"],
            category="phones" if index % 2 else "gold",
            unit_price_minor=89_900,
            device_id=RING_DEVICE,
            ip=RING_IP,
            address=RING_ADDRESS,
        )
        for index, mule in enumerate(mules)
    ]
    merchant_headers = bearer(colluding["api_key"])
    for order in ring_orders:
        if order["status"] == "approved":
            shipped = client.post(
                f"/v1/orders/{order['id']}/ship",
                headers=merchant_headers,
                json={"carrier": "SF", "tracking_number": REUSED_TRACKING},
            )
            assert shipped.status_code == 200, shipped.text
            confirmed = client.post(
                f"/v1/orders/{order['id']}/confirm-receipt", headers=platform_headers
            )
            assert confirmed.status_code == 200, confirmed.text
    return colluding, mules, ring_orders


def test_ring_built_over_the_api_ends_as_one_case_with_exactly_its_members(
    client: TestClient, runtime: Runtime, platform_headers: dict[str, str]
) -> None:
    colluding, mules, ring_orders = _build_ring(client, platform_headers)
    honest = create_merchant(client, platform_headers, name="生活百货", category="home")
    # A family: three shoppers on one device, IP and address, everyday goods at an honest shop.
    family = [
        enrol(client, platform_headers, device_id="family-tablet", ip="203.0.113.20")["id"]
        for _ in range(3)
    ]
    for member in family:
        _checkout(
            client,
            platform_headers,
            shopper_id=member,
            merchant_id=honest["id"],
            category="groceries",
            unit_price_minor=9_900,
            device_id="family-tablet",
            ip="203.0.113.20",
            address="杭州市西湖区文三路 5 号 2 栋 301 室",
        )
    # An honest buyer of a phone at the colluding merchant, on its own device.
    outsider = enrol(client, platform_headers, device_id="own-phone", ip="192.0.2.44")["id"]
    _checkout(
        client,
        platform_headers,
        shopper_id=outsider,
        merchant_id=colluding["id"],
        category="phones",
        unit_price_minor=69_900,
        device_id="own-phone",
        ip="192.0.2.44",
        address="上海市浦东新区世纪大道 100 号 1 栋 808 室",
    )

    first = _run(runtime)

    assert first.rings_scored == 2  # the ring and the family; the outsider links to no one
    assert first.rings_flagged == 1
    assert (first.cases_opened, first.cases_updated) == (1, 0)
    ring = first.rings[0]
    assert ring.merchant_id == colluding["id"]
    assert ring.members == sorted(mules)
    assert ring.order_ids == sorted(order["id"] for order in ring_orders)
    assert ring.parts["cash_out"] == 1.0
    assert ring.parts["links"] == 1.0
    assert ring.parts["size"] == 0.6
    found = _ring_cases(runtime)
    assert len(found) == 1
    case = found[0]
    assert case["subject_ids"] == [colluding["id"], *sorted(mules)]
    assert case["status"] == "open"
    assert case["evidence"]["order_ids"] == sorted(order["id"] for order in ring_orders)
    signal = case["evidence"]["signals"][0]["evidence"]
    assert signal["members"] == sorted(mules)
    assert signal["merchant_id"] == colluding["id"]
    assert {link["kind"] for link in signal["shared_links"]} >= {"device", "ip", "address"}
    exposed = sum(order["amount_minor"] for order in ring_orders if order["status"] != "declined")
    assert case["amount_at_risk_minor"] == exposed
    # What an analyst sees over the API, and the ring's shoppers can buy nothing more meanwhile.
    with runtime.work() as work:
        _, token = create_operator(
            work.session, email="analyst@example.com", role="risk_analyst", now=work.now
        )
    listed = client.get("/v1/risk/cases", headers=bearer(token), params={"type": "ring"})
    assert [(c["id"], c["subject_ids"]) for c in listed.json()["data"]] == [
        (case["id"], [colluding["id"], *sorted(mules)])
    ]
    detail = client.get(f"/v1/risk/cases/{case['id']}", headers=bearer(token)).json()
    assert detail["evidence"]["order_ids"] == case["evidence"]["order_ids"]
    credit = {
        shopper: client.get(f"/v1/shoppers/{shopper}/credit", headers=platform_headers).json()[
            "status"
        ]
        for shopper in [*mules, *family, outsider]
    }
    assert credit == {
        **dict.fromkeys(mules, "frozen"),
        **dict.fromkeys([*family, outsider], "active"),
    }

    second = _run(runtime)

    assert second.rings_flagged == 1
    assert (second.cases_opened, second.cases_updated) == (0, 1)
    assert second.rings[0].ring_id == ring.ring_id
    assert [found["id"] for found in _ring_cases(runtime)] == [case["id"]]
    with runtime.work(read_only=True) as work:
        assert work.session.scalar(select(func.count()).select_from(Ring)) == 1
        assert work.session.scalar(select(func.count()).select_from(GraphRun)) == 2


def test_nightly_graph_runs_once_per_business_date_and_keeps_one_ring(
    client: TestClient, runtime: Runtime, platform_headers: dict[str, str]
) -> None:
    colluding, mules, _ = _build_ring(client, platform_headers)
    with runtime.work() as work:
        today, now = work.today, work.now

    def nightly(business_on: date) -> dict[str, int]:
        with runtime.work() as work:
            context = DailyContext(
                business_on=business_on, now=now, settings=runtime.settings, cipher=runtime.cipher
            )
            return risk_monitoring.nightly_graph(work.session, context)

    first = nightly(today)
    assert first["graph_runs"] == 1
    assert first["rings_flagged"] == 1
    assert first["ring_cases_opened"] == 1
    assert nightly(today) == {"graph_runs": 0}
    later = nightly(today + timedelta(days=1))
    assert (later["ring_cases_opened"], later["ring_cases_updated"]) == (0, 1)
    found = _ring_cases(runtime)
    assert [case["subject_ids"] for case in found] == [[colluding["id"], *sorted(mules)]]
    with runtime.work(read_only=True) as work:
        runs = work.session.execute(
            select(GraphRun.trigger, GraphRun.business_on).order_by(GraphRun.business_on)
        ).all()
    assert [tuple(run) for run in runs] == [
        ("nightly", today),
        ("nightly", today + timedelta(days=1)),
    ]


def test_the_graph_counts_as_resellable_the_categories_of_the_rules_in_force(
    client: TestClient, runtime: Runtime, platform_headers: dict[str, str]
) -> None:
    _build_ring(client, platform_headers)
    first = _run(runtime)
    assert first.rings_flagged == 1
    assert first.rings[0].parts["cash_out"] == 1.0

    shipped_rules = DEFAULT_RULES_FILE.read_text(encoding="utf-8")
    start = shipped_rules.index("resellable = [")
    end = shipped_rules.index("]", start) + 1
    edited = (shipped_rules[:start] + 'resellable = ["furniture"]' + shipped_rules[end:]).replace(
        'version = "2026-12-07.3"', 'version = "ops-furniture"'
    )
    with runtime.work() as work:
        config_publishing.publish(
            work.session,
            kind="risk_rules",
            text=edited,
            based_on=0,
            note="phones and gold are no longer resold here",
            created_by="op_test",
            settings=runtime.settings,
            now=work.now,
        )

    second = _run(runtime)

    # Same members, links and orders; with no resellable order left the group is no ring.
    assert second.rings_scored == first.rings_scored
    assert second.rings_flagged == 0
    with runtime.work(read_only=True) as work:
        runs = {run.id: run.parameters for run in work.session.scalars(select(GraphRun))}
    assert runs[first.run_id]["rule_set_version"] == "2026-12-07.3"
    assert "phones" in runs[first.run_id]["resellable_categories"]
    assert runs[second.run_id]["rule_set_version"] == "ops-furniture"
    assert runs[second.run_id]["resellable_categories"] == ["furniture"]


def test_reused_tracking_links_shoppers_however_the_number_was_typed(
    client: TestClient, runtime: Runtime, platform_headers: dict[str, str]
) -> None:
    merchant = create_merchant(client, platform_headers, name="数码回收", category="electronics")
    shoppers = [enrol(client, platform_headers)["id"] for _ in range(3)]
    orders = [
        _checkout(
            client,
            platform_headers,
            shopper_id=shopper,
            merchant_id=merchant["id"],
            category="phones",
            unit_price_minor=9_900,
            device_id=f"device-{index}",
            ip=f"198.51.100.{index}",
            address=f"上海市浦东新区世纪大道 {index} 号",
        )
        for index, shopper in enumerate(shoppers)
    ]
    for order, number in zip(
        orders, ["SF100000000009", "sf-1000 0000 0009", "SF100000000008"], strict=True
    ):
        shipped = client.post(
            f"/v1/orders/{order['id']}/ship",
            headers=bearer(merchant["api_key"]),
            json={"carrier": "SF", "tracking_number": number},
        )
        assert shipped.status_code == 200, shipped.text
    with runtime.work(read_only=True) as work:
        link_graph = graph.load_link_graph(
            work.session,
            cipher=runtime.cipher,
            since=work.now - timedelta(days=1),
            parameters=graph.GraphParameters(),
        )
    tracking_links = {
        shopper: sorted(value for value in values if value.startswith("tracking:"))
        for shopper, values in link_graph.shopper_links.items()
    }
    assert {shopper: tracking_links.get(shopper, []) for shopper in shoppers} == {
        shoppers[0]: ["tracking:SF100000000009"],
        shoppers[1]: ["tracking:SF100000000009"],
        shoppers[2]: [],
    }
