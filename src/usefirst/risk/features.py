"""Checkout features, computed online inside the checkout transaction from a handful of indexed
queries: the shopper's own history (one aggregate over the shopper's orders), the merchant's recent
book (one aggregate and one top-buyer query over the merchant's orders), shared identifiers (one
query over link observations, one over shoppers' phone hashes) and known-fraud subjects (one key
lookup).

Every feature is a float so the rules and the model read one flat mapping. ``FEATURE_NAMES`` is
the fixed order the model is trained and served with.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Executable, and_, bindparam, case, func, or_, select
from sqlalchemy.orm import Session

from usefirst.credit.models import CreditLine
from usefirst.identity.models import Shopper
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.db import UTCDateTime
from usefirst.merchants.models import Merchant
from usefirst.orders.models import Order
from usefirst.repayment.models import Instalment
from usefirst.risk.models import KnownFraudSubject, LinkObservation

FEATURE_NAMES: tuple[str, ...] = (
    # the order
    "order_amount_minor",
    "items_quantity_total",
    "items_resellable_share",
    # the shopper
    "shopper_account_age_days",
    "shopper_limit_use_after",
    "shopper_prior_orders",
    "shopper_amount_vs_average",
    "shopper_amount_vs_max",
    "shopper_orders_1h",
    "shopper_orders_24h",
    "shopper_orders_7d",
    "shopper_amount_24h_minor",
    "shopper_distinct_merchants_7d",
    "shopper_late_instalments",
    "shopper_new_device",
    # the merchant
    "merchant_age_days",
    "merchant_orders_90d",
    "merchant_amount_vs_average",
    "merchant_default_rate",
    "merchant_refund_rate",
    "merchant_top_buyer_share",
    "merchant_resellable_category",
    "merchant_on_watch",
    "merchant_known_fraud",
    # the pair
    "pair_prior_orders",
    # links
    "link_device_shoppers",
    "link_ip_shoppers",
    "link_phone_shoppers",
    "link_address_shoppers",
    "link_merchant_own",
    "link_known_fraud",
)

DEFAULT_RESELLABLE_CATEGORIES: frozenset[str] = frozenset(
    {
        "phones",
        "mobile_phones",
        "smartphones",
        "gold",
        "precious_metals",
        "jewelry_gold",
        "gift_cards",
        "top_up_cards",
        "prepaid_cards",
        "game_cards",
        "手机",
        "黄金",
        "礼品卡",
        "充值卡",
    }
)

# Orders the engine lent on (approved at some point), as opposed to held, declined or cancelled.
LENT_STATUSES = ("approved", "shipped", "delivered", "overdue", "repaid", "refunded", "charged_off")
# Orders whose repayment clock started: the base of a merchant's buyers' default rate.
DELIVERED_STATUSES = ("delivered", "overdue", "repaid", "refunded", "charged_off")
SHIPPED_STATUSES = ("shipped", *DELIVERED_STATUSES)
MERCHANT_WINDOW = timedelta(days=90)
LINK_KINDS = ("device", "ip", "phone", "address")
LINKED_SHOPPERS_SHOWN = 20


@dataclass(frozen=True)
class Link:
    """An identifier of this checkout also seen elsewhere."""

    kind: str  # device | ip | phone | address
    shopper_count: int  # other shoppers seen with it
    shopper_ids: list[str]  # the first of them, for the analyst
    shared_with_merchant: bool
    with_known_fraud: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "shopper_count": self.shopper_count,
            "shopper_ids": self.shopper_ids,
            "shared_with_merchant": self.shared_with_merchant,
            "with_known_fraud": self.with_known_fraud,
        }


@dataclass(frozen=True)
class CheckoutFeatures:
    values: dict[str, float]
    links: list[Link]
    # kind -> keyed hash of this checkout's identifiers, to be recorded as observations.
    link_hashes: dict[str, str] = field(default_factory=dict)

    def vector(self) -> list[float]:
        return [self.values[name] for name in FEATURE_NAMES]


def normalise_address(address: str) -> str:
    """Two spellings of one address hash alike: width and case folded, spaces and punctuation
    dropped (``北京市 朝阳区，建国路1号`` = ``北京市朝阳区建国路1号``)."""
    folded = unicodedata.normalize("NFKC", address).casefold()
    return "".join(
        character
        for character in folded
        if not unicodedata.category(character).startswith(("P", "Z", "C", "S"))
    )


def address_hash(cipher: FieldCipher, address: str) -> str:
    return cipher.blind_index(normalise_address(address), field="address")


def identifier_hash(cipher: FieldCipher, kind: str, value: str) -> str:
    return cipher.blind_index(value.strip().casefold(), field=f"link_{kind}")


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0


def _days_between(earlier: datetime, later: datetime) -> float:
    return max((later - earlier).total_seconds(), 0.0) / 86_400.0


def compute_checkout_features(
    session: Session,
    *,
    shopper_id: str,
    merchant_id: str,
    amount_minor: int,
    items: Sequence[Mapping[str, Any]],
    device_id: str | None,
    ip: str | None,
    shipping_address: str | None,
    cipher: FieldCipher,
    now: datetime,
    credit_limit_minor: int | None = None,
    credit_used_minor: int | None = None,
    resellable_categories: frozenset[str] = DEFAULT_RESELLABLE_CATEGORIES,
) -> CheckoutFeatures:
    """Features of a checkout about to be decided. The order itself must not be stored yet: every
    history feature counts what happened before it. ``credit_used_minor`` is what the shopper
    used before this order (read from the credit line when not given)."""
    # The queries below run on the connection (no ORM layer: the budget is a few ms), so
    # pending changes must reach the database first.
    session.flush()
    shopper = session.get(Shopper, shopper_id)
    merchant = session.get(Merchant, merchant_id)
    if shopper is None or merchant is None:
        raise LookupError("features need an existing shopper and merchant")
    if credit_limit_minor is None or credit_used_minor is None:
        line = session.get(CreditLine, shopper_id)
        credit_limit_minor = line.limit_minor if line is not None else 0
        credit_used_minor = line.used_minor if line is not None else 0

    values: dict[str, float] = {}
    values.update(_order_features(amount_minor, items, resellable_categories))
    values.update(
        _shopper_features(
            session,
            shopper=shopper,
            merchant_id=merchant_id,
            amount_minor=amount_minor,
            device_id=device_id,
            credit_limit_minor=credit_limit_minor,
            credit_used_minor=credit_used_minor,
            now=now,
        )
    )
    values.update(
        _merchant_features(
            session,
            merchant=merchant,
            amount_minor=amount_minor,
            resellable_categories=resellable_categories,
            now=now,
        )
    )
    link_hashes: dict[str, str] = {"phone": shopper.phone_hash}
    if device_id and device_id.strip():
        link_hashes["device"] = identifier_hash(cipher, "device", device_id)
    if ip and ip.strip():
        link_hashes["ip"] = identifier_hash(cipher, "ip", ip)
    if shipping_address and normalise_address(shipping_address):
        link_hashes["address"] = address_hash(cipher, shipping_address)
    links, known_fraud_subjects = _links(
        session, shopper=shopper, merchant=merchant, link_hashes=link_hashes
    )
    by_kind = {link.kind: link for link in links}
    for kind in LINK_KINDS:
        link = by_kind.get(kind)
        values[f"link_{kind}_shoppers"] = float(link.shopper_count) if link else 0.0
    values["link_merchant_own"] = float(sum(link.shared_with_merchant for link in links))
    values["link_known_fraud"] = float(sum(link.with_known_fraud for link in links))
    values["merchant_known_fraud"] = 1.0 if merchant.id in known_fraud_subjects else 0.0
    if shopper.id in known_fraud_subjects:
        # The shopper was in a confirmed-fraud case: the strongest link of all.
        values["link_known_fraud"] += 1.0
    missing = set(FEATURE_NAMES) - set(values)
    if missing:
        raise AssertionError(f"features not computed: {sorted(missing)}")
    return CheckoutFeatures(
        values={name: values[name] for name in FEATURE_NAMES},
        links=links,
        link_hashes=link_hashes,
    )


def _order_features(
    amount_minor: int, items: Sequence[Mapping[str, Any]], resellable: frozenset[str]
) -> dict[str, float]:
    quantity = 0
    resellable_minor = 0
    total_minor = 0
    for item in items:
        line_minor = int(item["quantity"]) * int(item["unit_price_minor"])
        quantity += int(item["quantity"])
        total_minor += line_minor
        if str(item["category"]).strip().casefold() in resellable:
            resellable_minor += line_minor
    return {
        "order_amount_minor": float(amount_minor),
        "items_quantity_total": float(quantity),
        "items_resellable_share": _ratio(resellable_minor, total_minor),
    }


@cache
def _shopper_statement() -> Executable:
    """One aggregate over the shopper's own orders (its primary key range), built once: building
    SQLAlchemy expressions costs more than running this query."""
    lent = Order.status.in_(LENT_STATUSES)
    counted = Order.status.not_in(("declined", "cancelled"))
    hour_ago, day_ago, week_ago = (bindparam("hour_ago", type_=UTCDateTime()),
                                   bindparam("day_ago", type_=UTCDateTime()),
                                   bindparam("week_ago", type_=UTCDateTime()))  # fmt: skip
    late_instalments = (
        select(func.count())
        .select_from(Instalment)
        .where(Instalment.shopper_id == bindparam("shopper_id"), Instalment.was_overdue.is_(True))
        .scalar_subquery()
    )
    return select(
        func.sum(case((lent, 1), else_=0)),
        func.sum(case((lent, Order.amount_minor), else_=0)),
        func.max(case((lent, Order.amount_minor), else_=None)),
        func.sum(case((Order.created_at >= hour_ago, 1), else_=0)),
        func.sum(case((Order.created_at >= day_ago, 1), else_=0)),
        func.sum(case((Order.created_at >= week_ago, 1), else_=0)),
        func.sum(case((and_(Order.created_at >= day_ago, counted), Order.amount_minor), else_=0)),
        func.count(func.distinct(case((Order.created_at >= week_ago, Order.merchant_id)))),
        func.sum(case((and_(lent, Order.merchant_id == bindparam("merchant_id")), 1), else_=0)),
        # = NULL is never true: without a device this counts 0
        func.sum(case((Order.device_id == bindparam("device_id"), 1), else_=0)),
        late_instalments,
        func.count(),
    ).where(Order.shopper_id == bindparam("shopper_id"))


def _shopper_features(
    session: Session,
    *,
    shopper: Shopper,
    merchant_id: str,
    amount_minor: int,
    device_id: str | None,
    credit_limit_minor: int,
    credit_used_minor: int,
    now: datetime,
) -> dict[str, float]:
    row = (
        session.connection()
        .execute(
            _shopper_statement(),
            {
                "shopper_id": shopper.id,
                "merchant_id": merchant_id,
                "device_id": device_id,
                "hour_ago": now - timedelta(hours=1),
                "day_ago": now - timedelta(days=1),
                "week_ago": now - timedelta(days=7),
            },
        )
        .one()
    )
    prior_orders = int(row[0] or 0)
    prior_amount = int(row[1] or 0)
    prior_max = int(row[2] or 0)
    average = prior_amount / prior_orders if prior_orders else 0.0
    orders_seen = int(row[11] or 0)
    limit_use = _ratio(credit_used_minor + amount_minor, credit_limit_minor)
    return {
        "shopper_account_age_days": _days_between(shopper.created_at, now),
        "shopper_limit_use_after": limit_use,
        "shopper_prior_orders": float(prior_orders),
        "shopper_amount_vs_average": _ratio(amount_minor, average),
        "shopper_amount_vs_max": _ratio(amount_minor, prior_max),
        "shopper_orders_1h": float(row[3] or 0),
        "shopper_orders_24h": float(row[4] or 0),
        "shopper_orders_7d": float(row[5] or 0),
        "shopper_amount_24h_minor": float(row[6] or 0),
        "shopper_distinct_merchants_7d": float(row[7] or 0),
        "pair_prior_orders": float(row[8] or 0),
        # A device never used by a shopper who has ordered before (a new shopper has no
        # "usual" device, so this stays 0 for a first order).
        "shopper_new_device": 1.0 if device_id and orders_seen and not row[9] else 0.0,
        "shopper_late_instalments": float(row[10] or 0),
    }


@cache
def _merchant_statements() -> tuple[Executable, Executable]:
    """The merchant's recent book (its ``(merchant_id, id)`` index range) and its top buyer."""
    lent = Order.status.in_(LENT_STATUSES)
    delivered = Order.status.in_(DELIVERED_STATUSES)
    defaulted = and_(
        delivered,
        or_(Order.first_delinquent_on.is_not(None), Order.status.in_(("overdue", "charged_off"))),
    )
    shipped = Order.status.in_(SHIPPED_STATUSES)
    in_window = and_(
        Order.merchant_id == bindparam("merchant_id"),
        Order.created_at >= bindparam("since", type_=UTCDateTime()),
    )
    book = select(
        func.sum(case((lent, 1), else_=0)),
        func.sum(case((lent, Order.amount_minor), else_=0)),
        func.sum(case((delivered, 1), else_=0)),
        func.sum(case((defaulted, 1), else_=0)),
        func.sum(case((shipped, 1), else_=0)),
        func.sum(case((and_(shipped, Order.refunded_minor > 0), 1), else_=0)),
    ).where(in_window)
    top_buyer = (
        select(func.count())
        .where(in_window, lent)
        .group_by(Order.shopper_id)
        .order_by(func.count().desc())
        .limit(1)
    )
    return book, top_buyer


