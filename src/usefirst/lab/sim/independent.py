"""A second simulated marketplace, written from the description of one in issue 19, not from the
typologies in :mod:`usefirst.lab.sim.fraud` that the rules were tuned on.

Its shape is drawn at random from the world's seed (:func:`draw_shape`), so no two worlds share
ring sizes, tempo, device and address rotation, household and NAT sharing rates, the sale day or
the bust-outs' clean period. What it holds:

* **honest households**: one to several shoppers sharing a device and a delivery address; client
  IPs come from a small carrier NAT pool shared by unrelated households;
* **honest resellable buyers**: shoppers who now and then buy a phone or gold within their limit,
  and late payers and plain defaulters (their repayment habit comes from the applicant draw);
* **a sale day** (a 618 or 11.11): honest shoppers buy several times as often, for several times
  their usual order value, mostly electronics and phones;
* **colluding merchants** (cash-out rings) that also sell to honest shoppers as cover. Each ring's
  mules are fresh accounts enrolled just before its burst, rotating a few devices, the ring's
  address written several ways and a mobile IP that changes with each order. A mule buys
  resellable goods up to its limit; the merchant "ships" at once with a plausible, unique waybill
  and the mule confirms receipt within the hour. Some rings split each cash-out into two orders of
  half the amount a little apart; some mules also cash out at another ring's merchant;
* **bust-outs**: shoppers who shop small and repay early for some clean weeks, then spend their
  whole limit on resellable goods at honest merchants within two days and never pay again.

Every actor uses the real services as the API would. The simulator's ground truth is a
:class:`GroundTruth` the engine never reads. Only :func:`confirm_step_up` (playing the shopper's
phone), the applicant draw (the credit application a platform sends) and the national ID draw are
shared with the other simulator: neither decides what fraud looks like.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import select

from usefirst.credit import service as credit_service
from usefirst.credit.service import policy_from_settings
from usefirst.flows import checkout as checkout_flow
from usefirst.flows import enrolment, fulfilment, merchant_onboarding, payments
from usefirst.flows.reconcile import audit
from usefirst.flows.shopper_statement import shopper_statement
from usefirst.kit.errors import UsefirstError
from usefirst.lab.sim.applicants import draw_applicant
from usefirst.lab.sim.fraud import (
    SIMULATION_ACTOR,
    GroundTruth,
    confirm_step_up,
    shopper_external_id,
)
from usefirst.lab.sim.identities import draw_national_id
from usefirst.orders import service as order_service
from usefirst.orders.models import Order
from usefirst.runtime import Runtime, Work

GENERATOR = "independent"

# What this marketplace sells and at what unit prices (minor units). Resellable goods first.
PHONE_PRICES = (79_900, 99_900, 119_900, 139_900, 169_900)
GOLD_PRICES = (39_900, 59_900, 89_900)
CARD_PRICES = (10_000, 20_000, 50_000)
EVERYDAY = {
    "apparel": (3_900, 8_900, 15_900, 25_900),
    "home": (5_900, 12_900, 29_900),
    "beauty": (4_900, 9_900, 19_900),
    "groceries": (2_900, 5_900, 8_900),
    "electronics": (19_900, 39_900, 69_900),
}
CARRIERS = (("SF", "SF"), ("YTO", "YT"), ("ZTO", "ZT"), ("JD", "JDV"), ("EMS", "EM"))
PROVINCES = (
    "广东省广州市天河区",
    "浙江省宁波市鄞州区",
    "江苏省苏州市工业园区",
    "四川省成都市高新区",
)
STREETS = ("天府大道", "珠江东路", "星湖街", "钱湖北路", "金鸡湖大道", "环城西路")
NAMES_FAMILY = "李王张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
NAMES_GIVEN = "子涵浩然欣怡梓轩雨桐宇航诗琪俊杰佳怡晨阳思远一诺"

MOBILE_PREFIXES = ("133", "156", "177", "187", "191")
SALE_DAY_CATEGORIES = ("electronics", "phones", "phones", "gold", "apparel", "home")


@dataclass(frozen=True)
class MarketShape:
    """Everything that makes one world of this generator unlike another."""

    days: int
    honest_merchants: int
    households: int
    household_size_max: int
    nat_pool: int  # client IPs the honest shoppers' carriers share (smaller: more sharing)
    resellable_buyer_share: float
    daily_buy_rate: float
    sale_day: int
    sale_rate_multiplier: float
    sale_value_multiplier: float
    rings: int
    mules_per_ring: tuple[int, ...]
    ring_devices: int
    address_variants: int
    ring_burst_days: int  # the days over which a ring's mules cash out
    split_rings: int  # the first ``split_rings`` rings split each cash-out in two
    mule_reuse_share: float  # share of mules that also cash out at another ring's merchant
    confirm_within_minutes: int
    bust_outs: int
    clean_weeks: int


def draw_shape(seed: int, *, scale: float = 1.0, days: int | None = None) -> MarketShape:
    """A world's shape drawn from its seed; ``scale`` sizes its populations (not its odds);
    ``days`` shortens or lengthens the world (tests use short ones)."""
    rng = random.Random(f"independent-shape:{seed}")
    drawn_days = rng.randint(26, 34)
    days = days if days is not None else drawn_days
    clean_weeks = rng.randint(2, 3)
    rings = rng.randint(2, 3)

    def count(low: int, high: int) -> int:
        return max(1, round(rng.randint(low, high) * scale))

    return MarketShape(
        days=days,
        honest_merchants=rng.randint(3, 5),
        households=count(30, 45),
        household_size_max=rng.randint(2, 4),
        nat_pool=rng.randint(6, 30),
        resellable_buyer_share=rng.uniform(0.1, 0.3),
        daily_buy_rate=rng.uniform(0.05, 0.1),
        sale_day=rng.randint(days // 2, days - 4),
        sale_rate_multiplier=rng.uniform(3.0, 6.0),
        sale_value_multiplier=rng.uniform(1.8, 3.5),
        rings=rings,
        mules_per_ring=tuple(max(3, count(5, 9)) for _ in range(rings)),
        ring_devices=rng.randint(2, 4),
        address_variants=rng.randint(2, 4),
        ring_burst_days=rng.randint(1, 4),
        split_rings=rng.randint(0, 1) if rings > 1 else 0,
        mule_reuse_share=rng.uniform(0.0, 0.3),
        confirm_within_minutes=rng.randint(10, 60),
        bust_outs=count(3, 6),
        clean_weeks=clean_weeks,
    )


@dataclass
class Person:
    shopper_id: str
    role: str  # household | ring_mule | bust_out
    behaviour: str  # early | on_time | late | never
    device_id: str
    address: str
    ip: str
    buys_resellable: bool = False
    # Ring mules: the merchants they cash out at, the first day they do, orders placed.
    ring_merchants: list[str] = field(default_factory=list)
    turn_day: int = 0
    cash_outs: int = 0
    late_days: int = 0


@dataclass
class IndependentSummary:
    shape: MarketShape
    truth: GroundTruth
    checkouts: int = 0
    ledger_balanced: bool = False
    ledger_problems: list[str] = field(default_factory=list)


class IndependentMarketplace:
    def __init__(self, runtime: Runtime, *, seed: int, shape: MarketShape) -> None:
        self.runtime = runtime
        self.seed = seed
        self.shape = shape
        self.rng = random.Random(f"independent-world:{seed}")
        self.truth = GroundTruth(seed=seed)
        self.people: list[Person] = []
        self.honest_merchants: list[str] = []
        self.colluding_merchants: list[str] = []
        self.ring_of_merchant: dict[str, str] = {}
        self.day = 0
        self.checkouts = 0
        self._enrolled = 0
        self._seconds_today = 0

    # -- set-up ------------------------------------------------------------------------------------

    def populate(self) -> None:
        rng, shape = self.rng, self.shape
        with self.runtime.work() as work:
            for index in range(shape.honest_merchants + shape.rings):
                merchant = merchant_onboarding.create_merchant(
                    work.session,
                    name=f"独立商户 {index + 1}",
                    category=rng.choice(["electronics", "general", "jewellery", "apparel"]),
                    webhook_url=None,
                    settlement_days=None,
                    fee_rate_bps=None,
                    cipher=self.runtime.cipher,
                    actor=SIMULATION_ACTOR,
                    now=work.now,
                ).merchant
                if index < shape.honest_merchants:
                    self.honest_merchants.append(merchant.id)
                    self.truth.merchant_roles[merchant.id] = "honest"
                else:
                    self.colluding_merchants.append(merchant.id)
                    self.truth.merchant_roles[merchant.id] = "colluding"
            for _ in range(shape.households):
                self._enrol_household(work)
            bust_out_turn = shape.clean_weeks * 7
            for _ in range(shape.bust_outs):
                person = self._enrol(
                    work,
                    role="bust_out",
                    device_id=self._device(),
                    address=self._address(),
                    ip=self._mobile_ip(),
                )
                person.behaviour = "early"
                person.turn_day = min(shape.days - 2, bust_out_turn + rng.randint(0, 4))

    def _enrol_household(self, work: Work) -> None:
        rng = self.rng
        device, address = self._device(), self._address()
        ip = self._nat_ip()
        for _ in range(rng.randint(1, self.shape.household_size_max)):
            person = self._enrol(work, role="household", device_id=device, address=address, ip=ip)
            person.buys_resellable = rng.random() < self.shape.resellable_buyer_share

    def _enrol(self, work: Work, *, role: str, device_id: str, address: str, ip: str) -> Person:
        settings, rng = self.runtime.settings, self.rng
        while True:
            national_id = draw_national_id(rng, born_from=date(1962, 1, 1), born_within_years=42)
            applicant = draw_applicant(
                seed=self.seed + 7_919,
                index=self._enrolled,
                national_id=national_id,
                today=work.today,
            )
            request = enrolment.EnrolmentRequest(
                external_id=shopper_external_id(self.seed, GENERATOR, rng.getrandbits(40)),
                name=rng.choice(NAMES_FAMILY) + rng.choice(NAMES_GIVEN) + rng.choice(NAMES_GIVEN),
                national_id=national_id,
                phone=f"+86{rng.choice(MOBILE_PREFIXES)}{rng.randrange(10**8):08d}",
                email=None,
                privacy_policy_version="2026-01",
                credit_report_authorized=True,
                consent_source="simulator",
                device_id=device_id,
                ip=ip,
                application=applicant.application,
            )
            try:
                with work.session.begin_nested():
                    shopper, _ = enrolment.enrol_shopper(
                        work.session,
                        request=request,
                        cipher=self.runtime.cipher,
                        policy=policy_from_settings(settings),
                        currency=settings.currency,
                        default_time_zone=settings.time_zone,
                        today=work.today,
                        now=work.now,
                    )
            except UsefirstError:
                continue  # a drawn national ID collided with an earlier one: draw again
            break
        self._enrolled += 1
        person = Person(
            shopper_id=shopper.id,
            role=role,
            behaviour=applicant.behaviour,
            device_id=device_id,
            address=address,
            ip=ip,
            late_days=rng.randint(3, 25),
        )
        if shopper.status == "active":
            self.people.append(person)
        self.truth.shopper_roles[shopper.id] = (
            f"honest_{applicant.behaviour}" if role == "household" else role
        )
        return person

    def _enrol_ring(self, ring_index: int) -> None:
        """A ring's fresh mule accounts, enrolled the day before its burst."""
        rng, shape = self.rng, self.shape
        merchant_id = self.colluding_merchants[ring_index]
        devices = [self._device() for _ in range(shape.ring_devices)]
        base = self._address()
        variants = _address_variants(base, shape.address_variants)
        mules: list[str] = []
        with self.runtime.work() as work:
            for _ in range(shape.mules_per_ring[ring_index]):
                person = self._enrol(
                    work,
                    role="ring_mule",
                    device_id=rng.choice(devices),
                    address=rng.choice(variants),
                    ip=self._mobile_ip(),
                )
                person.behaviour = "never"
                person.ring_merchants = [merchant_id]
                person.turn_day = self.day + 1 + rng.randrange(shape.ring_burst_days)
                if person in self.people:  # enrolment declined some: they never act
                    mules.append(person.shopper_id)
        name = f"ring-{ring_index + 1}"
        self.ring_of_merchant[merchant_id] = name
        self.truth.rings[name] = {"merchant_id": merchant_id, "mules": mules}

    # -- identifiers ----------------------------------------------------------------------------

    def _device(self) -> str:
        return f"android-{self.rng.getrandbits(64):016x}"

    def _nat_ip(self) -> str:
        value = self.rng.randrange(self.shape.nat_pool)
        return f"117.136.{value // 250}.{1 + value % 250}"

    def _mobile_ip(self) -> str:
        return f"223.104.{self.rng.randrange(256)}.{1 + self.rng.randrange(254)}"

    def _address(self) -> str:
        rng = self.rng
        return (
            f"{rng.choice(PROVINCES)}{rng.choice(STREETS)}{rng.randint(1, 400)}号"
            f"{rng.randint(1, 20)}幢{rng.randint(1, 30)}{rng.randint(1, 4):02d}室"
        )

    # -- days -----------------------------------------------------------------------------------

    def run(self) -> IndependentSummary:
        shape = self.shape
        self.populate()
        ring_start = [
            self.rng.randint(shape.days // 5, max(shape.days // 5, shape.days * 3 // 4))
            for _ in range(shape.rings)
        ]
        for day in range(shape.days):
            self.day = day
            for ring_index, start in enumerate(ring_start):
                if start == day + 1 or (day == 0 and start <= 1):
                    self._enrol_ring(ring_index)
                    self._share_mules(ring_index)
            self._merchants_ship_and_carriers_deliver()
            self._shop()
            self._cash_out()
            self._pay()
            self.runtime.advance_test_clock(seconds=86_400 - self._seconds_today)
            self._seconds_today = 0
        with self.runtime.work(read_only=True) as work:
            report = audit(work.session)
        return IndependentSummary(
            shape=shape,
            truth=self.truth,
            checkouts=self.checkouts,
            ledger_balanced=report.is_balanced,
            ledger_problems=report.problems,
        )

    def _advance(self, seconds: int) -> None:
        """Time passing within the day (the rest of the day passes at its end)."""
        self.runtime.advance_test_clock(seconds=seconds)
        self._seconds_today += seconds

    def _share_mules(self, ring_index: int) -> None:
        """Some of a new ring's mules also cash out at an earlier ring's merchant."""
        if ring_index == 0 or not self.shape.mule_reuse_share:
            return
        merchant_id = self.colluding_merchants[ring_index]
        others = [
            merchant
            for merchant in self.colluding_merchants[:ring_index]
            if merchant in self.ring_of_merchant
        ]
        if not others:
            return
        for person in self.people:
            if (
                person.role == "ring_mule"
                and person.ring_merchants == [merchant_id]
                and self.rng.random() < self.shape.mule_reuse_share
            ):
                other = self.rng.choice(others)
                person.ring_merchants.append(other)
                mules = self.truth.rings[self.ring_of_merchant[other]]["mules"]
                assert isinstance(mules, list)
                mules.append(person.shopper_id)

    def _orders(self, statuses: tuple[str, ...]) -> list[Order]:
        with self.runtime.work(read_only=True) as work:
            orders = list(
                work.session.scalars(
                    select(Order).where(Order.status.in_(statuses)).order_by(Order.id)
                )
            )
            work.session.expunge_all()
        return orders

    def _merchants_ship_and_carriers_deliver(self) -> None:
        """Honest merchants ship a day after the order; the carrier takes two to five days."""
        rng, settings = self.rng, self.runtime.settings
        mules = {p.shopper_id for p in self.people if p.role == "ring_mule"}
        for order in self._orders(("approved", "shipped")):
            if order.shopper_id in mules and order.merchant_id in self.colluding_merchants:
                continue  # the ring moves its own orders on within the hour (below)
            with self.runtime.work() as work:
                age = (work.today - order.created_at.date()).days
                if order.status == "approved" and age >= 1:
                    carrier, prefix = rng.choice(CARRIERS)
                    fulfilment.ship(
                        work.session,
                        order_id=order.id,
                        merchant_id=order.merchant_id,
                        carrier=carrier,
                        tracking_number=f"{prefix}{rng.randrange(10**12):012d}",
                        settings=settings,
                        now=work.now,
                    )
                elif order.status == "shipped" and order.shipped_at is not None:
                    transit = (work.today - order.shipped_at.date()).days
                    if transit >= rng.randint(2, 5):
                        fulfilment.confirm_receipt(
                            work.session,
                            order_id=order.id,
                            delivered_on=work.today,
                            settings=settings,
                            now=work.now,
                        )

    def _is_sale_day(self) -> bool:
        return self.day == self.shape.sale_day

    def _shop(self) -> None:
        rng, shape = self.rng, self.shape
        merchants = self.honest_merchants + self.colluding_merchants  # rings sell as cover too
        rate = shape.daily_buy_rate * (shape.sale_rate_multiplier if self._is_sale_day() else 1)
        for person in self.people:
            if person.role == "ring_mule":
                continue
            if person.role == "bust_out" and self.day >= person.turn_day:
                self._bust_out(person)
                continue
            if rng.random() >= rate:
                continue
            if person.role == "bust_out":
                items = [_everyday(rng, multiplier=1.0)]
            elif self._is_sale_day():
                items = [_sale_item(rng, shape.sale_value_multiplier)]
            elif person.buys_resellable and rng.random() < 0.3:
                items = self._within_limit(person, fill=False)
            else:
                items = [_everyday(rng, multiplier=1.0)]
            if items:
                self._checkout(person, rng.choice(merchants), items, typology=None)

    def _bust_out(self, person: Person) -> None:
        if person.cash_outs >= 3 or self.day > person.turn_day + 1:
            return
        items = self._within_limit(person, fill=True)
        if items:
            self._checkout(person, self.rng.choice(self.honest_merchants), items, "bust_out")
            person.behaviour = "never"

    def _cash_out(self) -> None:
        """Mules buy at their ring's merchant; it ships at once and they confirm within the hour."""
        rng, shape = self.rng, self.shape
        placed: list[tuple[Person, str]] = []
        for person in self.people:
            if person.role != "ring_mule" or self.day < person.turn_day:
                continue
            if person.cash_outs >= len(person.ring_merchants):
                continue
            merchant_id = person.ring_merchants[person.cash_outs]
            ring_index = self.colluding_merchants.index(merchant_id)
            is_split = ring_index < shape.split_rings
            # A mule that cashes out at several merchants keeps limit for the later ones.
            share = 1.0 / (len(person.ring_merchants) - person.cash_outs)
            items = self._within_limit(person, fill=True, share=share * (0.5 if is_split else 1))
            person.cash_outs += 1
            if not items:
                continue
            typology = "split_cash_out" if is_split else "ring_cash_out"
            order_id = self._checkout(person, merchant_id, items, typology)
            if order_id:
                placed.append((person, order_id))
            if is_split:
                self._advance(rng.randint(600, 3_000))
                second = self._within_limit(person, fill=True, share=share)
                if second:
                    order_id = self._checkout(person, merchant_id, second, typology)
                    if order_id:
                        placed.append((person, order_id))
        self._advance(3 * 3_600)
        settings = self.runtime.settings
        for _person, order_id in placed:
            with self.runtime.work() as work:
                order = order_service.find_order(work.session, order_id=order_id)
                if order.status != "approved":
                    continue
                fulfilment.ship(
                    work.session,
                    order_id=order.id,
                    merchant_id=order.merchant_id,
                    carrier="SF",
                    tracking_number=f"SF{rng.randrange(10**12):012d}",
                    settings=settings,
                    now=work.now,
                )
        self._advance(shape.confirm_within_minutes * 60)
        for _person, order_id in placed:
            with self.runtime.work() as work:
                order = order_service.find_order(work.session, order_id=order_id)
                if order.status == "shipped":
                    fulfilment.confirm_receipt(
                        work.session,
                        order_id=order.id,
                        delivered_on=work.today,
                        settings=settings,
                        now=work.now,
                    )

    def _within_limit(
        self, person: Person, *, fill: bool, share: float = 1.0
    ) -> list[order_service.Item]:
        with self.runtime.work(read_only=True) as work:
            line = credit_service.get_credit_line(work.session, shopper_id=person.shopper_id)
            budget = int((line.limit_minor - line.used_minor) * share)
        return _resellable(self.rng, budget, fill=fill)

    def _checkout(
        self,
        person: Person,
        merchant_id: str,
        items: list[order_service.Item],
        typology: str | None,
    ) -> str | None:
        """Place an order; a texted code is entered by whoever holds the phone. Returns the order
        id when the order went through (approved, or stepped up and confirmed)."""
        ip = self._mobile_ip() if person.role == "ring_mule" else person.ip
        with self.runtime.work() as work:
            order, decision = checkout_flow.checkout(
                work.session,
                request=order_service.CheckoutRequest(
                    shopper_id=person.shopper_id,
                    merchant_id=merchant_id,
                    currency=self.runtime.settings.currency,
                    items=items,
                    plan=self.rng.choice(["pay_after_delivery", "instalments_3"]),
                    shipping_address=person.address,
                    device_id=person.device_id,
                    ip=ip,
                ),
                cipher=self.runtime.cipher,
                settings=self.runtime.settings,
                now=work.now,
            )
            order_id, outcome = order.id, decision.outcome
        self.checkouts += 1
        if typology is not None:
            self.truth.fraud_orders[order_id] = typology
        if outcome == "step_up":
            return order_id if confirm_step_up(self.runtime, order_id=order_id) else None
        return order_id if outcome == "approved" else None

    def _pay(self) -> None:
        """Whoever pays pays what has fallen due by their habit; defaulters and fraud never do."""
        payers = {
            person.shopper_id: person
            for person in self.people
            if person.behaviour != "never"
            and not (person.role == "bust_out" and self.day >= person.turn_day)
        }
        due_shoppers = sorted(
            {
                order.shopper_id
                for order in self._orders(("delivered", "overdue"))
                if order.shopper_id in payers
            }
        )
        for shopper_id in due_shoppers:
            person = payers[shopper_id]
            offset = {"early": -5, "on_time": 0, "late": person.late_days}[person.behaviour]
            with self.runtime.work() as work:
                statement = shopper_statement(work.session, shopper_id=shopper_id, today=work.today)
                due_now = sum(
                    instalment["amount_due_minor"]
                    for order in statement["orders"]
                    for instalment in order["instalments"]
                    if instalment["amount_due_minor"]
                    and instalment["due_on"] is not None
                    and work.today >= instalment["due_on"] + timedelta(days=offset)
                )
                if due_now:
                    payments.pay(
                        work.session,
                        shopper_id=shopper_id,
                        amount_minor=due_now,
                        currency=statement["currency"],
                        order_id=None,
                        method=self.rng.choice(["alipay", "wechat", "bank_card"]),
                        external_ref=None,
                        today=work.today,
                        settings=self.runtime.settings,
                        now=work.now,
                    )


def simulate_independent(
    runtime: Runtime, *, seed: int, scale: float = 1.0, days: int | None = None
) -> IndependentSummary:
    """Run one world of this generator, its shape drawn from ``seed``, through the engine."""
    shape = draw_shape(seed, scale=scale, days=days)
    return IndependentMarketplace(runtime, seed=seed, shape=shape).run()


def _address_variants(address: str, count: int) -> list[str]:
    """The same drop address written the ways people write it: full-width digits, a missing
    room suffix, 号 as 號, a space before the building."""
    spellings = [
        address,
        address.replace("室", ""),
        address.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
        address.replace("号", "號"),
        address.replace("幢", " 幢"),
    ]
    return spellings[: max(1, count)]


def _resellable(rng: random.Random, budget_minor: int, *, fill: bool) -> list[order_service.Item]:
    kind = rng.choice(("phones", "gold", "gift_cards"))
    prices = {"phones": PHONE_PRICES, "gold": GOLD_PRICES, "gift_cards": CARD_PRICES}[kind]
    affordable = [price for price in prices if price <= budget_minor]
    if not affordable:
        return []
    unit = max(affordable) if fill else rng.choice(affordable)
    quantity = max(1, min(8, budget_minor // unit)) if fill and kind != "phones" else 1
    name = {"phones": "智能手机", "gold": "投资金条", "gift_cards": "电商礼品卡"}[kind]
    return [
        order_service.Item(
            sku=f"{kind}-{unit}",
            name=name,
            category=kind,
            quantity=int(quantity),
            unit_price_minor=unit,
        )
    ]


def _everyday(rng: random.Random, *, multiplier: float) -> order_service.Item:
    category = rng.choice(tuple(EVERYDAY))
    price = int(rng.choice(EVERYDAY[category]) * multiplier)
    return order_service.Item(
        sku=f"{category}-{rng.randrange(10_000)}",
        name="日用商品",
        category=category,
        quantity=1,
        unit_price_minor=price,
    )


def _sale_item(rng: random.Random, multiplier: float) -> order_service.Item:
    """A sale-day basket: bigger than usual, leaning to electronics and phones."""
    category = rng.choice(SALE_DAY_CATEGORIES)
    if category == "phones":
        price = rng.choice(PHONE_PRICES)
    elif category == "gold":
        price = rng.choice(GOLD_PRICES)
    else:
        price = int(rng.choice(EVERYDAY.get(category, (9_900,))) * multiplier)
    return order_service.Item(
        sku=f"sale-{category}-{rng.randrange(10_000)}",
        name="大促商品",
        category=category,
        quantity=1,
        unit_price_minor=price,
    )
