"""How a shopper's disputes pause an order's days past due: days past due = days since due − the
days disputes paused (an open dispute pauses every day since it opened). Pure arithmetic over the
order's dispute state, for collections (dunning, the queue) and the bureau file."""

from __future__ import annotations

from datetime import date

from usefirst.orders.models import Order


def paused_days_on(order: Order, on: date) -> int:
    """The days an order's disputes paused its days past due, as of ``on`` (an open dispute
    pauses every day since it opened)."""
    paused = order.dispute_paused_days or 0
    if order.is_disputed and order.disputed_since_on is not None:
        paused += max((on - order.disputed_since_on).days, 0)
    return paused


def days_past_due_on(order: Order, *, due_on: date, on: date) -> int:
    """Days past due of an instalment of the order due on ``due_on``, as of ``on``: days since
    it fell due less the days disputes paused, never negative."""
    return max((on - due_on).days - paused_days_on(order, on), 0)
