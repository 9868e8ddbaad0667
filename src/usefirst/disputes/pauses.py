"""How a shopper's disputes pause an order's days past due: days past due = days since due − the
days disputes paused (an open dispute pauses every day since it opened). Pure arithmetic over the
order's pause (``DisputedOrder``; None for an order its shopper never disputed), for collections
(dunning, the queue) and the bureau file."""

from __future__ import annotations

from datetime import date

from usefirst.disputes.models import DisputedOrder


def is_open(pause: DisputedOrder | None) -> bool:
    """Whether a dispute of the shopper's is open on the order (its dunning is paused)."""
    return pause is not None and pause.is_disputed


def paused_days_on(pause: DisputedOrder | None, on: date) -> int:
    """The days an order's disputes paused its days past due, as of ``on`` (an open dispute
    pauses every day since it opened)."""
    if pause is None:
        return 0
    paused = pause.dispute_paused_days or 0
    if pause.is_disputed and pause.disputed_since_on is not None:
        paused += max((on - pause.disputed_since_on).days, 0)
    return paused


def days_past_due_on(pause: DisputedOrder | None, *, due_on: date, on: date) -> int:
    """Days past due of an instalment of the order due on ``due_on``, as of ``on``: days since
    it fell due less the days disputes paused, never negative."""
    return max((on - due_on).days - paused_days_on(pause, on), 0)
