"""The simulator's fraud typologies act through the real services and keep their ground truth to
themselves; the same seed gives the same marketplace."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from tests.conftest import make_runtime
from usefirst.identity.models import Shopper
from usefirst.kit.migrate import upgrade
from usefirst.lab.sim.fraud import RESELLABLE_CATEGORIES, FraudScenario, GroundTruth
from usefirst.lab.sim.marketplace import SimulationSummary, simulate
from usefirst.orders.models import Order
from usefirst.runtime import Runtime

SCENARIO = FraudScenario(
    rings=1,
    mules_per_ring=4,
    bust_outs=1,
    synthetic_clusters=1,
    identities_per_cluster=3,
    big_spenders=2,
    families=1,
    family_size=3,
)


def _simulate(runtime: Runtime, seed: int = 4) -> SimulationSummary:
    return simulate(runtime, shoppers=4, merchants=2, days=12, seed=seed, scenario=SCENARIO)


def test_typologies_act_through_the_services_with_their_shapes(runtime: Runtime) -> None:
    summary = _simulate(runtime)
    truth = summary.ground_truth
    assert truth is not None
    assert summary.ledger_balanced
    roles = Counter(truth.shopper_roles.values())
    assert {
        role: roles[role]
        for role in ("ring_mule", "bust_out", "synthetic", "big_spender", "family")
    } == {
        "ring_mule": 4,
        "bust_out": 1,
        "synthetic": 3,
        "big_spender": 2,
        "family": 3,
    }
    assert sum(count for role, count in roles.items() if role.startswith("honest_")) <= 4
    ring = truth.rings["ring-1"]
    colluding = str(ring["merchant_id"])
    mules = list(ring["mules"])
    assert truth.merchant_roles[colluding] == "colluding"
    assert Counter(truth.merchant_roles.values()) == {"honest": 2, "colluding": 1}

    with runtime.work(read_only=True) as work:
        mule_devices = set(
            work.session.scalars(select(Shopper.enrolment_device_id).where(Shopper.id.in_(mules)))
        )
        mule_orders = list(work.session.scalars(select(Order).where(Order.shopper_id.in_(mules))))
        fraud_orders = list(
            work.session.scalars(select(Order).where(Order.id.in_(list(truth.fraud_orders))))
        )
        work.session.expunge_all()
        family = [s for s, role in truth.shopper_roles.items() if role == "family"]
        family_devices = set(
            work.session.scalars(select(Shopper.enrolment_device_id).where(Shopper.id.in_(family)))
        )
    # Mules enrol from a few shared devices and phones of one number block.
    assert len(mule_devices) <= 3
    assert len(family_devices) == 1
    assert mule_orders, "the ring bought something"
    for order in mule_orders:
        assert order.merchant_id == colluding
        assert truth.fraud_orders[order.id] == "ring_cash_out"
        assert {item["category"] for item in order.items} <= set(RESELLABLE_CATEGORIES)
        if order.shipped_at is not None:
            # Nothing is sent: a reused or malformed waybill, "shipped" the day it was bought.
            assert order.shipped_at.date() == order.created_at.date()
        if order.delivered_at is not None:
            assert order.shipped_at is not None
            assert order.delivered_at - order.shipped_at <= timedelta(days=1)
    shipped_waybills = [order.tracking_number for order in mule_orders if order.tracking_number]
    assert len(set(shipped_waybills)) <= 4
    for order in fraud_orders:
        assert {item["category"] for item in order.items} <= set(RESELLABLE_CATEGORIES)
    assert set(truth.fraud_orders.values()) <= {"ring_cash_out", "bust_out", "synthetic_bust_out"}


def test_the_same_seed_gives_the_same_marketplace(tmp_path: Path) -> None:
    outcomes = []
    for name in ("first", "second"):
        url = f"sqlite:///{tmp_path / name}.db"
        upgrade(url)
        runtime = make_runtime(url)
        try:
            summary = _simulate(runtime, seed=9)
        finally:
            runtime.database.dispose()
        truth = summary.ground_truth
        assert truth is not None
        outcomes.append(
            (
                summary.checkouts,
                dict(summary.outcomes),
                dict(summary.statuses),
                summary.payments,
                Counter(truth.shopper_roles.values()),
                Counter(truth.fraud_orders.values()),
            )
        )
    assert outcomes[0] == outcomes[1]


def test_ground_truth_round_trips_through_its_own_file(tmp_path: Path) -> None:
    truth = GroundTruth(
        seed=3,
        shopper_roles={"shp_1": "ring_mule", "shp_2": "honest_late"},
        merchant_roles={"mer_1": "colluding"},
        fraud_orders={"ord_1": "ring_cash_out"},
        rings={"ring-1": {"merchant_id": "mer_1", "mules": ["shp_1"]}},
    )
    path = tmp_path / "truth.json"
    truth.write(path)
    assert GroundTruth.read(path) == truth
    assert truth.is_fraud_order("ord_1") and not truth.is_fraud_order("ord_2")
    assert truth.is_fraud_shopper("shp_1") and not truth.is_fraud_shopper("shp_2")
