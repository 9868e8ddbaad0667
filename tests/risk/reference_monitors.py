"""The first-payment-default monitor as it was before issue 21 (one order at a time, a case
lookup and an insert each): kept as the oracle the set-based monitor is compared with, row for
row (tests/risk/test_monitors_set_based.py). Not used by the engine."""

from __future__ import annotations

from sqlalchemy.orm import Session

from usefirst.kit.business_day import DailyContext
from usefirst.orders.repository import OrderRepository
from usefirst.repayment.repository import RepaymentRepository
from usefirst.risk.effects import RiskEffects
from usefirst.risk.monitors import Hit, _act
from usefirst.risk.repository import RiskRepository


def first_instalment_missed(
    session: Session, context: DailyContext, *, effects: RiskEffects
) -> dict[str, int]:
    missed = RepaymentRepository(session).orders_with_first_instalment_missed()
    rows = OrderRepository(session).many(missed)
    flagged_before = RiskRepository(session).orders_with_action(
        [order.id for order in rows], action="monitor:first_payment_default"
    )
    opened = 0
    for order in rows:
        if order.id in flagged_before:
            continue
        _act(
            session,
            order=order,
            hits=[
                Hit(
                    "first_payment_default",
                    "The first instalment was missed with nothing paid.",
                    {"business_on": context.business_on.isoformat()},
                    holds=False,
                )
            ],
            now=context.now,
            effects=effects,
        )
        opened += 1
    return {"first_payment_defaults": opened}
