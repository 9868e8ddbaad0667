"""Fraud typologies and honest noise for the simulated marketplace.

Every actor here uses the real services exactly as the API would (enrol, checkout, ship, confirm
receipt, pay). What each actor really is — a mule in a merchant ring, a bust-out, a synthetic
identity, or an honest shopper who merely looks unusual — is the simulator's ground truth: it lives
in :class:`GroundTruth`, which the engine never reads (it can be written to a file of its own for
evaluation and training).

Typologies:

* **merchant ring (cash-out, 套现)**: a colluding merchant and a handful of mule shoppers enrolled
  from a few shared phones, devices, IPs and drop addresses. Mules buy resellable high-value goods
  (phones, gold, gift cards, top-up cards) close to their whole limit at that merchant; the merchant
  "ships" with a reused or malformed tracking number the same day, the mule confirms receipt at
  once, the merchant is settled and hands back cash minus a cut, and the mule never pays.
* **bust-out**: a real shopper builds a clean history with small orders repaid early, then maxes
  the (grown) limit on resellable goods in one or two days and never pays again.
* **synthetic identities**: several identities made up around one device, one or two phones and
  one address; a short clean history, then they all max out together and vanish.

Honest noise that must not be punished: honest big spenders (phones and gold close to the limit,
repaid on time), families sharing one device, IP and address, and — in the base population —
late payers and defaulters without fraud.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import select

from usefirst.credit import service as credit_service
from usefirst.credit.service import policy_from_settings
from usefirst.flows import checkout as checkout_flow
from usefirst.flows import enrolment, fulfilment, merchant_onboarding, payments, step_up
from usefirst.flows.shopper_statement import shopper_statement
from usefirst.kit.errors import UsefirstError
from usefirst.kit.models import OutboxMessage
from usefirst.lab.sim.identities import draw_national_id
from usefirst.orders import service as order_service
from usefirst.orders.models import Order
from usefirst.risk import service as risk_service
from usefirst.runtime import Runtime, Work

# Goods that turn into cash at once; what cash-out rings buy. The names are item categories as a
# marketplace sends them at checkout.
# Who the audit chain names for what a simulation does as the platform (merchant keys issued).
SIMULATION_ACTOR = "simulation"

RESELLABLE_CATEGORIES = ("phones", "gold", "gift_cards", "top_up_cards")
RESELLABLE_PRICES_MINOR = {
    "phones": (69_900, 89_900, 99_900, 129_900, 159_900),
    "gold": (48_800, 78_800, 98_800, 148_800),
    "gift_cards": (20_000, 30_000, 50_000),
    "top_up_cards": (10_000, 20_000, 30_000),
}
EVERYDAY_CATEGORIES = ("apparel", "home", "beauty", "books", "groceries", "electronics")
EVERYDAY_PRICES_MINOR = (2_900, 4_900, 7_900, 9_900, 15_900, 19_900, 29_900)

# Carriers honest merchants ship with, and the prefix of their waybill numbers.
HONEST_CARRIERS = (("SF", "SF"), ("YTO", "YT"), ("ZTO", "ZT"), ("JD", "JD"))
FRAUD_ROLES = ("ring_mule", "bust_out", "synthetic")

CITIES = ("北京市朝阳区", "上海市浦东新区", "深圳市南山区", "杭州市西湖区", "成都市武侯区")
ROADS = ("建国路", "世纪大道", "科技园路", "文三路", "人民南路", "中山路", "解放路")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚"


@dataclass(frozen=True)
class FraudScenario:
    """How many actors of each kind the simulated marketplace holds besides its honest shoppers."""

    rings: int = 3
    mules_per_ring: int = 8
    bust_outs: int = 8
    synthetic_clusters: int = 2
    identities_per_cluster: int = 5
    big_spenders: int = 25
    families: int = 8
    family_size: int = 3

    def scaled(self, factor: float) -> FraudScenario:
        def scale(count: int) -> int:
            return max(1, round(count * factor)) if count else 0

        return FraudScenario(
            rings=scale(self.rings),
            mules_per_ring=self.mules_per_ring,
            bust_outs=scale(self.bust_outs),
            synthetic_clusters=scale(self.synthetic_clusters),
            identities_per_cluster=self.identities_per_cluster,
            big_spenders=scale(self.big_spenders),
            families=scale(self.families),
            family_size=self.family_size,
        )


@dataclass
class GroundTruth:
    """What the simulator knows and the engine must find out: kept apart from the database."""

    seed: int
    shopper_roles: dict[str, str] = field(default_factory=dict)
    merchant_roles: dict[str, str] = field(default_factory=dict)
    # Orders placed by fraud actors as part of the scheme (approved or not), by typology.
    fraud_orders: dict[str, str] = field(default_factory=dict)
    # Ring name -> the colluding merchant and its mules.
    rings: dict[str, dict[str, list[str] | str]] = field(default_factory=dict)

    def is_fraud_order(self, order_id: str) -> bool:
        return order_id in self.fraud_orders

    def is_fraud_shopper(self, shopper_id: str) -> bool:
        return self.shopper_roles.get(shopper_id) in FRAUD_ROLES

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_dict(), ensure_ascii=False, indent=1), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> GroundTruth:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            seed=int(raw["seed"]),
            shopper_roles=dict(raw["shopper_roles"]),
            merchant_roles=dict(raw["merchant_roles"]),
            fraud_orders=dict(raw["fraud_orders"]),
            rings=dict(raw["rings"]),
        )


@dataclass
class DayActivity:
    checkouts: int = 0
    payments: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


@dataclass
class Actor:
    shopper_id: str
    role: str
    device_id: str
    ip: str
    address: str
    # Days after its due date an instalment is paid; None: never pays.
    pay_offset_days: int | None
    # The day (0-based) the actor turns: a mule starts cashing out, a bust-out maxes out.
    turn_day: int = 0
    ring_merchant_id: str | None = None
    orders_placed: int = 0
    has_turned: bool = False


@dataclass(frozen=True)
class ShopperSignals:
    device_id: str
    ip: str
    address: str


def honest_signals(seed: int, index: int) -> ShopperSignals:
    """A base-population shopper's own device and address; IPs come from a carrier-sized pool, so
    unrelated honest shoppers sometimes share one (as behind mobile carrier NAT)."""
    rng = random.Random(f"honest-signals:{seed}:{index}")
    return ShopperSignals(
        device_id=f"dev-{rng.getrandbits(48):012x}",
        ip=_ip(rng, pool=max(64, index)),
        address=_address(rng),
    )


def _ip(rng: random.Random, *, pool: int = 1 << 20) -> str:
    value = rng.randrange(pool)
    return f"{36 + value % 180}.{(value >> 3) % 256}.{(value >> 7) % 256}.{1 + value % 253}"


def _address(rng: random.Random) -> str:
    return (
        f"{rng.choice(CITIES)}{rng.choice(ROADS)}{rng.randint(1, 999)}号"
        f"{rng.randint(1, 30)}栋{rng.randint(101, 2802)}室"
    )


def shopper_external_id(seed: int, *parts: object) -> str:
    """The platform's id for a simulated shopper, the same shape for every shopper: a hash of
    numbers the simulator drew anyway (no extra draw, so the marketplace stays the same per seed),
    naming no role. The roles stay in the simulator's ground truth, never in the engine."""
    digest = hashlib.sha256(":".join(str(part) for part in (seed, *parts)).encode()).hexdigest()
    return f"sim-{seed}-{digest[:16]}"


