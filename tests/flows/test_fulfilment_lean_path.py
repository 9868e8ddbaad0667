"""Shipments and confirmations of receipt on their lean paths (issue 14) answer and write
exactly what the previous paths did.

A sequence is played twice over HTTP at the same sandbox times, once by the previous paths
(``ship_with_view`` and ``confirm_receipt`` with every statement on its own) and once by the
lean ones, and every response and every row of the tables the calls write are compared (ids
replaced by stable placeholders, as the checkout's recording does). Shipments: plain ones, a
waybill reused for another shopper's order (a case, the settlement held), a waybill not in
the carrier's format (the same), and refused ones: twice, another merchant's order, a
tracking number too short. Receipts: one confirmed right after shipping (a quick "received": a
new case, no hold), one a day later beside the shopper's other delivered order (no hit), a
quick receipt of an order whose case is open already (the hit joins the case, two signals
hold the settlement), one with credit the shopper holds (applied at delivery, it repays an
order), and refused ones: twice, not shipped, no such order. Both databases: on SQLite both
plays take the previous paths, on PostgreSQL the test also checks which calls took the lean
ones.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import CITUS_URL
from tests.factories import checkout_body
from tests.flows.checkout_scenario import TABLES, Caller
from tests.flows.test_payment_lean_path import (
    PAYMENT_TABLES,
    no_model,
    played_before_and_after,
    recording,
)
from usefirst.flows import fulfilment
from usefirst.runtime import Runtime

RECEIPT_TABLES = (*PAYMENT_TABLES, "settlement_holds", "ledger_open_items")
assert set(TABLES) <= set(RECEIPT_TABLES)
# The comparison is of the rules alone, whatever model artefact is installed.
__all__ = ["no_model"]


def play(runtime: Runtime, client: TestClient) -> dict[str, Any]:
    caller = Caller(runtime, client)
    platform = caller.platform
    post = caller.post

    def enrol(serial: int) -> str:
        return caller.enrol(
            serial, external_id=f"receipt-{serial}", phone=f"+86138000001{serial:02d}"
        )

    shop = client.post(
        "/v1/merchants",
        headers=platform,
        json={
            "name": "Receipt Shop",
            "category": "electronics",
            "webhook_url": "https://merchant.example/webhooks/usefirst",
        },
    ).json()
    merchant_headers = {"Authorization": f"Bearer {shop['api_key']}"}
    other_shop = client.post(
        "/v1/merchants", headers=platform, json={"name": "Other Shop", "category": "toys"}
    ).json()
    shopper = enrol(1)
    other = enrol(2)

    def order(amount_minor: int, plan: str, key: str, shopper_id: str = shopper) -> str:
        body = {
            **checkout_body(shopper_id, shop["id"], amount_minor, plan),
            "device_id": f"device-{key}",
            "ip": "203.0.113.7",
        }
        created = post("/v1/checkouts", body, key=key)
        assert "order" in created, created
        return str(created["order"]["id"])

    def ship(order_id: str, tracking_number: str, headers: Any = merchant_headers) -> Any:
        return post(
            f"/v1/orders/{order_id}/ship",
            {"carrier": "SF Express", "tracking_number": tracking_number},
            headers=headers,
        )

    def confirm(order_id: str) -> Any:
        return post(f"/v1/orders/{order_id}/confirm-receipt", None)

    def next_day() -> None:
        response = client.post("/v1/sandbox/clock/advance", headers=platform, json={"days": 1})
        assert response.status_code == 200, response.text

    first = order(30_000, "instalments_3", "o-1")
    ship(first, "SF1000000001")
    confirm(first)  # right after shipping: a quick "received" opens a case (no hold)
    confirm(first)  # again: 409
    confirm("ord_01JZZZZZZZZZZZZZZZZZZZZZZZ")  # no such order: 404

    second = order(20_000, "pay_after_delivery", "o-2")
    confirm(second)  # not shipped: 409
    ship(second, "SF1000000002", headers={"Authorization": f"Bearer {other_shop['api_key']}"})
    ship(second, "SF1")  # too short: 422
    ship(second, "SF1000000002")
    ship(second, "SF1000000003")  # again: 409
    next_day()
    confirm(second)  # a day later, beside the first (delivered): no hit

    theirs = order(10_000, "instalments_3", "o-3", shopper_id=other)
    ship(theirs, "SF1000000002")  # the second order's waybill for another shopper: a case
    confirm(theirs)  # a quick "received" too: it joins the open case, which holds settlement

    # Everything the first order owes and more: the rest is held as credit.
    paid = post(
        "/v1/payments",
        {
            "shopper_id": shopper,
            "amount_minor": 40_000,
            "currency": "CNY",
            "order_id": first,
            "method": "alipay",
        },
        key="p-1",
    )
    assert paid["unapplied_minor"] > 0, paid
    third = order(5_000, "pay_after_delivery", "o-4")
    ship(third, "SF1000000004")
    fourth = order(6_000, "pay_after_delivery", "o-5")
    ship(fourth, "SF12345")  # not an SF waybill: a case, the settlement held
    next_day()
    confirm(third)  # held credit applied at delivery: it repays the order (previous path)

    return recording(runtime, caller.responses, RECEIPT_TABLES)


def test_shipments_and_receipts_answer_and_write_as_the_previous_paths(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lean_choices: dict[str, list[bool]] = {"_ship_lean": [], "_receipt_lean": []}

    def spy() -> None:
        for name, choices in lean_choices.items():
            monkeypatch.setattr(fulfilment, name, _spied(getattr(fulfilment, name), choices))

    before, after = played_before_and_after(
        database_url,
        tmp_path,
        monkeypatch,
        previous_path=lambda previous: previous.setattr(
            fulfilment, "writes_together", lambda _session: False
        ),
        lean_path=spy,
        sequence=play,
    )

    def statuses(ending: str) -> list[int]:
        return [response[1] for response in after["responses"] if response[0].endswith(ending)]

    assert statuses("/ship") == [200, 404, 422, 200, 409, 200, 200, 200]
    assert statuses("/confirm-receipt") == [200, 409, 404, 409, 200, 200, 200]
    for index, (got, wanted) in enumerate(
        zip(after["responses"], before["responses"], strict=True)
    ):
        assert got == wanted, f"response {index} ({wanted[0]})"
    for name in RECEIPT_TABLES:
        assert after["tables"][name] == before["tables"][name], name
    # What the receipts wrote besides their orders: the quick "received" case, the case the
    # reused waybill opened (joined at delivery: two signals, the settlement held).
    tables = after["tables"]
    assert sorted(len(row["evidence"]["signals"]) for row in tables["risk_cases"]) == [1, 1, 2]
    assert len(tables["settlement_holds"]) == 2
    # Each delivered order's sale credits its merchant's payable: an open item until paid out.
    assert tables["ledger_open_items"], "the receipts posted no merchant payable"
    if database_url.startswith("sqlite") or CITUS_URL is not None:
        # SQLite, and a Citus cluster (``writes_together``: one statement cannot write the
        # entries' accounts, a reference table there, and their sharded postings): the
        # previous paths every time.
        assert lean_choices == {"_ship_lean": [], "_receipt_lean": []}
    else:
        # Shipments: lean but the reused and the malformed waybills (the refused ones raise
        # before a choice). Receipts: the first and second lean; the other shopper's (an open
        # case) and the one with held credit the previous way.
        assert lean_choices == {
            "_ship_lean": [True, True, False, True, False],
            "_receipt_lean": [True, True, False, False],
        }


def _spied(lean: Callable[..., Any], choices: list[bool]) -> Callable[..., Any]:
    """``lean`` (a lean path: None when it leaves the call to the previous path), each of its
    choices appended to ``choices``."""

    def spied(*args: Any, **kwargs: Any) -> Any:
        done = lean(*args, **kwargs)
        choices.append(done is not None)
        return done

    return spied
