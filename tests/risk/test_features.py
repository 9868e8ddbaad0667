"""Checkout features on a crafted history: every value exact."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.factories import national_id
from usefirst.credit.service import policy_from_settings
from usefirst.flows import checkout as checkout_flow
from usefirst.flows import merchant_onboarding
from usefirst.flows.enrolment import EnrolmentRequest, enrol_shopper
from usefirst.identity.validation import normalise_address
from usefirst.orders import service as order_service
from usefirst.risk.features import FEATURE_NAMES, compute_checkout_features
from usefirst.risk.models import KnownFraudSubject
from usefirst.runtime import Runtime, Work

ADDRESS = "北京市朝阳区建国路 1 号"


def enrol(runtime: Runtime, work: Work, *, external_id: str, phone: str) -> str:
    shopper, _ = enrol_shopper(
        work.session,
        request=EnrolmentRequest(
            external_id=external_id,
            name="张三",
            national_id=national_id(),
            phone=phone,
            email=None,
            privacy_policy_version="2026-01",
            credit_report_authorized=True,
        ),
        cipher=runtime.cipher,
        policy=policy_from_settings(runtime.settings),
        currency="CNY",
        default_time_zone=runtime.settings.time_zone,
        today=work.today,
        now=work.now,
    )
    return shopper.id


def buy(
    runtime: Runtime,
    work: Work,
    *,
    shopper_id: str,
    merchant_id: str,
    amount_minor: int,
    at: timedelta,
    device_id: str | None = None,
    ip: str | None = None,
) -> None:
    _order, decision = checkout_flow.checkout(
        work.session,
        request=order_service.CheckoutRequest(
            shopper_id=shopper_id,
            merchant_id=merchant_id,
            currency="CNY",
            items=[order_service.Item("sku", "Thing", "electronics", 1, amount_minor)],
            plan="pay_after_delivery",
            shipping_address=ADDRESS,
            device_id=device_id,
            ip=ip,
        ),
        cipher=runtime.cipher,
        settings=runtime.settings,
        now=work.now + at,
    )
    assert decision.outcome == "approved", decision


def test_address_normalisation() -> None:
    assert normalise_address("北京市 朝阳区，建国路１号") == normalise_address(ADDRESS)
    assert normalise_address(" Room 5, No. 1 Road ") == "room5no1road"


def test_features_of_a_crafted_history_are_exact(runtime: Runtime) -> None:
    day, minute = timedelta(days=1), timedelta(minutes=1)
    with runtime.work() as work:
        alice = enrol(runtime, work, external_id="alice", phone="+8613800000001")
        bob = enrol(runtime, work, external_id="bob", phone="+8613800000002")
        shop = merchant_onboarding.create_merchant(
            work.session, name="Shop", category="electronics", webhook_url=None,
            settlement_days=None, fee_rate_bps=None, cipher=runtime.cipher, actor="platform",
            now=work.now,
        ).merchant  # fmt: skip
        other_shop = merchant_onboarding.create_merchant(
            work.session, name="Other", category="phones", webhook_url=None,
            settlement_days=None, fee_rate_bps=None, cipher=runtime.cipher, actor="platform",
            now=work.now,
        ).merchant  # fmt: skip
        buy(runtime, work, shopper_id=alice, merchant_id=shop.id, amount_minor=10_000, at=day,
            device_id="dev-1")  # fmt: skip
        buy(runtime, work, shopper_id=bob, merchant_id=shop.id, amount_minor=60_000, at=day,
            device_id="dev-1", ip="203.0.113.7")  # fmt: skip
        buy(runtime, work, shopper_id=alice, merchant_id=other_shop.id, amount_minor=20_000,
            at=2 * day, device_id="dev-1")  # fmt: skip
        buy(runtime, work, shopper_id=alice, merchant_id=shop.id, amount_minor=5_000,
            at=2 * day + 30 * minute, device_id="dev-1")  # fmt: skip
        # Carol shares Alice's phone but never bought anything; the shop registered it as its own.
        enrol(runtime, work, external_id="carol", phone="+8613800000001")
        shop.phone_hash = runtime.cipher.blind_index("+8613800000001", field="phone")
        work.session.add(KnownFraudSubject(subject_id=bob, case_id="cas_x", confirmed_at=work.now))
        work.session.flush()

        features = compute_checkout_features(
            work.session,
            shopper_id=alice,
            merchant_id=shop.id,
            amount_minor=40_000,
            items=[
                {"category": "phones", "quantity": 1, "unit_price_minor": 30_000},
                {"category": "Electronics", "quantity": 2, "unit_price_minor": 5_000},
            ],
            device_id="dev-2",
            ip="203.0.113.7",
            shipping_address="北京市 朝阳区，建国路1号",
            cipher=runtime.cipher,
            now=work.now + 2 * day + 50 * minute,
        )
    expected = {
        "order_amount_minor": 40_000.0,
        "items_quantity_total": 3.0,
        "items_resellable_share": 0.75,
        "shopper_account_age_days": 2 + 50 / 1440,
        "shopper_limit_use_after": (35_000 + 40_000) / 100_000,
        "shopper_prior_orders": 3.0,
        "shopper_amount_vs_average": 40_000 / (35_000 / 3),
        "shopper_amount_vs_max": 2.0,
        "shopper_orders_1h": 2.0,
        "shopper_orders_24h": 2.0,
        "shopper_orders_7d": 3.0,
        "shopper_amount_24h_minor": 25_000.0,
        "shopper_distinct_merchants_7d": 2.0,
        "shopper_late_instalments": 0.0,
        "shopper_new_device": 1.0,
        "merchant_age_days": 2 + 50 / 1440,
        "merchant_orders_90d": 3.0,
        "merchant_amount_vs_average": 40_000 / 25_000,
        "merchant_default_rate": 0.0,
        "merchant_refund_rate": 0.0,
        "merchant_top_buyer_share": 2 / 3,
        "merchant_resellable_category": 0.0,
        "merchant_on_watch": 0.0,
        "merchant_known_fraud": 0.0,
        "pair_prior_orders": 2.0,
        "link_device_shoppers": 0.0,
        "link_ip_shoppers": 1.0,
        "link_phone_shoppers": 1.0,
        "link_address_shoppers": 1.0,
        "link_merchant_own": 1.0,
        "link_known_fraud": 2.0,
        # Online signals. dev-2 is new; the IP block's only order (Bob's) is 24 h 50 min old.
        "device_orders_24h": 0.0,
        "ip_block_orders_24h": 0.0,
        "address_cluster_orders_24h": 2.0,  # Alice's last two (one address, written two ways)
        "device_shoppers_30d": 0.0,
        "ip_block_shoppers_24h": 0.0,
        "address_cluster_shoppers_30d": 1.0,  # Bob
        "neighbourhood_size": 1.0,
        "neighbour_held_share_7d": 0.0,  # Bob's order was approved
        "neighbour_merchant_share": 1.0,  # at this shop
        "linked_orders_same_merchant_6h": 1.0,  # Alice's ¥50 of 20 minutes ago
        "linked_amount_same_merchant_6h": 45_000.0,
        "merchant_orders_2h": 1.0,
        # Whatever the clock's minute: the last 24 clock hours hold Alice's last two orders
        # (one at the shop), the 7 days before them the first two (both at the shop).
        "merchant_burst_24h": 1 / (2 / 7 + 1),
        "market_day_ratio": 2 / (2 / 7 + 1),
        "amount_vs_market_average_24h": 40_000 / (25_000 / 2),
    }
    assert list(features.values) == list(FEATURE_NAMES)
    assert features.values == pytest.approx(expected, rel=1e-12)
    assert [link.as_dict() for link in features.links] == [
        {"kind": "ip", "shopper_count": 1, "shopper_ids": [bob], "shared_with_merchant": False,
         "with_known_fraud": True},
        {"kind": "phone", "shopper_count": 1, "shopper_ids": [features.links[1].shopper_ids[0]],
         "shared_with_merchant": True, "with_known_fraud": False},
        {"kind": "address", "shopper_count": 1, "shopper_ids": [bob],
         "shared_with_merchant": False, "with_known_fraud": True},
    ]  # fmt: skip
    assert sorted(features.link_hashes) == ["address", "device", "ip", "phone"]
