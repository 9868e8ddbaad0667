"""A simulated marketplace that drives the real services day by day on the sandbox clock.

Shoppers here are honest (fraud typologies come later): some pay early, most on time, some late,
a few never. The simulator only calls services, exactly as the API would, and keeps its own ground
truth (each shopper's behaviour) to itself.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

from rich.console import Console
from rich.progress import Progress
from sqlalchemy import select

from usefirst.credit.service import policy_from_settings
from usefirst.flows import (
    cancellation,
    enrolment,
    fulfilment,
    merchant_onboarding,
    payments,
    refunds,
)
from usefirst.flows import checkout as checkout_flow
from usefirst.flows.reconcile import audit
from usefirst.kit.errors import UsefirstError
from usefirst.lab.sim.applicants import SimulatedApplicant, draw_applicant
from usefirst.lab.sim.fraud import (
    SIMULATION_ACTOR,
    FraudScenario,
    FraudWorld,
    GroundTruth,
    confirm_step_up,
    honest_signals,
    merchant_name,
    shopper_external_id,
)
from usefirst.lab.sim.identities import draw_shopper_national_id
from usefirst.orders import service as order_service
from usefirst.orders.models import Order
from usefirst.repayment import service as repayment_service
from usefirst.runtime import Runtime, Work

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
    # The simulator's memory of the shopper's last statement: the first day something of it is
    # payable by the shopper's habit, and which orders could fall due then.
    pay_check_on: date | None = None
    due_orders_seen: frozenset[str] = frozenset()


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
            created = merchant_onboarding.create_merchant(
                work.session,
                name=merchant_name(index + 1),
                category=rng.choice(CATEGORIES),
                webhook_url=None,
                settlement_days=None,
                fee_rate_bps=None,
                cipher=runtime.cipher,
                actor=SIMULATION_ACTOR,
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
            national_id = draw_shopper_national_id(rng)
            applicant = draw_applicant(
                seed=seed, index=enrolled, national_id=national_id, today=work.today
            )
            behaviour = applicant.behaviour
            signals = honest_signals(seed, enrolled)
            request = enrolment.EnrolmentRequest(
                external_id=shopper_external_id(seed, enrolled, rng.randrange(10**9)),
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
                    enrolled_shopper, _ = enrolment.enrol_shopper(
                        work.session,
                        request=request,
                        cipher=runtime.cipher,
                        policy=policy_from_settings(settings),
                        currency=settings.currency,
                        default_time_zone=settings.time_zone,
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

    # Off a terminal the day lines below report progress; a bar there would end as a blank line.
    day_lines = console is not None and not console.is_terminal
    with Progress(console=console, transient=True, disable=day_lines) as progress:
        task = progress.add_task("simulating days", total=days)
        started, started_cpu = time.monotonic(), time.process_time()
        for day_index in range(days):
            _simulate_day(runtime, rng, population, merchant_ids, summary)
            if world is not None:
                day = world.simulate_day()
                summary.checkouts += day.checkouts
                summary.outcomes += day.outcomes
                summary.payments += day.payments
            runtime.advance_test_clock(days=1)
            progress.advance(task)
            if day_lines and console is not None and (day_index + 1) % 5 == 0:
                console.print(
                    f"day {day_index + 1}/{days}: {time.monotonic() - started:.0f} s wall, "
                    f"{time.process_time() - started_cpu:.0f} s CPU, {summary.checkouts} orders"
                )

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


# The order statuses the simulated platform acts on (ship, cancel, confirm receipt, refund).
ACTED_ON_STATUSES = ("approved", "shipped", "delivered", "overdue")
# Orders whose instalments can fall due; a change in this set is when due dates appear.
DUE_STATUSES = frozenset({"delivered", "overdue"})
# Plans a simulated checkout picks from: pay after delivery twice as often as each instalment plan.
CHECKOUT_PLANS = ("pay_after_delivery", "pay_after_delivery", "instalments_3", "instalments_6")


@dataclass(frozen=True)
class OrderFacts:
    """What the simulated platform knows of one of its shopper's orders at the start of a day."""

    id: str
    merchant_id: str
    status: str
    created_on: date
    amount_minor: int
    refunded_minor: int


