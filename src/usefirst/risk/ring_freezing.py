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
- no order at all in the graph's window: a fresh account held in reserve, as a ring's next
  mules are (the graph counts them in a burst; freezing them costs an honest shopper nothing
  placed yet, and a ring its next cash-out).

A member with orders and none of these is only linked: their credit stays as it is, and their
next checkout is decided by the checkout's own signals (the link, neighbourhood and
known-fraud features read the ring's members as soon as a case confirms fraud).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from usefirst.orders.repository import OrderRepository

UNPAID_STATUSES = frozenset({"overdue", "charged_off"})


def members_to_freeze(
    session: Session,
    *,
    members: Sequence[str],
    ring_order_ids: Sequence[str],
    since: datetime,
    cash_out_min_amount_minor: int,
    fast_delivery_hours: int,
) -> list[str]:
    """The shopper members of a ring (``shp_`` ids, in ``members`` order) whose credit its case
    freezes: those with evidence of their own (module docstring), read from their orders created
    since ``since`` (the graph's window) in one statement."""
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
    return [shopper for shopper in shoppers if shopper in implicated or not placed[shopper]]
