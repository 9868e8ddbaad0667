"""What the demo adds around the simulated history so that every console page has work on it.

The simulated marketplace is honest and short (45 days), so on its own it leaves the risk queue,
the disputes, the complaints and the promises empty and never reaches a charge-off. Everything
here goes through the same services the API calls, on the sandbox clock:

- before the history: a shopper who never pays for an order bought half a year earlier; the daily
  sweep charges it off at 180 days past due as the clock moves on to the history's start;
- after it, at a working hour (collector calls are refused in quiet hours): orders delivered to
  a shop's own address (held for review, the merchant warned), a ring of shoppers on one device
  buying phones and gold at one shop (a ring case from the link analysis), disputes with
  evidence files, complaints, and promises to pay taken on collector calls.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as time_of_day
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select

from usefirst.api.routers.disputes import evidence_store
from usefirst.collections import service as collections_service
from usefirst.collections.models import ContactAttempt
from usefirst.credit.service import policy_from_settings
from usefirst.disputes import service as dispute_service
from usefirst.disputes.models import Dispute, DisputeEvidence
from usefirst.disputes.storage import check_upload
from usefirst.flows import checkout as checkout_flow
from usefirst.flows import (
    collector_calls,
    dispute_resolution,
    enrolment,
    fulfilment,
    merchant_onboarding,
    risk_monitoring,
)
from usefirst.identity import service as identity_service
from usefirst.identity.models import Operator
from usefirst.kit.errors import UsefirstError
from usefirst.lab.sim.fraud import SIMULATION_ACTOR
from usefirst.lab.sim.identities import draw_shopper_national_id
from usefirst.orders import service as order_service
from usefirst.orders.models import Order
from usefirst.privacy import complaints as complaint_service
from usefirst.privacy.models import Complaint
from usefirst.risk.models import RiskAction, RiskCase
from usefirst.runtime import Runtime, Work

# The charge-off step of the shipped ladder is day 180; a little more, so the sweep reaches it.
CHARGE_OFF_HISTORY_DAYS = 200
SHOP_ADDRESS = "北京市朝阳区望京街 9 号 1 层"
NEVER_PAID_ADDRESS = "天津市和平区南京路 1 号 2 单元 302 室"
RING_DEVICE = "demo-ring-device"
RING_IP = "198.51.100.77"
RING_ADDRESS = "深圳市南山区科技园路 88 号 3 栋 1201 室"
RING_TRACKING_NUMBER = "SF1400000000077"
RING_SIZE = 5
# Within a new shopper's credit line, so that the address, not the limit, decides.
HELD_AMOUNTS_MINOR = (45_000, 38_800, 29_900)
COLLECTOR_EMAIL = "collector@demo.usefirst.example"
WORKING_HOUR = 10
CLOSING_HOUR = 18
PROMISES = 2
COMPLAINTS = (
    ("collection_conduct", "催收短信在晚上十点以后还在发，请停止。"),
    ("billing", "同一笔分期被扣了两次款，请核实并退还多扣的部分。"),
    ("privacy", "请告知你们保存了我的哪些个人信息，以及保存多久。"),
)


@dataclass
class DemoSeed:
    """What the demo seeding added, counted from the database afterwards."""

    held_orders: int = 0
    merchant_warnings: int = 0
    ring_cases: int = 0
    disputes: int = 0
    evidence_files: int = 0
    complaints: int = 0
    promises: int = 0
    charged_off_orders: int = 0

    def rows(self) -> list[tuple[str, str]]:
        return [(name.replace("_", " "), str(value)) for name, value in vars(self).items()]


def move_to_working_hour(runtime: Runtime, *, opening_hour: int = WORKING_HOUR) -> datetime:
    """Outside business hours (before ``opening_hour`` or from 18:00 on, in the business time
    zone), move the sandbox clock on to the next opening; the daily sweep runs on the way."""
    zone = ZoneInfo(runtime.settings.time_zone)
    with runtime.work(read_only=True) as work:
        local = work.now.astimezone(zone)
    if not opening_hour <= local.hour < CLOSING_HOUR:
        opening_day = local.date() + timedelta(days=1 if local.hour >= CLOSING_HOUR else 0)
        opening = datetime.combine(opening_day, time_of_day(opening_hour), tzinfo=zone)
        runtime.advance_test_clock(seconds=int((opening - local).total_seconds()))
    with runtime.work(read_only=True) as work:
        return work.now


def seed_before_history(runtime: Runtime) -> str:
    """An order bought and delivered, then never paid, long enough ago that the daily sweep
    charges it off; returns its id. Run on an empty book, so the half year of sweeps is cheap."""
    with runtime.work() as work:
        merchant = _merchant(runtime, work, name="老城家电", category="home", address=None)
        shopper_id = _enrol(runtime, work, external_id="demo-never-pays", name="赵未还")
        order_id = _buy(
            runtime, work, shopper_id, merchant, 86_000, address="天津市和平区南京路 1 号"
        )
        _ship(runtime, work, order_id, merchant, "SF1400000000001")
    runtime.advance_test_clock(days=2)
    with runtime.work() as work:
        fulfilment.confirm_receipt(
            work.session,
            order_id=order_id,
            delivered_on=work.today,
            settings=runtime.settings,
            now=work.now,
        )
    runtime.advance_test_clock(days=CHARGE_OFF_HISTORY_DAYS)
    return order_id


def seed_after_history(runtime: Runtime) -> DemoSeed:
    move_to_working_hour(runtime)
    _held_orders(runtime)
    _ring(runtime)
    _disputes(runtime)
    _complaints(runtime)
    _promises(runtime)
    return count_demo(runtime)


def count_demo(runtime: Runtime) -> DemoSeed:
    with runtime.work(read_only=True) as work:
        session = work.session

        def count(*conditions: object, table: object) -> int:
            return int(
                session.scalar(select(func.count()).select_from(table).where(*conditions)) or 0  # type: ignore[arg-type]
            )

        return DemoSeed(
            held_orders=count(Order.status.in_(("review", "step_up")), table=Order),
            merchant_warnings=count(RiskAction.action == "merchant_warning", table=RiskAction),
            ring_cases=count(RiskCase.case_type == "ring", table=RiskCase),
            disputes=count(table=Dispute),
            evidence_files=count(table=DisputeEvidence),
            complaints=count(table=Complaint),
            promises=count(ContactAttempt.promise_on.is_not(None), table=ContactAttempt),
            charged_off_orders=count(Order.status == "charged_off", table=Order),
        )


# --- the pieces ------------------------------------------------------------------------------


def _merchant(
    runtime: Runtime, work: Work, *, name: str, category: str, address: str | None
) -> str:
    created = merchant_onboarding.create_merchant(
        work.session,
        name=name,
        category=category,
        webhook_url=None,
        settlement_days=None,
        fee_rate_bps=None,
        cipher=runtime.cipher,
        actor=SIMULATION_ACTOR,
        now=work.now,
        address=address,
    )
    return created.merchant.id


_serial = iter(range(1, 10_000))
# The demo's own draws, apart from the simulation's (whose seed decides the marketplace).
_identities = random.Random(20261207)


def _enrol(
    runtime: Runtime,
    work: Work,
    *,
    external_id: str,
    name: str,
    device_id: str | None = None,
    ip: str | None = None,
) -> str:
    number = next(_serial)
    settings = runtime.settings
    shopper, _ = enrolment.enrol_shopper(
        work.session,
        request=enrolment.EnrolmentRequest(
            external_id=external_id,
            name=name,
            national_id=draw_shopper_national_id(_identities),
            phone=f"+86137{number:08d}",
            email=None,
            privacy_policy_version="2026-01",
            credit_report_authorized=True,
            consent_source="demo",
            device_id=device_id,
            ip=ip,
        ),
        cipher=runtime.cipher,
        policy=policy_from_settings(settings),
        currency=settings.currency,
        default_time_zone=settings.time_zone,
        today=work.today,
        now=work.now,
    )
    return shopper.id


def _buy(
    runtime: Runtime,
    work: Work,
    shopper_id: str,
    merchant_id: str,
    amount_minor: int,
    *,
    address: str,
    category: str = "electronics",
    device_id: str | None = None,
    ip: str | None = None,
) -> str:
    order, _decision = checkout_flow.checkout(
        work.session,
        request=order_service.CheckoutRequest(
            shopper_id=shopper_id,
            merchant_id=merchant_id,
            currency=runtime.settings.currency,
            items=[
                order_service.Item(
                    sku=f"{category}-1",
                    name=category,
                    category=category,
                    quantity=1,
                    unit_price_minor=amount_minor,
                )
            ],
            plan="pay_after_delivery",
            shipping_address=address,
            device_id=device_id,
            ip=ip,
        ),
        cipher=runtime.cipher,
        settings=runtime.settings,
        now=work.now,
    )
    return order.id


def _ship(runtime: Runtime, work: Work, order_id: str, merchant_id: str, tracking: str) -> None:
    fulfilment.ship(
        work.session,
        order_id=order_id,
        merchant_id=merchant_id,
        carrier="SF",
        tracking_number=tracking,
        settings=runtime.settings,
        now=work.now,
    )


def _held_orders(runtime: Runtime) -> None:
    """Orders delivered to the shop's own address: held for review, the merchant warned."""
    with runtime.work() as work:
        shop = _merchant(
            runtime, work, name="望京数码旗舰店", category="electronics", address=SHOP_ADDRESS
        )
        for index, amount in enumerate(HELD_AMOUNTS_MINOR):
            shopper_id = _enrol(
                runtime,
                work,
                external_id=f"demo-held-{index}",
                name=("钱", "孙", "李")[index] + "晓明",
            )
            _buy(runtime, work, shopper_id, shop, amount, address=SHOP_ADDRESS)