@dataclass(frozen=True)
class OrderAction:
    kind: str  # cancel | ship | confirm_receipt | refund
    order: OrderFacts
    tracking_number: str | None = None


@dataclass(frozen=True)
class CheckoutPlan:
    amount_minor: int
    merchant_id: str
    sku: str
    category: str
    plan: str


def _orders_acted_on(runtime: Runtime) -> tuple[date, dict[str, list[OrderFacts]]]:
    """Every order in a status the platform acts on, by shopper, in id order: one read a day
    instead of one per shopper (most shoppers have nothing to do on most days)."""
    by_shopper: dict[str, list[OrderFacts]] = {}
    with runtime.work(read_only=True) as work:
        today = work.today
        rows = work.session.execute(
            select(
                Order.shopper_id,
                Order.id,
                Order.merchant_id,
                Order.status,
                Order.created_at,
                Order.amount_minor,
                Order.refunded_minor,
            )
            .where(Order.status.in_(ACTED_ON_STATUSES))
            .order_by(Order.shopper_id, Order.id)
        ).all()
    for shopper_id, order_id, merchant_id, status, created_at, amount, refunded in rows:
        by_shopper.setdefault(shopper_id, []).append(
            OrderFacts(order_id, merchant_id, status, created_at.date(), amount, refunded)
        )
    return today, by_shopper


def _simulate_day(
    runtime: Runtime,
    rng: random.Random,
    population: list[SimulatedShopper],
    merchant_ids: list[str],
    summary: SimulationSummary,
) -> None:
    """Each shopper's day: the platform moves their orders on, the shopper may buy, and pays
    what has fallen due by their habit.

    The random draws are planned before any service is called, in the same order as they are
    used, so a shopper with nothing to do costs no transaction and the same seed still gives the
    same marketplace.
    """
    today, orders_by_shopper = _orders_acted_on(runtime)
    for shopper in population:
        orders = orders_by_shopper.get(shopper.shopper_id, [])
        actions = [
            action
            for action in (_plan_order_action(rng, order, today) for order in orders)
            if action is not None
        ]
        checkout = _plan_checkout(rng, merchant_ids) if rng.random() < 0.08 else None
        due_orders = frozenset(order.id for order in orders if order.status in DUE_STATUSES)
        needs_statement = _needs_statement(shopper, today, due_orders, actions)
        if not actions and checkout is None and not needs_statement:
            continue
        step_up_order_id = None
        with runtime.work() as work:
            for action in actions:
                _act(runtime, work, action, summary)
            if checkout is not None:
                step_up_order_id = _checkout(runtime, work, shopper, checkout, summary)
            if needs_statement:
                delivered_today = {
                    action.order.id for action in actions if action.kind == "confirm_receipt"
                }
                _pay(runtime, work, shopper, summary, due_orders=due_orders | delivered_today)
        if step_up_order_id is not None:
            confirm_step_up(runtime, order_id=step_up_order_id)


def _plan_order_action(rng: random.Random, order: OrderFacts, today: date) -> OrderAction | None:
    age_days = (today - order.created_on).days
    if order.status == "approved":
        if rng.random() < 0.03:
            return OrderAction("cancel", order)
        if age_days >= 1:
            return OrderAction("ship", order, tracking_number=f"SF{rng.randrange(10**12):012d}")
    elif order.status == "shipped" and age_days >= 3 and rng.random() < 0.6:
        return OrderAction("confirm_receipt", order)
    elif order.status in DUE_STATUSES and rng.random() < 0.01:
        return OrderAction("refund", order)
    return None


def _plan_checkout(rng: random.Random, merchant_ids: list[str]) -> CheckoutPlan:
    amount = rng.choice([4_900, 9_900, 19_900, 29_900, 59_900, 89_900, 129_900])
    merchant_id = rng.choice(merchant_ids)
    sku = f"sku-{rng.randrange(1000)}"
    category = rng.choice(CATEGORIES)
    plan = rng.choice(CHECKOUT_PLANS)
    return CheckoutPlan(amount, merchant_id, sku, category, plan)


