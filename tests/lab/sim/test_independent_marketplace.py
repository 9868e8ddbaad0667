"""The independent marketplace: its shape drawn per seed, acting through the real services, the
same seed giving the same world."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

from sqlalchemy import select

from tests.conftest import make_runtime
from usefirst.identity.models import Shopper
from usefirst.kit.migrate import upgrade
from usefirst.lab.sim.independent import (
    IndependentMarketplace,
    _address_variants,
    draw_shape,
    simulate_independent,
)
from usefirst.orders.models import Order
from usefirst.runtime import Runtime

RESELLABLE = {"phones", "gold", "gift_cards"}


def test_shapes_are_drawn_per_seed_and_repeat_for_the_same_seed() -> None:
    assert draw_shape(5) == draw_shape(5)
    shapes = {draw_shape(seed) for seed in range(20)}
    assert len(shapes) == 20
    for shape in shapes:
        assert 26 <= shape.days <= 34
        assert shape.days // 2 <= shape.sale_day <= shape.days - 4
        assert 2 <= shape.rings == len(shape.mules_per_ring) <= 3
        assert all(5 <= mules <= 9 for mules in shape.mules_per_ring)
        assert shape.split_rings <= 1
        assert 10 <= shape.confirm_within_minutes <= 60
    # ring sizes, tempo, NAT sharing and clean periods all vary across seeds
    assert len({shape.mules_per_ring for shape in shapes}) > 5
    assert len({shape.nat_pool for shape in shapes}) > 5
    assert {shape.clean_weeks for shape in shapes} == {2, 3}
    assert {shape.split_rings for shape in shapes} == {0, 1}
    # scale sizes populations, not the odds; days override keeps everything else
    small = draw_shape(5, scale=0.2, days=9)
    assert small.days == 9
    assert small.households < draw_shape(5).households
    assert small.nat_pool == draw_shape(5).nat_pool


def test_address_variants_spell_one_address_several_ways() -> None:
    variants = _address_variants("广东省广州市天河区星湖街12号3幢1201室", 4)
    assert variants == [
        "广东省广州市天河区星湖街12号3幢1201室",
        "广东省广州市天河区星湖街12号3幢1201",
        "广东省广州市天河区星湖街１２号３幢１２０１室",
        "广东省广州市天河区星湖街12號3幢1201室",
    ]


def _world(runtime: Runtime, seed: int) -> IndependentMarketplace:
    shape = draw_shape(seed, scale=0.15, days=9)
    # Every typology in a short world: rings of 5 (one splitting), bust-outs turning on day 5,
    # and a sale day.
    shape = replace(
        shape,
        rings=2,
        mules_per_ring=(5, 5),
        split_rings=1,
        mule_reuse_share=0.0,
        bust_outs=2,
        clean_weeks=0,
        sale_day=4,
        ring_burst_days=1,
    )
    world = IndependentMarketplace(runtime, seed=seed, shape=shape)
    summary = world.run()
    assert summary.ledger_balanced, summary.ledger_problems
    return world


def test_the_world_acts_through_the_services_with_its_shapes(runtime: Runtime) -> None:
    world = _world(runtime, seed=3)
    truth = world.truth
    assert Counter(truth.merchant_roles.values())["colluding"] == 2
    assert set(truth.fraud_orders.values()) <= {"ring_cash_out", "split_cash_out", "bust_out"}
    assert "split_cash_out" in truth.fraud_orders.values()
    with runtime.work(read_only=True) as work:
        for name, ring in truth.rings.items():
            mules = list(ring["mules"])
            assert len(mules) == 5, name
            devices = set(
                work.session.scalars(
                    select(Shopper.enrolment_device_id).where(Shopper.id.in_(mules))
                )
            )
            assert len(devices) <= world.shape.ring_devices
            orders = list(work.session.scalars(select(Order).where(Order.shopper_id.in_(mules))))
            for order in orders:
                assert order.merchant_id == ring["merchant_id"]
                assert {item["category"] for item in order.items} <= RESELLABLE
                if order.delivered_at is not None:
                    assert order.shipped_at is not None
                    # "delivered" within the hour of "shipping"
                    assert (order.delivered_at - order.shipped_at).total_seconds() <= 3600
        split_orders = [
            order_id for order_id, kind in truth.fraud_orders.items() if kind == "split_cash_out"
        ]
        by_shopper = Counter(
            work.session.scalars(select(Order.shopper_id).where(Order.id.in_(split_orders)))
        )
        # a splitting ring places two orders per cash-out (unless the engine stopped the first)
        assert max(by_shopper.values()) == 2
        honest = [
            shopper for shopper, role in truth.shopper_roles.items() if role.startswith("honest_")
        ]
        honest_orders = list(
            work.session.scalars(select(Order).where(Order.shopper_id.in_(honest)))
        )
        work.session.expunge_all()
    assert not set(truth.fraud_orders) & {order.id for order in honest_orders}
    sale_day_orders = [
        order for order in honest_orders if any(i["name"] == "大促商品" for i in order.items)
    ]
    assert sale_day_orders, "honest shoppers bought on the sale day"
    assert {order.created_at.date() for order in sale_day_orders} == {
        sale_day_orders[0].created_at.date()
    }


def test_the_same_seed_gives_the_same_world(tmp_path: Path) -> None:
    outcomes = []
    for name in ("first", "second"):
        url = f"sqlite:///{tmp_path / name}.db"
        upgrade(url)
        runtime = make_runtime(url)
        try:
            summary = simulate_independent(runtime, seed=21, scale=0.12, days=8)
            with runtime.work(read_only=True) as work:
                statuses = Counter(work.session.scalars(select(Order.status)))
                amounts = sorted(work.session.scalars(select(Order.amount_minor)))
        finally:
            runtime.database.dispose()
        outcomes.append(
            (
                summary.checkouts,
                dict(statuses),
                amounts,
                Counter(summary.truth.shopper_roles.values()),
                Counter(summary.truth.fraud_orders.values()),
            )
        )
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] > 0
