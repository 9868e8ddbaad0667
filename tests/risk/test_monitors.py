"""Post-event monitors on crafted cases: reused and malformed tracking numbers at shipment,
impossible delivery and delivery to the merchant at receipt, the first instalment missed, and
a merchant whose pay-later volume or buyers' default rate jumps."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.factories import bearer, checkout_body, create_merchant, enrol, skip_on_citus
from usefirst.collections.models import DelinquentOrder
from usefirst.flows import risk_monitoring
from usefirst.identity.validation import address_hash
from usefirst.kit.business_day import DailyContext
from usefirst.kit.migrate import downgrade, upgrade
from usefirst.merchants.models import Merchant, SettlementHold
from usefirst.orders.models import Order
from usefirst.repayment.models import Instalment
from usefirst.risk import decision as risk_decision
from usefirst.risk import monitors
from usefirst.risk.models import RiskCase
from usefirst.runtime import Runtime


@pytest.fixture(autouse=True)
def no_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(risk_decision, "default_model", lambda: None)
    yield


def order_for(client: TestClient, headers: dict[str, str], merchant: dict[str, Any]) -> str:
    shopper = enrol(client, headers)
    response = client.post(
        "/v1/checkouts", headers=headers, json=checkout_body(shopper["id"], merchant["id"])
    )
    assert response.json()["decision"]["outcome"] == "approved", response.text
    return str(response.json()["order"]["id"])


def ship(
    client: TestClient, merchant: dict[str, Any], order_id: str, carrier: str, number: str
) -> None:
    response = client.post(
        f"/v1/orders/{order_id}/ship",
        headers=bearer(merchant["api_key"]),
        json={"carrier": carrier, "tracking_number": number},
    )
    assert response.status_code == 200, response.text


def cases_and_holds(runtime: Runtime) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    with runtime.work(read_only=True) as work:
        found = {
            case.subject_ids[0]: [
                signal["evidence"]["monitor"] for signal in case.evidence["signals"]
            ]
            for case in work.session.scalars(select(RiskCase).order_by(RiskCase.id))
        }
        holds = [
            (hold.order_id, hold.source)
            for hold in work.session.scalars(select(SettlementHold).order_by(SettlementHold.id))
            if hold.released_at is None
        ]
    return found, holds


@pytest.mark.parametrize(
    ("carrier", "number", "fits"),
    [
        ("SF Express", "SF1234567890123", True),
        ("顺丰", "123456789012", True),
        ("SF", "SF0000", False),
        ("YTO", "SF1234567890", False),
        ("中通快递", "731234567890", True),
        ("EMS", "EA123456789CN", True),
        ("JD", "JDVA12345678901", True),
        ("Some Local Courier", "anything", None),
    ],
)
def test_carrier_formats(carrier: str, number: str, fits: bool | None) -> None:
    assert monitors.tracking_number_fits(carrier, number) is fits


def test_shipment_and_delivery_monitors(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    merchant = create_merchant(client, platform_headers)
    other_merchant = create_merchant(client, platform_headers)
    first = order_for(client, platform_headers, merchant)
    second = order_for(client, platform_headers, merchant)
    third = order_for(client, platform_headers, other_merchant)
    fourth = order_for(client, platform_headers, merchant)
    ship(client, merchant, first, "SF", "SF1234567890123")
    assert cases_and_holds(runtime) == ({}, [])  # a well-formed, unused number
    ship(client, merchant, second, "SF", "SF1234567890123")
    ship(client, other_merchant, third, "SF", "SF1234567890123")
    ship(client, merchant, fourth, "YTO", "YT12")
    found, holds = cases_and_holds(runtime)
    assert found == {
        second: ["tracking_reused"],
        third: ["tracking_reused_by_other_merchant"],
        fourth: ["tracking_malformed"],
    }
    assert [order_id for order_id, _ in holds] == [second, third, fourth]
    assert all(source.startswith("risk:cas_") for _, source in holds)

    # receipt confirmed at once: a weak signal, case only; on an order with a case already it
    # is a second signal
    confirmed = client.post(f"/v1/orders/{first}/confirm-receipt", headers=platform_headers)
    assert confirmed.status_code == 200
    found, holds = cases_and_holds(runtime)
    assert found[first] == ["delivered_too_fast"]
    assert first not in [order_id for order_id, _ in holds]


def test_tracking_number_reused_in_other_letter_case_or_spacing(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    merchant = create_merchant(client, platform_headers)
    first, second, third = (order_for(client, platform_headers, merchant) for _ in range(3))
    ship(client, merchant, first, "SF", "SF1234567890123")
    ship(client, merchant, second, "SF", "sf1234567890123")
    ship(client, merchant, third, "SF", " Sf-1234 5678 90123 ")
    with runtime.work(read_only=True) as work:
        stored = {
            order.id: order.tracking_number
            for order in work.session.scalars(
                select(Order).where(Order.merchant_id == merchant["id"])
            )
        }
        evidence = {
            case.subject_ids[0]: (case.subject_ids, case.evidence["signals"][0]["evidence"])
            for case in work.session.scalars(select(RiskCase).order_by(RiskCase.id))
        }
    assert stored == dict.fromkeys((first, second, third), "SF1234567890123")
    # the last order's case names all three orders
    assert sorted(evidence) == sorted([second, third])
    subjects, third_evidence = evidence[third]
    assert third_evidence["monitor"] == "tracking_reused"
    assert third_evidence["other_order_ids"] == sorted([first, second])
    assert third_evidence["tracking_number"] == "SF1234567890123"
    assert subjects[0] == third
    assert evidence[second][1]["other_order_ids"] == [first]


def test_tracking_numbers_stored_before_normalising_are_normalised_by_migration_0020(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str], database_url: str
) -> None:
    skip_on_citus(
        database_url,
        "a downgrade past migration 0029/0039 drops a distribution column, which Citus refuses",
    )
    merchant = create_merchant(client, platform_headers)
    first, second = (order_for(client, platform_headers, merchant) for _ in range(2))
    ship(client, merchant, first, "SF", "SF1234567890123")
    with runtime.work() as work:  # as an engine before this one stored it
        order = work.session.scalar(select(Order).where(Order.id == first))
        assert order is not None
        order.tracking_number = "sf-1234 5678\t90123"
    downgrade(database_url, "0019")  # 0020 has nothing to undo
    upgrade(database_url)
    with runtime.work(read_only=True) as work:
        stored = work.session.scalar(select(Order.tracking_number).where(Order.id == first))
    assert stored == "SF1234567890123"
    ship(client, merchant, second, "SF", "SF1234567890123")
    found, holds = cases_and_holds(runtime)
    assert found == {second: ["tracking_reused"]}
    assert [order_id for order_id, _ in holds] == [second]


def test_delivery_to_merchant_address_holds(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    merchant = create_merchant(client, platform_headers)
    order_id = order_for(client, platform_headers, merchant)
    ship(client, merchant, order_id, "SF", "SF1234567890999")
    with runtime.work() as work:
        row = work.session.get(Merchant, merchant["id"])
        assert row is not None
        row.address_hash = address_hash(runtime.cipher, "北京市朝阳区建国路 1 号")
    client.post("/v1/sandbox/clock/advance", headers=platform_headers, json={"seconds": 86_400})
    assert (
        client.post(f"/v1/orders/{order_id}/confirm-receipt", headers=platform_headers).status_code
        == 200
    )
    found, holds = cases_and_holds(runtime)
    assert found == {order_id: ["delivered_to_merchant"]}
    assert [held for held, _ in holds] == [order_id]


def test_first_instalment_missed_opens_one_case(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    merchant = create_merchant(client, platform_headers)
    order_id = order_for(client, platform_headers, merchant)
    ship(client, merchant, order_id, "SF", "SF1234567890777")
    client.post("/v1/sandbox/clock/advance", headers=platform_headers, json={"days": 1})
    assert (
        client.post(f"/v1/orders/{order_id}/confirm-receipt", headers=platform_headers).status_code
        == 200
    )
    for _ in range(3):  # past due, and two more daily sweeps: flagged once
        client.post("/v1/sandbox/clock/advance", headers=platform_headers, json={"days": 4})
    found, _ = cases_and_holds(runtime)
    assert found == {order_id: ["first_payment_default"]}


def drift_context(runtime: Runtime) -> DailyContext:
    with runtime.work(read_only=True) as work:
        return DailyContext(
            business_on=work.today, now=work.now + timedelta(hours=1),
            settings=runtime.settings, cipher=runtime.cipher,
        )  # fmt: skip


def backdate(
    runtime: Runtime,
    order_ids: list[str],
    *,
    days: int,
    delivered: bool = False,
    due: bool = False,
    defaulted: bool = False,
) -> None:
    """Move orders ``days`` into the past; ``delivered`` a day later; ``due``: delivered and
    their first instalment fell due three days ago (``defaulted``: and was missed)."""
    with runtime.work() as work:
        for order_id in order_ids:
            order = work.session.scalar(select(Order).where(Order.id == order_id))
            assert order is not None
            order.created_at = work.now - timedelta(days=days)
            if due:
                instalment = work.session.get(Instalment, (order.shopper_id, order.id, 1))
                assert instalment is not None
                instalment.due_on = work.today - timedelta(days=3)
                instalment.status = "overdue" if defaulted else "paid"
            if delivered or due:
                order.status = "delivered"
                order.delivered_at = work.now - timedelta(days=days - 1)
                if defaulted:
                    work.session.add(
                        DelinquentOrder(
                            shopper_id=order.shopper_id,
                            order_id=order.id,
                            first_delinquent_on=work.today - timedelta(days=2),
                            charged_off_minor=0,
                            updated_at=work.now,
                        )
                    )


def merchant_since(runtime: Runtime, merchant_id: str, *, days: int) -> None:
    with runtime.work() as work:
        row = work.session.get(Merchant, merchant_id)
        assert row is not None
        row.created_at = work.now - timedelta(days=days)


def watch_status(runtime: Runtime, merchant_id: str) -> str:
    with runtime.work(read_only=True) as work:
        row = work.session.get(Merchant, merchant_id)
        assert row is not None
        return row.status


def drift_findings(runtime: Runtime) -> dict[str, list[str]]:
    with runtime.work(read_only=True) as work:
        return {
            case.subject_ids[0]: [
                finding
                for signal in case.evidence["signals"]
                for finding in signal["evidence"]["findings"]
            ]
            for case in work.session.scalars(
                select(RiskCase).where(RiskCase.case_type == "merchant").order_by(RiskCase.id)
            )
        }


def test_new_merchant_busy_first_month_is_not_a_volume_jump(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    # Before: with no history any merchant with 20 orders in its first month was "a jump".
    merchant = create_merchant(client, platform_headers)
    for _ in range(20):
        order_for(client, platform_headers, merchant)
    context = drift_context(runtime)
    with runtime.work() as work:
        assert risk_monitoring.merchant_drift(work.session, context) == {"merchants_flagged": 0}
    assert watch_status(runtime, merchant["id"]) == "active"
    assert drift_findings(runtime) == {}


def test_merchant_whose_volume_jumps_against_a_real_baseline_goes_on_watch(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    merchant = create_merchant(client, platform_headers)
    thin = create_merchant(client, platform_headers)  # with us long, but too few orders before
    merchant_since(runtime, merchant["id"], days=121)
    merchant_since(runtime, thin["id"], days=121)
    baseline = [order_for(client, platform_headers, merchant) for _ in range(20)]
    backdate(runtime, baseline, days=60)
    thin_baseline = [order_for(client, platform_headers, thin) for _ in range(19)]
    backdate(runtime, thin_baseline, days=60)
    for _ in range(20):
        order_for(client, platform_headers, merchant)
        order_for(client, platform_headers, thin)
    context = drift_context(runtime)
    with runtime.work() as work:
        assert risk_monitoring.merchant_drift(work.session, context) == {"merchants_flagged": 1}
        assert risk_monitoring.merchant_drift(work.session, context) == {"merchants_flagged": 0}
    assert watch_status(runtime, merchant["id"]) == "on_watch"
    assert watch_status(runtime, thin["id"]) == "active"
    # 20 x 300.00 now against 20 x 300.00 over 90 days (200,000 a month): a triple
    assert drift_findings(runtime) == {
        merchant["id"]: ["pay-later volume 600000 in 30 days vs 200000 a month before"]
    }


def test_merchant_whose_buyers_default_rate_jumps_goes_on_watch(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    young = create_merchant(client, platform_headers)
    settled = create_merchant(client, platform_headers)
    steady = create_merchant(client, platform_headers)
    honest = create_merchant(client, platform_headers)
    for merchant in (settled, steady):
        merchant_since(runtime, merchant["id"], days=121)

    def due_orders(merchant: dict[str, Any], *, count: int, missed: int, days: int) -> None:
        order_ids = [order_for(client, platform_headers, merchant) for _ in range(count)]
        backdate(runtime, order_ids[:missed], days=days, due=True, defaulted=True)
        backdate(runtime, order_ids[missed:], days=days, due=True)

    # young: 10 orders due, 2 missed (20 %) and no history: the floor alone decides; 5 more
    # delivered but not yet due do not dilute the rate (2 in 15 delivered would be 13 %)
    due_orders(young, count=10, missed=2, days=20)
    not_yet_due = [order_for(client, platform_headers, young) for _ in range(5)]
    backdate(runtime, not_yet_due, days=5, delivered=True)
    # settled: 1 in 10 missed before, 3 in 10 now (three times the rate and above the floor)
    due_orders(settled, count=10, missed=1, days=60)
    due_orders(settled, count=10, missed=3, days=20)
    # steady: 2 in 10 before, 3 in 10 now: above the floor but not a jump
    due_orders(steady, count=10, missed=2, days=60)
    due_orders(steady, count=10, missed=3, days=20)
    # honest and young: 20 orders, 9 due of which 2 missed: too few due to judge a rate
    due_orders(honest, count=9, missed=2, days=20)
    for _ in range(11):
        order_for(client, platform_headers, honest)
    context = drift_context(runtime)
    with runtime.work() as work:
        assert risk_monitoring.merchant_drift(work.session, context) == {"merchants_flagged": 2}
    assert drift_findings(runtime) == {
        young["id"]: ["buyers' default rate 20% in 30 days vs 0% before"],
        settled["id"]: ["buyers' default rate 30% in 30 days vs 10% before"],
    }
    assert [
        watch_status(runtime, merchant["id"]) for merchant in (young, settled, steady, honest)
    ] == ["on_watch", "on_watch", "active", "active"]
