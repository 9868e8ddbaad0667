"""A ring case freezes the credit of the members with evidence of their own part (a ring order,
an unpaid order, a fast "received", no order yet and a device or phone shared with such a
member: a fresh account in reserve on the ring's handset), not of a shopper only linked to the
ring (a neighbour behind the same NAT address, buying groceries elsewhere; a newcomer behind it
who has not ordered yet): risk.ring_freezing, issue 19."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.factories import create_merchant, enrol
from tests.risk.test_graph_ring import (
    RING_DEVICE,
    RING_IP,
    _build_ring,
    _checkout,
    _ring_cases,
    _run,
)
from usefirst.runtime import Runtime


def _groceries(
    client: TestClient, headers: dict[str, str], *, shopper_id: str, merchant_id: str
) -> dict[str, Any]:
    """The neighbour's order: groceries on their own phone, behind the ring's NAT address."""
    return _checkout(
        client,
        headers,
        shopper_id=shopper_id,
        merchant_id=merchant_id,
        category="groceries",
        unit_price_minor=9_900,
        device_id="neighbour-phone",
        ip=RING_IP,
        address="杭州市西湖区文三路 5 号 2 栋 301 室",
    )


def test_a_ring_case_freezes_its_mules_and_reserve_not_a_linked_neighbour(
    client: TestClient, runtime: Runtime, platform_headers: dict[str, str]
) -> None:
    colluding, mules, ring_orders = _build_ring(client, platform_headers)
    honest = create_merchant(client, platform_headers, name="生活百货", category="home")
    # A neighbour behind the ring's NAT address: own phone and address, groceries elsewhere.
    neighbour = enrol(client, platform_headers, device_id="neighbour-phone", ip=RING_IP)["id"]
    _groceries(client, platform_headers, shopper_id=neighbour, merchant_id=honest["id"])
    # A fresh account enrolled on the ring's device that has not ordered yet.
    reserve = enrol(client, platform_headers, device_id=RING_DEVICE, ip=RING_IP)["id"]

    summary = _run(runtime)

    assert summary.rings_flagged == 1
    ring = summary.rings[0]
    assert ring.merchant_id == colluding["id"]
    assert ring.members == sorted([*mules, neighbour, reserve])
    assert ring.order_ids == sorted(order["id"] for order in ring_orders)
    (case,) = _ring_cases(runtime)
    assert case["subject_ids"] == [colluding["id"], *sorted([*mules, neighbour, reserve])]
    credit = {
        shopper: client.get(f"/v1/shoppers/{shopper}/credit", headers=platform_headers).json()[
            "status"
        ]
        for shopper in [*mules, neighbour, reserve]
    }
    assert credit == {**dict.fromkeys([*mules, reserve], "frozen"), neighbour: "active"}
    # The neighbour's next checkout is decided as anyone's: approved, not declined as frozen.
    again = _groceries(client, platform_headers, shopper_id=neighbour, merchant_id=honest["id"])
    assert again["status"] == "approved"


def _credit_statuses(
    client: TestClient, headers: dict[str, str], shoppers: list[str]
) -> dict[str, str]:
    return {
        shopper: client.get(f"/v1/shoppers/{shopper}/credit", headers=headers).json()["status"]
        for shopper in shoppers
    }


def test_a_newcomer_tied_to_the_ring_by_its_nat_address_alone_is_not_frozen(
    client: TestClient, runtime: Runtime, platform_headers: dict[str, str]
) -> None:
    _, mules, _ = _build_ring(client, platform_headers)
    honest = create_merchant(client, platform_headers, name="生活百货", category="home")
    # Fresh accounts with no order yet: one behind the ring's NAT address on its own phone, one
    # on the ring's handset behind another network.
    newcomer = enrol(client, platform_headers, device_id="newcomer-phone", ip=RING_IP)["id"]
    reserve = enrol(client, platform_headers, device_id=RING_DEVICE, ip="192.0.2.80")["id"]

    summary = _run(runtime)

    assert summary.rings_flagged == 1
    ring = summary.rings[0]
    assert ring.members == sorted([*mules, newcomer, reserve])
    # The handset ties the reserve to the mules, the NAT address the newcomer (the mules also
    # share the ring's address, its cluster and a tracking number).
    links = {value.partition(":")[0]: holders for value, holders in ring.member_links.items()}
    assert (links["device"], links["ip"]) == (sorted([*mules, reserve]), sorted([*mules, newcomer]))
    shoppers = [*mules, newcomer, reserve]
    assert _credit_statuses(client, platform_headers, shoppers) == {
        **dict.fromkeys([*mules, reserve], "frozen"),
        newcomer: "active",
    }
    # The newcomer's first checkout is decided on its own signals, not declined as frozen.
    first = _groceries(client, platform_headers, shopper_id=newcomer, merchant_id=honest["id"])
    assert first["status"] == "approved"