def _merchant_features(
    session: Session,
    *,
    merchant: Merchant,
    amount_minor: int,
    resellable_categories: frozenset[str],
    now: datetime,
) -> dict[str, float]:
    book, top_buyer = _merchant_statements()
    parameters = {"merchant_id": merchant.id, "since": now - MERCHANT_WINDOW}
    connection = session.connection()
    row = connection.execute(book, parameters).one()
    orders = int(row[0] or 0)
    top_buyer_orders = connection.scalar(top_buyer, parameters) if orders else 0
    average = int(row[1] or 0) / orders if orders else 0.0
    return {
        "merchant_age_days": _days_between(merchant.created_at, now),
        "merchant_orders_90d": float(orders),
        "merchant_amount_vs_average": _ratio(amount_minor, average),
        "merchant_default_rate": _ratio(int(row[3] or 0), int(row[2] or 0)),
        "merchant_refund_rate": _ratio(int(row[5] or 0), int(row[4] or 0)),
        "merchant_top_buyer_share": _ratio(int(top_buyer_orders or 0), orders),
        "merchant_resellable_category": 1.0
        if merchant.category.casefold() in resellable_categories
        else 0.0,
        "merchant_on_watch": 1.0 if merchant.status == "on_watch" else 0.0,
    }


@cache
def _link_statements() -> tuple[Executable, Executable, Executable]:
    """Other shoppers seen with the checkout's device, IP or address (the ``(kind, value_hash)``
    index; an absent identifier binds NULL and matches nothing), and with its phone."""
    observed = (
        select(LinkObservation.kind, LinkObservation.shopper_id)
        .where(
            or_(
                *(
                    and_(
                        LinkObservation.kind == kind, LinkObservation.value_hash == bindparam(kind)
                    )
                    for kind in ("device", "ip", "address")
                )
            ),
            LinkObservation.shopper_id != bindparam("shopper_id"),
        )
        .distinct()
        .limit(1000)
    )
    phone = (
        select(Shopper.id)
        .where(Shopper.phone_hash == bindparam("phone"), Shopper.id != bindparam("shopper_id"))
        .limit(200)
    )
    known = select(KnownFraudSubject.subject_id).where(
        KnownFraudSubject.subject_id.in_(bindparam("subject_ids", expanding=True))
    )
    return observed, phone, known


