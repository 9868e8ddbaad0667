"""Payments on the lean path (issue 14) answer and write exactly what the previous path did.

A sequence of payments is played twice over HTTP at the same sandbox times, once by the
previous path (``pay``: every statement on its own) and once by ``pay_answered``'s lean path,
and every response and every row of the tables the calls write are compared (ids replaced by
stable placeholders, as the checkout's recording does). The sequence has partial payments,
payments across instalments, a late fee paid first (the waterfall), a payment on an overdue
order that leaves it overdue and one that clears it (the line unfreezes), an overpayment that
repays the order (credit held), a payment to a repaid order (all held), a payment without an
order, idempotent replays, a reused key (409) and refused payments, then payments that repay
their order (the last instalments of a once-overdue plan, a one-instalment order paid on time
with its replay and a reused key, a plan repaid with more than it owes). Both databases: on
SQLite both plays take the previous path, on PostgreSQL the test also checks which calls took
the lean path. A second test races two payments that would each repay the same order.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import CITUS_URL, _truncate_postgres, make_runtime
from tests.factories import bearer, checkout_body, create_merchant, enrol
from tests.flows.checkout_scenario import (
    RANDOM_BY_DESIGN,
    TABLES,
    Caller,
    normalise,
)
from tests.flows.test_concurrency_postgres import assert_ledger_clean, deliver, together
from usefirst.api.app import create_app
from usefirst.credit.models import CreditLine, CreditLineChange
from usefirst.flows import payments
from usefirst.identity.service import create_api_key
from usefirst.kit.db import Base
from usefirst.kit.idempotency import KeyAlreadyRecorded
from usefirst.kit.models import Event
from usefirst.orders.models import Order
from usefirst.risk import decision as risk_decision
from usefirst.runtime import Runtime

PAYMENT_TABLES = (
    *TABLES,
    "credit_line_changes",
    "risk_order_facts",
    "risk_merchant_days",
    "risk_merchant_buyers",
    "risk_merchant_buyer_days",
)


INLINE_ID = re.compile(r"(?<=[^\x00-\x7f])([a-z]{2,4}_0[0-9A-Z]{25})")


@pytest.fixture(autouse=True)
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    # The comparison is of the rules alone, whatever model artefact is installed.
    monkeypatch.setattr(risk_decision, "default_model", lambda: None)


def play(runtime: Runtime, client: TestClient) -> dict[str, Any]:
    caller = Caller(runtime, client)
    platform = caller.platform
    responses = caller.responses
    post = caller.post

    def enrol(serial: int) -> str:
        return caller.enrol(serial, external_id=f"lean-{serial}", phone=f"+86138000000{serial:02d}")

    shop = client.post(
        "/v1/merchants",
        headers=platform,
        json={
            "name": "Lean Shop",
            "category": "electronics",
            # An order.repaid event is sent to the merchant as well.
            "webhook_url": "https://merchant.example/webhooks/usefirst",
        },
    ).json()
    merchant_headers = {"Authorization": f"Bearer {shop['api_key']}"}
    shopper = enrol(1)
    other = enrol(2)

    owed: dict[str, int] = {}

    def order(amount_minor: int, plan: str, key: str, shopper_id: str = shopper) -> str:
        serial = len(responses)
        body = {
            **checkout_body(shopper_id, shop["id"], amount_minor, plan),
            "device_id": f"device-{key}",
            "ip": "203.0.113.7",
        }
        created = post("/v1/checkouts", body, key=key)
        assert "order" in created, created
        order_id = str(created["order"]["id"])
        post(
            f"/v1/orders/{order_id}/ship",
            {"carrier": "SF Express", "tracking_number": f"SF{serial:010d}"},
            headers=merchant_headers,
        )
        delivered = post(f"/v1/orders/{order_id}/confirm-receipt", None)
        owed[order_id] = sum(row["amount_minor"] for row in delivered["instalments"])
        return order_id

    def pay(amount_minor: int, order_id: str | None, key: str, **extra: Any) -> Any:
        body = {
            "shopper_id": shopper,
            "amount_minor": amount_minor,
            "currency": "CNY",
            "order_id": order_id,
            "method": "alipay",
            **extra,
        }
        return post("/v1/payments", body, key=key)

    first = order(30_000, "instalments_3", "o-1")
    second = order(20_000, "instalments_3", "o-2")
    other_order = order(10_000, "pay_after_delivery", "o-3", shopper_id=other)

    pay(4_000, first, "p-1", external_ref="wallet-1")  # part of the first instalment
    pay(4_000, first, "p-1", external_ref="wallet-1")  # replayed
    pay(4_001, first, "p-1", external_ref="wallet-1")  # the key reused: 409
    pay(12_000, first, "p-2")  # the rest of the first instalment and part of the second
    pay(1_000, other_order, "p-refused")  # another shopper's order: 404
    pay(1_000, first, "p-refused-currency", currency="USD")  # 422

    # The second order's first instalment falls due and is paid late: late fees, overdue,
    # the line frozen.
    response = client.post("/v1/sandbox/clock/advance", headers=platform, json={"days": 32})
    assert response.status_code == 200, response.text
    pay(50, second, "p-3")  # a late fee, no more: the order stays overdue
    pay(3_000, second, "p-4")  # more of the overdue instalment: still overdue
    pay(8_000, second, "p-5")  # the overdue instalment cleared: delivered again, unfrozen
    pay(100_000, first, "p-6")  # everything left of the first order and more: held
    pay(500, first, "p-7")  # a repaid order: all held
    pay(700, None, "p-8")  # no order: the second order's next instalment
    pay(700, None, "p-8")  # replayed

    # Payments that repay the order (the lean repayment on PostgreSQL).
    shown = client.get(f"/v1/orders/{second}", headers=platform).json()
    left = sum(row["amount_minor"] - row["paid_minor"] for row in shown["instalments"])
    assert left == 8_556
    pay(left, second, "p-9")  # the last instalments of a plan once overdue: repaid, not on time
    # A third shopper, who holds no credit (the first would pay these orders at delivery).
    third = enrol(3)
    fourth = order(9_000, "pay_after_delivery", "o-4", shopper_id=third)
    on_time = {"shopper_id": third}
    pay(owed[fourth], fourth, "p-10", **on_time)  # one instalment, paid in full on time
    pay(owed[fourth], fourth, "p-10", **on_time)  # replayed
    pay(owed[fourth] + 1, fourth, "p-10", **on_time)  # the key reused, another amount: 409
    fifth = order(12_000, "instalments_3", "o-5", shopper_id=third)
    pay(owed[fifth] // 3, fifth, "p-11", **on_time)  # a part
    pay(owed[fifth], fifth, "p-12", **on_time)  # the rest and more: repaid, the rest held

    return recording(runtime, responses, PAYMENT_TABLES)


def recording(runtime: Runtime, responses: list[Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The responses and every row of the tables ``names``, normalised to compare across two
    plays (ids as placeholders, random columns left out, merchant days summed per day)."""
    tables: dict[str, list[dict[str, Any]]] = {}
    with runtime.work(read_only=True) as work:
        for name in names:
            table = Base.metadata.tables[name]
            rows = [dict(row._mapping) for row in work.session.execute(table.select())]
            for row in rows:
                for column in RANDOM_BY_DESIGN:
                    row.pop(column, None)
                if name == "outbox_messages" and row["request_id"] is not None:
                    # Made per request (random): its form is checked, not its value.
                    assert re.fullmatch("[0-9a-f]{32}", row["request_id"]), row
                    row["request_id"] = "a request's"
            tables[name] = rows
    # A merchant day is striped by a hash of the shopper's (random) id: the day's sums compare.
    days: dict[tuple[Any, Any], Counter[str]] = {}
    for row in tables.get("risk_merchant_days", []):
        day = days.setdefault((row.pop("merchant_id"), row.pop("day")), Counter())
        row.pop("stripe")
        day.update(row)
    if "risk_merchant_days" in tables:
        tables["risk_merchant_days"] = [
            {"merchant_id": merchant_id, "day": day, **sums}
            for (merchant_id, day), sums in days.items()
        ]
    return normalise(_ids_in_text_spaced({"responses": responses, "tables": tables}))


