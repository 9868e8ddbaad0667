"""Auto-debit end to end, on SQLite and PostgreSQL: a shopper with a mandate is charged on the
due date through the local sandbox rail over real HTTP; a declined charge is tried again on the
retry schedule and then succeeds; callbacks that must not be believed (tampered, replayed, for an
unknown charge, for another amount) are refused and recorded and post nothing; a lost callback is
found by a query and posted once. Every scenario ends with the ledger audit balanced."""

from __future__ import annotations

import io
import json
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from pypdf import PdfReader

from tests.collections.dunning_env import local_at
from tests.rails.rail_env import SECRET, RailEnv, open_rail_env
from usefirst.rails.sandbox_signing import signed_headers

DUE_ON = date(2027, 3, 9)  # an order delivered on 03-02 falls due on 03-09


def post_callback(rail_env: RailEnv, payload: dict[str, Any], *, secret: str = SECRET) -> Any:
    body = json.dumps(payload).encode()
    headers = signed_headers(
        secret=secret, timestamp=str(int(time.time())), event_id=str(payload["id"]), body=body
    )
    return httpx.post(rail_env.callback_url, content=body, headers=headers, timeout=10)


def payments_of(rail_env: RailEnv) -> list[tuple[Any, ...]]:
    return rail_env.money()["payments"]


def test_declined_charge_is_retried_then_paid_and_bad_callbacks_post_nothing(
    database_url: str, tmp_path: Path
) -> None:
    with open_rail_env(database_url, tmp_path) as rail_env:
        env = rail_env.env
        shopper = env.enrol()
        mandate = rail_env.mandate(shopper["id"])
        assert mandate["status"] == "active" and mandate["provider"] == "sandbox"
        # The same Idempotency-Key gives the same mandate, not a second one.
        assert rail_env.mandate(shopper["id"])["id"] == mandate["id"]
        listed = env.client.get(f"/v1/shoppers/{shopper['id']}/mandates", headers=env.platform)
        assert [row["id"] for row in listed.json()["data"]] == [mandate["id"]]

        order = env.buy(shopper["id"], 30_000)
        assert order["instalments"][0]["due_on"] == DUE_ON.isoformat()
        rail_env.force("decline", "succeed")

        # Before the due date nothing is charged.
        env.advance_to_day(DUE_ON - timedelta(days=1), hour=11)
        assert rail_env.charges(order["id"]) == []

        # On the due date: attempt 1 is scheduled for 10:00, not sent in the quiet hours of the
        # sweep (00:00), and is declined.
        env.advance_to_day(DUE_ON, hour=9)
        [first] = rail_env.charges(order["id"])
        assert (first["attempt"], first["status"], first["amount_minor"]) == (
            1,
            "scheduled",
            30_000,
        )
        rail_env.send_charges()
        assert rail_env.charges(order["id"])[0]["status"] == "scheduled"  # 09:00: not yet due
        env.advance_to_day(DUE_ON, hour=10, minute=5)
        rail_env.send_charges()
        [first] = rail_env.charges(order["id"])
        assert first["status"] == "failed"
        assert first["failure_code"] == "insufficient_funds"
        assert first["next_attempt_on"] == (DUE_ON + timedelta(days=1)).isoformat()
        assert [(c["event_type"], c["outcome"]) for c in first["callbacks"]] == [
            ("charge.failed", "recorded")
        ]
        assert payments_of(rail_env) == []

        # The next day (+1): attempt 2 for what is owed now (a day of late fees included) succeeds
        # and is posted through the waterfall once, on the provider's callback.
        env.advance_to_day(DUE_ON + timedelta(days=1), hour=10, minute=5)
        [instalment] = env.order(order["id"])["instalments"]
        owed = instalment["amount_minor"] - instalment["paid_minor"]
        assert owed == 30_000 + env.late_fees(order["id"]) and owed > 30_000
        rail_env.send_charges()
        first, second = rail_env.charges(order["id"])
        assert (second["attempt"], second["status"], second["amount_minor"]) == (
            2,
            "succeeded",
            owed,
        )
        assert second["confirmed_by"] == "callback" and second["payment_id"] is not None
        [payment] = payments_of(rail_env)
        assert env.order(order["id"])["status"] == "repaid"
        [failed] = env.events("charge.failed")
        assert {key: failed["data"][key] for key in ("charge_id", "attempt", "failure_code")} == {
            "charge_id": first["id"],
            "attempt": 1,
            "failure_code": "insufficient_funds",
        }
        assert failed["data"]["next_attempt_on"] == (DUE_ON + timedelta(days=1)).isoformat()
        assert failed["data"]["next_attempt_at"].startswith(
            f"{(DUE_ON + timedelta(days=1)).isoformat()}T02:00:00"
        )  # 10:00 in Shanghai
        [received] = env.events("payment.received")
        assert received["data"]["charge_id"] == second["id"]
        assert received["data"]["amount_minor"] == owed
        assert (
            sum(
                item["fees_minor"] + item["principal_minor"]
                for item in received["data"]["allocations"]
            )
            == owed
        )
        after_payment = rail_env.money()

        # Callbacks that must not be believed: each refused, recorded, nothing posted.
        [accepted] = second["callbacks"]
        original = {
            "id": accepted["event_id"],
            "type": "charge.succeeded",
            "charge_id": second["provider_charge_id"],
            "reference": second["id"],
            "amount_minor": owed,
            "currency": "CNY",
            "failure_code": None,
        }
        replayed = post_callback(rail_env, original)
        assert replayed.status_code == 200 and replayed.json()["reason"] == "replayed"
        body = json.dumps({**original, "id": "evt_new_1"}).encode()
        headers = signed_headers(
            secret=SECRET, timestamp=str(int(time.time())), event_id="evt_new_1", body=body
        )
        tampered = httpx.post(
            rail_env.callback_url,
            content=body.replace(str(owed).encode(), str(owed * 2).encode()),
            headers=headers,
        )
        assert tampered.status_code == 401 and tampered.json()["reason"] == "signature_invalid"
        forged = post_callback(rail_env, {**original, "id": "evt_new_2"}, secret="not-the-secret")
        assert forged.status_code == 401
        unknown = post_callback(
            rail_env, {**original, "id": "evt_new_3", "reference": "charge_unknown"}
        )
        assert unknown.status_code == 400 and unknown.json()["reason"] == "unknown_charge"
        mismatch = post_callback(
            rail_env, {**original, "id": "evt_new_4", "amount_minor": owed - 1}
        )
        assert mismatch.status_code == 400 and mismatch.json()["reason"] == "amount_mismatch"
        assert rail_env.money() == after_payment
        assert payments_of(rail_env) == [payment]
        second = rail_env.charges(order["id"])[1]
        assert [(c["outcome"], c["reason"]) for c in second["callbacks"]] == [
            ("posted", None),
            ("rejected", "replayed"),
            ("rejected", "amount_mismatch"),
        ]
        # No third attempt: the instalment is paid.
        env.advance_to_day(DUE_ON + timedelta(days=3), hour=11)
        assert len(rail_env.charges(order["id"])) == 2

        # The month's statement as PDF shows what fell due, the payment and both attempts.
        pdf = env.client.get(
            f"/v1/shoppers/{shopper['id']}/statements/2027-03.pdf", headers=env.platform
        )
        assert pdf.status_code == 200, pdf.text
        assert pdf.headers["content-type"] == "application/pdf"
        text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
        for expected in (
            "2027-03",
            order["id"],
            payment[1],  # the payment id
            f"{owed // 100:,}.{owed % 100:02d} CNY",
            "failed",
            "succeeded",
        ):
            assert expected in text, expected
        for bad in ("2027-13", "2027-3", "2099-01"):
            refused = env.client.get(
                f"/v1/shoppers/{shopper['id']}/statements/{bad}.pdf", headers=env.platform
            )
            assert refused.status_code == 422, bad
        env.assert_ledger_clean()


