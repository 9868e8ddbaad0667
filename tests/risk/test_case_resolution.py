"""What resolving a case does to the merchant: an honest merchant whose buyer was a fraudster keeps
its standing and its money; a merchant implicated by its own acts or by a ring around it is
marked, watched and has what it was paid for the fraud clawed back, exactly once; clearing a case
lifts the watch it placed unless another case keeps it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.factories import bearer, checkout_body, create_merchant, enrol
from tests.merchants.settlement_env import Env, open_env
from usefirst.flows import merchant_clawbacks, risk_effects
from usefirst.identity.service import create_operator
from usefirst.identity.validation import address_hash
from usefirst.ledger.models import JournalEntry
from usefirst.merchants.models import Merchant, SettlementHold, StandingChange
from usefirst.risk import cases
from usefirst.risk import decision as risk_decision
from usefirst.risk.models import KnownFraudSubject, RiskAction
from usefirst.runtime import Runtime

OWN_ADDRESS = "上海市浦东新区世纪大道 100 号 1 栋 808 室"


@pytest.fixture(autouse=True)
def no_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Exact decisions below are the rules' alone, whatever model artefact is installed.
    monkeypatch.setattr(risk_decision, "default_model", lambda: None)
    yield


def analyst(runtime: Runtime) -> tuple[str, dict[str, str]]:
    with runtime.work() as work:
        row, token = create_operator(
            work.session, email="analyst@example.com", role="risk_analyst", now=work.now
        )
        return row.id, bearer(token)


def shipped(
    client: TestClient, platform: dict[str, str], merchant: dict[str, Any], tracking: str
) -> dict[str, Any]:
    """A new shopper's approved order, shipped by the merchant with ``tracking``."""
    shopper = enrol(client, platform)
    created = client.post(
        "/v1/checkouts", headers=platform, json=checkout_body(shopper["id"], merchant["id"])
    )
    assert created.json()["decision"]["outcome"] == "approved", created.text
    order = dict(created.json()["order"])
    response = client.post(
        f"/v1/orders/{order['id']}/ship",
        headers=bearer(merchant["api_key"]),
        json={"carrier": "SF", "tracking_number": tracking},
    )
    assert response.status_code == 200, response.text
    return order


def shipped_and_received(
    client: TestClient, platform: dict[str, str], merchant: dict[str, Any], tracking: str
) -> dict[str, Any]:
    order = shipped(client, platform, merchant, tracking)
    client.post("/v1/sandbox/clock/advance", headers=platform, json={"days": 1})
    received = client.post(f"/v1/orders/{order['id']}/confirm-receipt", headers=platform)
    assert received.status_code == 200, received.text
    return order


def honest_checkout_elsewhere(
    client: TestClient, platform: dict[str, str], merchant_id: str
) -> dict[str, Any]:
    """A new shopper with an address of their own: nothing links them to the fraud."""
    shopper = enrol(client, platform)
    body = {**checkout_body(shopper["id"], merchant_id), "shipping_address": OWN_ADDRESS}
    response = client.post("/v1/checkouts", headers=platform, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json()["decision"])


def risk_actions(runtime: Runtime, *names: str) -> list[tuple[str, str, str | None, str]]:
    with runtime.work(read_only=True) as work:
        return [
            (row.action, row.subject_id, row.order_id, row.decided_by)
            for row in work.session.scalars(
                select(RiskAction).where(RiskAction.action.in_(names)).order_by(RiskAction.id)
            )
        ]


def known_fraud(runtime: Runtime) -> list[str]:
    with runtime.work(read_only=True) as work:
        return sorted(row.subject_id for row in work.session.scalars(select(KnownFraudSubject)))


def journal_entries(runtime: Runtime) -> int:
    with runtime.work(read_only=True) as work:
        return int(work.session.scalar(select(func.count()).select_from(JournalEntry)) or 0)


