"""Monitors after checkout: at shipment (a tracking number used before, or not in the carrier's
format), at delivery (confirmed faster than a parcel can travel, delivered to the merchant's own
address), at payment (the first instalment missed; daily) and on merchants (BNPL volume or their
buyers' default rate jumping; daily).

A hit opens or joins a case. Strong hits also hold the merchant's settlement for the order; a
weak hit (a fast confirmation alone: shoppers do tap "received" early) holds only once the case
has another signal too. Merchants whose book changes abruptly go on watch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from usefirst.collections.repository import ever_delinquent
from usefirst.merchants.models import Merchant
from usefirst.orders.models import Order
from usefirst.orders.tracking import normalise_tracking_number
from usefirst.repayment.models import Instalment
from usefirst.risk import actions, cases
from usefirst.risk.models import RiskAction, RiskCase

if TYPE_CHECKING:
    from usefirst.kit.business_day import DailyContext

# Waybill formats of common Chinese carriers. Lenient on length (formats grew over the years),
# strict on shape: letters where letters go, digits where digits go.
CARRIER_FORMATS: dict[str, re.Pattern[str]] = {
    "SF": re.compile(r"SF\d{10,15}|\d{12}"),
    "YTO": re.compile(r"YT\d{10,16}"),
    "ZTO": re.compile(r"ZT\d{10,15}|[1-9]\d{11,14}"),
    "STO": re.compile(r"ST\d{10,15}|[1-9]\d{11,14}"),
    "YD": re.compile(r"YD\d{10,15}|[1-9]\d{12,14}"),
    "JD": re.compile(r"JD[A-Z0-9]{11,15}"),
    "EMS": re.compile(r"[A-Z]{2}\d{9}[A-Z]{2}|[1-9]\d{12}"),
}
CARRIER_ALIASES: dict[str, str] = {
    alias: code
    for code, aliases in {
        "SF": ("sf", "sfexpress", "shunfeng", "顺丰", "顺丰速运", "顺丰快递"),
        "YTO": ("yto", "ytoexpress", "yuantong", "圆通", "圆通速递", "圆通快递"),
        "ZTO": ("zto", "ztoexpress", "zhongtong", "中通", "中通快递"),
        "STO": ("sto", "stoexpress", "shentong", "申通", "申通快递"),
        "YD": ("yd", "yunda", "yundaexpress", "韵达", "韵达快递", "韵达速递"),
        "JD": ("jd", "jdl", "jdlogistics", "jingdong", "京东", "京东物流", "京东快递"),
        "EMS": ("ems", "chinapost", "chinapostems", "邮政", "中国邮政", "邮政ems"),
    }.items()
    for alias in aliases
}
# A parcel cannot be shipped and in the shopper's hands this fast (same-city same-day couriers
# take hours).
MIN_TRANSIT = timedelta(hours=2)
# Merchant drift: the last 30 days against the 90 before them.
RECENT = timedelta(days=30)
BASELINE = timedelta(days=90)
MIN_RECENT_ORDERS = 20
VOLUME_JUMP = 3.0
# A volume jump needs a real baseline: the merchant was with us for the whole 90 days and had at
# least as many pay-later orders in them as a jump needs in 30 days. Against a thinner or shorter
# history any first busy month of an honest new merchant would look like a jump.
MIN_BASELINE_ORDERS = 20
# Default rates count only orders whose first instalment has come due (and was not cancelled):
# an order not yet due cannot have defaulted, so counting it would dilute the rate, and a young
# merchant is judged by this rate alone once enough of its buyers' instalments are due.
MIN_DUE_FOR_DEFAULT_RATE = 10
DEFAULT_RATE_FLOOR = 0.2
DEFAULT_RATE_JUMP = 2.0


@dataclass(frozen=True)
class Hit:
    monitor: str
    reason: str
    evidence: dict[str, object]
    holds: bool  # strong enough to hold the merchant's settlement on its own


def carrier_code(carrier: str) -> str | None:
    key = re.sub(r"[\s_\-.()（）]", "", carrier).casefold()
    return CARRIER_ALIASES.get(key)


def tracking_number_fits(carrier: str, tracking_number: str) -> bool | None:
    """Whether a waybill number has the carrier's shape; None for a carrier we do not know."""
    code = carrier_code(carrier)
    if code is None:
        return None
    return CARRIER_FORMATS[code].fullmatch(normalise_tracking_number(tracking_number)) is not None


