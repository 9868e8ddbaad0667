"""Post-event monitors on crafted cases: reused and malformed tracking numbers at shipment,
impossible delivery and delivery to the merchant at receipt, the first instalment missed, and
a merchant whose pay-later volume jumps."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.factories import bearer, checkout_body, create_merchant, enrol
from usefirst.daily_jobs import DailyContext
from usefirst.merchants.models import Merchant, SettlementHold
from usefirst.risk import decision as risk_decision
from usefirst.risk import monitors
from usefirst.risk.features import address_hash
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


def test_merchant_whose_volume_jumps_goes_on_watch(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    merchant = create_merchant(client, platform_headers)
    for _ in range(20):
        order_for(client, platform_headers, merchant)
    with runtime.work() as work:
        context = DailyContext(
            business_on=work.today, now=work.now + timedelta(hours=1),
            settings=runtime.settings, cipher=runtime.cipher,
        )  # fmt: skip
        assert monitors.merchant_drift(work.session, context) == {"merchants_flagged": 1}
        assert monitors.merchant_drift(work.session, context) == {"merchants_flagged": 0}
        row = work.session.get(Merchant, merchant["id"])
        assert row is not None and row.status == "on_watch"
    found, _ = cases_and_holds(runtime)
    assert found == {merchant["id"]: ["merchant_drift"]}
