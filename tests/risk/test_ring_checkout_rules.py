"""Rules 2026-12-07.3 at checkout, over the HTTP API: a ring's second mule, or the second half of
a split cash-out, buying easily resold goods at the merchant its linked shoppers (here: one drop
address written two ways, one address cluster) just bought at, is held for review
(``first_order_at_neighbours_merchant``, ``split_order_with_neighbours``); the first mule, with no
neighbour yet, is not held by them, nor is a household member buying a phone while the household
buys groceries elsewhere."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.factories import checkout_from, create_merchant, enrol
from tests.risk.test_graph_bursts import DROP_SPELLINGS
from usefirst.orders.models import Order
from usefirst.risk.models import RiskDecision
from usefirst.runtime import Runtime

RING_RULES = {"first_order_at_neighbours_merchant", "split_order_with_neighbours"}


def _rule_hits(runtime: Runtime, order_id: str) -> list[str]:
    with runtime.work(read_only=True) as work:
        decision = work.session.scalars(
            select(RiskDecision).where(RiskDecision.order_id == order_id)
        ).one()
        return [hit["id"] for hit in decision.rule_hits]


def test_second_mule_at_the_merchant_its_neighbours_buy_at_is_held_and_honest_are_not(
    client: TestClient, runtime: Runtime, platform_headers: dict[str, str]
) -> None:
    colluding = create_merchant(client, platform_headers, name="黄金回收", category="jewellery")
    phone_shop = create_merchant(
        client, platform_headers, name="手机旗舰店", category="electronics"
    )
    grocer = create_merchant(client, platform_headers, name="生活超市", category="home")
    first, second = (
        enrol(client, platform_headers, device_id=f"mule-{index}", ip=f"223.104.{index}.7")["id"]
        for index in range(2)
    )
    family = [
        enrol(client, platform_headers, device_id="family-tablet", ip="203.0.113.20")["id"]
        for _ in range(2)
    ]
    home = "杭州市西湖区文三路5号2栋301室"
    groceries = checkout_from(
        client,
        platform_headers,
        shopper_id=family[0],
        merchant_id=grocer["id"],
        category="groceries",
        unit_price_minor=8_800,
        device_id="family-tablet",
        ip="203.0.113.20",
        address=home,
    )
    phone = checkout_from(
        client,
        platform_headers,
        shopper_id=family[1],
        merchant_id=phone_shop["id"],
        category="phones",
        unit_price_minor=69_900,
        device_id="family-tablet",
        ip="203.0.113.20",
        address=home,
    )
    opening = checkout_from(
        client,
        platform_headers,
        shopper_id=first,
        merchant_id=colluding["id"],
        category="gold",
        unit_price_minor=58_000,
        device_id="mule-0",
        ip="223.104.0.7",
        address=DROP_SPELLINGS[0],
    )
    # Twenty minutes later (the test clock stands still otherwise).
    client.post("/v1/sandbox/clock/advance", headers=platform_headers, json={"seconds": 1_200})
    with runtime.work(read_only=True) as work:
        orders_before = work.session.scalar(select(func.count()).select_from(Order))

    follower = checkout_from(
        client,
        platform_headers,
        shopper_id=second,
        merchant_id=colluding["id"],
        category="gold",
        unit_price_minor=58_000,
        device_id="mule-1",
        ip="223.104.1.7",
        address=DROP_SPELLINGS[3],
    )

    assert follower["decision"]["outcome"] == "review"
    assert follower["order"]["status"] == "review"
    assert set(_rule_hits(runtime, follower["order"]["id"])) & RING_RULES == RING_RULES
    with runtime.work(read_only=True) as work:
        assert work.session.scalar(select(func.count()).select_from(Order)) == orders_before + 1
    for honest_or_first in (groceries, phone, opening):
        assert not set(_rule_hits(runtime, honest_or_first["order"]["id"])) & RING_RULES
    assert phone["decision"]["outcome"] == "approved"
    assert groceries["decision"]["outcome"] == "approved"
