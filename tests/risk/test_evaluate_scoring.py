"""Scoring of the evaluation: what counts as stopped, flagged, and how baselines get the same
review budget."""

from __future__ import annotations

from usefirst.lab.risk_evaluation import (
    DecidedOrder,
    _typologies,
    engine_risk_outcome,
    score_systems,
)


def _order(
    order_id: str,
    amount_minor: int,
    *,
    is_fraud: bool = False,
    risk_outcome: str = "approved",
    status: str = "delivered",
    is_settled: bool = False,
    is_risk_held: bool = False,
    risk_score: int = 0,
) -> DecidedOrder:
    return DecidedOrder(
        order_id=order_id,
        amount_minor=amount_minor,
        is_fraud=is_fraud,
        typology="ring_cash_out" if is_fraud else None,
        risk_outcome=risk_outcome,
        outcome=risk_outcome,
        status=status,
        risk_score=risk_score,
        model_score=None,
        is_settled=is_settled,
        is_risk_held=is_risk_held,
        features=(float(amount_minor), 1.0 if is_fraud else 0.0),
    )


ORDERS = [
    # fraud: declined, held in review, held from settlement, and one that got paid out
    _order("ord_a", 90_000, is_fraud=True, risk_outcome="declined", status="declined"),
    _order("ord_b", 80_000, is_fraud=True, risk_outcome="review", status="review"),
    _order("ord_c", 70_000, is_fraud=True, is_risk_held=True),
    _order("ord_d", 60_000, is_fraud=True, is_settled=True),
    # honest: one big order reviewed, one held after delivery, the rest approved
    _order("ord_e", 150_000, risk_outcome="review", status="review"),
    _order("ord_f", 5_000, is_risk_held=True),
    *[_order(f"ord_h{index}", 1_000 + index) for index in range(14)],
]


def test_engine_stops_and_flags_by_its_real_outcomes() -> None:
    budget, (engine, by_amount, forest) = score_systems(ORDERS, seed=1)
    assert budget == 3  # orders risk held or declined at checkout
    assert (engine.fraud_orders, engine.fraud_stopped) == (4, 3)
    assert (engine.cash_out_minor, engine.cash_out_stopped_minor) == (300_000, 240_000)
    assert engine.cash_out_stopped_share == 0.8
    assert engine.loss_minor == 60_000
    # flagged: the three held or declined at checkout, and the honest order held later
    assert engine.flagged_orders == 4
    assert (engine.honest_orders, engine.honest_flagged) == (16, 2)
    assert engine.precision == 2 / 4
    assert engine.recall == 2 / 4
    # The amount baseline holds the three largest orders: one honest, two fraud.
    assert by_amount.flagged_orders == 3
    assert (by_amount.fraud_stopped, by_amount.cash_out_stopped_minor) == (2, 170_000)
    assert by_amount.honest_flagged == 1
    assert (by_amount.precision, by_amount.recall) == (2 / 3, 2 / 4)
    assert forest.flagged_orders == 3
    assert forest.fraud_orders == 4


def test_typology_table_counts_engine_stops() -> None:
    assert _typologies(ORDERS) == {
        "ring_cash_out": {
            "orders": 4,
            "stopped": 3,
            "amount_minor": 300_000,
            "stopped_minor": 240_000,
        }
    }


def test_a_decline_by_a_risk_freeze_counts_as_the_engines_and_a_credit_decline_not_at_all() -> None:
    frozen_for_review = [{"code": "frozen_for_review", "message": "…"}]
    frozen_overdue = [{"code": "frozen_overdue", "message": "…"}]
    over_limit = [{"code": "credit_limit_exceeded", "message": "…"}]
    assert engine_risk_outcome("declined", "approved", frozen_for_review) == "declined"
    assert engine_risk_outcome("declined", "approved", frozen_overdue) is None
    assert engine_risk_outcome("declined", "approved", over_limit) is None
    assert engine_risk_outcome("declined", "declined", []) == "declined"
    assert engine_risk_outcome("review", "review", None) == "review"