def _ids_in_text_spaced(recording: dict[str, Any]) -> dict[str, Any]:
    """Ids inside Chinese text (a reminder's "订单ord_…应还") have no word boundaries around
    them, which ``normalise`` needs: spaces are put there."""
    text = json.dumps(recording, default=str, ensure_ascii=False)
    loaded: dict[str, Any] = json.loads(INLINE_ID.sub(r" \1 ", text))
    return loaded


Play = Callable[[Runtime, TestClient], dict[str, Any]]


def played(
    url: str, client_of: Callable[[Runtime], TestClient], sequence: Play | None = None
) -> dict[str, Any]:
    """The recording of ``sequence`` (this module's payments by default) played on ``url``."""
    runtime = make_runtime(url)
    try:
        with client_of(runtime) as client:
            return (sequence or play)(runtime, client)
    finally:
        runtime.database.dispose()


def played_before_and_after(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    previous_path: Callable[[pytest.MonkeyPatch], None],
    lean_path: Callable[[], None],
    sequence: Play | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The recordings of ``sequence`` over HTTP on two fresh databases of ``database_url``'s
    kind: first with ``previous_path`` patching the code onto its previous path (undone after),
    then as the code is, once ``lean_path`` has set its spies."""

    def client_of(runtime: Runtime) -> TestClient:
        return TestClient(create_app(runtime))

    second_url = database_url
    if database_url.startswith("sqlite"):
        second = tmp_path / "second.db"
        shutil.copyfile(database_url.removeprefix("sqlite:///"), second)
        second_url = f"sqlite:///{second}"

    with monkeypatch.context() as previous:
        previous_path(previous)
        before = played(database_url, client_of, sequence)

    if not database_url.startswith("sqlite"):
        _truncate_postgres(database_url)
    lean_path()
    return before, played(second_url, client_of, sequence)


def test_payments_answer_and_write_as_the_previous_path(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lean_choices: list[bool] = []
    choose = payments._changes_only_instalments

    def spied(*args: Any, **kwargs: Any) -> bool:
        chosen = choose(*args, **kwargs)
        lean_choices.append(chosen)
        return chosen

    repaid: list[str] = []
    repay = payments._repay_lean

    def spied_repay(*args: Any, **kwargs: Any) -> Any:
        try:
            answered = repay(*args, **kwargs)
        except KeyAlreadyRecorded:
            repaid.append("key recorded")
            raise
        repaid.append("previous way" if answered is None else "lean")
        return answered

    def lean_path() -> None:
        monkeypatch.setattr(payments, "_changes_only_instalments", spied)
        monkeypatch.setattr(payments, "_repay_lean", spied_repay)

    before, after = played_before_and_after(
        database_url,
        tmp_path,
        monkeypatch,
        previous_path=lambda previous: previous.setattr(
            payments, "_reads_together", lambda _session, _order_id: False
        ),
        lean_path=lean_path,
    )

    statuses = [response[1] for response in after["responses"] if response[0] == "/v1/payments"]
    assert statuses[:13] == [201, 201, 409, 201, 404, 422, 201, 201, 201, 201, 201, 201, 201]
    assert statuses[13:] == [201, 201, 201, 409, 201, 201]
    _check_repayments(after)
    for index, (got, wanted) in enumerate(
        zip(after["responses"], before["responses"], strict=True)
    ):
        assert got == wanted, f"response {index} ({wanted[0]})"
    for name in PAYMENT_TABLES:
        assert after["tables"][name] == before["tables"][name], name
    if database_url.startswith("sqlite") or CITUS_URL is not None:
        # SQLite, and a Citus cluster (one statement cannot write the entry's accounts, a
        # reference table there, and its sharded postings): the previous path every time.
        assert lean_choices == []
    else:
        # p-1, its replay and its reused key (both lean attempts, rolled back and answered from
        # the record), p-2, p-3 and p-4 lean; p-5 clears the overdue instalment (the line
        # unfreezes): the previous path; p-6 repays the order (the lean repayment, below); p-7
        # lean (all held); p-8 has no order (the refused payments are refused before the
        # choice).
        assert lean_choices[:9] == [True, True, True, True, True, True, False, False, True]
        # p-9, p-10 and p-12 repay their order: not instalments alone, the lean repayment; the
        # replay of p-10 and its reused key find the order repaid (all held: lean, rolled back
        # and answered from the record); p-11 pays a part.
        assert lean_choices[9:] == [False, False, True, True, True, False]
        # p-6 (the first order repaid, the rest held), p-9, p-10, p-12.
        assert repaid == ["lean", "lean", "lean", "lean"]


def _check_repayments(played: dict[str, Any]) -> None:
    """What the repaying payments did, in exact values: every order of the shopper's but the
    other shopper's (overdue) is repaid, with one order.repaid event each, and the on-time
    repayments grew the line."""
    tables = played["tables"]
    statuses = sorted(row["status"] for row in tables["orders"])
    assert statuses == ["overdue", "repaid", "repaid", "repaid", "repaid"]
    repaid_events = [row for row in tables["events"] if row["type"] == "order.repaid"]
    assert sorted(row["data"]["order"]["amount_minor"] for row in repaid_events) == [
        9_000,
        12_000,
        20_000,
        30_000,
    ]
    changes = sorted(row["reason_code"] for row in tables["credit_line_changes"])
    # Three lines opened, two frozen for an overdue instalment (the first shopper's, unfrozen
    # by p-5, and the other shopper's); three orders repaid on time grew a line (the first,
    # the fourth and the fifth; the second was overdue once).
    assert changes == [
        *["cold_start_limit"] * 3,
        *["frozen_overdue"] * 2,
        "on_time_repayment",
        "on_time_repayment",
        "on_time_repayment",
        "overdue_cleared",
    ]


def test_two_payments_racing_to_repay_one_order_repay_it_once(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two payments of what the order still owes, sent at the same moment with their own keys:
    the shopper's line lock orders them, so one repays the order (on PostgreSQL the lean
    repayment) and the other, finding it repaid, is held whole; the order is repaid, announced
    and grows the line once."""
    repaid: list[bool] = []
    repay = payments._repay_lean

    def spied_repay(*args: Any, **kwargs: Any) -> Any:
        answered = repay(*args, **kwargs)
        repaid.append(answered is not None)
        return answered

    monkeypatch.setattr(payments, "_repay_lean", spied_repay)
    runtime = make_runtime(database_url)
    try:
        with TestClient(create_app(runtime)) as client:
            with runtime.work() as work:
                headers = bearer(create_api_key(work.session, kind="platform", now=work.now))
            shopper = enrol(client, headers)["id"]
            merchant = create_merchant(
                client, headers, webhook_url="https://merchant.example/webhooks/usefirst"
            )
            order_id = deliver(client, headers, merchant, shopper, 30_000, "instalments_3", "r")
            shown = client.get(f"/v1/orders/{order_id}", headers=headers).json()
            owed = sum(row["amount_minor"] for row in shown["instalments"])
            part = client.post(
                "/v1/payments",
                headers={**headers, "Idempotency-Key": "part"},
                json={
                    "shopper_id": shopper,
                    "amount_minor": owed - 10_000,
                    "order_id": order_id,
                    "currency": "CNY",
                    "method": "alipay",
                },
            )
            assert part.status_code == 201, part.text

            def pay(index: int) -> Any:
                return client.post(
                    "/v1/payments",
                    headers={**headers, "Idempotency-Key": f"race-{index}"},
                    json={
                        "shopper_id": shopper,
                        "amount_minor": 10_000,
                        "order_id": order_id,
                        "currency": "CNY",
                        "method": "alipay",
                    },
                )

            responses = together(2, pay)
        assert [r.status_code for r in responses] == [201, 201], [r.text for r in responses]
        bodies = sorted((r.json() for r in responses), key=lambda body: body["unapplied_minor"])
        assert [body["unapplied_minor"] for body in bodies] == [0, 10_000]
        assert (
            sum(line["fees_minor"] + line["principal_minor"] for line in bodies[0]["allocations"])
            == 10_000
        )
        assert bodies[1]["allocations"] == []
        with runtime.work(read_only=True) as work:
            session = work.session
            line = session.get(CreditLine, shopper)
            assert line is not None
            order = session.scalar(select(Order).where(Order.id == order_id))
            assert order is not None
            assert order.status == "repaid"
            assert (line.used_minor, line.on_time_orders) == (0, 1)
            events = session.scalars(select(Event.type).where(Event.type == "order.repaid")).all()
            assert len(events) == 1
            grown = session.scalars(
                select(CreditLineChange.reason_code).where(
                    CreditLineChange.shopper_id == shopper,
                    CreditLineChange.reason_code == "on_time_repayment",
                )
            ).all()
            assert grown == ["on_time_repayment"]
            assert payments.held_credit_of(session, shopper_id=shopper, currency="CNY") == 10_000
        assert_ledger_clean(runtime)
    finally:
        runtime.database.dispose()
    lean = not database_url.startswith("sqlite") and CITUS_URL is None
    assert repaid == ([True] if lean else [])
