"""Issue 21: the settlement run pays every merchant of a date at once (batched reads, entries
and lines). On the same book it makes exactly the payouts, settlement lines, journal entries,
released reserves and events that paying merchant by merchant made (every row of every table,
new ids aside): a plain payout, a refund after a payout netted as a clawback, a held order kept
back, reserves withheld and released, a suspended merchant keeping its reserve, a merchant whose
sale became due overnight, and a merchant already settled for the date."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from tests.flows.snapshots import dump, known_ids, normalised
from tests.merchants import reference_settlement
from tests.merchants.settlement_env import Env, local_at, open_env
from usefirst.flows import settlement_run
from usefirst.kit.clock import TestClock, business_day_start
from usefirst.merchants.models import Settlement
from usefirst.merchants.settlement import hold_order_settlement

SETTLED_ON = date(2027, 3, 5)


class _RollBack(Exception):
    pass


def _settle(env: Env, settle: Any, known: set[str]) -> tuple[dict[str, int], Any, list[Any]]:
    """What ``settle`` makes of the book for SETTLED_ON, rolled back afterwards."""
    outcome: list[Any] = []
    settings = env.runtime.settings
    with pytest.raises(_RollBack), env.runtime.database.transaction() as session:
        summary = settle(
            session,
            business_on=SETTLED_ON,
            settings=settings,
            now=business_day_start(SETTLED_ON, settings.time_zone),
        )
        session.flush()
        payouts = sorted(
            (row.merchant_id, row.gross_minor, row.clawback_minor, row.reserve_minor,
             row.reserve_released_minor, row.net_minor)
            for row in session.scalars(select(Settlement).where(Settlement.settled_on == SETTLED_ON))
        )  # fmt: skip
        outcome.extend([summary.counts(), normalised(dump(session), known), payouts])
        raise _RollBack
    return outcome[0], outcome[1], outcome[2]


def test_batched_settlement_matches_merchant_by_merchant_row_for_row(database_url: str) -> None:
    with open_env(database_url, settlement_reserve_bps=1_000, settlement_reserve_days=2) as env:
        plain, refunded, held, suspended, young = (env.merchant() for _ in range(5))
        # 03-02: sales of four merchants, paid on 03-03 with a 10 % reserve each.
        env.deliver(plain, 10_000)
        refunded_order = env.deliver(refunded, 8_000)
        env.deliver(held, 6_000)
        env.deliver(suspended, 9_000)
        env.advance_to_day(date(2027, 3, 3))
        assert len(env.settlements(plain["id"])) == 1
        # 03-04: more sales; a refund of an order already paid; an order held; a suspension.
        env.advance_to_day(date(2027, 3, 4), 9)
        env.deliver(plain, 5_000)
        env.refund(refunded, refunded_order, 3_000)
        env.deliver(refunded, 2_000)
        kept = env.deliver(held, 4_000)
        env.deliver(held, 1_000)
        env.deliver(suspended, 2_000)
        with env.runtime.work() as work:
            hold_order_settlement(
                work.session,
                merchant_id=held["id"],
                order_id=kept,
                source="risk:cas_test",
                reason="under review",
                now=work.now,
            )
        response = env.client.post(
            f"/v1/merchants/{suspended['id']}/standing",
            headers=env.analyst,
            json={"status": "suspended", "reason": "under investigation", "evidence": ["x"]},
        )
        assert response.status_code == 201, response.text
        # 03-04 late: a sale paid out on 03-05 (one settlement day).
        env.advance_to_day(date(2027, 3, 4), 20)
        env.deliver(young, 7_000)
        # Midnight of 03-05: the day's settlement has not run yet.
        with env.runtime.work() as work:
            clock = env.runtime.clock
            assert isinstance(clock, TestClock)
            clock.set(work.session, local_at(SETTLED_ON, 0))
        # One merchant was paid for the date already (``usefirst settle --merchant``).
        with env.runtime.work() as work:
            settlement_run.settle(
                work.session,
                business_on=SETTLED_ON,
                settings=env.runtime.settings,
                now=work.now,
                merchant_ids=[plain["id"]],
            )
        with env.runtime.database.transaction(read_only=True) as session:
            known = known_ids(dump(session))

        reference = _settle(env, reference_settlement.settle, known)
        batched = _settle(env, settlement_run.settle, known)

        counts, rows, payouts = batched
        assert counts == reference[0]
        # Paid: the held merchant's other sale (its 03-03 reserve released), the young
        # merchant's sale; carried forward: the refund exceeds what is due; suspended: held.
        assert counts == {
            "settlements_paid": 2,
            "settled_minor": 1_494 + 6_258,
            "settlements_carried_forward": 1,
            "settlements_held": 1,
            "settlements_already_done": 1,
            "reserves_released": 2,
        }
        assert payouts == reference[2]
        assert [payout[1:] for payout in payouts if payout[0] != plain["id"]] == [
            (1_000, 0, 100, 600, 1_494),
            (7_000, 0, 700, 0, 6_258),
        ]
        assert rows == reference[1]
