"""The incremental nightly graph finds exactly what the full recompute finds, night after night,
on a random book whose links come and go: identifiers observed each night, observations leaving
the window, identifiers crossing ``max_link_shoppers``, merchants sharing a phone with shoppers,
reused tracking numbers, components large enough for Leiden, address clusters of the online
signals' events; and enrolment devices and IPs hashed by the run for shoppers made before
migration 0037. Both also freeze the same members' credit (``risk.ring_freezing``, which reads
the findings' ``member_links``)."""

from __future__ import annotations

import random
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from tests.factories import checkout_in_work, enrol_in_work, merchant_in_work
from usefirst.identity.models import Shopper
from usefirst.kit.crypto import link_hash
from usefirst.merchants.models import Merchant
from usefirst.orders.models import Order
from usefirst.risk import graph, ring_freezing
from usefirst.risk.models import GraphMember, GraphRun, LinkObservation, Ring, SignalEvent
from usefirst.runtime import Runtime

PARAMETERS = graph.GraphParameters(
    ring_threshold=0.0,  # every group is a ring: the rings and cases are compared too
    max_link_shoppers=6,
    community_split_shoppers=4,
    window_days=5,
)
NIGHTS = 9
SHOPPERS = 80
CROWD = SHOPPERS - 7  # the last seven shoppers are the crowd
MERCHANT_PHONE = "merchant-phone-hash-1"
# Three shoppers outside the random book: a mule with a cash-out order in the window, a fresh
# account on the mule's handset, and a newcomer behind the mule's NAT address.
MULE_DEVICE = "device-mule-handset"
MULE_IP = "ip-mule-nat"