def _needs_statement(
    shopper: SimulatedShopper,
    today: date,
    due_orders: frozenset[str],
    actions: list[OrderAction],
) -> bool:
    """Whether anything can have fallen due for this shopper since their statement was last read:
    a payment date of theirs has come, or due dates may have changed (an order was delivered —
    by the shopper or automatically — refunded, repaid or charged off)."""
    if shopper.behaviour == "never":
        return False
    if shopper.pay_check_on is not None and today >= shopper.pay_check_on:
        return True
    if due_orders != shopper.due_orders_seen:
        return True
    return any(action.kind in ("confirm_receipt", "refund") for action in actions)


def _act(runtime: Runtime, work: Work, action: OrderAction, summary: SimulationSummary) -> None:
    settings = runtime.settings
    order = action.order
    if action.kind == "cancel":
        cancellation.cancel(
            work.session,
            order_id=order.id,
            merchant_id=order.merchant_id,
            settings=settings,
            now=work.now,
        )
        summary.cancellations += 1
    elif action.kind == "ship":
        assert action.tracking_number is not None
        fulfilment.ship(
            work.session,
            order_id=order.id,
            merchant_id=order.merchant_id,
            carrier="SF",
            tracking_number=action.tracking_number,
            settings=settings,
            now=work.now,
        )
    elif action.kind == "confirm_receipt":
        fulfilment.confirm_receipt(
            work.session,
            order_id=order.id,
            delivered_on=work.today,
            settings=settings,
            now=work.now,
        )
    else:
        remaining = order.amount_minor - order.refunded_minor
        refunds.refund(
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


def _checkout(
    runtime: Runtime,
    work: Work,
    shopper: SimulatedShopper,
    plan: CheckoutPlan,
    summary: SimulationSummary,
) -> str | None:
    """Place the order; returns its id when the shopper must confirm it with a texted code."""
    settings = runtime.settings
    order, decision = checkout_flow.checkout(
        work.session,
        request=order_service.CheckoutRequest(
            shopper_id=shopper.shopper_id,
            merchant_id=plan.merchant_id,
            currency=settings.currency,
            items=[
                order_service.Item(
                    sku=plan.sku,
                    name="商品",
                    category=plan.category,
                    quantity=1,
                    unit_price_minor=plan.amount_minor,
                )
            ],
            plan=plan.plan,
            shipping_address=shopper.address,
            device_id=shopper.device_id,
            ip=shopper.ip,
        ),
        cipher=runtime.cipher,
        settings=settings,
        now=work.now,
    )
    summary.checkouts += 1
    summary.outcomes[decision.outcome] += 1
    return order.id if decision.outcome == "step_up" else None


def _pay(
    runtime: Runtime,
    work: Work,
    shopper: SimulatedShopper,
    summary: SimulationSummary,
    *,
    due_orders: frozenset[str],
) -> None:
    """Pay whatever has fallen due by the shopper's habit on the orders that can fall due (those
    delivered, or overdue), and note the next day that can happen, so that the instalments are
    not read again before then unless due dates change."""
    if shopper.behaviour == "never":
        return
    offset = {"early": -5, "on_time": 0, "late": shopper.late_days}[shopper.behaviour]
    lines = repayment_service.statement_lines(
        work.session, shopper_id=shopper.shopper_id, order_ids=sorted(due_orders), today=work.today
    )
    due_now = 0
    next_check: date | None = None
    for order_lines in lines.values():
        for line in order_lines:
            due_on = line["due_on"]
            if line["amount_due_minor"] and due_on is not None:
                pay_on = due_on + timedelta(days=offset)
                if work.today >= pay_on:
                    due_now += line["amount_due_minor"]
                next_check = pay_on if next_check is None else min(next_check, pay_on)
    # What is paid now makes the shopper look again tomorrow; orders delivered later change
    # the orders that can fall due, which makes them look too.
    shopper.pay_check_on = next_check
    shopper.due_orders_seen = due_orders
    if due_now:
        payments.pay(
            work.session,
            shopper_id=shopper.shopper_id,
            amount_minor=due_now,
            currency=runtime.settings.currency,
            order_id=None,
            method="alipay",
            external_ref=None,
            today=work.today,
            settings=runtime.settings,
            now=work.now,
        )
        summary.payments += 1
