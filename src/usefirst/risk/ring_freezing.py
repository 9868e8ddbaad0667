"""Whose credit a ring case freezes: the members the evidence speaks of, not everyone linked.

A ring the nightly graph finds is a group of shoppers tied by shared identifiers. On a real
marketplace those ties take in honest people too: a household sharing a device and an address
with a mule, neighbours behind one NAT address. Freezing every member's credit while the case
is open declined those honest shoppers' next checkouts (``FROZEN_FOR_REVIEW``) though nothing
but a link spoke against them. Proportionate freezing keeps the freeze for the members with
evidence of their own part in the cash-out:

- a cash-out-shaped order of the ring (``RingFinding.order_ids``: at the ring's merchant, or
  anywhere when the ring has no one merchant);
- an unpaid order (overdue or charged off): a mule never pays;
- an order of ``cash_out_min_amount_minor`` or more confirmed as received within
  ``fast_delivery_hours`` of its shipment (a mule confirms within the hour; goods take days);
- no order at all in the graph's window, and a device or phone (``PERSONAL_LINK_KINDS``) shared
  with a member who has evidence of their own: a fresh account held in reserve on the ring's
  handsets, as a ring's next mules are (the graph counts them in a burst).

A member with no order tied to the ring only by an address, an address cluster or an IP is not
frozen: a newcomer in the building of a mule, or behind the same carrier NAT, is what such a
tie looks like on a real marketplace, and freezing them declined their first checkout. The price
is a reserve mule on a handset no implicated member has used yet: it is frozen only after its
own first cash-out order (evidence then), which the checkout alone decides. A member with
orders and none of the evidence above is only linked too. Either way their credit stays as
it is, and their next checkout is decided by the checkout's own signals (the link,
neighbourhood and known-fraud features read the ring's members as soon as a case confirms
fraud).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from usefirst.orders.repository import OrderRepository

UNPAID_STATUSES = frozenset({"overdue", "charged_off"})
# Identifiers one person holds (a handset, a phone number), unlike an address a building shares
# or an IP a NAT shares: a tie by one of them to an implicated member is evidence of its own.
PERSONAL_LINK_KINDS = ("device", "phone")


def members_to_freeze(
    session: Session,
    *,
    members: Sequence[str],
    ring_order_ids: Sequence[str],
    member_links: Mapping[str, Sequence[str]],
    since: datetime,
    cash_out_min_amount_minor: int,
    fast_delivery_hours: int,
) -> list[str]:
    """The shopper members of a ring (``shp_`` ids, in ``members`` order) whose credit its case
    freezes: those with evidence of their own (module docstring), read from their orders created
    since ``since`` (the graph's window) in one statement. ``member_links``: identifier
    (``kind:value``) → the members holding it (``RingFinding.member_links``)."""
    shoppers = [member for member in members if member.startswith("shp_")]
    if not shoppers:
        return []
    ring_orders = set(ring_order_ids)
    fast = timedelta(hours=fast_delivery_hours)
    placed: dict[str, int] = defaultdict(int)
    implicated: set[str] = set()
    for order in OrderRepository(session).facts_of_shoppers_created_since(
        shoppers, since=since, items_from_minor=2**62
    ):
        placed[order.shopper_id] += 1
        if (
            order.id in ring_orders
            or order.status in UNPAID_STATUSES
            or (
                order.amount_minor >= cash_out_min_amount_minor
                and order.shipped_at is not None
                and order.delivered_at is not None
                and order.delivered_at - order.shipped_at <= fast
            )
        ):
            implicated.add(order.shopper_id)
    personally_tied: set[str] = set()
    for value, holders in member_links.items():
        if value.partition(":")[0] in PERSONAL_LINK_KINDS and implicated.intersection(holders):
            personally_tied.update(holders)
    return [
        shopper
        for shopper in shoppers
        if shopper in implicated or (not placed[shopper] and shopper in personally_tied)
    ]
