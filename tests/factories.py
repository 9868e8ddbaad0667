"""Valid test data: national IDs with correct check digits, phones, and API helpers."""

from __future__ import annotations

import itertools
import os
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient

from usefirst.credit.models import CreditLine
from usefirst.credit.service import policy_from_settings
from usefirst.flows import checkout as checkout_flow
from usefirst.flows import merchant_onboarding
from usefirst.flows.enrolment import EnrolmentRequest, enrol_shopper
from usefirst.identity import service as identity_service
from usefirst.identity.models import Shopper
from usefirst.identity.validation import national_id_check_character
from usefirst.merchants.models import Merchant
from usefirst.orders import service as order_service
from usefirst.orders.models import Order
from usefirst.runtime import Runtime, Work

_serial = itertools.count(1)


def national_id(birth_on: date = date(1990, 1, 15), region: str = "110105") -> str:
    sequence = f"{next(_serial) % 1000:03d}"
    first = f"{region}{birth_on:%Y%m%d}{sequence}"
    return first + national_id_check_character(first)


def phone() -> str:
    return f"+86138{next(_serial) % 100_000_000:08d}"


def enrol(client: TestClient, headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "external_id": f"u-{next(_serial)}",
        "name": "张三",
        "national_id": national_id(),
        "phone": phone(),
        "consent": {"privacy_policy_version": "2026-01", "credit_report_authorized": True},
    }
    body.update(overrides)
    response = client.post("/v1/shoppers", headers=headers, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def create_merchant(
    client: TestClient, headers: dict[str, str], **overrides: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "Test Shop", "category": "electronics"}
    body.update(overrides)
    response = client.post("/v1/merchants", headers=headers, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def issued_key_id(runtime: Runtime, secret: str) -> str:
    """The id of the API key ``secret`` (as the audit chain names it when the key is issued)."""
    with runtime.work(read_only=True) as work:
        principal = identity_service.authenticate(work.session, secret=secret)
        assert principal is not None
        return principal.key_id


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def checkout_body(
    shopper_id: str, merchant_id: str, amount_minor: int = 30_000, plan: str = "pay_after_delivery"
) -> dict[str, Any]:
    return {
        "shopper_id": shopper_id,
        "merchant_id": merchant_id,
        "currency": "CNY",
        "items": [
            {
                "sku": "sku-1",
                "name": "Headphones",
                "category": "electronics",
                "quantity": 1,
                "unit_price_minor": amount_minor,
            }
        ],
        "plan": plan,
        "shipping_address": "北京市朝阳区建国路 1 号",
    }


def checkout_from(
    client: TestClient,
    headers: dict[str, str],
    *,
    shopper_id: str,
    merchant_id: str,
    category: str,
    unit_price_minor: int,
    device_id: str,
    ip: str,
    address: str,
) -> dict[str, Any]:
    """A one-item checkout over HTTP from a device, an IP and an address (what the risk graph
    links shoppers by); it must be taken (201), whatever the decision."""
    response = client.post(
        "/v1/checkouts",
        headers=headers,
        json={
            "shopper_id": shopper_id,
            "merchant_id": merchant_id,
            "currency": "CNY",
            "items": [
                {
                    "sku": f"{category}-1",
                    "name": category,
                    "category": category,
                    "quantity": 1,
                    "unit_price_minor": unit_price_minor,
                }
            ],
            "plan": "pay_after_delivery",
            "shipping_address": address,
            "device_id": device_id,
            "ip": ip,
        },
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def enrol_in_work(
    runtime: Runtime,
    work: Work,
    *,
    external_id: str,
    birth_on: date = date(1990, 1, 15),
    name: str = "张三",
) -> tuple[Shopper, CreditLine]:
    """Enrol a consenting shopper through the service, inside the caller's transaction."""
    return enrol_shopper(
        work.session,
        request=EnrolmentRequest(
            external_id=external_id,
            name=name,
            national_id=national_id(birth_on),
            phone=phone(),
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


def merchant_in_work(
    runtime: Runtime, work: Work, *, name: str = "Shop", category: str = "electronics"
) -> Merchant:
    """Onboard a merchant through the service with default terms, inside the caller's
    transaction."""
    return merchant_onboarding.create_merchant(
        work.session,
        name=name,
        category=category,
        webhook_url=None,
        settlement_days=None,
        fee_rate_bps=None,
        cipher=runtime.cipher,
        actor="platform",
        now=work.now,
    ).merchant


def checkout_in_work(
    runtime: Runtime,
    work: Work,
    *,
    shopper_id: str,
    merchant_id: str,
    amount_minor: int,
    category: str = "electronics",
    shipping_address: str = "北京市朝阳区建国路 1 号",
) -> Order:
    """One item checked out through the service, inside the caller's transaction."""
    order, _ = checkout_flow.checkout(
        work.session,
        request=order_service.CheckoutRequest(
            shopper_id=shopper_id,
            merchant_id=merchant_id,
            currency="CNY",
            items=[order_service.Item("sku-1", "耳机", category, 1, amount_minor)],
            plan="pay_after_delivery",
            shipping_address=shipping_address,
        ),
        cipher=runtime.cipher,
        settings=runtime.settings,
        now=work.now,
    )
    return order


def skip_on_citus(database_url: str, reason: str) -> None:
    """Skip the PostgreSQL run of a test when the PostgreSQL tests run on a Citus coordinator
    (``USEFIRST_TEST_CITUS_URL``), saying why the cluster cannot run it; it still runs on SQLite
    and on a plain PostgreSQL."""
    if database_url.startswith("postgresql") and os.environ.get("USEFIRST_TEST_CITUS_URL"):
        pytest.skip(f"not on a Citus cluster: {reason}")
