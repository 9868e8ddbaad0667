"""Payments on the lean path (issue 14) answer and write exactly what the previous path did.

A sequence of payments is played twice over HTTP at the same sandbox times, once by the
previous path (``pay``: every statement on its own) and once by ``pay_answered``'s lean path,
and every response and every row of the tables the calls write are compared (ids replaced by
stable placeholders, as the checkout's recording does). The sequence has partial payments,
payments across instalments, a late fee paid first (the waterfall), a payment on an overdue
order that leaves it overdue and one that clears it (the line unfreezes), an overpayment that
repays the order (credit held), a payment to a repaid order (all held), a payment without an
order, idempotent replays, a reused key (409) and refused payments. Both databases: on SQLite
both plays take the previous path, on PostgreSQL the test also checks which calls took the
lean path.
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

from tests.conftest import CITUS_URL, _truncate_postgres, make_runtime
from tests.factories import checkout_body
from tests.flows.checkout_scenario import (
    RANDOM_BY_DESIGN,
    TABLES,
    Caller,
    normalise,
)
from usefirst.api.app import create_app
from usefirst.flows import payments
from usefirst.kit.db import Base
from usefirst.risk import decision as risk_decision
from usefirst.runtime import Runtime

PAYMENT_TABLES = (
    *TABLES,
    "credit_line_changes",
    "risk_order_facts",
    "risk_merchant_days",
    "risk_merchant_buyers",
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
        json={"name": "Lean Shop", "category": "electronics"},
    ).json()
    merchant_headers = {"Authorization": f"Bearer {shop['api_key']}"}
    shopper = enrol(1)
    other = enrol(2)

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
        post(f"/v1/orders/{order_id}/confirm-receipt", None)
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

    before, after = played_before_and_after(
        database_url,
        tmp_path,
        monkeypatch,
        previous_path=lambda previous: previous.setattr(
            payments, "_reads_together", lambda _session, _order_id: False
        ),
        lean_path=lambda: monkeypatch.setattr(payments, "_changes_only_instalments", spied),
    )

    statuses = [response[1] for response in after["responses"] if response[0] == "/v1/payments"]
    assert statuses == [201, 201, 409, 201, 404, 422, 201, 201, 201, 201, 201, 201, 201]
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
        # the record), p-2, p-3 and p-4 lean; p-5 clears the overdue instalment and p-6 repays
        # the order: the previous path; p-7 lean (all held); p-8 has no order (the refused
        # payments are refused before the choice).
        assert lean_choices == [True, True, True, True, True, True, False, False, True]