def _ring(runtime: Runtime) -> None:
    """Shoppers on one device and address buying phones and gold at one shop, shipped under
    one tracking number and confirmed at once: the link analysis opens a ring case."""
    with runtime.work() as work:
        shop = _merchant(runtime, work, name="数码回收行", category="electronics", address=None)
        orders = []
        for index in range(RING_SIZE):
            mule = _enrol(
                runtime,
                work,
                external_id=f"demo-ring-{index}",
                name=("周", "吴", "郑", "王", "冯")[index] + "小龙",
                device_id=RING_DEVICE,
                ip=RING_IP,
            )
            orders.append(
                _buy(
                    runtime,
                    work,
                    mule,
                    shop,
                    89_900,
                    address=RING_ADDRESS,
                    category="phones" if index % 2 else "gold",
                    device_id=RING_DEVICE,
                    ip=RING_IP,
                )
            )
        for order_id in orders:
            order = order_service.find_order(work.session, order_id=order_id)
            if order.status == "approved":
                _ship(runtime, work, order_id, shop, RING_TRACKING_NUMBER)
                fulfilment.confirm_receipt(
                    work.session,
                    order_id=order_id,
                    delivered_on=work.today,
                    settings=runtime.settings,
                    now=work.now,
                )
    with runtime.work() as work:
        risk_monitoring.run_graph(
            work.session, cipher=runtime.cipher, settings=runtime.settings, now=work.now
        )