def test_lost_callback_is_found_by_query_and_posted_once(database_url: str, tmp_path: Path) -> None:
    with open_rail_env(database_url, tmp_path) as rail_env:
        env = rail_env.env
        shopper = env.enrol()
        rail_env.mandate(shopper["id"])
        order = env.buy(shopper["id"], 12_345)
        rail_env.force("lose_callback")
        env.advance_to_day(DUE_ON, hour=10, minute=1)
        rail_env.send_charges()
        [charge] = rail_env.charges(order["id"])
        assert charge["status"] == "submitted" and charge["callbacks"] == []
        assert rail_env.rail.rail.state.callbacks_lost == 1
        # The engine does not believe the request: nothing is posted until it asks.
        assert payments_of(rail_env) == []
        rail_env.send_queries()
        assert payments_of(rail_env) == []  # the query is not due for an hour
        env.advance_to(local_at(DUE_ON, 11, 2))
        rail_env.send_queries()
        [charge] = rail_env.charges(order["id"])
        assert (charge["status"], charge["confirmed_by"]) == ("succeeded", "query")
        assert [(c["source"], c["outcome"]) for c in charge["callbacks"]] == [("query", "posted")]
        [payment] = payments_of(rail_env)
        statement = env.statement(shopper["id"])
        assert env.order(order["id"])["status"] == "repaid", statement
        rail_env.send_queries()
        assert payments_of(rail_env) == [payment]
        env.assert_ledger_clean()


def test_revoked_mandate_stops_a_scheduled_charge_and_a_paid_instalment_is_not_charged(
    database_url: str, tmp_path: Path
) -> None:
    with open_rail_env(database_url, tmp_path) as rail_env:
        env = rail_env.env
        revoking = env.enrol()
        paying = env.enrol()
        mandate = rail_env.mandate(revoking["id"])
        rail_env.mandate(paying["id"], key="mandate-2")
        revoked_order = env.buy(revoking["id"], 20_000)
        paid_order = env.buy(paying["id"], 20_000)
        env.pay(paying["id"], 20_000, paid_order["id"])
        env.advance_to_day(DUE_ON, hour=9)
        [scheduled] = rail_env.charges(revoked_order["id"])
        assert scheduled["status"] == "scheduled"
        assert rail_env.charges(paid_order["id"]) == []
        revoked = env.client.post(
            f"/v1/shoppers/{revoking['id']}/mandates/{mandate['id']}/revoke", headers=env.platform
        )
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
        env.advance_to_day(DUE_ON, hour=10, minute=30)
        rail_env.send_charges()
        [cancelled] = rail_env.charges(revoked_order["id"])
        assert (cancelled["status"], cancelled["stop_reason"]) == ("cancelled", "mandate_revoked")
        assert rail_env.rail.rail.state.charges == {}
        env.advance_to_day(DUE_ON + timedelta(days=2), hour=11)
        assert len(rail_env.charges(revoked_order["id"])) == 1
        env.assert_ledger_clean()
