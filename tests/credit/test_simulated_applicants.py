"""Simulated applicants and the training export labelled by the engine's own history."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from tests.conftest import make_runtime
from tests.factories import national_id, phone
from usefirst.credit.application import APPLICATION_FIELDS, Application
from usefirst.credit.service import policy_from_settings
from usefirst.flows import checkout as checkout_flow
from usefirst.flows import fulfilment, merchant_onboarding, payments
from usefirst.flows.enrolment import EnrolmentRequest, enrol_shopper
from usefirst.lab.sim.applicants import (
    draw_applicant,
    export_applications,
    write_drawn_applicants,
)
from usefirst.lab.sim.identities import draw_shopper_national_id
from usefirst.orders import service as order_service
from usefirst.runtime import Runtime


def test_applicants_are_reproducible_and_independent_of_each_other() -> None:
    first = draw_applicant(
        seed=3, index=7, national_id=national_id(date(1999, 5, 1)), today=date(2026, 11, 23)
    )
    again = draw_applicant(
        seed=3, index=7, national_id=national_id(date(1999, 5, 1)), today=date(2026, 11, 23)
    )
    other = draw_applicant(
        seed=3, index=8, national_id=national_id(date(1999, 5, 1)), today=date(2026, 11, 23)
    )
    assert first == again
    assert first != other
    assert first.age_years == 27
    assert set(first.application.as_dict()) == set(APPLICATION_FIELDS)


def test_the_latent_propensity_drives_behaviour_and_follows_the_facts() -> None:
    applicants = [
        draw_applicant(
            seed=1, index=index, national_id=national_id(date(1985, 1, 1)), today=date(2026, 11, 23)
        )
        for index in range(3_000)
    ]
    never = [applicant for applicant in applicants if applicant.behaviour == "never"]
    others = [applicant for applicant in applicants if applicant.behaviour != "never"]
    assert 0.04 < len(never) / len(applicants) < 0.12
    mean = lambda group, value: sum(map(value, group)) / len(group)  # noqa: E731
    assert mean(never, lambda a: a.default_propensity) > 2 * mean(
        others, lambda a: a.default_propensity
    )
    assert mean(never, lambda a: a.application.failed_payments_12m) > mean(
        others, lambda a: a.application.failed_payments_12m
    )
    assert mean(never, lambda a: a.application.has_verified_bank_card) < mean(
        others, lambda a: a.application.has_verified_bank_card
    )


@pytest.fixture
def cold_start_runtime(database_url: str) -> Iterator[Runtime]:
    runtime = make_runtime(database_url, credit_policy="cold_start")
    yield runtime
    runtime.database.dispose()


def test_export_labels_shoppers_by_their_repayment_history(
    cold_start_runtime: Runtime, tmp_path: Path
) -> None:
    runtime = cold_start_runtime
    applicant = draw_applicant(seed=5, index=0, national_id=national_id(), today=date(2026, 11, 23))
    applications = {
        "payer": Application(
            marketplace_account_age_days=800,
            orders_12m=20,
            spend_12m_minor=300_000,
            returns_12m=1,
            failed_payments_12m=0,
            has_verified_bank_card=True,
        ),
        "defaulter": Application(
            marketplace_account_age_days=12,
            orders_12m=1,
            spend_12m_minor=9_900,
            returns_12m=0,
            failed_payments_12m=2,
            has_verified_bank_card=False,
        ),
        "recent": Application(orders_12m=4),
        "idle": Application(),
    }
    shopper_ids: dict[str, str] = {}
    with runtime.work() as work:
        merchant = merchant_onboarding.create_merchant(
            work.session,
            name="Shop",
            category="electronics",
            webhook_url=None,
            settlement_days=None,
            fee_rate_bps=None,
            cipher=runtime.cipher,
            actor="platform",
            now=work.now,
        ).merchant
        for name, application in applications.items():
            shopper, _ = enrol_shopper(
                work.session,
                request=EnrolmentRequest(
                    external_id=name,
                    name="张三",
                    national_id=national_id(date(1990, 1, 15)),
                    phone=phone(),
                    email=None,
                    privacy_policy_version="2026-01",
                    credit_report_authorized=True,
                    application=application,
                ),
                cipher=runtime.cipher,
                policy=policy_from_settings(runtime.settings),
                currency="CNY",
                default_time_zone=runtime.settings.time_zone,
                today=work.today,
                now=work.now,
            )
            shopper_ids[name] = shopper.id

    def buy(name: str) -> str:
        with runtime.work() as work:
            order, decision = checkout_flow.checkout(
                work.session,
                request=order_service.CheckoutRequest(
                    shopper_id=shopper_ids[name],
                    merchant_id=merchant.id,
                    currency="CNY",
                    items=[
                        order_service.Item(
                            sku="s",
                            name="商品",
                            category="books",
                            quantity=1,
                            unit_price_minor=20_000,
                        )
                    ],
                    plan="pay_after_delivery",
                    shipping_address="北京市朝阳区建国路 1 号",
                ),
                cipher=runtime.cipher,
                settings=runtime.settings,
                now=work.now,
            )
            assert decision.outcome == "approved"
            fulfilment.ship(
                work.session,
                order_id=order.id,
                merchant_id=merchant.id,
                carrier="SF",
                tracking_number="SF000000000001",
                settings=runtime.settings,
                now=work.now,
            )
            fulfilment.confirm_receipt(
                work.session,
                order_id=order.id,
                delivered_on=work.today,
                settings=runtime.settings,
                now=work.now,
            )
            return order.id

    buy("payer")
    buy("defaulter")
    runtime.advance_test_clock(days=3)
    with runtime.work() as work:
        payments.pay(
            work.session,
            shopper_id=shopper_ids["payer"],
            amount_minor=20_000,
            currency="CNY",
            order_id=None,
            method="alipay",
            external_ref=None,
            today=work.today,
            settings=runtime.settings,
            now=work.now,
        )
    runtime.advance_test_clock(days=40)
    buy("recent")
    runtime.advance_test_clock(days=20)

    path = tmp_path / "applications.csv"
    simulated = [
        (shopper_ids[name], replace(applicant, application=application))
        for name, application in applications.items()
    ]
    summary = export_applications(runtime, applicants=simulated, path=path)

    assert (
        summary.applicants,
        summary.exported,
        summary.defaulted,
        summary.immature,
        summary.without_orders,
    ) == (4, 2, 1, 1, 1)
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [
        {
            "age_years": str(applicant.age_years),
            "marketplace_account_age_days": "800",
            "orders_12m": "20",
            "spend_12m_minor": "300000",
            "returns_12m": "1",
            "failed_payments_12m": "0",
            "has_verified_bank_card": "1",
            "defaulted": "0",
        },
        {
            "age_years": str(applicant.age_years),
            "marketplace_account_age_days": "12",
            "orders_12m": "1",
            "spend_12m_minor": "9900",
            "returns_12m": "0",
            "failed_payments_12m": "2",
            "has_verified_bank_card": "0",
            "defaulted": "1",
        },
    ]


def test_drawn_applicants_are_labelled_by_their_simulated_behaviour(tmp_path: Path) -> None:
    path = tmp_path / "drawn.csv"
    summary = write_drawn_applicants(path=path, count=200, seed=5, today=date(2026, 11, 23))
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    rng = __import__("random").Random(5)
    expected = [
        draw_applicant(
            seed=5, index=index, national_id=draw_shopper_national_id(rng), today=date(2026, 11, 23)
        )
        for index in range(200)
    ]
    assert [row["defaulted"] for row in rows] == [
        str(int(a.behaviour == "never")) for a in expected
    ]
    assert [row["orders_12m"] for row in rows] == [str(a.application.orders_12m) for a in expected]
    assert (summary.exported, summary.defaulted) == (
        200,
        sum(a.behaviour == "never" for a in expected),
    )