class _NoEffects:
    """Holds and freezes are other domains' changes: recorded, not made."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def hold_settlement(self, session: Any, **kwargs: Any) -> None:
        self.calls.append(("hold", str(kwargs["order_id"])))

    def freeze_shopper_limit(self, session: Any, **kwargs: Any) -> None:
        self.calls.append(("freeze", str(kwargs["shopper_id"])))

    def put_merchant_on_watch(self, session: Any, **kwargs: Any) -> None:
        self.calls.append(("watch", str(kwargs["merchant_id"])))

    def warn_merchant(self, session: Any, **kwargs: Any) -> None:
        self.calls.append(("warn", str(kwargs["merchant_id"])))


def _findings(findings: list[graph.RingFinding]) -> list[dict[str, Any]]:
    # Without the ring and case the run matched them to (set by the run, after scoring).
    return sorted(
        ({**asdict(finding), "ring_id": None, "case_id": None} for finding in findings),
        key=lambda f: f["members"],
    )


def _observation(shopper_id: str, order_id: str, kind: str, value: str, at: datetime) -> Any:
    return LinkObservation(
        shopper_id=shopper_id,
        order_id=order_id,
        kind=kind,
        value_hash=value,
        merchant_id="mch_x",
        observed_at=at,
    )


def _cluster(shopper_id: str, order_id: str, value: str, at: datetime) -> SignalEvent:
    return SignalEvent(
        kind="cluster",
        key_hash=value,
        created_at=at,
        order_id=order_id,
        shopper_id=shopper_id,
        merchant_id="mch_x",
        amount_minor=50_000,
        is_held=0,
    )


def _observe(
    rng: random.Random, shoppers: list[str], *, night: int, now: datetime
) -> list[LinkObservation | SignalEvent]:
    """Many shoppers seen the first night, a few each night after (most components stay as they
    were, until the first night's links leave the window); and a crowd of seven
    behind one IP (more than ``max_link_shoppers``), one of them seen a night before the others:
    when that one leaves the window, the other six are tied together by it."""
    rows: list[LinkObservation | SignalEvent] = []
    for index in range(40 if night == 1 else 3):
        shopper_id = rng.choice(shoppers[:CROWD])
        order_id = f"ord_n{night}_{index}"
        for kind, pool in (("device", 30), ("ip", 20), ("address", 40), ("phone", 50)):
            if rng.random() < 0.5:
                value = f"{kind}-{rng.randrange(pool)}"
                if kind == "phone" and value == "phone-0":
                    value = MERCHANT_PHONE  # the merchant's own phone: ties it to the shopper
                at = now - timedelta(hours=rng.randrange(0, 20))
                rows.append(_observation(shopper_id, order_id, kind, value, at))
                if kind == "address" and rng.random() < 0.6:
                    # The address's cluster: the ways of writing it folded into one key, which
                    # other spellings (other address hashes) share.
                    cluster = f"cluster-{int(value.partition('-')[2]) % 15}"
                    rows.append(_cluster(shopper_id, order_id, cluster, at))
    crowd = shoppers[CROWD:]
    for shopper_id in {1: crowd[:1], 2: crowd[1:]}.get(night, []):
        rows.append(_observation(shopper_id, f"ord_crowd_{night}", "ip", "ip-crowd", now))
    return rows


def _frozen(
    session: Any, findings: list[graph.RingFinding], *, now: datetime
) -> dict[tuple[str, ...], list[str]]:
    """Whose credit each ring's case would freeze, by the ring's members."""
    return {
        tuple(finding.members): ring_freezing.members_to_freeze(
            session,
            members=finding.members,
            ring_order_ids=finding.order_ids,
            member_links=finding.member_links,
            since=now - timedelta(days=PARAMETERS.window_days),
            cash_out_min_amount_minor=PARAMETERS.cash_out_min_amount_minor,
            fast_delivery_hours=PARAMETERS.fast_delivery_hours,
        )
        for finding in findings
        if finding.is_ring(PARAMETERS)
    }


def test_incremental_nights_find_what_the_full_recompute_finds(runtime: Runtime) -> None:
    rng = random.Random(20261207)
    start = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    with runtime.work() as work:
        merchant = merchant_in_work(runtime, work, name="Phones")
        work.session.execute(
            update(Merchant).where(Merchant.id == merchant.id).values(phone_hash=MERCHANT_PHONE)
        )
        shoppers = [
            enrol_in_work(runtime, work, external_id=f"u{index}")[0].id for index in range(SHOPPERS)
        ]
        # Enrolled before migration 0037: a device and IP without their link hashes.
        for index, shopper_id in enumerate(shoppers):
            work.session.execute(
                update(Shopper)
                .where(Shopper.id == shopper_id)
                .values(
                    enrolment_device_id=(
                        f"Enrol-Device-{index % 25} " if index % 3 and index < CROWD else None
                    ),
                    enrolment_ip=f"10.0.0.{index % 5}" if index % 4 == 0 else "  ",
                    enrolment_device_hash=None,
                    enrolment_ip_hash=None,
                )
            )
        orders = [
            checkout_in_work(
                runtime, work, shopper_id=shopper_id, merchant_id=merchant.id, amount_minor=50_000
            ).id
            for shopper_id in shoppers[:8]
        ]
        mule, reserve, newcomer = (
            enrol_in_work(runtime, work, external_id=name)[0].id
            for name in ("mule", "reserve", "newcomer")
        )
        work.session.execute(
            update(Shopper)
            .where(Shopper.id.in_([mule, reserve, newcomer]))
            .values(
                enrolment_device_id=None,
                enrolment_ip="  ",
                enrolment_device_hash=None,
                enrolment_ip_hash=None,
            )
        )
        # A phone (resellable) at the merchant, placed the first night: a ring's cash-out order.
        mule_order = checkout_in_work(
            runtime,
            work,
            shopper_id=mule,
            merchant_id=merchant.id,
            amount_minor=50_000,
            category="phones",
            shipping_address="上海市浦东新区世纪大道 100 号 1 栋 808 室",
        ).id
        work.session.execute(
            update(Order)
            .where(Order.id == mule_order)
            .values(created_at=start + timedelta(days=1, hours=-2))
        )
    effects = _NoEffects()
    modes = []
    trio_frozen: dict[int, list[str]] = {}
    for night in range(1, NIGHTS + 1):
        now = start + timedelta(days=night)
        with runtime.work() as work:
            work.session.add_all(_observe(rng, shoppers, night=night, now=now))
            if night == 1:
                at = now - timedelta(hours=1)
                work.session.add_all(
                    [
                        _observation(mule, mule_order, "device", MULE_DEVICE, at),
                        _observation(reserve, "ord_reserve", "device", MULE_DEVICE, at),
                        _observation(mule, mule_order, "ip", MULE_IP, at),
                        _observation(newcomer, "ord_newcomer", "ip", MULE_IP, at),
                    ]
                )
            # Orders shipped with one tracking number on some nights (reused, then left the window).
            if night in (2, 3):
                for order_id in orders[night * 2 : night * 2 + 3]:
                    work.session.execute(
                        update(Order)
                        .where(Order.id == order_id)
                        .values(tracking_number=f"TN{night}", shipped_at=now - timedelta(hours=3))
                    )
        with runtime.work() as work:
            full_summary, full, _ = graph.score_groups(
                work.session,
                cipher=runtime.cipher,
                settings=runtime.settings,
                now=now,
                parameters=PARAMETERS,
                incremental=False,
            )
            incremental_summary, incremental, _ = graph.score_groups(
                work.session,
                cipher=runtime.cipher,
                settings=runtime.settings,
                now=now,
                parameters=PARAMETERS,
                incremental=True,
            )
            assert _findings(incremental) == _findings(full), f"night {night}"
            frozen = _frozen(work.session, full, now=now)
            assert _frozen(work.session, incremental, now=now) == frozen, f"night {night}"
            trio = tuple(sorted([mule, reserve, newcomer]))
            if trio in frozen:
                trio_frozen[night] = frozen[trio]
            assert incremental_summary.component_shoppers == full_summary.component_shoppers
            assert incremental_summary.shoppers <= full_summary.shoppers
            modes.append(incremental_summary.mode)
            summary = graph.run_graph(
                work.session,
                cipher=runtime.cipher,
                settings=runtime.settings,
                now=now,
                effects=effects,
                trigger="nightly",
                parameters=PARAMETERS,
                incremental=True,
            )
            assert _findings(summary.rings) == _findings([f for f in full if f.is_ring(PARAMETERS)])
            # The run froze at least those (a ring's members kept from earlier nights add to them).
            calls = {shopper for kind, shopper in effects.calls if kind == "freeze"}
            assert calls >= {shopper for members in frozen.values() for shopper in members}
            effects.calls.clear()
            stored = set(work.session.scalars(select(GraphMember.shopper_id)))
            assert stored == full_summary.component_shoppers
    # The first night has no run to start from; every later one is incremental.
    assert modes == ["full"] + ["incremental"] * (NIGHTS - 1)
    with runtime.work(read_only=True) as work:
        hashed = work.session.execute(
            select(
                Shopper.enrolment_device_id,
                Shopper.enrolment_device_hash,
                Shopper.enrolment_ip,
                Shopper.enrolment_ip_hash,
            ).where(Shopper.id.in_(shoppers))
        ).all()
        run_modes = [
            run.parameters["mode"]
            for run in work.session.scalars(select(GraphRun).order_by(GraphRun.started_at))
        ]
        rings = work.session.scalars(select(Ring.id)).all()
        clustered = [
            ring
            for ring in work.session.scalars(select(Ring))
            if any(link["kind"] == "cluster" for link in ring.evidence["shared_links"])
        ]
    for device_id, device_hash, ip, ip_hash in hashed:
        assert device_hash == (
            link_hash(runtime.cipher, "device", device_id) if device_id else None
        )
        assert ip_hash == (link_hash(runtime.cipher, "ip", ip) if ip and ip.strip() else "")
    assert run_modes == modes
    assert rings, "the random book has rings (so the comparison compared something)"
    assert clustered, "address clusters tied some groups together"
    # While the mule's order is in the window (nights 1 to 5), the trio is a ring: the mule is
    # frozen for its cash-out order, the fresh account for the handset it shares with the mule;
    # the newcomer, tied by the NAT address alone and with no order, is not.
    assert trio_frozen == {
        night: [shopper for shopper in sorted([mule, reserve, newcomer]) if shopper != newcomer]
        for night in range(1, 6)
    }


def test_a_run_with_other_parameters_recomputes_everything(runtime: Runtime) -> None:
    now = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
    with runtime.work() as work:
        shoppers = [enrol_in_work(runtime, work, external_id=f"p{i}")[0].id for i in range(4)]
        work.session.add_all(
            LinkObservation(
                shopper_id=shopper_id,
                order_id=f"ord_{shopper_id}",
                kind="device",
                value_hash="shared-device",
                merchant_id="mch_x",
                observed_at=now - timedelta(hours=1),
            )
            for shopper_id in shoppers
        )
    effects = _NoEffects()
    modes = []
    for parameters, day in ((PARAMETERS, 0), (PARAMETERS, 1), (graph.GraphParameters(), 2)):
        with runtime.work() as work:
            summary = graph.run_graph(
                work.session,
                cipher=runtime.cipher,
                settings=runtime.settings,
                now=now + timedelta(days=day),
                effects=effects,
                parameters=parameters,
                incremental=True,
            )
            modes.append(summary.mode)
            assert summary.component_shoppers == set(shoppers)
    assert modes == ["full", "incremental", "full"]