def _links(
    session: Session, *, shopper: Shopper, merchant: Merchant, link_hashes: dict[str, str]
) -> tuple[list[Link], set[str]]:
    """Other shoppers seen with this checkout's identifiers, whether the merchant registered
    the same phone or address, and which of them are known fraud."""
    shared: dict[str, set[str]] = {kind: set() for kind in link_hashes}
    observed, phone, known_fraud = _link_statements()
    parameters = {kind: link_hashes.get(kind) for kind in ("device", "ip", "address")}
    connection = session.connection()
    for kind, other in connection.execute(observed, {**parameters, "shopper_id": shopper.id}):
        shared[kind].add(other)
    shared["phone"].update(
        connection.scalars(phone, {"phone": shopper.phone_hash, "shopper_id": shopper.id})
    )
    everyone = {other for others in shared.values() for other in others}
    known = set(
        connection.scalars(
            known_fraud, {"subject_ids": sorted(everyone | {shopper.id, merchant.id})}
        ).all()
    )
    merchant_hashes = {"phone": merchant.phone_hash, "address": merchant.address_hash}
    links = []
    for kind in LINK_KINDS:
        if kind not in link_hashes:
            continue
        others = shared[kind]
        with_merchant = merchant_hashes.get(kind) is not None and (
            merchant_hashes.get(kind) == link_hashes[kind]
        )
        if others or with_merchant:
            links.append(
                Link(
                    kind=kind,
                    shopper_count=len(others),
                    shopper_ids=sorted(others)[:LINKED_SHOPPERS_SHOWN],
                    shared_with_merchant=with_merchant,
                    with_known_fraud=bool(others & known),
                )
            )
    return links, known