EVIDENCE = (
    ("签收记录.txt", "text/plain", "2026-11-02 14:05 顾客本人签收，快递员拍照留存。\n".encode()),
    (
        "物流轨迹.json",
        "application/json",
        b'{"carrier": "SF", "events": ["picked up", "delivered"]}',
    ),
)


DISPUTE_TEXTS = ("收到的耳机是二手的，包装已拆封。", "物流显示已签收，但我没有收到。")


def _disputes(runtime: Runtime) -> None:
    """A shopper's dispute answered by the merchant with evidence files, and one still waiting."""
    with runtime.work() as work:
        session = work.session
        orders = list(
            session.scalars(
                select(Order)
                .where(Order.status.in_(("shipped", "delivered")))
                .order_by(Order.decided_at.desc(), Order.id)
                .limit(2)
            )
        )
        store = evidence_store(runtime)
        for index, order in enumerate(orders):
            dispute = dispute_resolution.open_dispute(
                session,
                order_id=order.id,
                opened_by="shopper",
                reason="not_as_described" if index == 0 else "not_received",
                description="收到的耳机是二手的，包装已拆封。"
                if index == 0
                else "物流显示已签收，但我没有收到。",
                caller=dispute_service.Caller(side="shopper", actor_id="demo-platform"),
                settings=runtime.settings,
                now=work.now,
            )
            if index:
                continue
            for filename, content_type, content in EVIDENCE:
                dispute_resolution.add_evidence(
                    session,
                    dispute_id=dispute.id,
                    checked=check_upload(
                        content=content,
                        declared_content_type=content_type,
                        filename=filename,
                        max_bytes=runtime.settings.dispute_evidence_max_bytes,
                    ),
                    caller=dispute_service.Caller(
                        side="merchant", actor_id="demo-merchant", merchant_id=order.merchant_id
                    ),
                    store=store,
                    settings=runtime.settings,
                    now=work.now,
                )


def _complaints(runtime: Runtime) -> None:
    with runtime.work() as work:
        shopper_ids = list(
            work.session.scalars(
                # Late payers first: complaints come mostly from accounts in collections.
                select(Order.shopper_id)
                .group_by(Order.shopper_id)
                .order_by(
                    func.max(case((Order.status == "overdue", 1), else_=0)).desc(),
                    Order.shopper_id,
                )
                .limit(len(COMPLAINTS))
            )
        )
        for shopper_id, (category, text) in zip(shopper_ids, COMPLAINTS, strict=False):
            complaint_service.file_complaint(
                work.session,
                shopper_id=shopper_id,
                category=category,
                description=text,
                cipher=runtime.cipher,
                response_days=runtime.settings.complaint_response_days,
                now=work.now,
            )


def _promises(runtime: Runtime) -> None:
    """A collector calls the top of the queue; the first shoppers reached promise to pay what
    is overdue within the week (a call the contact policy refuses is skipped)."""
    with runtime.work() as work:
        collector = work.session.scalar(select(Operator).where(Operator.email == COLLECTOR_EMAIL))
        if collector is None:
            collector, _ = identity_service.create_operator(
                work.session, email=COLLECTOR_EMAIL, role="collector", now=work.now
            )
        collector_id = collector.id
        queue = collections_service.collection_queue(work.session, today=work.today, limit=50)
    promised = 0
    for entry in queue:
        if promised == PROMISES:
            break
        with runtime.work() as work:
            savepoint = work.session.begin_nested()
            try:
                collector_calls.record_call(
                    work.session,
                    order_id=entry["order_id"],
                    outcome="promise_to_pay",
                    promise_on=work.today + timedelta(days=5),
                    promise_minor=entry["overdue_minor"],
                    note="发工资后一次还清。",
                    operator_id=collector_id,
                    settings=runtime.settings,
                    cipher=runtime.cipher,
                    today=work.today,
                    now=work.now,
                )
            except UsefirstError:
                savepoint.rollback()
                continue
            savepoint.commit()
            promised += 1
