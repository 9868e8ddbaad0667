"""Rings the graph surfaces as one case from their burst at one merchant, built over the HTTP API:
mules that share no device or IP, only their drop address written several ways (one address
cluster); two mules cashing out with a batch of fresh accounts enrolled on their devices; and
honest shoppers who stay out: a carrier NAT address shared by unrelated shoppers, two of whom
buy a phone at one shop, and a household sharing a device and an address."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.factories import create_merchant, enrol
from tests.risk.test_graph_ring import _checkout, _ring_cases, _run
from usefirst.flows import risk_effects
from usefirst.risk import graph
from usefirst.runtime import Runtime

# One drop address as four mules typed it: 號 for 号, no room suffix, full-width digits and
# spaces. The first and the last hash alike as addresses; all four are one address cluster.
DROP_SPELLINGS = (
    "深圳市南山区科技园路88号3幢1201室",
    "深圳市南山区科技园路88號3幢1201室",
    "深圳市南山区科技园路88号3幢1201",
    "深圳市南山区科技园路８８号 3幢 1201室",
)
NAT_IP = "117.136.0.9"


def _phone(merchant_id: str) -> dict[str, Any]:
    return {"merchant_id": merchant_id, "category": "phones", "unit_price_minor": 69_900}


def _groceries(merchant_id: str) -> dict[str, Any]:
    return {"merchant_id": merchant_id, "category": "groceries", "unit_price_minor": 8_800}


def test_mules_tied_only_by_spellings_of_one_address_are_one_ring_case(
    client: TestClient, runtime: Runtime, platform_headers: dict[str, str]
) -> None:
    colluding = create_merchant(client, platform_headers, name="金条回收", category="jewellery")
    mules = []
    for index, address in enumerate(DROP_SPELLINGS):
        device, ip = f"mule-phone-{index}", f"223.104.{index * 40}.{index + 7}"
        mule = enrol(client, platform_headers, device_id=device, ip=ip)["id"]
        mules.append(mule)
        _checkout(
            client,
            platform_headers,
            shopper_id=mule,
            merchant_id=colluding["id"],
            category="gold",
            unit_price_minor=58_000,
            device_id=device,
            ip=ip,
            address=address,
        )

    summary = _run(runtime)

    assert summary.rings_flagged == 1
    ring = summary.rings[0]
    assert ring.members == sorted(mules)
    assert ring.burst_members == 4
    assert {link["kind"] for link in ring.shared_links} == {"address", "cluster"}
    assert [
        (link["kind"], link["shoppers"]) for link in ring.shared_links if link["kind"] == "cluster"
    ] == [("cluster", 4)]
    found = _ring_cases(runtime)
    assert [case["subject_ids"] for case in found] == [sorted(mules)]
    assert found[0]["evidence"]["signals"][0]["evidence"]["burst_members"] == 4


def test_two_mules_with_fresh_accounts_on_their_devices_are_one_ring_case_and_honest_stay_out(
    client: TestClient, runtime: Runtime, platform_headers: dict[str, str]
) -> None:
    colluding = create_merchant(client, platform_headers, name="手机回收", category="electronics")
    phone_shop = create_merchant(
        client, platform_headers, name="手机旗舰店", category="electronics"
    )
    grocer = create_merchant(client, platform_headers, name="生活超市", category="home")
    # A batch of five fresh accounts on two devices; two cash out, three wait their turn.
    batch = [
        enrol(
            client, platform_headers, device_id=f"batch-device-{index % 2}", ip=f"223.104.9.{index}"
        )["id"]
        for index in range(5)
    ]
    for index, mule in enumerate(batch[:2]):
        _checkout(
            client,
            platform_headers,
            shopper_id=mule,
            merchant_id=colluding["id"],
            category="phones",
            unit_price_minor=79_900,
            device_id=f"batch-device-{index % 2}",
            ip=f"223.104.10.{index}",
            address=DROP_SPELLINGS[index],
        )
    # Six unrelated shoppers behind one carrier NAT address: everyday goods, and two of them a
    # phone each at the same shop.
    nat = [enrol(client, platform_headers, device_id=f"own-{i}", ip=NAT_IP)["id"] for i in range(6)]
    for index, shopper in enumerate(nat):
        with_phone = index < 2
        _checkout(
            client,
            platform_headers,
            shopper_id=shopper,
            **(_phone(phone_shop["id"]) if with_phone else _groceries(grocer["id"])),
            device_id=f"own-{index}",
            ip=NAT_IP,
            address=f"杭州市上城区解放路{index + 1}号{index + 2}栋101室",
        )
    # A household: three shoppers on one tablet and one address; two buy a phone at one shop.
    household = [
        enrol(client, platform_headers, device_id="family-tablet", ip="203.0.113.20")["id"]
        for _ in range(3)
    ]
    for index, member in enumerate(household):
        _checkout(
            client,
            platform_headers,
            shopper_id=member,
            **(_phone(phone_shop["id"]) if index < 2 else _groceries(grocer["id"])),
            device_id="family-tablet",
            ip="203.0.113.20",
            address="杭州市西湖区文三路5号2栋301室",
        )

    summary = _run(runtime)

    assert summary.rings_scored == 3  # the batch, the NAT's shoppers, the household
    assert summary.rings_flagged == 1
    ring = summary.rings[0]
    assert ring.members == sorted(batch)
    assert ring.burst_members == 2
    assert [case["subject_ids"] for case in _ring_cases(runtime)] == [sorted(batch)]


def test_aged_mule_batch_surfaces_with_its_first_two_mules_inside_a_crowded_neighbourhood(
    client: TestClient, runtime: Runtime, platform_headers: dict[str, str]
) -> None:
    """Mules enrolled three weeks before their ring cashes out (aged accounts) still count by
    their enrolment devices: the first two cashing out, with the three waiting, are one ring case
    the same night. Around them a crowded neighbourhood stays out: two households of four on one
    tablet and one address each, both behind one carrier NAT address shared with the batch's
    enrolment, whose members buy phones at the same shop and groceries."""
    colluding = create_merchant(client, platform_headers, name="黄金回收", category="jewellery")
    phone_shop = create_merchant(
        client, platform_headers, name="手机旗舰店", category="electronics"
    )
    grocer = create_merchant(client, platform_headers, name="生活超市", category="home")
    batch = [
        enrol(client, platform_headers, device_id=f"aged-device-{index % 2}", ip=NAT_IP)["id"]
        for index in range(5)
    ]
    households = [
        [
            enrol(client, platform_headers, device_id=f"family-tablet-{family}", ip=NAT_IP)["id"]
            for _ in range(4)
        ]
        for family in range(2)
    ]
    client.post("/v1/sandbox/clock/advance", headers=platform_headers, json={"days": 21})
    for family, members in enumerate(households):
        for index, member in enumerate(members):
            _checkout(
                client,
                platform_headers,
                shopper_id=member,
                **(_phone(phone_shop["id"]) if index < 2 else _groceries(grocer["id"])),
                device_id=f"family-tablet-{family}",
                ip=NAT_IP,
                address=f"杭州市西湖区文三路{family + 5}号2栋301室",
            )
    for index, mule in enumerate(batch[:2]):
        _checkout(
            client,
            platform_headers,
            shopper_id=mule,
            merchant_id=colluding["id"],
            category="gold",
            unit_price_minor=58_000,
            device_id=f"aged-device-{index % 2}",
            ip=f"223.104.{index * 40}.{index + 7}",
            address=DROP_SPELLINGS[index],
        )

    summary = _run(runtime)

    assert summary.rings_flagged == 1
    ring = summary.rings[0]
    assert ring.members == sorted(batch)
    assert ring.burst_members == 2
    assert [case["subject_ids"] for case in _ring_cases(runtime)] == [sorted(batch)]
    # With the window of 14 days the batch had left the graph: two mules, no ring.
    assert _run_with_fresh_days(runtime, 14).rings_flagged == 0


def _run_with_fresh_days(runtime: Runtime, days: int) -> graph.GraphRunSummary:
    with runtime.work() as work:
        return graph.run_graph(
            work.session,
            cipher=runtime.cipher,
            settings=runtime.settings,
            now=work.now,
            effects=risk_effects,
            parameters=graph.GraphParameters(fresh_enrolment_days=days),
        )