# --- at shipment ---------------------------------------------------------------------------


def after_shipment(session: Session, *, order: Order, now: datetime) -> list[Hit]:
    assert order.carrier is not None and order.tracking_number is not None
    hits: list[Hit] = []
    # Stored normalised (migration 0020 for numbers stored before): equality on the index.
    tracking_number = normalise_tracking_number(order.tracking_number)
    others = session.execute(
        select(Order.id, Order.shopper_id, Order.merchant_id)
        .where(Order.tracking_number == tracking_number, Order.id != order.id)
        .order_by(Order.id)
        .limit(50)
    ).all()
    other_merchants = sorted(
        {merchant for _, _, merchant in others if merchant != order.merchant_id}
    )
    # One parcel for two orders of the same shopper at one merchant is a normal combined shipment.
    other_shoppers = sorted(
        {shopper for _, shopper, merchant in others if merchant == order.merchant_id}
        - {order.shopper_id}
    )
    if other_merchants:
        hits.append(Hit(
            "tracking_reused_by_other_merchant",
            "The tracking number was already used by another merchant.",
            {"tracking_number": order.tracking_number, "other_merchant_ids": other_merchants,
             "other_order_ids": [order_id for order_id, _, _ in others]},
            holds=True,
        ))  # fmt: skip
    if other_shoppers:
        hits.append(Hit(
            "tracking_reused",
            "The merchant used this tracking number for another shopper's order.",
            {"tracking_number": order.tracking_number, "other_shopper_ids": other_shoppers,
             "other_order_ids": [order_id for order_id, _, _ in others]},
            holds=True,
        ))  # fmt: skip
    if tracking_number_fits(order.carrier, order.tracking_number) is False:
        hits.append(Hit(
            "tracking_malformed",
            f"The tracking number is not a valid {carrier_code(order.carrier)} waybill number.",
            {"carrier": order.carrier, "tracking_number": order.tracking_number},
            holds=True,
        ))  # fmt: skip
    _act(session, order=order, hits=hits, now=now)
    return hits


# --- at delivery ---------------------------------------------------------------------------


def after_delivery(session: Session, *, order: Order, now: datetime) -> list[Hit]:
    hits: list[Hit] = []
    if order.shipped_at is not None and order.delivered_at is not None:
        transit = order.delivered_at - order.shipped_at
        if order.delivery_confirmation != "automatic" and transit < MIN_TRANSIT:
            hits.append(Hit(
                "delivered_too_fast",
                "Receipt was confirmed faster than a parcel can travel.",
                {"shipped_at": order.shipped_at.isoformat(),
                 "delivered_at": order.delivered_at.isoformat(),
                 "transit_seconds": int(transit.total_seconds())},
                holds=False,
            ))  # fmt: skip
    merchant = session.get(Merchant, order.merchant_id)
    if (
        merchant is not None
        and merchant.address_hash is not None
        and order.shipping_address_hash == merchant.address_hash
    ):
        hits.append(Hit(
            "delivered_to_merchant",
            "The order was delivered to the merchant's own address.",
            {"merchant_id": merchant.id},
            holds=True,
        ))  # fmt: skip
    _act(session, order=order, hits=hits, now=now)
    return hits


# Hits that speak of the shopper's part as well, and freeze their credit while the case is open:
# goods "delivered" to the merchant's own address. A merchant's fake or reused waybill, a quick
# "received" or a late first payment may befall an honest buyer; those hold the merchant's money
# only (and the link graph freezes the shoppers of a ring).
SHOPPER_IMPLICATING_MONITORS = frozenset({"delivered_to_merchant"})


