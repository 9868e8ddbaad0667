"""A hot key: more orders under one device, one IP block and one address than the checkout
reads (``signals.EVENTS_PER_KEY``). The features statement counts the events in SQL and reads the
linked shoppers from ``risk_link_values``; the same features read in parts (as on a Citus
cluster: the event rows fetched and counted in Python by ``signals.count_events``) and the
oracles (``reference_signals`` over the orders, ``reference_features`` over the link
observations) give the same values, and the cap of EVENTS_PER_KEY is reached."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.factories import skip_on_citus
from tests.risk import reference_features, reference_signals
from tests.risk.test_counter_features import SIGNAL_ARGUMENTS
from tests.risk.test_features import enrol
from usefirst.flows import checkout as checkout_flow
from usefirst.flows import merchant_onboarding, privacy_requests
from usefirst.orders import service as order_service
from usefirst.risk import features, signals
from usefirst.risk.models import LinkObservation, LinkValue
from usefirst.risk.repository import RiskRepository
from usefirst.runtime import Runtime


def checkout(
    runtime: Runtime,
    session: Session,
    *,
    shopper_id: str,
    merchant_id: str,
    amount_minor: int,
    device_id: str,
    now: datetime,
) -> str:
    """A checkout from ``device_id`` at the shared IP and address; its outcome."""
    _order, decision = checkout_flow.checkout(
        session,
        request=order_service.CheckoutRequest(
            shopper_id=shopper_id,
            merchant_id=merchant_id,
            currency="CNY",
            items=[order_service.Item("sku", "Cable", "electronics", 1, amount_minor)],
            plan="pay_after_delivery",
            shipping_address=ADDRESS,
            device_id=device_id,
            ip=IP,
        ),
        cipher=runtime.cipher,
        settings=runtime.settings,
        now=now,
    )
    return decision.outcome


DEVICE, IP, ADDRESS = "household-tablet", "203.0.113.7", "北京市朝阳区建国路 1 号"
SHOPPERS = 6
ORDERS = signals.EVENTS_PER_KEY + 25


def test_a_hot_key_gives_the_same_signals_counted_in_sql_and_in_python(
    database_url: str, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    skip_on_citus(
        database_url,
        "the served features are compared with the reference, the one-statement aggregate"
        " (correlated subqueries over two shards), which Citus does not plan",
    )
    assert ORDERS > signals.EVENTS_PER_KEY
    with runtime.work() as work:
        session = work.session
        shoppers = [
            enrol(runtime, work, external_id=f"hot-{index}", phone=f"+86138000001{index:02d}")
            for index in range(SHOPPERS)
        ]
        shops = [
            merchant_onboarding.create_merchant(
                session, name=name, category="electronics", webhook_url=None,
                settlement_days=None, fee_rate_bps=None, cipher=runtime.cipher,
                actor="platform", now=work.now,
            ).merchant
            for name in ("Shop", "Other")
        ]  # fmt: skip
        outcomes: dict[str, int] = {}
        # Every two minutes for 17.5 hours, all within the IP block's 24-hour window.
        for index in range(ORDERS):
            outcome = checkout(
                runtime,
                session,
                shopper_id=shoppers[index % SHOPPERS],
                merchant_id=shops[int(index % 7 == 0)].id,
                amount_minor=100 + index,
                device_id=DEVICE,
                now=work.now + timedelta(minutes=2 * index),
            )
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        assert sum(outcomes.values()) == ORDERS
        # One row per shopper and identifier (device, IP, address, phone), however many orders.
        assert session.scalar(select(func.count()).select_from(LinkValue)) == SHOPPERS * 4
        assert session.scalar(select(func.count()).select_from(LinkObservation)) == ORDERS * 4

        past = reference_signals.history(session, runtime.cipher)
        now = work.now + timedelta(minutes=2 * ORDERS)
        newcomer = enrol(runtime, work, external_id="hot-new", phone="+8613800000199")
        for shopper_id in [*shoppers[:2], newcomer]:
            for shop in shops:
                arguments: dict[str, Any] = {
                    "shopper_id": shopper_id,
                    "merchant_id": shop.id,
                    "amount_minor": 5_000,
                    "items": [{"category": "phones", "quantity": 1, "unit_price_minor": 5_000}],
                    "device_id": DEVICE,
                    "ip": IP,
                    "shipping_address": ADDRESS,
                    "cipher": runtime.cipher,
                    "now": now,
                }
                served = features.compute_checkout_features(session, **arguments)
                with monkeypatch.context() as patched:
                    patched.setattr(features, "on_citus", lambda _connection: True)
                    by_parts = features.compute_checkout_features(session, **arguments)
                expected_signals = reference_signals.signals(
                    past, **{name: arguments[name] for name in SIGNAL_ARGUMENTS}
                )
                expected = reference_features.compute_checkout_features(session, **arguments)

                assert served.values == by_parts.values
                assert {name: served.values[name] for name in signals.SIGNAL_NAMES} == (
                    expected_signals
                )
                assert {name: served.values[name] for name in expected.values} == (expected.values)
                assert [link.as_dict() for link in served.links] == [
                    link.as_dict() for link in by_parts.links
                ]
                assert [link.as_dict() for link in served.links] == [
                    link.as_dict() for link in expected.links
                ]
                # Only the most recent EVENTS_PER_KEY events of a key are read, all in 24 h.
                assert served.values["device_orders_24h"] == float(signals.EVENTS_PER_KEY)
                assert served.values["ip_block_orders_24h"] == float(signals.EVENTS_PER_KEY)
                others = SHOPPERS - (shopper_id in shoppers)
                assert served.values["device_shoppers_30d"] == float(others)
                assert served.values["link_device_shoppers"] == float(others)
                assert served.values["neighbourhood_size"] == float(others)

        # Seen again two days later: the shopper's rows move to that day, the others stay.
        later = now + timedelta(days=2)
        before = _link_values(session)
        checkout(
            runtime,
            session,
            shopper_id=shoppers[0],
            merchant_id=shops[0].id,
            amount_minor=100,
            device_id=DEVICE,
            now=later,
        )
        moved = [
            (*row[:3], later.astimezone(UTC).date()) if row[2] == shoppers[0] else row
            for row in before
        ]
        assert _link_values(session) == moved
        assert len([row for row in moved if row[2] == shoppers[0]]) == 4

    with runtime.work() as work:
        # Built afresh from the observations (``usefirst risk rebuild-counters``): the same rows.
        kept = _link_values(work.session)
        assert RiskRepository(work.session).rebuild_link_values() == SHOPPERS * 4
        assert _link_values(work.session) == kept


def _link_values(session: Session) -> list[tuple[Any, ...]]:
    return sorted(
        (row.kind, row.value_hash, row.shopper_id, row.last_observed_on)
        for row in session.scalars(select(LinkValue))
    )


def test_erasure_deletes_the_shoppers_link_values(runtime: Runtime) -> None:
    """Two devices of one shopper: erasure deletes its link values (one tombstone per kind
    would collide in the primary key) and leaves the other shopper's."""
    with runtime.work() as work:
        session = work.session
        erased, other = (
            enrol(runtime, work, external_id=name, phone=phone)
            for name, phone in (("gone", "+8613800000201"), ("kept", "+8613800000202"))
        )
        shop = merchant_onboarding.create_merchant(
            session, name="Shop", category="electronics", webhook_url=None,
            settlement_days=None, fee_rate_bps=None, cipher=runtime.cipher, actor="platform",
            now=work.now,
        ).merchant  # fmt: skip
        for index, (shopper_id, device_id) in enumerate(
            ((erased, "tablet"), (erased, "phone"), (other, "tablet"))
        ):
            # Over the limit: declined, so nothing is owed and erasure may proceed.
            outcome = checkout(
                runtime,
                session,
                shopper_id=shopper_id,
                merchant_id=shop.id,
                amount_minor=900_000_000,
                device_id=device_id,
                now=work.now + timedelta(minutes=index),
            )
            assert outcome == "declined"
        before = _link_values(session)
        # device x2, ip, address, phone for the erased shopper; device, ip, address, phone
        assert len(before) == 9
        result = privacy_requests.erase_shopper(
            session, shopper_id=erased, cipher=runtime.cipher, actor="test", now=work.now
        )
        assert result.erased["risk_link_values"] == 5
        assert "risk_link_values" not in {item["record"] for item in result.retained}
        assert _link_values(session) == [row for row in before if row[2] == other]
