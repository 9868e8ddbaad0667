"""Monitors after checkout: at shipment (a tracking number used before, or not in the carrier's
format), at delivery (confirmed faster than a parcel can travel, delivered to the merchant's own
address), at payment (the first instalment missed; daily) and on merchants (BNPL volume or their
buyers' default rate jumping; daily).

A hit opens or joins a case. Strong hits also hold the merchant's settlement for the order; a
weak hit (a fast confirmation alone: shoppers do tap "received" early) holds only once the case
has another signal too. Merchants whose book changes abruptly go on watch. Holds, freezes and
watches are other domains' changes: the caller's ``effects`` carry them out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import UpdateBase
from sqlalchemy.orm import Session

from usefirst.kit.business_day import DailyContext
from usefirst.kit.db import AnySelect
from usefirst.merchants.models import Merchant
from usefirst.merchants.repository import MerchantRepository
from usefirst.orders.models import Order
from usefirst.orders.repository import OrderRepository
from usefirst.orders.tracking import normalise_tracking_number
from usefirst.repayment.repository import RepaymentRepository
from usefirst.risk import actions, cases
from usefirst.risk.effects import RiskEffects
from usefirst.risk.models import RiskCase
from usefirst.risk.repository import RiskRepository

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


def after_shipment(
    session: Session, *, order: Order, now: datetime, effects: RiskEffects
) -> list[Hit]:
    assert order.carrier is not None and order.tracking_number is not None
    # Stored normalised (migration 0020 for numbers stored before): equality on the index.
    tracking_number = normalise_tracking_number(order.tracking_number)
    others = OrderRepository(session).others_with_tracking_number(
        tracking_number, other_than=order.id, limit=TRACKING_MATCHES
    )
    hits = _shipment_hits(order, others)
    _act(session, order=order, hits=hits, now=now, effects=effects)
    return hits


# The other orders with a shipped order's tracking number that the shipment monitor reads.
TRACKING_MATCHES = 50


def tracking_reading(order: Order) -> AnySelect:
    """What ``after_shipment`` reads of the other orders with the shipped order's tracking
    number, as a statement to send with other reads."""
    assert order.tracking_number is not None
    return OrderRepository.others_with_tracking_number_statement(
        normalise_tracking_number(order.tracking_number),
        other_than=order.id,
        limit=TRACKING_MATCHES,
    )


def is_quiet_shipment(order: Order, tracking_rows: Sequence[dict[str, Any]]) -> bool:
    """Whether ``after_shipment`` of the shipped order finds nothing (and so writes nothing),
    from the rows of ``tracking_reading``."""
    others = [(row["id"], row["shopper_id"], row["merchant_id"]) for row in tracking_rows]
    return not _shipment_hits(order, others)


def _shipment_hits(order: Order, others: list[tuple[str, str, str]]) -> list[Hit]:
    assert order.carrier is not None and order.tracking_number is not None
    hits: list[Hit] = []
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
    return hits


# --- at delivery ---------------------------------------------------------------------------


def after_delivery(
    session: Session, *, order: Order, now: datetime, effects: RiskEffects
) -> list[Hit]:
    hits = _delivery_hits(order, MerchantRepository(session).get(order.merchant_id))
    _act_on_orders(session, flagged=[(order, hits)], now=now, effects=effects)
    return hits


def after_deliveries(
    session: Session, *, orders: Sequence[Order], now: datetime, effects: RiskEffects
) -> int:
    """:func:`after_delivery` for many orders delivered together (the daily sweep's
    auto-confirmation): their merchants read at once, their cases and actions written together.
    Returns how many orders had a hit."""
    merchants = {
        merchant.id: merchant
        for merchant in MerchantRepository(session).many(
            sorted({order.merchant_id for order in orders})
        )
    }
    flagged = [(order, _delivery_hits(order, merchants.get(order.merchant_id))) for order in orders]
    flagged = [(order, hits) for order, hits in flagged if hits]
    _act_on_orders(session, flagged=flagged, now=now, effects=effects)
    return len(flagged)


def _delivery_hits(order: Order, merchant: Merchant | None) -> list[Hit]:
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
    return hits


# Hits that speak of the shopper's part as well, and freeze their credit while the case is open:
# goods "delivered" to the merchant's own address. A merchant's fake or reused waybill, a quick
# "received" or a late first payment may befall an honest buyer; those hold the merchant's money
# only (and the link graph freezes the shoppers of a ring).
SHOPPER_IMPLICATING_MONITORS = frozenset({"delivered_to_merchant"})


def _act(
    session: Session, *, order: Order, hits: list[Hit], now: datetime, effects: RiskEffects
) -> None:
    """Open or join the order's case with the hits, hold settlement when warranted."""
    _act_on_orders(session, flagged=[(order, hits)], now=now, effects=effects)