def merchant_name(number: int) -> str:
    """Every simulated merchant, honest or colluding, is named the same way."""
    return f"模拟商户 {number}"


def _phone(rng: random.Random) -> str:
    return f"+86{rng.choice(['135', '138', '150', '186', '199'])}{rng.randrange(10**8):08d}"


class FraudWorld:
    """The typologies and the honest noise, acting once per simulated day."""

    def __init__(self, runtime: Runtime, *, scenario: FraudScenario, seed: int, days: int) -> None:
        self.runtime = runtime
        self.scenario = scenario
        self.days = days
        self.rng = random.Random(f"fraud-world:{seed}")
        self.truth = GroundTruth(seed=seed)
        self.actors: list[Actor] = []
        self.colluding_merchant_ids: list[str] = []
        self.honest_merchant_ids: list[str] = []
        self.day = 0
        # Tracking numbers a colluding merchant keeps reusing.
        self._tracking_pools: dict[str, list[str]] = {}

    # -- set-up ---------------------------------------------------------------------------------

    def populate(self, work: Work, *, honest_merchant_ids: Iterable[str]) -> list[str]:
        """Create the colluding merchants and enrol every actor; returns the colluding merchants'
        ids (they also sell to honest shoppers, as cover)."""
        self.honest_merchant_ids = list(honest_merchant_ids)
        for merchant_id in self.honest_merchant_ids:
            self.truth.merchant_roles[merchant_id] = "honest"
        rng, scenario = self.rng, self.scenario
        for ring_index in range(scenario.rings):
            self._create_ring(work, ring_index)
        for _ in range(scenario.bust_outs):
            self._enrol(
                work,
                role="bust_out",
                signals=ShopperSignals(f"dev-{rng.getrandbits(48):012x}", _ip(rng), _address(rng)),
                phone=_phone(rng),
                pay_offset_days=-rng.randint(2, 6),
                turn_day=rng.randint(self.days // 3, max(self.days // 3, self.days * 3 // 4)),
            )
        for _ in range(scenario.synthetic_clusters):
            self._create_synthetic_cluster(work)
        for _ in range(scenario.big_spenders):
            self._enrol(
                work,
                role="big_spender",
                signals=ShopperSignals(f"dev-{rng.getrandbits(48):012x}", _ip(rng), _address(rng)),
                phone=_phone(rng),
                pay_offset_days=rng.choice([-3, 0, 0, 0, 2]),
            )
        for _ in range(scenario.families):
            shared = ShopperSignals(f"dev-{rng.getrandbits(48):012x}", _ip(rng), _address(rng))
            offset = rng.choice([0, 0, -2, 4])
            for _member in range(scenario.family_size):
                self._enrol(
                    work, role="family", signals=shared, phone=_phone(rng), pay_offset_days=offset
                )
        return list(self.colluding_merchant_ids)

    def register_honest(self, shopper_id: str, behaviour: str) -> None:
        self.truth.shopper_roles[shopper_id] = f"honest_{behaviour}"

    def _create_ring(self, work: Work, ring_index: int) -> None:
        rng = self.rng
        merchant = merchant_onboarding.create_merchant(
            work.session,
            name=merchant_name(len(self.honest_merchant_ids) + ring_index + 1),
            category=rng.choice(["electronics", "jewellery", "digital_goods"]),
            webhook_url=None,
            settlement_days=None,
            fee_rate_bps=None,
            cipher=self.runtime.cipher,
            actor=SIMULATION_ACTOR,
            now=work.now,
        ).merchant
        self.colluding_merchant_ids.append(merchant.id)
        self.truth.merchant_roles[merchant.id] = "colluding"
        self._tracking_pools[merchant.id] = [
            f"SF{rng.randrange(10**12):012d}" for _ in range(2)
        ] + ["SF0000", "YT12345"]
        devices = [f"dev-{rng.getrandbits(48):012x}" for _ in range(rng.randint(2, 3))]
        ips = [_ip(rng) for _ in range(rng.randint(1, 2))]
        addresses = [_address(rng) for _ in range(rng.randint(1, 2))]
        phone_prefix = f"+86170{rng.randrange(10**4):04d}"
        start_day = rng.randint(self.days // 6, max(self.days // 6, self.days // 2))
        mules: list[str] = []
        for mule_index in range(self.scenario.mules_per_ring):
            actor = self._enrol(
                work,
                role="ring_mule",
                signals=ShopperSignals(rng.choice(devices), rng.choice(ips), rng.choice(addresses)),
                phone=f"{phone_prefix}{rng.randrange(10**4):04d}",
                pay_offset_days=None,
                turn_day=start_day + mule_index // 2 + rng.randint(0, 3),
            )
            actor.ring_merchant_id = merchant.id
            mules.append(actor.shopper_id)
        self.truth.rings[f"ring-{ring_index + 1}"] = {"merchant_id": merchant.id, "mules": mules}

    def _create_synthetic_cluster(self, work: Work) -> None:
        rng = self.rng
        device = f"dev-{rng.getrandbits(48):012x}"
        ips = [_ip(rng) for _ in range(2)]
        address = _address(rng)
        phones = [_phone(rng) for _ in range(2)]
        turn_day = rng.randint(self.days // 3, max(self.days // 3, self.days * 2 // 3))
        for _ in range(self.scenario.identities_per_cluster):
            self._enrol(
                work,
                role="synthetic",
                signals=ShopperSignals(device, rng.choice(ips), address),
                phone=rng.choice(phones),
                pay_offset_days=-1,
                turn_day=turn_day + rng.randint(0, 2),
            )

    def _enrol(
        self,
        work: Work,
        *,
        role: str,
        signals: ShopperSignals,
        phone: str,
        pay_offset_days: int | None,
        turn_day: int = 0,
    ) -> Actor:
        settings = self.runtime.settings
        while True:
            request = enrolment.EnrolmentRequest(
                external_id=shopper_external_id(self.truth.seed, "world", self.rng.getrandbits(40)),
                name=self.rng.choice(SURNAMES) + self.rng.choice(GIVEN) + self.rng.choice(GIVEN),
                national_id=draw_national_id(
                    self.rng, born_from=date(1965, 1, 1), born_within_years=38
                ),
                phone=phone,
                email=None,
                privacy_policy_version="2026-01",
                credit_report_authorized=True,
                consent_source="simulator",
                device_id=signals.device_id,
                ip=signals.ip,
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
                continue  # a random national ID collided with an earlier one: draw again
            break
        actor = Actor(
            shopper_id=shopper.id,
            role=role,
            device_id=signals.device_id,
            ip=signals.ip,
            address=signals.address,
            pay_offset_days=pay_offset_days,
            turn_day=turn_day,
        )
        self.actors.append(actor)
        self.truth.shopper_roles[shopper.id] = role
        return actor

    # -- one day ----------------------------------------------------------------------------------

    def simulate_day(self) -> DayActivity:
        """Every actor acts once: its orders move on, it may buy, it pays (or does not)."""
        activity = DayActivity()
        for actor in self.actors:
            step_ups: list[str] = []
            approved: list[str] = []
            with self.runtime.work() as work:
                for order in order_service.orders_of_shopper(
                    work.session, shopper_id=actor.shopper_id
                ):
                    self._advance(work, actor, order)
                for basket in self._baskets(work, actor):
                    order, decision = self._checkout(work, actor, *basket)
                    activity.checkouts += 1
                    activity.outcomes[decision.outcome] += 1
                    if decision.outcome == "step_up":
                        step_ups.append(order.id)
                    elif decision.outcome == "approved":
                        approved.append(order.id)
                activity.payments += self._pay(work, actor)
            # Every actor here holds the phone it enrolled with (mules and synthetic identities
            # included): a one-time code does not stop them, nor an honest shopper.
            for order_id in step_ups:
                if confirm_step_up(self.runtime, order_id=order_id):
                    approved.append(order_id)
            # A colluding merchant "ships" a mule's order the moment it is approved.
            for order_id in approved:
                with self.runtime.work() as work:
                    order = order_service.find_order(work.session, order_id=order_id)
                    if order.status == "approved" and order.merchant_id in self._tracking_pools:
                        self._advance(work, actor, order)
        self.day += 1
        return activity

    def _baskets(
        self, work: Work, actor: Actor
    ) -> list[tuple[str, list[order_service.Item], str, str | None]]:
        """What the actor buys today: (merchant, items, plan, typology if fraud)."""
        rng, day = self.rng, self.day
        if actor.role == "ring_mule":
            if day < actor.turn_day or actor.orders_placed >= 3 or rng.random() < 0.3:
                return []
            assert actor.ring_merchant_id is not None
            available = self._available(work, actor)
            items = _resellable_basket(rng, budget_minor=available)
            if not items:
                return []
            return [(actor.ring_merchant_id, items, "pay_after_delivery", "ring_cash_out")]
        if actor.role in ("bust_out", "synthetic"):
            typology = "bust_out" if actor.role == "bust_out" else "synthetic_bust_out"
            if day >= actor.turn_day:
                if actor.orders_placed >= 8 or rng.random() < 0.25:
                    return []
                actor.has_turned = True
                available = self._available(work, actor)
                items = _resellable_basket(rng, budget_minor=available)
                if not items:
                    return []
                plan = rng.choice(["pay_after_delivery", "instalments_3", "instalments_6"])
                return [(rng.choice(self.honest_merchant_ids), items, plan, typology)]
            if rng.random() < (0.12 if actor.role == "bust_out" else 0.08):
                return [
                    (
                        rng.choice(self.honest_merchant_ids),
                        _everyday(rng),
                        "pay_after_delivery",
                        None,
                    )
                ]
            return []
        if actor.role == "big_spender":
            if rng.random() < 0.05:
                available = self._available(work, actor)
                items = _resellable_basket(rng, budget_minor=available, fill=False)
                if items:
                    plan = rng.choice(["pay_after_delivery", "instalments_3", "instalments_6"])
                    return [(rng.choice(self.honest_merchant_ids), items, plan, None)]
            return []
        if rng.random() < 0.06:  # family members shop like anyone else
            return [
                (rng.choice(self.honest_merchant_ids), _everyday(rng), "pay_after_delivery", None)
            ]
        return []

    def _available(self, work: Work, actor: Actor) -> int:
        line = credit_service.get_credit_line(work.session, shopper_id=actor.shopper_id)
        return int(line.limit_minor - line.used_minor)

    def _checkout(
        self,
        work: Work,
        actor: Actor,
        merchant_id: str,
        items: list[order_service.Item],
        plan: str,
        typology: str | None,
    ) -> tuple[Order, checkout_flow.Decision]:
        order, decision = checkout_flow.checkout(
            work.session,
            request=order_service.CheckoutRequest(
                shopper_id=actor.shopper_id,
                merchant_id=merchant_id,
                currency=self.runtime.settings.currency,
                items=items,
                plan=plan,
                shipping_address=actor.address,
                device_id=actor.device_id,
                ip=actor.ip,
            ),
            cipher=self.runtime.cipher,
            settings=self.runtime.settings,
            now=work.now,
        )
        actor.orders_placed += 1
        if typology is not None:
            self.truth.fraud_orders[order.id] = typology
        return order, decision

    def _advance(self, work: Work, actor: Actor, order: Order) -> None:
        settings, rng = self.runtime.settings, self.rng
        age_days = (work.today - order.created_at.date()).days
        is_colluding = order.merchant_id in self.colluding_merchant_ids
        if order.status == "approved":
            if is_colluding:
                # Nothing is sent: a reused or malformed tracking number, the same day.
                fulfilment.ship(
                    work.session,
                    order_id=order.id,
                    merchant_id=order.merchant_id,
                    carrier="SF",
                    tracking_number=rng.choice(self._tracking_pools[order.merchant_id]),
                    settings=settings,
                    now=work.now,
                )
            elif age_days >= 1:
                carrier, prefix = rng.choice(HONEST_CARRIERS)
                fulfilment.ship(
                    work.session,
                    order_id=order.id,
                    merchant_id=order.merchant_id,
                    carrier=carrier,
                    tracking_number=f"{prefix}{rng.randrange(10**12):012d}",
                    settings=settings,
                    now=work.now,
                )
        elif order.status == "shipped":
            assert order.shipped_at is not None
            shipped_days = (work.today - order.shipped_at.date()).days
            # A mule confirms "delivery" at once so the merchant is settled fast.
            due = 0 if is_colluding and actor.role == "ring_mule" else rng.randint(2, 5)
            if shipped_days >= due:
                fulfilment.confirm_receipt(
                    work.session,
                    order_id=order.id,
                    delivered_on=work.today,
                    settings=settings,
                    now=work.now,
                )

    def _pay(self, work: Work, actor: Actor) -> int:
        if actor.pay_offset_days is None or actor.has_turned:
            return 0
        statement = shopper_statement(work.session, shopper_id=actor.shopper_id, today=work.today)
        due_now = 0
        for order in statement["orders"]:
            for instalment in order["instalments"]:
                due_on = instalment["due_on"]
                if (
                    instalment["amount_due_minor"]
                    and due_on is not None
                    and work.today >= due_on + timedelta(days=actor.pay_offset_days)
                ):
                    due_now += instalment["amount_due_minor"]
        if not due_now:
            return 0
        payments.pay(
            work.session,
            shopper_id=actor.shopper_id,
            amount_minor=due_now,
            currency=statement["currency"],
            order_id=None,
            method=self.rng.choice(["alipay", "wechat", "bank_card"]),
            external_ref=None,
            today=work.today,
            settings=self.runtime.settings,
            now=work.now,
        )
        return 1


def confirm_step_up(runtime: Runtime, *, order_id: str) -> bool:
    """The shopper reads the one-time code texted for the order and enters it (the simulator
    plays the phone: it opens the queued text meant for the shopper's own number)."""
    with runtime.work() as work:
        messages = work.session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.topic == risk_service.STEP_UP_TOPIC,
                OutboxMessage.delivered_at.is_(None),
            )
        )
        code = next(
            (
                runtime.cipher.decrypt(message.payload["code_encrypted"], field="step_up_code")
                for message in messages
                if message.payload.get("order_id") == order_id
            ),
            None,
        )
        if code is None:
            return False
        result = step_up.verify_step_up(
            work.session,
            order_id=order_id,
            code=code,
            cipher=runtime.cipher,
            settings=runtime.settings,
            now=work.now,
        )
        return result.verified


def _resellable_basket(
    rng: random.Random, *, budget_minor: int, fill: bool = True
) -> list[order_service.Item]:
    """Resellable goods worth as much of the budget as possible (``fill``), or one item that fits
    (an honest big spender buys a phone, not a stack of gift cards)."""
    category = rng.choice(RESELLABLE_CATEGORIES)
    prices = [price for price in RESELLABLE_PRICES_MINOR[category] if price <= budget_minor]
    if not prices:
        return []
    unit_price = max(prices) if fill else rng.choice(prices)
    quantity = max(1, budget_minor // unit_price) if fill and category != "phones" else 1
    return [
        order_service.Item(
            sku=f"{category}-{unit_price}",
            name={
                "phones": "手机",
                "gold": "金条",
                "gift_cards": "礼品卡",
                "top_up_cards": "充值卡",
            }[category],
            category=category,
            quantity=int(min(quantity, 10)),
            unit_price_minor=unit_price,
        )
    ]


def _everyday(rng: random.Random) -> list[order_service.Item]:
    category = rng.choice(EVERYDAY_CATEGORIES)
    return [
        order_service.Item(
            sku=f"{category}-{rng.randrange(1000)}",
            name="商品",
            category=category,
            quantity=1,
            unit_price_minor=rng.choice(EVERYDAY_PRICES_MINOR),
        )
    ]
