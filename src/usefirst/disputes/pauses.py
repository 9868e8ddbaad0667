"""How a shopper's disputes pause an order's days past due: days past due = days since due − the
days disputes paused (an open dispute pauses every day since it opened). Pure arithmetic over the
order's pause (``DisputedOrder``; None for an order its shopper never disputed), for collections
(dunning, the queue) and the bureau file."""

from __future__ import annotations

from datetime import date

from usefirst.disputes.models import DisputedOrder, DisputePauseClosure


def is_open(pause: DisputedOrder | None) -> bool:
    """Whether a dispute of the shopper's is open on the order (its dunning is paused)."""
    return pause is not None and pause.is_disputed


def as_of(
    pause: DisputedOrder | None,
    *,
    on: date,
    is_first_opened_since: bool,
    closed_since: DisputePauseClosure | None = None,
) -> DisputedOrder | None:
    """The order's pause as it stood at the end of business date ``on``, the shopper's disputes
    opened and closed since taken back; ``is_first_opened_since``: the order's first such
    dispute (in ``disputes``) was opened after ``on``; ``closed_since``: the first closing of a
    dispute on it since, which kept the pause as it stood before (open, since when, the days
    and last closing of the ones closed before). None when none had opened by then (never
    disputed then). When the one open then opened since and an earlier one had closed by then:
    not disputed, with the paused days of the closed ones. Both are copies, not stored. A
    dispute open across ``on`` and closed before migration 0064 kept no record: the pause as
    it is (its days are in the total)."""
    if pause is None or is_first_opened_since:
        return None
    if closed_since is not None:
        pause = DisputedOrder(
            shopper_id=pause.shopper_id,
            order_id=pause.order_id,
            is_disputed=True,
            disputed_since_on=closed_since.disputed_since_on_before,
            dispute_paused_days=closed_since.dispute_paused_days_before,
            dispute_resolved_on=closed_since.dispute_resolved_on_before,
            updated_at=closed_since.closed_at,
        )
    if pause.is_disputed and pause.disputed_since_on is not None and pause.disputed_since_on > on:
        if pause.dispute_resolved_on is None:
            return None  # the order's first dispute
        if pause.dispute_resolved_on <= on:
            return DisputedOrder(
                shopper_id=pause.shopper_id,
                order_id=pause.order_id,
                is_disputed=False,
                disputed_since_on=None,
                dispute_paused_days=pause.dispute_paused_days,
                dispute_resolved_on=pause.dispute_resolved_on,
                updated_at=pause.updated_at,
            )
    return pause


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
