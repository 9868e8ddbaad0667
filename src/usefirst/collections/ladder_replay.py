"""A backtest of a dunning ladder: what each step would have done over a past window, counted on
the instalments actually recorded, so that an operator sees what a change means before saving
it.

A step at day ``d`` counts an instalment when ``due_on + d`` falls in the window and the
instalment was not yet settled that day (paid, or settled by refund or recovery, on or after
it). The counts come before the contact policy (quiet hours only move a message; the daily cap
and dispute pauses can drop some), so they are an upper bound of what was sent.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy.orm import Session

from usefirst.collections.ladder import CHANNELS, Ladder, StepConfig
from usefirst.collections.repository import CollectionsRepository

DEFAULT_WINDOW_DAYS = 90
# Instalments a reminder could have been about: scheduled ones have no due date yet, cancelled
# ones were never owed.
OWED_STATUSES = ("pending", "overdue", "paid", "charged_off")


@dataclass(frozen=True)
class StepCount:
    day: int
    what: str  # "sms+email" for reminders, the action's name otherwise
    instalments: int


@dataclass
class LadderReplay:
    start: date
    end: date  # inclusive
    steps: list[StepCount] = field(default_factory=list)
    messages: Counter[str] = field(default_factory=Counter)  # by channel
    actions: Counter[str] = field(default_factory=Counter)  # instalments reaching each action


@dataclass(frozen=True)
class LadderComparison:
    current: LadderReplay
    proposed: LadderReplay

    def rows(self) -> list[tuple[str, int, int]]:
        """(what, current, proposed): messages per channel, then each action."""
        rows = [
            (channel, self.current.messages[channel], self.proposed.messages[channel])
            for channel in CHANNELS
        ]
        actions = sorted(set(self.current.actions) | set(self.proposed.actions))
        rows.extend(
            (action, self.current.actions[action], self.proposed.actions[action])
            for action in actions
        )
        return rows

    @property
    def changed(self) -> bool:
        return any(current != proposed for _, current, proposed in self.rows())


def _describe(step: StepConfig) -> str:
    return step.action if step.action is not None else "+".join(step.channels)


def replay_ladder(
    session: Session, *, ladder: Ladder, today: date, window_days: int = DEFAULT_WINDOW_DAYS
) -> LadderReplay:
    """Count what ``ladder`` would have done on the ``window_days`` days before ``today``."""
    start, end = today - timedelta(days=window_days), today - timedelta(days=1)
    replay = LadderReplay(start=start, end=end)
    if not ladder.steps:
        return replay
    days = [step.day for step in ladder.steps]
    # (due date, settled date) -> instalments, for every due date any step could reach.
    groups = CollectionsRepository(session).owed_instalments_by_due_and_settled(
        statuses=OWED_STATUSES,
        due_from=start - timedelta(days=max(days)),
        due_to=end - timedelta(days=min(days)),
    )
    for step in ladder.steps:
        reached = 0
        for due_on, settled_on, count in groups:
            on = due_on + timedelta(days=step.day)
            if start <= on <= end and (settled_on is None or settled_on >= on):
                reached += count
        replay.steps.append(StepCount(day=step.day, what=_describe(step), instalments=reached))
        if step.action is not None:
            replay.actions[step.action] += reached
        for channel in step.channels:
            replay.messages[channel] += reached
    return replay


def compare_ladders(
    session: Session,
    *,
    current: Ladder,
    proposed: Ladder,
    today: date,
    window_days: int = DEFAULT_WINDOW_DAYS,
) -> LadderComparison:
    return LadderComparison(
        current=replay_ladder(session, ladder=current, today=today, window_days=window_days),
        proposed=replay_ladder(session, ladder=proposed, today=today, window_days=window_days),
    )
