"""A simulated marketplace that drives the real services day by day on the sandbox clock.

Shoppers here are honest (fraud typologies come later): some pay early, most on time, some late,
a few never. The simulator only calls services, exactly as the API would, and keeps its own ground
truth (each shopper's behaviour) to itself.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

from rich.console import Console
from rich.progress import Progress

from usefirst.credit.service import policy_from_settings
from usefirst.identity import service as identity_service
from usefirst.identity.validation import national_id_check_character
from usefirst.kit.errors import UsefirstError
from usefirst.ledger.service import audit
from usefirst.merchants import service as merchant_service
from usefirst.orders import service as order_service
from usefirst.orders.models import Order
from usefirst.runtime import Runtime, Work
from usefirst.sim.applicants import SimulatedApplicant, draw_applicant
from usefirst.sim.fraud import (
    FraudScenario,
    FraudWorld,
    GroundTruth,
    confirm_step_up,
    honest_signals,
)

BEHAVIOURS = {"early": 0.25, "on_time": 0.5, "late": 0.17, "never": 0.08}
CATEGORIES = ["electronics", "apparel", "home", "beauty", "books", "groceries"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚"


@dataclass
class SimulatedShopper:
    shopper_id: str
    behaviour: str
    late_days: int
    device_id: str | None = None
    ip: str | None = None
    address: str = "模拟地址"


@dataclass
class SimulationSummary:
    shoppers: int = 0
    merchants: int = 0
    days: int = 0
    checkouts: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    payments: int = 0
    refunds: int = 0
    cancellations: int = 0
    ledger_balanced: bool = False
    ledger_problems: list[str] = field(default_factory=list)
    ground_truth: GroundTruth | None = None
    # (shopper id, what the platform sent at enrolment and the simulator's hidden propensity)
    applicants: list[tuple[str, SimulatedApplicant]] = field(default_factory=list)

    def rows(self) -> list[tuple[str, str]]:
        rows = [
            ("shoppers", str(self.shoppers)),
            ("merchants", str(self.merchants)),
            ("days simulated", str(self.days)),
            ("orders", str(self.checkouts)),
            ("approved", str(self.outcomes["approved"])),
            ("declined", str(self.outcomes["declined"])),
            ("payments", str(self.payments)),
            ("refunds", str(self.refunds)),
            ("cancellations", str(self.cancellations)),
        ]
        rows += [
            (f"orders {status}", str(count)) for status, count in sorted(self.statuses.items())
        ]
        rows.append(("ledger balanced", "yes" if self.ledger_balanced else "no"))
        return rows


def _national_id(rng: random.Random) -> str:
    birth = date(1960, 1, 1) + timedelta(days=rng.randrange(0, 365 * 40))
    first = f"{rng.choice(['110105', '310104', '440305', '330106', '510107'])}{birth:%Y%m%d}"
    first += f"{rng.randrange(0, 1000):03d}"
    return first + national_id_check_character(first)


def simulate(
    runtime: Runtime,
    *,
    shoppers: int,
    merchants: int,
    days: int,
    seed: int,
    console: Console | None = None,
    scenario: FraudScenario | None = None,
) -> SimulationSummary:
    rng = random.Random(seed)
    settings = runtime.settings
    summary = SimulationSummary(shoppers=shoppers, merchants=merchants, days=days)
    population: list[SimulatedShopper] = []
    merchant_ids: list[str] = []
    with runtime.work() as work:
        for index in range(merchants):
            created = merchant_service.create_merchant(
                work.session,
                name=f"模拟商户 {index + 1}",
                category=rng.choice(CATEGORIES),
                webhook_url=None,
                settlement_days=None,
                fee_rate_bps=None,
                cipher=runtime.cipher,
                now=work.now,
            )
            merchant_ids.append(created.merchant.id)
        world = None
        if scenario is not None:
            world = FraudWorld(runtime, scenario=scenario, seed=seed, days=days)
            merchant_ids += world.populate(work, honest_merchant_ids=merchant_ids)
            summary.ground_truth = world.truth
        enrolled = 0
        while enrolled < shoppers:
            national_id = _national_id(rng)
            applicant = draw_applicant(
                seed=seed, index=enrolled, national_id=national_id, today=work.today
            )
            behaviour = applicant.behaviour
            signals = honest_signals(seed, enrolled)
            request = identity_service.EnrolmentRequest(
                external_id=f"sim-{seed}-{enrolled}-{rng.randrange(10**9)}",
                name=rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN),
                national_id=national_id,
                phone=f"+86139{rng.randrange(10**8):08d}",
                email=None,
                privacy_policy_version="2026-01",
                credit_report_authorized=True,
                consent_source="simulator",
                device_id=signals.device_id,
                ip=signals.ip,
                application=applicant.application,
            )
            try:
                with work.session.begin_nested():
                    enrolled_shopper, _ = identity_service.enrol_shopper(
                        work.session,
                        request=request,
                        cipher=runtime.cipher,
                        policy=policy_from_settings(settings),
                        currency=settings.currency,
                        today=work.today,
                        now=work.now,
                    )
            except UsefirstError:
                continue  # a random national ID collided with an earlier one: draw again
            summary.applicants.append((enrolled_shopper.id, applicant))
            if enrolled_shopper.status != "active":
                enrolled += 1
                continue  # declined at application: the platform does not offer BNPL to them
            population.append(
                SimulatedShopper(
                    enrolled_shopper.id,
                    behaviour,
                    late_days=rng.randint(2, 20),
                    device_id=signals.device_id,
                    ip=signals.ip,
                    address=signals.address,
                )
            )
            if world is not None:
                world.register_honest(enrolled_shopper.id, behaviour)
            enrolled += 1

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("simulating days", total=days)
        for _ in range(days):
            _simulate_day(runtime, rng, population, merchant_ids, summary)
            if world is not None:
                day = world.simulate_day()
                summary.checkouts += day.checkouts
                summary.outcomes += day.outcomes
                summary.payments += day.payments
            runtime.advance_test_clock(days=1)
            progress.advance(task)

    with runtime.work(read_only=True) as work:
        report = audit(work.session)
        shopper_ids = [shopper.shopper_id for shopper in population]
        shopper_ids += [actor.shopper_id for actor in world.actors] if world else []
        for shopper_id in shopper_ids:
            for order in order_service.orders_of_shopper(work.session, shopper_id=shopper_id):
                summary.statuses[order.status] += 1
    summary.ledger_balanced = report.is_balanced
    summary.ledger_problems = report.problems
    return summary


def _simulate_day(
    runtime: Runtime,
    rng: random.Random,
    population: list[SimulatedShopper],
    merchant_ids: list[str],
    summary: SimulationSummary,
) -> None:
    settings = runtime.settings
    for shopper in population:
        step_up_order_id = None
        with runtime.work() as work:
            session, now, today = work.session, work.now, work.today
            orders = order_service.orders_of_shopper(session, shopper_id=shopper.shopper_id)
            for order in orders:
                age_days = (today - order.created_at.date()).days
                _advance_order(runtime, rng, work, order, age_days, summary)
            if rng.random() < 0.08:
                amount = rng.choice([4_900, 9_900, 19_900, 29_900, 59_900, 89_900, 129_900])
                order, decision = order_service.checkout(
                    session,
                    request=order_service.CheckoutRequest(
                        shopper_id=shopper.shopper_id,
                        merchant_id=rng.choice(merchant_ids),
                        currency=settings.currency,
                        items=[
                            order_service.Item(
                                sku=f"sku-{rng.randrange(1000)}",
                                name="商品",
                                category=rng.choice(CATEGORIES),
                                quantity=1,
                                unit_price_minor=amount,
                            )
                        ],
                        plan=rng.choice(
                            [
                                "pay_after_delivery",
                                "pay_after_delivery",
                                "instalments_3",
                                "instalments_6",
                            ]
                        ),
                        shipping_address=shopper.address,
                        device_id=shopper.device_id,
                        ip=shopper.ip,
                    ),
                    cipher=runtime.cipher,
                    settings=settings,
                    now=now,
                )
                summary.checkouts += 1
                summary.outcomes[decision.outcome] += 1
                if decision.outcome == "step_up":
                    step_up_order_id = order.id
            _pay(runtime, work, shopper, summary)
        if step_up_order_id is not None:
            confirm_step_up(runtime, order_id=step_up_order_id)


def _advance_order(
    runtime: Runtime,
    rng: random.Random,
    work: Work,
    order: Order,
    age_days: int,
    summary: SimulationSummary,
) -> None:
    settings = runtime.settings
    if order.status == "approved":
        if rng.random() < 0.03:
            order_service.cancel(
                work.session,
                order_id=order.id,
                merchant_id=order.merchant_id,
                settings=settings,
                now=work.now,
            )
            summary.cancellations += 1
        elif age_days >= 1:
            order_service.ship(
                work.session,
                order_id=order.id,
                merchant_id=order.merchant_id,
                carrier="SF",
                tracking_number=f"SF{rng.randrange(10**12):012d}",
                settings=settings,
                now=work.now,
            )
    elif order.status == "shipped" and age_days >= 3 and rng.random() < 0.6:
        order_service.confirm_receipt(
            work.session,
            order_id=order.id,
            delivered_on=work.today,
            settings=settings,
            now=work.now,
        )
    elif order.status in ("delivered", "overdue") and rng.random() < 0.01:
        remaining = order.amount_minor - order.refunded_minor
        order_service.refund(
            work.session,
            order_id=order.id,
            merchant_id=order.merchant_id,
            amount_minor=max(1, remaining // 2),
            reason="部分退货",
            today=work.today,
            settings=settings,
            now=work.now,
        )
        summary.refunds += 1


def _pay(
    runtime: Runtime, work: Work, shopper: SimulatedShopper, summary: SimulationSummary
) -> None:
    if shopper.behaviour == "never":
        return
    offset = {"early": -5, "on_time": 0, "late": shopper.late_days}[shopper.behaviour]
    statement = order_service.statement(
        work.session, shopper_id=shopper.shopper_id, today=work.today
    )
    due_now = 0
    for order in statement["orders"]:
        for instalment in order["instalments"]:
            due_on = instalment["due_on"]
            if (
                instalment["amount_due_minor"]
                and due_on is not None
                and work.today >= due_on + timedelta(days=offset)
            ):
                due_now += instalment["amount_due_minor"]
    if due_now:
        order_service.pay(
            work.session,
            shopper_id=shopper.shopper_id,
            amount_minor=due_now,
            currency=statement["currency"],
            order_id=None,
            method="alipay",
            external_ref=None,
            today=work.today,
            settings=runtime.settings,
            now=work.now,
        )
        summary.payments += 1
