"""Issue 21: the first-payment-default monitor opens its cases set-based. On the same book it
makes exactly the cases, actions, holds (every row of every table, new ids aside) that the
per-order monitor made: orders without a case get one each; an order whose case another monitor
opened joins it (and, now with two signals, has its settlement held); an order flagged on an
earlier night is not flagged again; a paid or not yet overdue order is left alone."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.collections.dunning_env import Env, open_env
from tests.factories import bearer, checkout_body
from tests.flows.snapshots import dump, known_ids, normalised
from tests.risk import reference_monitors
from usefirst.flows import risk_effects, risk_monitoring
from usefirst.kit.business_day import DailyContext
from usefirst.kit.clock import business_day_start
from usefirst.merchants.models import SettlementHold
from usefirst.risk import monitors
from usefirst.risk.models import RiskAction, RiskCase

Monitor = Callable[..., dict[str, int]]


def _sell(env: Env, *, tracking_number: str, confirm_after_hours: int) -> str:
    """Check out, ship with ``tracking_number`` and confirm receipt ``confirm_after_hours``
    later (under two hours reads as delivered too fast), the same business day."""
    merchant = env.merchant()
    order = env.client.post(
        "/v1/checkouts",
        headers=env.platform,
        json=checkout_body(env.enrol()["id"], merchant["id"]),
    ).json()["order"]
    assert order["status"] == "approved", order
    shipped = env.client.post(
        f"/v1/orders/{order['id']}/ship",
        headers=bearer(merchant["api_key"]),
        json={"carrier": "SF Express", "tracking_number": tracking_number},
    )
    assert shipped.status_code == 200, shipped.text
    env.advance(seconds=confirm_after_hours * 3600)
    confirmed = env.client.post(f"/v1/orders/{order['id']}/confirm-receipt", headers=env.platform)
    assert confirmed.status_code == 200, confirmed.text
    return str(order["id"])


def _context(env: Env, day: date) -> DailyContext:
    settings = env.runtime.settings
    return DailyContext(
        business_on=day,
        now=business_day_start(day, settings.time_zone),
        settings=settings,
        cipher=env.runtime.cipher,
    )


def _no_monitor(session: Any, context: Any) -> dict[str, int]:
    return {}


@pytest.fixture
def book(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Orders whose first instalment falls overdue, the nightly monitor held back while the book
    is built (the sweeps of the days in between run everything else)."""
    monkeypatch.setattr(risk_monitoring, "first_instalment_missed", _no_monitor)
    with open_env(database_url, tmp_path) as env:
        start = env.today() + timedelta(days=1)
        env.advance_to_day(start, 8)
        earlier = _sell(env, tracking_number="SF1000000001", confirm_after_hours=3)
        env.advance_to_day(start + timedelta(days=1), 8)
        # Confirmed at once: a weak signal, a case without a hold.
        too_fast = _sell(env, tracking_number="SF1000000020", confirm_after_hours=0)
        # A malformed waybill opens a case and holds at shipment.
        malformed = _sell(env, tracking_number="SF0000", confirm_after_hours=2)
        plain = [
            _sell(env, tracking_number=f"SF10000000{n:02d}", confirm_after_hours=2)
            for n in range(10, 15)
        ]
        paid = _sell(env, tracking_number="SF1000000021", confirm_after_hours=2)
        paid_order = env.order(paid)
        env.pay(paid_order["shopper_id"], paid_order["amount_minor"], order_id=paid)
        # The earlier order is overdue first and flagged on its night, by the monitor itself.
        first_due = env.order(earlier)["instalments"][0]["due_on"]
        env.advance_to_day(date.fromisoformat(first_due) + timedelta(days=1), 8)
        with env.runtime.work() as work:
            flagged = monitors.first_instalment_missed(
                work.session, _context(env, work.today), effects=risk_effects
            )
        assert flagged == {"first_payment_defaults": 1}
        env.advance_to_day(date.fromisoformat(first_due) + timedelta(days=2), 8)
        yield (
            env,
            {
                "earlier": earlier,
                "plain": plain,
                "malformed": malformed,
                "too_fast": too_fast,
                "paid": paid,
            },
        )


class _RollBack(Exception):
    pass


def _run(env: Env, monitor: Monitor, known: set[str]) -> tuple[dict[str, int], Any, Any]:
    """What ``monitor`` makes of the book, rolled back afterwards."""
    outcome: list[Any] = []
    with pytest.raises(_RollBack), env.runtime.database.transaction() as session:
        counts = monitor(session, _context(env, env.today()), effects=risk_effects)
        session.flush()
        signals = {
            case.subject_ids[0]: [
                signal["evidence"]["monitor"] for signal in case.evidence["signals"]
            ]
            for case in session.scalars(select(RiskCase))
        }
        holds = sorted(
            hold.order_id
            for hold in session.scalars(select(SettlementHold))
            if hold.released_at is None
        )
        actions = [
            (action.action, action.order_id)
            for action in session.scalars(select(RiskAction).order_by(RiskAction.id))
        ]
        outcome.extend([counts, normalised(dump(session), known), (signals, holds, actions)])
        raise _RollBack
    return outcome[0], outcome[1], outcome[2]


def test_set_based_first_payment_default_monitor_matches_the_per_order_one_row_for_row(
    book: Any,
) -> None:
    env, orders = book
    with env.runtime.database.transaction(read_only=True) as session:
        known = known_ids(dump(session))
    reference_counts, reference_rows, _ = _run(
        env, reference_monitors.first_instalment_missed, known
    )
    counts, rows, (signals, holds, actions) = _run(env, monitors.first_instalment_missed, known)

    # What the book holds: five plain orders and the two with a case already are flagged now.
    assert counts == reference_counts == {"first_payment_defaults": 7}
    assert signals == {
        orders["earlier"]: ["first_payment_default"],
        **{order_id: ["first_payment_default"] for order_id in orders["plain"]},
        orders["malformed"]: ["tracking_malformed", "first_payment_default"],
        orders["too_fast"]: ["delivered_too_fast", "first_payment_default"],
    }
    # The malformed waybill held at shipment; the quick confirmation holds once joined.
    assert holds == sorted([orders["malformed"], orders["too_fast"]])
    flagged_now = [order_id for action, order_id in actions if action.endswith("payment_default")]
    assert flagged_now[0] == orders["earlier"]
    assert sorted(flagged_now[1:]) == sorted(
        [*orders["plain"], orders["malformed"], orders["too_fast"]]
    )
    # Row for row, in every table, what the per-order monitor made.
    assert rows == reference_rows
