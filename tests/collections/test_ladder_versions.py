"""The dunning ladder as operators edit it: every problem reported with its line, a saved
version driving the sweep the next day, and the backtest that replays a ladder on recorded
instalments with exact counts."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.collections.dunning_env import open_env
from usefirst.collections import ladder_replay
from usefirst.collections.ladder import DEFAULT_LADDER_FILE, LadderError, load_ladder, parse_ladder
from usefirst.flows import config_publishing
from usefirst.notify.templates import TEMPLATE_IDS

DUE = date(2027, 3, 9)  # bought and delivered on the start day, 2027-03-02

BAD_LADDER = """\
[[step]]
day = -3
channels = ["push"]
template = "reminder_upcoming"

[[step]]
day = 1
channels = ["sms", "fax"]
template = "overdue_notice"

[[step]]
day = 0
channels = ["sms"]
template = "overdue_notise"

[[step]]
day = 7
action = "call_queue"

[[step]]
day = 30
action = "call_queue"
colour = "red"
"""


def test_every_problem_is_reported_with_its_line() -> None:
    with pytest.raises(LadderError) as rejected:
        parse_ladder(BAD_LADDER, source="ladder.toml")
    assert rejected.value.problems == [
        (8, "step #2: channels: Input should be 'push', 'sms' or 'email'"),
        (14, f"step #3: unknown template 'overdue_notise'; known: {', '.join(TEMPLATE_IDS)}"),
        (23, "step #5: colour: Extra inputs are not permitted"),
    ]
    # Once those are fixed, the order of days and the repeated action are next.
    fixed = (
        BAD_LADDER.replace('["sms", "fax"]', '["sms"]')
        .replace("overdue_notise", "overdue_notice")
        .replace('colour = "red"\n', "")
    )
    with pytest.raises(LadderError) as rejected:
        parse_ladder(fixed, source="ladder.toml")
    assert rejected.value.problems == [
        (12, "step #3: day 0 comes after day 1: keep the steps in increasing order of day"),
        (22, "step #5: action 'call_queue' is already at step #4; each action may appear once"),
    ]
    assert str(rejected.value).splitlines()[0] == (
        "ladder.toml:12: step #3: day 0 comes after day 1: keep the steps in increasing order "
        "of day"
    )
    with pytest.raises(LadderError) as broken:
        parse_ladder('[[step]]\nday = 1\nchannels = ["sms"\n', source="ladder.toml")
    assert broken.value.problems[0][0] == 3
    assert broken.value.problems[0][1].startswith("not valid TOML: ")


def test_the_sweep_follows_a_saved_ladder(database_url: str, tmp_path: Path) -> None:
    moved = DEFAULT_LADDER_FILE.read_text(encoding="utf-8").replace(
        'day = 1\nchannels = ["sms"]', 'day = 2\nchannels = ["sms"]'
    )
    with open_env(database_url, tmp_path) as env:
        shopper = env.enrol()
        env.buy(shopper["id"])
        with env.runtime.work() as work:
            config_publishing.publish(
                work.session,
                kind="dunning_ladder",
                text=moved,
                based_on=0,
                note="first overdue SMS a day later",
                created_by="op_test",
                settings=env.runtime.settings,
                now=work.now,
            )
        env.advance_to_day(DUE + timedelta(days=3), 12)
        steps = [(c["step"], c["channel"]) for c in env.contacts(shopper["id"])]
        assert steps == [
            ("day_-3", "push"),
            ("day_-1", "push"),
            ("day_-1", "sms"),
            ("day_+0", "push"),
            ("day_+0", "sms"),
            ("day_+2", "sms"),
            ("day_+3", "sms"),
            ("day_+3", "email"),
        ]


def test_replay_counts_what_each_ladder_would_have_done(database_url: str, tmp_path: Path) -> None:
    proposed = parse_ladder(
        """
[[step]]
day = -1
channels = ["sms"]
template = "reminder_upcoming"

[[step]]
day = 4
channels = ["sms", "email"]
template = "overdue_notice"

[[step]]
day = 5
action = "call_queue"

[[step]]
day = 30
action = "bureau_report"
""",
        source="proposed",
    )
    with open_env(database_url, tmp_path) as env:
        payer, never = env.enrol(), env.enrol(email="never@example.com")
        env.buy(payer["id"])
        env.buy(never["id"])
        env.advance_to_day(DUE + timedelta(days=5), 12)
        env.pay(payer["id"], 30_045 + 5 * 15)  # settled on day +5
        env.advance_to_day(DUE + timedelta(days=40), 12)
        with env.runtime.work(read_only=True) as work:
            comparison = ladder_replay.compare_ladders(
                work.session, current=load_ladder(), proposed=proposed, today=env.today()
            )
    current = comparison.current
    assert (current.start, current.end) == (DUE - timedelta(days=50), DUE + timedelta(days=39))
    # The default ladder: both shoppers to day +3, only the one who never paid from day +7 on
    # (the payer settled on day +5 counts on day +5, not after).
    assert [(step.day, step.what, step.instalments) for step in current.steps] == [
        (-3, "push", 2),
        (-1, "push+sms", 2),
        (0, "push+sms", 2),
        (1, "sms", 2),
        (3, "sms+email", 2),
        (7, "call_queue", 1),
        (15, "sms+email", 1),
        (30, "bureau_report", 1),
        (90, "legal_referral", 0),
        (180, "charge_off", 0),
    ]
    assert comparison.rows() == [
        ("push", 6, 0),
        ("sms", 9, 4),
        ("email", 3, 2),
        ("bureau_report", 1, 1),
        ("call_queue", 1, 2),
        ("charge_off", 0, 0),
        ("legal_referral", 0, 0),
    ]
    assert comparison.changed
