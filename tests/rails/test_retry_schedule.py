"""The auto-debit retry schedule file: the shipped one is valid; every problem is reported with
its line; a retry never falls before tomorrow and never beyond the attempts allowed."""

from __future__ import annotations

from datetime import date, time

import pytest

from usefirst.rails.retry import (
    RetrySchedule,
    RetryScheduleError,
    load_retry_schedule,
    parse_retry_schedule,
)

QUIET = {"quiet_start": time(21, 0), "quiet_end": time(8, 0)}


def test_the_shipped_schedule_is_plus_one_three_seven_days_at_ten() -> None:
    schedule = load_retry_schedule(None, **QUIET)
    assert schedule == RetrySchedule(charge_at=time(10, 0), retry_days=(1, 3, 7), max_attempts=4)


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        (
            'charge_at = "22:30"\nretry_days = [1, 3]\nmax_attempts = 3\n',
            [(1, "charge_at: 22:30 falls in the quiet hours (21:00–08:00)")],
        ),
        (
            'charge_at = "10:00"\nretry_days = [3, 1]\nmax_attempts = 2\n',
            [(2, "retry_days: retry days must be strictly increasing")],
        ),
        (
            'charge_at = "10:00"\nretry_days = [1]\nmax_attempts = 3\n',
            [(3, "max_attempts: 3 attempts need 2 retry days, the file has 1")],
        ),
        (
            'charge_at = "10:00"\nretry_days = [1]\nmax_attempts = 2\nextra = 1\n',
            [(4, "extra: Extra inputs are not permitted")],
        ),
        ("charge_at = \n", [(1, None)]),
    ],
)
def test_a_bad_schedule_is_refused_with_the_line_of_each_problem(
    text: str, problems: list[tuple[int, str | None]]
) -> None:
    with pytest.raises(RetryScheduleError) as raised:
        parse_retry_schedule(text, source="retry.toml", **QUIET)
    found = raised.value.problems
    assert [line for line, _ in found] == [line for line, _ in problems]
    for (_, message), (_, expected) in zip(found, problems, strict=True):
        if expected is not None:
            assert message == expected
        else:
            assert message.startswith("not valid TOML")


def test_next_attempt_follows_the_retry_days_and_stops_after_the_last_attempt() -> None:
    schedule = RetrySchedule(charge_at=time(10, 0), retry_days=(1, 3, 7), max_attempts=4)
    due = date(2027, 3, 9)
    assert schedule.next_attempt_on(due_on=due, failed_attempt=1, today=due) == date(2027, 3, 10)
    assert schedule.next_attempt_on(due_on=due, failed_attempt=2, today=date(2027, 3, 10)) == date(
        2027, 3, 12
    )
    assert schedule.next_attempt_on(due_on=due, failed_attempt=3, today=date(2027, 3, 12)) == date(
        2027, 3, 16
    )
    assert schedule.next_attempt_on(due_on=due, failed_attempt=4, today=date(2027, 3, 16)) is None
    # A decline reported late never schedules a retry in the past.
    assert schedule.next_attempt_on(due_on=due, failed_attempt=1, today=date(2027, 3, 11)) == date(
        2027, 3, 12
    )
    assert schedule.next_attempt_on(due_on=due, failed_attempt=2, today=date(2027, 3, 20)) is None