def _act_on_orders(
    session: Session,
    *,
    flagged: Sequence[tuple[Order, list[Hit]]],
    now: datetime,
    effects: RiskEffects,
) -> None:
    """Each order's hits open or join its case (one look-up of the open cases of all the orders,
    the new cases inserted and the joined ones updated together, every hit's action in one
    insert); then, order by order, its settlement is held when warranted and the shopper's
    credit frozen when a hit implicates them (other domains' changes, through ``effects``)."""
    flagged = [(order, hits) for order, hits in flagged if hits]
    if not flagged:
        return
    # The merchant is context, not a subject: it may be the fraudster's victim. Resolving the
    # case decides from the monitors' hits whether it is implicated too.
    touched = cases.open_or_update_cases(
        session,
        openings=[_opening(order, hit, now=now) for order, hits in flagged for hit in hits],
        now=now,
    )
    case_of: dict[str, RiskCase] = {}
    action_rows: list[dict[str, Any]] = []
    signals = iter(touched)
    for order, hits in flagged:
        for hit in hits:
            risk_case = next(signals)
            case_of[order.id] = risk_case
            action_rows.append(_action_row(order, hit, case_id=risk_case.id, now=now))
    repository = RiskRepository(session)
    repository.insert_actions(action_rows)
    strong = [
        (order, hits)
        for order, hits in flagged
        if any(hit.holds for hit in hits) or len(case_of[order.id].evidence.get("signals", [])) >= 2
    ]
    held_before = repository.case_orders_with_action(
        [(case_of[order.id].id, order.id) for order, _ in strong], action=actions.HOLD_SETTLEMENT
    )
    is_strong = {order.id for order, _ in strong}
    for order, hits in flagged:
        risk_case = case_of[order.id]
        if order.id in is_strong and (risk_case.id, order.id) not in held_before:
            effects.hold_settlement(
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
            effects.freeze_shopper_limit(
                session,
                shopper_id=order.shopper_id,
                case_id=risk_case.id,
                reason="; ".join(hit.reason for hit in implicating),
                decided_by=f"monitor:{implicating[0].monitor}",
                now=now,
            )


def _opening(order: Order, hit: Hit, *, now: datetime) -> RiskCase:
    """The order case a hit opens when the order has no open case (else it joins that one)."""
    return cases.new_case(
        case_type="order",
        subject_ids=[order.id, order.shopper_id],
        amount_at_risk_minor=order.amount_minor - order.refunded_minor,
        evidence={"monitor": hit.monitor, "merchant_id": order.merchant_id, **hit.evidence},
        reason=hit.reason,
        now=now,
    )


def _action_row(order: Order, hit: Hit, *, case_id: str, now: datetime) -> dict[str, Any]:
    return actions.action_row(
        action=f"monitor:{hit.monitor}",
        subject_id=order.shopper_id,
        order_id=order.id,
        case_id=case_id,
        decided_by=f"monitor:{hit.monitor}",
        reason=hit.reason,
        details=hit.evidence,
        now=now,
    )


def open_case_reading(order: Order) -> AnySelect:
    """The open case an order's delivery hit would join, as a statement to send with other
    reads (not locked: ``quiet_delivery_writes`` goes on only when there is none)."""
    return RiskRepository.open_cases_statement([cases.subject_key("order", [order.id])])


def quiet_delivery_writes(
    *, order: Order, merchant: Merchant, open_case_rows: Sequence[Any], now: datetime
) -> list[UpdateBase] | None:
    """``after_delivery`` of the delivered order as parts of one statement, when it does no
    more than open a case that holds nothing (a quick "received" alone: a weak hit, the order
    without an open case) or nothing at all; None when it would do more (hold the merchant's
    settlement, freeze the shopper, join an open case): then ``after_delivery`` it is.
    ``open_case_rows``: the rows of ``open_case_reading``."""
    hits = _delivery_hits(order, merchant)
    if not hits:
        return []
    if open_case_rows or len(hits) > 1:
        return None
    (hit,) = hits
    if hit.holds or hit.monitor in SHOPPER_IMPLICATING_MONITORS:
        return None
    opened = _opening(order, hit, now=now)
    return RiskRepository.case_writes(opened, [_action_row(order, hit, case_id=opened.id, now=now)])


# --- daily ---------------------------------------------------------------------------------


FIRST_PAYMENT_DEFAULT = "first_payment_default"


def first_instalment_missed(
    session: Session, context: DailyContext, *, effects: RiskEffects
) -> dict[str, int]:
    """Orders whose first instalment is overdue with nothing paid: the classic first-payment
    default of a cash-out or a bust-out. Each order is flagged once.

    Set-based: on a large book thousands of orders miss their first instalment on the same
    night. Their cases are opened or joined together (:func:`_act_on_orders`): a first, weak
    signal opens a case without a hold; an order whose case is already open (another monitor
    flagged it) joins it, and with two signals has its settlement held."""
    missed = RepaymentRepository(session).orders_with_first_instalment_missed()
    # Orders flagged on an earlier night are left out before any is read: a live book holds
    # every missed first instalment of its history, a night adds a day's worth.
    flagged_before = RiskRepository(session).orders_with_action(
        [order_id for _, order_id in missed], action=f"monitor:{FIRST_PAYMENT_DEFAULT}"
    )
    to_flag = OrderRepository(session).many([key for key in missed if key[1] not in flagged_before])
    hit = Hit(
        FIRST_PAYMENT_DEFAULT,
        "The first instalment was missed with nothing paid.",
        {"business_on": context.business_on.isoformat()},
        holds=False,
    )
    _act_on_orders(
        session, flagged=[(order, [hit]) for order in to_flag], now=context.now, effects=effects
    )
    return {"first_payment_defaults": len(to_flag)}


def merchant_drift(
    session: Session, context: DailyContext, *, effects: RiskEffects
) -> dict[str, int]:
    """Merchants whose pay-later volume or buyers' default rate jumped: the last 30 days against
    the 90 before. (The engine sees only its own orders, not a merchant's other sales, so the
    jump in pay-later volume stands for a jump in its share.) Volume is compared only against a
    real baseline (``MIN_BASELINE_ORDERS``); a merchant without one is judged by its buyers'
    default rate alone, once enough of their first instalments have come due. A hit opens a
    merchant case and puts the merchant on watch; a merchant is flagged at most once per 30
    days."""
    now = context.now
    recent_from, baseline_from = now - RECENT, now - RECENT - BASELINE
    books = OrderRepository(session).merchant_books(
        since=baseline_from,
        recent_from=recent_from,
        first_instalment_due=RepaymentRepository(session).first_instalments_due_before(
            context.business_on
        ),
    )
    merchant_since = {
        merchant.id: merchant.created_at
        for merchant in MerchantRepository(session).many([book.merchant_id for book in books])
    }
    flagged_recently = RiskRepository(session).subjects_with_action_since(
        recent_from, action="monitor:merchant_drift"
    )
    flagged: list[tuple[str, str, list[str], int]] = []  # merchant, reason, findings, amount
    for book in books:
        merchant_id = book.merchant_id
        if merchant_id in flagged_recently or merchant_id not in merchant_since:
            continue
        findings: list[str] = []
        has_volume_baseline = (
            merchant_since[merchant_id] <= baseline_from
            and book.earlier_orders >= MIN_BASELINE_ORDERS
        )
        baseline_monthly = book.earlier_minor * RECENT.days / BASELINE.days
        if (
            has_volume_baseline
            and book.recent_orders >= MIN_RECENT_ORDERS
            and book.recent_minor >= VOLUME_JUMP * baseline_monthly
        ):
            findings.append(
                f"pay-later volume {book.recent_minor} in 30 days vs "
                f"{round(baseline_monthly)} a month before"
            )
        if book.recent_due >= MIN_DUE_FOR_DEFAULT_RATE:
            recent_rate = book.recent_defaulted / book.recent_due
            # Too few due orders before: no rate to compare with, the floor alone decides.
            base_rate = (
                book.earlier_defaulted / book.earlier_due
                if book.earlier_due >= MIN_DUE_FOR_DEFAULT_RATE
                else 0.0
            )
            if recent_rate >= DEFAULT_RATE_FLOOR and recent_rate >= DEFAULT_RATE_JUMP * base_rate:
                findings.append(
                    f"buyers' default rate {recent_rate:.0%} in 30 days vs {base_rate:.0%} before"
                )
        if findings:
            reason = "Merchant's book changed abruptly: " + "; ".join(findings)
            flagged.append((merchant_id, reason, findings, book.recent_minor))
    # The cases opened or joined together, their actions in one insert; then the watches.
    touched = cases.open_or_update_cases(
        session,
        openings=[
            cases.new_case(
                case_type="merchant",
                subject_ids=[merchant_id],
                amount_at_risk_minor=amount_minor,
                evidence={"monitor": "merchant_drift", "findings": findings},
                reason=reason,
                now=now,
            )
            for merchant_id, reason, findings, amount_minor in flagged
        ],
        now=now,
    )
    RiskRepository(session).insert_actions(
        [
            actions.action_row(
                action="monitor:merchant_drift",
                subject_id=merchant_id,
                case_id=risk_case.id,
                decided_by="monitor:merchant_drift",
                reason=reason,
                now=now,
            )
            for (merchant_id, reason, _, _), risk_case in zip(flagged, touched, strict=True)
        ]
    )
    for (merchant_id, reason, _, _), risk_case in zip(flagged, touched, strict=True):
        effects.put_merchant_on_watch(
            session,
            merchant_id=merchant_id,
            reason=reason,
            evidence=[risk_case.id],
            decided_by="monitor:merchant_drift",
            case_id=risk_case.id,
            now=now,
        )
    return {"merchants_flagged": len(flagged)}