def _act(session: Session, *, order: Order, hits: list[Hit], now: datetime) -> RiskCase | None:
    """Open or join the order's case with the hits, hold settlement when warranted."""
    if not hits:
        return None
    risk_case: RiskCase | None = None
    for hit in hits:
        # The merchant is context, not a subject: it may be the fraudster's victim. Resolving the
        # case decides from the monitors' hits whether it is implicated too.
        risk_case = cases.open_or_update_case(
            session,
            case_type="order",
            subject_ids=[order.id, order.shopper_id],
            amount_at_risk_minor=order.amount_minor - order.refunded_minor,
            evidence={"monitor": hit.monitor, "merchant_id": order.merchant_id, **hit.evidence},
            reason=hit.reason,
            now=now,
        )
        actions.log_action(
            session,
            action=f"monitor:{hit.monitor}",
            subject_id=order.shopper_id,
            order_id=order.id,
            case_id=risk_case.id,
            decided_by=f"monitor:{hit.monitor}",
            reason=hit.reason,
            details=hit.evidence,
            now=now,
        )
    assert risk_case is not None
    signals = len(risk_case.evidence.get("signals", []))
    if any(hit.holds for hit in hits) or signals >= 2:
        already = session.scalar(
            select(func.count())
            .select_from(RiskAction)
            .where(
                RiskAction.case_id == risk_case.id,
                RiskAction.order_id == order.id,
                RiskAction.action == "hold_settlement",
            )
        )
        if not already:
            actions.hold_settlement(
                session,
                merchant_id=order.merchant_id,
                order_id=order.id,
                case_id=risk_case.id,
                reason="; ".join(hit.reason for hit in hits),
                decided_by=f"monitor:{hits[0].monitor}",
                now=now,
            )
    implicating = [hit for hit in hits if hit.monitor in SHOPPER_IMPLICATING_MONITORS]
    if implicating:
        actions.freeze_shopper_limit(
            session,
            shopper_id=order.shopper_id,
            case_id=risk_case.id,
            reason="; ".join(hit.reason for hit in implicating),
            decided_by=f"monitor:{implicating[0].monitor}",
            now=now,
        )
    return risk_case


# --- daily ---------------------------------------------------------------------------------


def first_instalment_missed(session: Session, context: DailyContext) -> dict[str, int]:
    """Orders whose first instalment is overdue with nothing paid: the classic first-payment
    default of a cash-out or a bust-out. Each order is flagged once."""
    rows = (
        session.execute(
            select(Order)
            .join(
                Instalment,
                and_(Instalment.shopper_id == Order.shopper_id, Instalment.order_id == Order.id),
            )
            .where(
                Instalment.seq == 1,
                Instalment.status == "overdue",
                Instalment.paid_principal_minor == 0,
                Instalment.paid_fees_minor == 0,
            )
            .order_by(Order.shopper_id, Order.id)
        )
        .scalars()
        .all()
    )
    flagged_before = set(
        session.scalars(
            select(RiskAction.order_id).where(
                RiskAction.action == "monitor:first_payment_default",
                RiskAction.order_id.in_([order.id for order in rows]),
            )
        ).all()
    ) if rows else set()  # fmt: skip
    opened = 0
    for order in rows:
        if order.id in flagged_before:
            continue
        _act(
            session,
            order=order,
            hits=[
                Hit(
                    "first_payment_default",
                    "The first instalment was missed with nothing paid.",
                    {"business_on": context.business_on.isoformat()},
                    holds=False,
                )
            ],
            now=context.now,
        )
        opened += 1
    return {"first_payment_defaults": opened}


