"""Issue 21: the monitors open and join their cases set-based. On the same book each makes
exactly the cases, actions, holds, freezes and watches (every row of every table, new ids aside)
that the per-order or per-merchant monitor made (``tests/risk/reference_monitors.py``).

First-payment default: orders without a case get one each; an order whose case another monitor
opened joins it (and, now with two signals, has its settlement held); an order flagged on an
earlier night is not flagged again; a paid or not yet overdue order is left alone. Delivery
checks of many orders at once (the sweep's auto-confirmation): one hit or two on the same order,
a case already open with a hold or without one, the merchant's own address (hold and freeze).
Merchant drift: a new merchant case, one joined, a merchant already on watch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.collections.dunning_env import Env, open_env
from tests.factories import bearer, checkout_body, create_merchant, enrol
from tests.flows.snapshots import dump, known_ids, normalised
from tests.risk import reference_monitors
from usefirst.flows import risk_effects, risk_monitoring
from usefirst.kit.business_day import DailyContext
from usefirst.kit.clock import business_day_start
from usefirst.merchants.models import Merchant, SettlementHold
from usefirst.orders.models import Order
from usefirst.risk import cases, monitors
from usefirst.risk import decision as risk_decision
from usefirst.risk.models import RiskAction, RiskCase
from usefirst.runtime import Runtime

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


# --- delivery checks and merchant drift ----------------------------------------------------


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(risk_decision, "default_model", lambda: None)


def _outcome(runtime: Runtime, work: Callable[[Session], Any], known: set[str]) -> Any:
    """What ``work`` returns and makes of the database (every table, normalised), rolled back."""
    outcome: list[Any] = []
    with pytest.raises(_RollBack), runtime.database.transaction() as session:
        result = work(session)
        session.flush()
        outcome.extend([result, normalised(dump(session), known)])
        raise _RollBack
    return outcome[0], outcome[1]


def _known(runtime: Runtime) -> set[str]:
    with runtime.database.transaction(read_only=True) as session:
        return known_ids(dump(session))


def _approved_order(client: TestClient, headers: dict[str, str], merchant: dict[str, Any]) -> str:
    shopper = enrol(client, headers)
    response = client.post(
        "/v1/checkouts", headers=headers, json=checkout_body(shopper["id"], merchant["id"])
    )
    assert response.json()["decision"]["outcome"] == "approved", response.text
    return str(response.json()["order"]["id"])


def _ship(client: TestClient, merchant: dict[str, Any], order_id: str, number: str) -> None:
    response = client.post(
        f"/v1/orders/{order_id}/ship",
        headers=bearer(merchant["api_key"]),
        json={"carrier": "SF", "tracking_number": number},
    )
    assert response.status_code == 200, response.text


def test_set_based_delivery_checks_match_the_per_order_ones_row_for_row(
    no_model: None, runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    own_address = create_merchant(client, platform_headers)
    other = create_merchant(client, platform_headers)
    orders = {
        "to_merchant": _approved_order(client, platform_headers, own_address),
        "to_merchant_too_fast": _approved_order(client, platform_headers, own_address),
        "too_fast": _approved_order(client, platform_headers, other),
        "too_fast_case_held": _approved_order(client, platform_headers, other),
        "too_fast_case_weak": _approved_order(client, platform_headers, other),
        "plain": _approved_order(client, platform_headers, other),
    }
    for number, order_id in enumerate(orders.values()):
        # A malformed waybill opens a case and holds it at shipment.
        malformed = order_id == orders["too_fast_case_held"]
        _ship(client, own_address if number < 2 else other, order_id,
              "SF0000" if malformed else f"SF10000000{number:02d}")  # fmt: skip
    quick = {"to_merchant_too_fast", "too_fast", "too_fast_case_held", "too_fast_case_weak"}
    with runtime.work() as work:
        rows = {order.id: order for order in work.session.scalars(select(Order))}
        merchant = work.session.get(Merchant, own_address["id"])
        assert merchant is not None
        merchant.address_hash = rows[orders["to_merchant"]].shipping_address_hash
        for name, order_id in orders.items():
            order = rows[order_id]
            assert order.shipped_at is not None
            order.status = "delivered"
            is_quick = name in quick
            order.delivered_at = order.shipped_at + timedelta(hours=1 if is_quick else 30)
            order.delivery_confirmation = "shopper" if is_quick else "automatic"
        # A weak signal of another kind already opened this order's case: no hold yet.
        weak = rows[orders["too_fast_case_weak"]]
        cases.open_or_update_case(
            work.session,
            case_type="order",
            subject_ids=[weak.id, weak.shopper_id],
            amount_at_risk_minor=weak.amount_minor,
            evidence={"monitor": "first_payment_default", "merchant_id": weak.merchant_id},
            reason="The first instalment was missed with nothing paid.",
            now=work.now,
        )
        now = work.now
    known = _known(runtime)

    def delivered(session: Session) -> list[Order]:
        by_id = {order.id: order for order in session.scalars(select(Order))}
        return [by_id[order_id] for order_id in orders.values()]

    def per_order(session: Session) -> int:
        hits = [
            reference_monitors.after_delivery(session, order=order, now=now, effects=risk_effects)
            for order in delivered(session)
        ]
        return sum(bool(found) for found in hits)

    def set_based(session: Session) -> int:
        return monitors.after_deliveries(
            session, orders=delivered(session), now=now, effects=risk_effects
        )

    reference_count, reference_rows = _outcome(runtime, per_order, known)
    count, rows_after = _outcome(runtime, set_based, known)
    assert count == reference_count == 5
    assert sum("delivered_" in row for row in rows_after["risk_cases"]) == 5
    holds = [row for row in rows_after["risk_actions"] if "'hold_settlement'" in row]
    # Held: the merchant's own address twice; the weak case now with two signals; the case held
    # at shipment is not held again; a quick confirmation alone holds nothing.
    assert len(holds) == 4
    freezes = [row for row in rows_after["risk_actions"] if "'freeze_limit'" in row]
    assert len(freezes) == 2
    assert rows_after == reference_rows


def test_set_based_merchant_drift_matches_the_per_merchant_one_row_for_row(
    no_model: None, runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    fresh = create_merchant(client, platform_headers)  # no case yet
    with_case = create_merchant(client, platform_headers)  # a merchant case already open
    watched = create_merchant(client, platform_headers)  # already on watch
    quiet = create_merchant(client, platform_headers)  # no jump
    jumping = (fresh, with_case, watched)
    orders = {
        merchant["id"]: [_approved_order(client, platform_headers, merchant) for _ in range(40)]
        for merchant in jumping
    }
    for _ in range(5):
        _approved_order(client, platform_headers, quiet)
    with runtime.work() as work:
        # With us for 121 days; 20 orders 60 days ago, 20 now: the volume triples.
        for merchant in jumping:
            row = work.session.get(Merchant, merchant["id"])
            assert row is not None
            row.created_at = work.now - timedelta(days=121)
            for order in work.session.scalars(
                select(Order).where(Order.id.in_(orders[merchant["id"]][:20]))
            ):
                order.created_at = work.now - timedelta(days=60)
        watched_row = work.session.get(Merchant, watched["id"])
        assert watched_row is not None
        watched_row.status = "on_watch"
        cases.open_or_update_case(
            work.session,
            case_type="merchant",
            subject_ids=[with_case["id"]],
            amount_at_risk_minor=1_000,
            evidence={"monitor": "analyst_tip"},
            reason="A tip from the marketplace.",
            now=work.now,
        )
        context = DailyContext(
            business_on=work.today, now=work.now + timedelta(hours=1),
            settings=runtime.settings, cipher=runtime.cipher,
        )  # fmt: skip
    known = _known(runtime)
    reference_counts, reference_rows = _outcome(
        runtime,
        lambda session: reference_monitors.merchant_drift(session, context, effects=risk_effects),
        known,
    )
    counts, rows = _outcome(
        runtime,
        lambda session: monitors.merchant_drift(session, context, effects=risk_effects),
        known,
    )
    assert counts == reference_counts == {"merchants_flagged": 3}
    merchant_cases = [row for row in rows["risk_cases"] if "'merchant'" in row]
    assert len(merchant_cases) == 3
    joined = [row for row in merchant_cases if "analyst_tip" in row]
    assert len(joined) == 1 and "pay-later volume" in joined[0]
    watches = [row for row in rows["risk_actions"] if "'watch_merchant'" in row]
    assert len(watches) == 2  # the merchant already on watch stays as it is
    assert rows == reference_rows