def resolve(
    client: TestClient, headers: dict[str, str], case_id: str, outcome: str
) -> dict[str, Any]:
    response = client.post(
        f"/v1/risk/cases/{case_id}/resolve",
        headers=headers,
        json={"outcome": outcome, "note": f"resolved as {outcome}"},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_confirming_a_buyers_first_payment_default_spares_the_honest_merchant(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    honest = create_merchant(client, platform_headers)
    order = shipped_and_received(client, platform_headers, honest, "SF1234567890777")
    for _ in range(4):
        client.post("/v1/sandbox/clock/advance", headers=platform_headers, json={"days": 5})
    _, headers = analyst(runtime)
    [case] = client.get("/v1/risk/cases", headers=headers).json()["data"]
    assert (case["type"], case["subject_ids"]) == ("order", [order["id"], order["shopper_id"]])
    detail = client.get(f"/v1/risk/cases/{case['id']}", headers=headers).json()
    [signal] = detail["evidence"]["signals"]
    assert signal["evidence"]["monitor"] == "first_payment_default"
    assert signal["evidence"]["merchant_id"] == honest["id"]  # kept as context
    balance_before = client.get(f"/v1/merchants/{honest['id']}/balance", headers=platform_headers)
    entries_before = journal_entries(runtime)

    resolve(client, headers, case["id"], "confirmed_fraud")

    assert known_fraud(runtime) == [order["shopper_id"]]
    credit = client.get(f"/v1/shoppers/{order['shopper_id']}/credit", headers=platform_headers)
    assert credit.json()["status"] == "closed"
    merchant = client.get(f"/v1/merchants/{honest['id']}", headers=platform_headers).json()
    assert merchant["status"] == "active"
    assert risk_actions(runtime, "watch_merchant", "claw_back_settlement") == []
    assert journal_entries(runtime) == entries_before
    balance_after = client.get(f"/v1/merchants/{honest['id']}/balance", headers=platform_headers)
    assert balance_after.json() == balance_before.json()

    decision = honest_checkout_elsewhere(client, platform_headers, honest["id"])
    codes = [reason["code"] for reason in decision["reasons"]]
    assert (decision["outcome"], codes) == ("approved", ["within_credit_limit"])


def test_confirming_fraud_releases_a_hold_on_an_honest_merchants_order(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    """The merchant shipped in good faith: once the fraud is the shopper's alone, the hold the
    case placed while it was open ends and the merchant is paid as usual."""
    honest = create_merchant(client, platform_headers)
    order = shipped(client, platform_headers, honest, "SF1234567890555")
    shopper = {"id": order["shopper_id"]}
    received = client.post(f"/v1/orders/{order['id']}/confirm-receipt", headers=platform_headers)
    assert received.status_code == 200, received.text
    analyst_id, headers = analyst(runtime)
    [case] = client.get("/v1/risk/cases", headers=headers).json()["data"]
    detail = client.get(f"/v1/risk/cases/{case['id']}", headers=headers).json()
    signals = detail["evidence"]["signals"]
    assert [signal["evidence"]["monitor"] for signal in signals] == ["delivered_too_fast"]
    with runtime.work() as work:  # as a second weak signal would while the case is open
        risk_effects.hold_settlement(
            work.session,
            merchant_id=honest["id"],
            order_id=order["id"],
            case_id=case["id"],
            reason="two signals",
            decided_by="monitor:test",
            now=work.now,
        )
    balance = client.get(f"/v1/merchants/{honest['id']}/balance", headers=platform_headers).json()
    assert (balance["payable_minor"], balance["held_minor"]) == (29_820, 29_820)

    resolve(client, headers, case["id"], "confirmed_fraud")

    assert known_fraud(runtime) == [shopper["id"]]
    with runtime.work(read_only=True) as work:
        [hold_released_at] = work.session.scalars(select(SettlementHold.released_at)).all()
        released = [
            (row.action, row.subject_id, row.order_id, row.decided_by, row.reason)
            for row in work.session.scalars(
                select(RiskAction).where(
                    RiskAction.action.in_(("release_settlement", "pay_merchant"))
                )
            )
        ]
    assert hold_released_at is not None
    operator = f"operator:{analyst_id}"
    assert sorted(released) == [
        ("pay_merchant", shopper["id"], order["id"], operator, "the case was confirmed as fraud"),
        (
            "release_settlement",
            honest["id"],
            order["id"],
            operator,
            "the merchant is not implicated: it is paid for goods it shipped",
        ),
    ]
    assert risk_actions(runtime, "watch_merchant", "claw_back_settlement") == []
    balance = client.get(f"/v1/merchants/{honest['id']}/balance", headers=platform_headers).json()
    assert (balance["payable_minor"], balance["held_minor"]) == (29_820, 0)  # 30,000 less the fee


def test_confirming_goods_sent_to_the_merchants_own_address_marks_the_merchant(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    merchant = create_merchant(client, platform_headers)
    order = shipped(client, platform_headers, merchant, "SF1234567890999")
    shopper = {"id": order["shopper_id"]}
    with runtime.work() as work:
        row = work.session.get(Merchant, merchant["id"])
        assert row is not None
        row.address_hash = address_hash(runtime.cipher, "北京市朝阳区建国路 1 号")
    client.post("/v1/sandbox/clock/advance", headers=platform_headers, json={"days": 1})
    client.post(f"/v1/orders/{order['id']}/confirm-receipt", headers=platform_headers)
    analyst_id, headers = analyst(runtime)
    [case] = client.get("/v1/risk/cases", headers=headers).json()["data"]
    assert case["subject_ids"] == [order["id"], shopper["id"]]
    entries_before = journal_entries(runtime)

    resolve(client, headers, case["id"], "confirmed_fraud")

    assert known_fraud(runtime) == sorted([merchant["id"], shopper["id"]])
    after = client.get(f"/v1/merchants/{merchant['id']}", headers=platform_headers).json()
    assert after["status"] == "on_watch"
    operator = f"operator:{analyst_id}"
    assert risk_actions(runtime, "watch_merchant", "claw_back_settlement") == [
        ("watch_merchant", merchant["id"], None, operator)
    ]
    # Not paid out yet: the monitor's hold keeps it so, nothing to claw back.
    assert journal_entries(runtime) == entries_before
    with runtime.work(read_only=True) as work:
        holds = [
            (hold.order_id, hold.released_at)
            for hold in work.session.scalars(select(SettlementHold))
        ]
    assert holds == [(order["id"], None)]

    decision = honest_checkout_elsewhere(client, platform_headers, merchant["id"])
    assert decision["outcome"] == "review"
    assert [reason["code"] for reason in decision["reasons"]] == [
        "held_for_review",
        "merchant_confirmed_fraud",
        "merchant_on_watch",
    ]


def open_ring_case(env: Env, merchant_id: str, shopper_ids: list[str], order_ids: list[str]) -> str:
    """A ring case as the nightly link analysis opens it: the merchant first, then its mules."""
    with env.runtime.work() as work:
        case = cases.open_or_update_case(
            work.session,
            case_type="ring",
            subject_ids=[merchant_id, *shopper_ids],
            amount_at_risk_minor=0,
            evidence={"ring_id": "rng_test", "order_ids": order_ids, "merchant_id": merchant_id},
            reason="ring around the merchant",
            now=work.now,
        )
        return case.id


def order_of(env: Env, order_id: str) -> dict[str, Any]:
    response = env.client.get(f"/v1/orders/{order_id}", headers=env.platform)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_confirmed_ring_claws_back_what_its_merchant_was_paid_exactly_once(
    database_url: str,
) -> None:
    with open_env(database_url) as env:
        colluding = env.merchant()
        merchant_id = colluding["id"]
        first = env.deliver(colluding, 10_000)
        second = env.deliver(colluding, 20_000)
        env.advance_to_day(date(2027, 3, 3))
        [payout] = env.settlements(merchant_id)
        assert (payout["gross_minor"], payout["fee_minor"], payout["net_minor"]) == (
            30_000,
            180,
            29_820,
        )
        shoppers = [order_of(env, first)["shopper_id"], order_of(env, second)["shopper_id"]]
        case_id = open_ring_case(env, merchant_id, shoppers, [first, second])

        resolved = env.client.post(
            f"/v1/risk/cases/{case_id}/resolve",
            headers=env.admin,
            json={"outcome": "confirmed_fraud", "note": "Cash-out ring with the shop."},
        )
        assert resolved.status_code == 200, resolved.text

        operator = f"operator:{env.admin_id}"
        with env.runtime.work(read_only=True) as work:
            clawbacks = [
                (row.order_id, row.details["amount_minor"], row.decided_by, row.case_id)
                for row in work.session.scalars(
                    select(RiskAction)
                    .where(RiskAction.action == "claw_back_settlement")
                    .order_by(RiskAction.id)
                )
            ]
            ledger = sorted(
                (row.order_id, row.memo)
                for row in work.session.scalars(
                    select(JournalEntry).where(JournalEntry.kind == "merchant_clawback")
                )
            )
        assert clawbacks == [
            (first, 10_000 - 60, operator, case_id),
            (second, 20_000 - 120, operator, case_id),
        ]
        assert ledger == sorted(
            (order_id, f"clawback: confirmed fraud in case {case_id}")
            for order_id in (first, second)
        )
        assert env.balance(merchant_id)["payable_minor"] == -29_820
        balances = env.account_balances()  # asserts debits == credits
        assert balances["merchant_recoveries::CNY"] == -29_820
        assert known_fraud(env.runtime) == sorted([merchant_id, *shoppers])
        merchant = env.client.get(f"/v1/merchants/{merchant_id}", headers=env.platform).json()
        assert merchant["status"] == "on_watch"
        entries = journal_entries(env.runtime)

        again = env.client.post(
            f"/v1/risk/cases/{case_id}/resolve",
            headers=env.admin,
            json={"outcome": "confirmed_fraud", "note": "Cash-out ring with the shop."},
        )
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "case_already_resolved"
        assert journal_entries(env.runtime) == entries

        # The same order confirmed again through a case of its own (its waybill was reused):
        # nothing is left to take.
        with env.runtime.work() as work:
            order_case = cases.open_or_update_case(
                work.session,
                case_type="order",
                subject_ids=[first, shoppers[0]],
                amount_at_risk_minor=10_000,
                evidence={"monitor": "tracking_reused", "merchant_id": merchant_id},
                reason="The merchant used this tracking number for another shopper's order.",
                now=work.now,
            )
            assert merchant_clawbacks.claw_back_paid_order(
                work.session,
                merchant_id=merchant_id,
                order_id=first,
                currency="CNY",
                reason="retry",
                now=work.now,
            ) is None  # fmt: skip
        resolved = env.client.post(
            f"/v1/risk/cases/{order_case.id}/resolve",
            headers=env.admin,
            json={"outcome": "confirmed_fraud", "note": "Same parcel, two buyers."},
        )
        assert resolved.status_code == 200, resolved.text
        assert journal_entries(env.runtime) == entries
        assert env.balance(merchant_id)["payable_minor"] == -29_820

        env.advance_to_day(date(2027, 3, 4))
        assert len(env.settlements(merchant_id)) == 1  # owes the platform: carried forward
        env.assert_reconciled(merchant_id)


def standing_changes(env: Env, merchant_id: str) -> list[tuple[str, str, str]]:
    with env.runtime.work(read_only=True) as work:
        return [
            (row.from_status, row.to_status, row.decided_by)
            for row in work.session.scalars(
                select(StandingChange)
                .where(StandingChange.merchant_id == merchant_id)
                .order_by(StandingChange.id)
            )
        ]


def test_clearing_a_merchant_case_lifts_its_watch_and_the_watch_reserve(
    database_url: str,
) -> None:
    with open_env(database_url) as env:
        merchant = env.merchant()
        merchant_id = merchant["id"]
        with env.runtime.work() as work:  # as the drift monitor flags a merchant
            drift_case = cases.open_or_update_case(
                work.session,
                case_type="merchant",
                subject_ids=[merchant_id],
                amount_at_risk_minor=20_000,
                evidence={"monitor": "merchant_drift", "findings": ["volume ×4"]},
                reason="Merchant's book changed abruptly: volume ×4",
                now=work.now,
            )
            risk_effects.put_merchant_on_watch(
                work.session,
                merchant_id=merchant_id,
                reason=drift_case.reason,
                evidence=[drift_case.id],
                decided_by="monitor:merchant_drift",
                case_id=drift_case.id,
                now=work.now,
            )
        env.deliver(merchant, 10_000)
        env.advance_to_day(date(2027, 3, 3))  # paid out with the watch's reserve
        [watched_payout] = env.settlements(merchant_id)
        assert (watched_payout["reserve_minor"], watched_payout["net_minor"]) == (1_000, 8_940)
        assert standing_changes(env, merchant_id) == [
            ("active", "on_watch", "monitor:merchant_drift")
        ]
        [case] = env.client.get(
            "/v1/risk/cases", headers=env.analyst, params={"type": "merchant"}
        ).json()["data"]

        resolve(env.client, env.admin, case["id"], "legitimate")

        operator = f"operator:{env.admin_id}"
        assert standing_changes(env, merchant_id) == [
            ("active", "on_watch", "monitor:merchant_drift"),
            ("on_watch", "active", operator),
        ]
        assert risk_actions(env.runtime, "watch_merchant", "unwatch_merchant") == [
            ("watch_merchant", merchant_id, None, "monitor:merchant_drift"),
            ("unwatch_merchant", merchant_id, None, operator),
        ]
        env.deliver(merchant, 10_000)
        env.advance_to_day(date(2027, 3, 4))
        latest = env.settlements(merchant_id)[-1]
        assert (latest["gross_minor"], latest["reserve_minor"], latest["net_minor"]) == (
            10_000,
            0,
            9_940,
        )
        env.assert_reconciled(merchant_id)


def test_a_watch_stays_while_another_case_about_the_merchant_is_open(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    merchant = create_merchant(client, platform_headers)
    shopper = enrol(client, platform_headers)
    with runtime.work() as work:
        # As the merchant drift monitor does, and a ring around the same merchant.
        merchant_case = cases.open_or_update_case(
            work.session, case_type="merchant", subject_ids=[merchant["id"]],
            amount_at_risk_minor=0, evidence={"monitor": "merchant_drift"},
            reason="Merchant's book changed abruptly", now=work.now,
        )  # fmt: skip
        risk_effects.put_merchant_on_watch(
            work.session, merchant_id=merchant["id"], reason="Merchant's book changed abruptly",
            evidence=[merchant_case.id], decided_by="monitor:merchant_drift",
            case_id=merchant_case.id, now=work.now,
        )  # fmt: skip
        ring_case = cases.open_or_update_case(
            work.session, case_type="ring", subject_ids=[merchant["id"], shopper["id"]],
            amount_at_risk_minor=0, evidence={"ring_id": "rng_test"}, reason="ring",
            now=work.now,
        )  # fmt: skip
        merchant_case_id, ring_case_id = merchant_case.id, ring_case.id
    analyst_id, headers = analyst(runtime)

    resolve(client, headers, merchant_case_id, "legitimate")

    status = client.get(f"/v1/merchants/{merchant['id']}", headers=platform_headers).json()
    assert status["status"] == "on_watch"
    assert risk_actions(runtime, "unwatch_merchant") == []

    resolve(client, headers, ring_case_id, "legitimate")

    status = client.get(f"/v1/merchants/{merchant['id']}", headers=platform_headers).json()
    assert status["status"] == "active"
    assert risk_actions(runtime, "unwatch_merchant") == [
        ("unwatch_merchant", merchant["id"], None, f"operator:{analyst_id}")
    ]
    with runtime.work(read_only=True) as work:
        [lifted] = work.session.scalars(
            select(RiskAction).where(RiskAction.action == "unwatch_merchant")
        ).all()
        assert (lifted.case_id, lifted.details) == (ring_case_id, {"evidence": [merchant_case_id]})


def credit_of(client: TestClient, platform: dict[str, str], shopper_id: str) -> tuple[str, int]:
    credit = client.get(f"/v1/shoppers/{shopper_id}/credit", headers=platform).json()
    return credit["status"], credit["available_minor"]


def test_goods_sent_to_the_merchants_address_freeze_the_shoppers_credit_until_cleared(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    merchant = create_merchant(client, platform_headers)
    # A merchant's bad waybill holds its money but may befall an honest buyer: no freeze.
    first = shipped(client, platform_headers, merchant, "NOT-A-WAYBILL")
    shopper = {"id": first["shopper_id"]}
    status, available = credit_of(client, platform_headers, shopper["id"])
    assert (status, available) == ("active", 100_000 - first["amount_minor"])
    with runtime.work() as work:
        row = work.session.get(Merchant, merchant["id"])
        assert row is not None
        row.address_hash = address_hash(runtime.cipher, "北京市朝阳区建国路 1 号")
    client.post("/v1/sandbox/clock/advance", headers=platform_headers, json={"days": 1})
    received = client.post(f"/v1/orders/{first['id']}/confirm-receipt", headers=platform_headers)
    assert received.status_code == 200, received.text

    assert credit_of(client, platform_headers, shopper["id"]) == ("frozen", 0)
    elsewhere = create_merchant(client, platform_headers)
    body = {**checkout_body(shopper["id"], elsewhere["id"], 1_000), "shipping_address": OWN_ADDRESS}
    second = client.post("/v1/checkouts", headers=platform_headers, json=body).json()
    assert second["decision"]["outcome"] == "declined"
    assert [reason["code"] for reason in second["decision"]["reasons"]] == ["frozen_for_review"]
    assert credit_of(client, platform_headers, shopper["id"]) == ("frozen", 0)
    analyst_id, headers = analyst(runtime)
    [case] = client.get("/v1/risk/cases", headers=headers).json()["data"]
    assert risk_actions(runtime, "freeze_limit", "unfreeze_limit") == [
        ("freeze_limit", shopper["id"], None, "monitor:delivered_to_merchant")
    ]

    resolve(client, headers, case["id"], "legitimate")

    assert credit_of(client, platform_headers, shopper["id"]) == ("active", available)
    assert risk_actions(runtime, "freeze_limit", "unfreeze_limit") == [
        ("freeze_limit", shopper["id"], None, "monitor:delivered_to_merchant"),
        ("unfreeze_limit", shopper["id"], None, f"operator:{analyst_id}"),
    ]
    third = client.post("/v1/checkouts", headers=platform_headers, json=body).json()
    assert third["decision"]["outcome"] == "approved", third


def test_paying_an_overdue_does_not_lift_a_review_freeze(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    """Overdue and review holds are separate: paying ends the first, only the review the second,
    and a cleared review leaves the line frozen while a payment is still overdue."""
    from usefirst.credit import service as credit_service

    shopper = enrol(client, platform_headers)
    with runtime.work() as work:
        assert credit_service.freeze_for_overdue(
            work.session, shopper_id=shopper["id"], now=work.now
        )
        assert credit_service.freeze_for_review(
            work.session, shopper_id=shopper["id"], now=work.now
        )
        assert not credit_service.unfreeze_after_overdue_cleared(
            work.session, shopper_id=shopper["id"], now=work.now
        )
        line = credit_service.get_credit_line(work.session, shopper_id=shopper["id"])
        assert (line.status, credit_service.frozen_reason(line).code) == (
            "frozen",
            "frozen_for_review",
        )
        assert credit_service.lift_review_freeze(
            work.session, shopper_id=shopper["id"], still_overdue=True, now=work.now
        )
        line = credit_service.get_credit_line(work.session, shopper_id=shopper["id"])
        assert (line.status, credit_service.frozen_reason(line).code) == (
            "frozen",
            "frozen_overdue",
        )
        assert credit_service.unfreeze_after_overdue_cleared(
            work.session, shopper_id=shopper["id"], now=work.now
        )
        line = credit_service.get_credit_line(work.session, shopper_id=shopper["id"])
        assert line.status == "active"