def merchant_drift(session: Session, context: DailyContext) -> dict[str, int]:
    """Merchants whose pay-later volume or buyers' default rate jumped: the last 30 days against
    the 90 before. (The engine sees only its own orders, not a merchant's other sales, so the
    jump in pay-later volume stands for a jump in its share.) Volume is compared only against a
    real baseline (``MIN_BASELINE_ORDERS``); a merchant without one is judged by its buyers'
    default rate alone, once enough of their first instalments have come due. A hit opens a
    merchant case and puts the merchant on watch; a merchant is flagged at most once per 30
    days."""
    now = context.now
    recent_from, baseline_from = now - RECENT, now - RECENT - BASELINE
    lent = Order.status.not_in(("declined", "cancelled", "review", "step_up"))
    is_recent = Order.created_at >= recent_from
    came_due = and_(
        Instalment.due_on.is_not(None),
        Instalment.due_on < context.business_on,
        Instalment.status != "cancelled",
    )
    defaulted = and_(came_due, ever_delinquent(Order.shopper_id, Order.id))
    rows = session.execute(
        select(
            Order.merchant_id,
            Merchant.created_at,
            func.sum(case((and_(lent, is_recent), 1), else_=0)),
            func.sum(case((and_(lent, is_recent), Order.amount_minor), else_=0)),
            func.sum(case((and_(lent, ~is_recent), 1), else_=0)),
            func.sum(case((and_(lent, ~is_recent), Order.amount_minor), else_=0)),
            func.sum(case((and_(came_due, is_recent), 1), else_=0)),
            func.sum(case((and_(defaulted, is_recent), 1), else_=0)),
            func.sum(case((and_(came_due, ~is_recent), 1), else_=0)),
            func.sum(case((and_(defaulted, ~is_recent), 1), else_=0)),
        )
        .join(Merchant, Merchant.id == Order.merchant_id)
        .outerjoin(
            Instalment,
            and_(
                Instalment.shopper_id == Order.shopper_id,
                Instalment.order_id == Order.id,
                Instalment.seq == 1,
            ),
        )
        .where(Order.created_at >= baseline_from)
        .group_by(Order.merchant_id, Merchant.created_at)
        .order_by(Order.merchant_id)
    ).all()
    flagged_recently = set(
        session.scalars(
            select(RiskAction.subject_id).where(
                RiskAction.action == "monitor:merchant_drift",
                RiskAction.created_at >= recent_from,
            )
        ).all()
    )
    flagged = 0
    for row in rows:
        merchant_id, merchant_since = row[0], row[1]
        orders, recent_minor, base_orders, base_minor, due_recent, defaulted_recent, \
            due_base, defaulted_base = (int(value or 0) for value in row[2:])  # fmt: skip
        if merchant_id in flagged_recently:
            continue
        findings: list[str] = []
        has_volume_baseline = merchant_since <= baseline_from and base_orders >= MIN_BASELINE_ORDERS
        baseline_monthly = base_minor * RECENT.days / BASELINE.days
        if (
            has_volume_baseline
            and orders >= MIN_RECENT_ORDERS
            and recent_minor >= VOLUME_JUMP * baseline_monthly
        ):
            findings.append(
                f"pay-later volume {recent_minor} in 30 days vs "
                f"{round(baseline_monthly)} a month before"
            )
        if due_recent >= MIN_DUE_FOR_DEFAULT_RATE:
            recent_rate = defaulted_recent / due_recent
            # Too few due orders before: no rate to compare with, the floor alone decides.
            base_rate = defaulted_base / due_base if due_base >= MIN_DUE_FOR_DEFAULT_RATE else 0.0
            if recent_rate >= DEFAULT_RATE_FLOOR and recent_rate >= DEFAULT_RATE_JUMP * base_rate:
                findings.append(
                    f"buyers' default rate {recent_rate:.0%} in 30 days vs {base_rate:.0%} before"
                )
        if not findings:
            continue
        reason = "Merchant's book changed abruptly: " + "; ".join(findings)
        risk_case = cases.open_or_update_case(
            session,
            case_type="merchant",
            subject_ids=[merchant_id],
            amount_at_risk_minor=recent_minor,
            evidence={"monitor": "merchant_drift", "findings": findings},
            reason=reason,
            now=now,
        )
        actions.log_action(
            session,
            action="monitor:merchant_drift",
            subject_id=merchant_id,
            case_id=risk_case.id,
            decided_by="monitor:merchant_drift",
            reason=reason,
            now=now,
        )
        actions.put_merchant_on_watch(
            session,
            merchant_id=merchant_id,
            reason=reason,
            evidence=[risk_case.id],
            decided_by="monitor:merchant_drift",
            case_id=risk_case.id,
            now=now,
        )
        flagged += 1
    return {"merchants_flagged": flagged}
