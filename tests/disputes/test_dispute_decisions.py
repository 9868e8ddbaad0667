"""Each operator decision end to end over HTTP, with the money it moves: for_shopper refunds
what is left of the order (cancelling what is owed first, returning what was paid) and charges
the merchant's payable; split refunds part; for_merchant moves nothing and the debt stands. The
ledger stays balanced and reconciled after each, the order's settlement is held while the
dispute is open, and both sides are notified."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tests.collections.dunning_env import SHIPMENT, balance
from tests.disputes.dispute_env import JPEG_BYTES, PDF_BYTES, DisputeEnv, open_dispute_env
from tests.factories import bearer, checkout_body, create_merchant
from usefirst.disputes import pauses
from usefirst.disputes.service import pause_of
from usefirst.kit.models import OutboxMessage
from usefirst.merchants.models import SettlementHold
from usefirst.orders.models import Order, Refund


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, response.text
    if field is not None:
        assert error.get("field") == field


def holds(d: DisputeEnv, order_id: str) -> list[tuple[str, bool]]:
    """(source, is_active) of the order's settlement holds."""
    with d.env.runtime.work(read_only=True) as work:
        rows = work.session.scalars(
            select(SettlementHold).where(SettlementHold.order_id == order_id)
        ).all()
        return [(row.source, row.released_at is None) for row in rows]


def is_disputed(d: DisputeEnv, order_id: str) -> bool:
    with d.env.runtime.work(read_only=True) as work:
        order = work.session.scalars(select(Order).where(Order.id == order_id)).one()
        return pauses.is_open(
            pause_of(work.session, shopper_id=order.shopper_id, order_id=order.id)
        )


def refunds(d: DisputeEnv, order_id: str) -> list[tuple[int, int, int]]:
    """(amount, reduced debt, returned to shopper) of the order's refunds."""
    with d.env.runtime.work(read_only=True) as work:
        rows = work.session.scalars(select(Refund).where(Refund.order_id == order_id)).all()
        return [(r.amount_minor, r.reduced_debt_minor, r.returned_to_shopper_minor) for r in rows]


def deltas(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {
        account: after.get(account, 0) - before.get(account, 0)
        for account in sorted(set(before) | set(after))
        if after.get(account, 0) != before.get(account, 0)
    }


def under_review(d: DisputeEnv, order_id: str, **kwargs: Any) -> dict[str, Any]:
    dispute = d.open(order_id, **kwargs)
    answered = d.upload(
        dispute["id"], PDF_BYTES, headers=d.merchant_headers(), filename="waybill.pdf"
    )
    assert answered.status_code == 201, answered.text
    assert answered.json()["status"] == "under_review"
    return dispute


def test_for_shopper_cancels_the_debt_returns_what_was_paid_and_charges_the_merchant(
    database_url: str, tmp_path: Path
) -> None:
    with open_dispute_env(
        database_url,
        tmp_path,
        platform_webhook_url="https://marketplace.example/hooks",
        platform_webhook_secret="whsec_" + "A" * 43,
    ) as d:
        # A merchant with its own webhook, so both sides are notified.
        merchant = create_merchant(
            d.client, d.platform, name="Hooked Shop", webhook_url="https://shop.example/hooks"
        )
        merchant_headers = bearer(merchant["api_key"])
        shopper = d.env.enrol()
        created = d.client.post(
            "/v1/checkouts",
            headers=d.platform,
            json=checkout_body(shopper["id"], merchant["id"], 30_000),
        )
        order_id = created.json()["order"]["id"]
        assert (
            d.client.post(
                f"/v1/orders/{order_id}/ship", headers=merchant_headers, json=SHIPMENT
            ).status_code
            == 200
        )
        assert (
            d.client.post(f"/v1/orders/{order_id}/confirm-receipt", headers=d.platform).status_code
            == 200
        )
        d.env.pay(shopper["id"], 10_000, order_id)

        dispute = d.open(order_id, reason="not_as_described")
        assert (dispute["status"], dispute["disputed_minor"], dispute["respondent"]) == (
            "open",
            30_000,
            "merchant",
        )
        assert dispute["respond_by"] == "2027-03-09T04:00:00Z"  # filed 2027-03-02T04:00Z + 7 d
        assert dispute["decide_by"] == "2027-03-17T04:00:00Z"  # + 15 d
        assert is_disputed(d, order_id) is True
        assert holds(d, order_id) == [(f"dispute:{dispute['id']}", True)]
        assert (
            d.upload(dispute["id"], JPEG_BYTES, headers=d.platform, filename="crack.jpg").json()[
                "status"
            ]
            == "awaiting_evidence"
        )
        assert (
            d.upload(
                dispute["id"], PDF_BYTES, headers=merchant_headers, filename="qc-report.pdf"
            ).json()["status"]
            == "under_review"
        )

        before = d.env.account_balances()
        resolved = d.resolve(dispute["id"], "for_shopper", note="Photos show transit damage.")
        assert resolved.status_code == 200, resolved.text
        body = resolved.json()
        assert body["status"] == "resolved"
        refund_id = body["resolution"].pop("refund_id")
        assert refund_id.startswith("ref_")
        body["resolution"].pop("resolved_at")
        assert body["resolution"] == {
            "outcome": "for_shopper",
            "basis": "decision",
            "shopper_refund_minor": 30_000,
            "note": "Photos show transit damage.",
            "resolved_by": d.support_id,
        }
        # 20 000 still owed is cancelled, the 10 000 paid goes back, the merchant bears all.
        assert refunds(d, order_id) == [(30_000, 20_000, 10_000)]
        after = d.env.account_balances()
        assert deltas(before, after) == {
            f"merchant_payable:{merchant['id']}:CNY": 30_000,
            f"shopper_receivable:{shopper['id']}:CNY": -20_000,
            "platform_cash::CNY": -10_000,
        }
        assert balance(after, "shopper_receivable", shopper["id"]) == 0
        order = d.env.order(order_id)
        assert (order["status"], order["refunded_minor"]) == ("refunded", 30_000)
        assert d.env.statement(shopper["id"])["outstanding_minor"] == 0
        assert d.env.credit(shopper["id"])["used_minor"] == 0
        assert is_disputed(d, order_id) is False
        assert holds(d, order_id) == [(f"dispute:{dispute['id']}", False)]
        d.env.assert_ledger_clean()

        # Both sides heard of every step: filed, shopper evidence, merchant evidence, decided.
        events = [e for e in d.dispute_events() if e["data"]["dispute"]["id"] == dispute["id"]]
        assert [e["data"]["dispute"]["status"] for e in events] == [
            "open",
            "awaiting_evidence",
            "under_review",
            "resolved",
        ]
        merchant_feed = d.client.get(
            "/v1/events", headers=merchant_headers, params={"type": "dispute.updated"}
        ).json()["data"]
        assert [e["id"] for e in merchant_feed] == [e["id"] for e in events]
        with d.env.runtime.work(read_only=True) as work:
            deliveries = sorted(
                (message.payload["event_id"], message.payload["destination"])
                for message in work.session.scalars(select(OutboxMessage))
                if message.payload.get("event_id") in {e["id"] for e in events}
            )
        assert deliveries == sorted(
            (e["id"], destination) for e in events for destination in ("merchant", "platform")
        )


def test_split_refunds_part_and_the_rest_is_still_owed(database_url: str, tmp_path: Path) -> None:
    with open_dispute_env(database_url, tmp_path) as d:
        merchant_id = d.env.merchant()["id"]
        shopper = d.env.enrol()
        order = d.buy(shopper["id"], 30_000)
        dispute = under_review(d, order["id"], reason="not_as_described")

        refused = [
            d.resolve(dispute["id"], "split"),
            d.resolve(dispute["id"], "split", shopper_refund_minor=30_000),
            d.resolve(dispute["id"], "split", shopper_refund_minor=0),
            d.resolve(dispute["id"], "for_shopper", shopper_refund_minor=5_000),
            d.resolve(dispute["id"], "for_merchant", shopper_refund_minor=5_000),
        ]
        for response in refused:
            assert_error(response, 422, "validation_error", "shopper_refund_minor")
        assert d.get(dispute["id"])["status"] == "under_review"

        before = d.env.account_balances()
        resolved = d.resolve(dispute["id"], "split", shopper_refund_minor=12_000)
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["resolution"]["outcome"] == "split"
        assert resolved.json()["resolution"]["shopper_refund_minor"] == 12_000
        assert refunds(d, order["id"]) == [(12_000, 12_000, 0)]
        assert deltas(before, d.env.account_balances()) == {
            f"merchant_payable:{merchant_id}:CNY": 12_000,
            f"shopper_receivable:{shopper['id']}:CNY": -12_000,
        }
        after = d.env.order(order["id"])
        assert (after["status"], after["refunded_minor"]) == ("delivered", 12_000)
        statement = d.env.statement(shopper["id"])
        assert statement["outstanding_minor"] == 18_000
        assert d.env.credit(shopper["id"])["used_minor"] == 18_000
        assert is_disputed(d, order["id"]) is False
        assert holds(d, order["id"]) == [(f"dispute:{dispute['id']}", False)]
        d.env.assert_ledger_clean()


def test_for_merchant_moves_no_money_and_the_debt_stands(database_url: str, tmp_path: Path) -> None:
    with open_dispute_env(database_url, tmp_path) as d:
        shopper = d.env.enrol()
        order = d.buy(shopper["id"], 30_000)
        dispute = under_review(d, order["id"], reason="not_received")
        assert is_disputed(d, order["id"]) is True

        before = d.env.account_balances()
        resolved = d.resolve(dispute["id"], "for_merchant", note="Signed delivery receipt.")
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["resolution"]["shopper_refund_minor"] == 0
        assert resolved.json()["resolution"]["refund_id"] is None
        assert d.env.account_balances() == before
        assert refunds(d, order["id"]) == []
        assert d.env.order(order["id"])["status"] == "delivered"
        assert d.env.statement(shopper["id"])["outstanding_minor"] == 30_000
        assert is_disputed(d, order["id"]) is False
        assert holds(d, order["id"]) == [(f"dispute:{dispute['id']}", False)]
        d.env.assert_ledger_clean()

        # Decided once: no second decision, no more evidence, no re-filing by the same side.
        assert_error(d.resolve(dispute["id"], "for_shopper"), 409, "dispute_closed")
        assert_error(
            d.upload(dispute["id"], JPEG_BYTES, headers=d.platform, filename="late.jpg"),
            409,
            "dispute_closed",
        )
        assert_error(d.file(order["id"], reason="not_as_described"), 409,
                     "dispute_already_decided", "order_id")  # fmt: skip
        assert d.row_counts() == (1, 1, 3)
        assert d.env.account_balances() == before


def test_resolve_is_idempotent(database_url: str, tmp_path: Path) -> None:
    with open_dispute_env(database_url, tmp_path) as d:
        shopper = d.env.enrol()
        order = d.buy(shopper["id"], 30_000)
        dispute = under_review(d, order["id"])
        first = d.resolve(dispute["id"], "for_shopper", idempotency_key="decide-1")
        replay = d.resolve(dispute["id"], "for_shopper", idempotency_key="decide-1")
        assert (first.status_code, replay.status_code) == (200, 200)
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == first.json()
        assert refunds(d, order["id"]) == [(30_000, 30_000, 0)]
        assert_error(
            d.resolve(dispute["id"], "for_merchant", idempotency_key="decide-1"),
            409,
            "idempotency_key_reused",
        )
        d.env.assert_ledger_clean()


def test_who_may_file_and_decide(database_url: str, tmp_path: Path) -> None:
    with open_dispute_env(database_url, tmp_path) as d:
        shopper = d.env.enrol()
        order = d.buy(shopper["id"], 30_000)
        approved = d.client.post(
            "/v1/checkouts",
            headers=d.platform,
            json=checkout_body(shopper["id"], d.env.merchant()["id"], 1_000),
        ).json()["order"]
        other = bearer(d.other_merchant["api_key"])
        cases = [
            # the platform speaks for shoppers, a merchant key for its merchant
            (d.file(order["id"], opened_by="merchant", reason="unpaid", headers=d.platform),
             403, "forbidden", "opened_by"),
            (d.file(order["id"], opened_by="shopper", headers=d.merchant_headers()),
             403, "forbidden", "opened_by"),
            (d.file(order["id"], headers=d.support), 403, "forbidden", None),
            # another merchant's order does not exist for it
            (d.file(order["id"], opened_by="merchant", reason="unpaid", headers=other),
             404, "not_found", None),
            (d.file("ord_missing"), 404, "not_found", None),
            # each side has its own reasons
            (d.file(order["id"], reason="unpaid"), 422, "validation_error", "reason"),
            (d.file(order["id"], opened_by="merchant", reason="not_received"),
             422, "validation_error", "reason"),
            (d.file(order["id"], reason="stolen"), 422, "validation_error", "reason"),
            (d.file(order["id"], description="   "), 422, "validation_error", "description"),
            # not shipped yet: cancel instead; not overdue or delivered: nothing unpaid
            (d.file(approved["id"]), 409, "dispute_not_allowed", "order_id"),
            (d.file(approved["id"], opened_by="merchant", reason="unpaid"),
             409, "dispute_not_allowed", "order_id"),
        ]  # fmt: skip
        for response, status, code, field in cases:
            assert_error(response, status, code, field)
        extra = d.client.post(
            "/v1/disputes",
            headers=d.platform,
            json={
                "order_id": order["id"],
                "opened_by": "shopper",
                "reason": "not_received",
                "description": "x",
                "contacts": ["mum"],
            },
        )
        assert_error(extra, 422, "validation_error", "contacts")
        assert d.row_counts() == (0, 0, 0)
        assert is_disputed(d, order["id"]) is False

        dispute = d.open(order["id"], reason="unauthorized")
        assert_error(
            d.file(order["id"], opened_by="merchant", reason="unpaid"),
            409,
            "dispute_already_open",
            "order_id",
        )
        for headers in (d.platform, d.merchant_headers(), other, d.env.collector):
            assert_error(d.resolve(dispute["id"], "for_shopper", headers=headers), 403,
                         "forbidden")  # fmt: skip
        assert_error(d.resolve("dsp_missing", "for_shopper"), 404, "not_found")
        assert d.get(dispute["id"])["status"] == "open"
        assert refunds(d, order["id"]) == []

        # An admin decides as well as support.
        decided = d.resolve(dispute["id"], "for_merchant", headers=d.env.admin)
        assert decided.status_code == 200, decided.text
        # The merchant may still raise its own dispute on the order afterwards.
        merchant_dispute = d.open(order["id"], opened_by="merchant", reason="suspected_cash_out")
        assert (merchant_dispute["respondent"], merchant_dispute["pauses_collections"]) == (
            "shopper",
            False,
        )
        assert is_disputed(d, order["id"]) is False


def test_for_shopper_before_delivery_cancels_the_order_without_ledger_entries(
    database_url: str, tmp_path: Path
) -> None:
    with open_dispute_env(database_url, tmp_path) as d:
        shopper = d.env.enrol()
        order = d.buy_shipped(shopper["id"], 30_000)
        assert d.env.credit(shopper["id"])["used_minor"] == 30_000
        dispute = d.open(order["id"], reason="not_received")
        before = d.env.account_balances()
        resolved = d.resolve(dispute["id"], "for_shopper", note="Parcel lost by the carrier.")
        assert resolved.status_code == 200, resolved.text
        # Nothing was owed in the ledger yet: the schedule is cancelled, the limit released.
        assert d.env.account_balances() == before
        assert refunds(d, order["id"]) == [(30_000, 30_000, 0)]
        after = d.env.order(order["id"])
        assert (after["status"], [row["status"] for row in after["instalments"]]) == (
            "refunded",
            ["cancelled"],
        )
        assert d.env.credit(shopper["id"])["used_minor"] == 0
        assert holds(d, order["id"]) == [(f"dispute:{dispute['id']}", False)]
        d.env.assert_ledger_clean()


def test_an_open_dispute_stops_automatic_confirmation_until_decided(
    database_url: str, tmp_path: Path
) -> None:
    """Shipped on 03-02 with auto_confirm_days 10: the sweep of 03-12 would confirm receipt. A
    "not received" dispute keeps the order shipped (nothing owed, nothing posted) for as long as
    it is open; decided for the merchant, the next sweep confirms it."""
    with open_dispute_env(database_url, tmp_path) as d:
        shopper = d.env.enrol()
        order = d.buy_shipped(shopper["id"], 30_000)
        # The merchant answers with its waybill: the dispute stays open until an operator
        # decides (decision deadline 03-17).
        dispute = under_review(d, order["id"], reason="not_received")
        before = d.env.account_balances()
        d.env.advance_to_day(date(2027, 3, 14))
        after = d.env.order(order["id"])
        assert (after["status"], [row["status"] for row in after["instalments"]]) == (
            "shipped",
            ["scheduled"],
        )
        assert d.env.account_balances() == before
        assert d.resolve(dispute["id"], "for_merchant").status_code == 200
        d.env.advance_to_day(date(2027, 3, 15))
        after = d.env.order(order["id"])
        assert (after["status"], [row["status"] for row in after["instalments"]]) == (
            "delivered",
            ["pending"],
        )
        d.env.assert_ledger_clean()


def merchant_money(d: DisputeEnv) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    merchant_id = d.env.merchant()["id"]
    headers = d.merchant_headers()
    balance_response = d.client.get(f"/v1/merchants/{merchant_id}/balance", headers=headers)
    assert balance_response.status_code == 200, balance_response.text
    settlements = d.client.get(f"/v1/merchants/{merchant_id}/settlements", headers=headers)
    assert settlements.status_code == 200, settlements.text
    return dict(balance_response.json()), list(settlements.json()["data"])


def test_the_disputed_sale_is_not_paid_out_until_decided(database_url: str, tmp_path: Path) -> None:
    with open_dispute_env(database_url, tmp_path) as d:
        shopper = d.env.enrol()
        order = d.buy(shopper["id"], 30_000)
        dispute = under_review(d, order["id"], reason="not_as_described")
        d.env.advance_to_day(date(2027, 3, 5))
        balance_now, settlements = merchant_money(d)
        # 30 000 sold less the 60 bps fee, all of it held by the dispute; nothing paid.
        assert (balance_now["payable_minor"], balance_now["held_minor"]) == (29_820, 29_820)
        assert settlements == []

        assert d.resolve(dispute["id"], "for_merchant").status_code == 200
        d.env.advance_to_day(date(2027, 3, 6))
        balance_now, settlements = merchant_money(d)
        assert (balance_now["payable_minor"], balance_now["held_minor"]) == (0, 0)
        assert [(s["gross_minor"], s["fee_minor"], s["net_minor"]) for s in settlements] == [
            (30_000, 180, 29_820)
        ]
        d.env.assert_ledger_clean()


def test_for_shopper_after_payout_carries_the_debit_to_the_next_payout(
    database_url: str, tmp_path: Path
) -> None:
    with open_dispute_env(database_url, tmp_path) as d:
        shopper = d.env.enrol()
        order = d.buy(shopper["id"], 30_000)
        d.env.advance_to_day(date(2027, 3, 4))
        balance_now, settlements = merchant_money(d)
        assert [s["net_minor"] for s in settlements] == [29_820]
        assert balance_now["payable_minor"] == 0

        dispute = under_review(d, order["id"], reason="unauthorized")
        assert d.resolve(dispute["id"], "for_shopper").status_code == 200
        balance_now, _ = merchant_money(d)
        # The merchant owes the whole refund back; its next payouts net it.
        assert (balance_now["payable_minor"], balance_now["held_minor"]) == (-30_000, 0)
        d.env.advance_to_day(date(2027, 3, 6))
        balance_now, settlements = merchant_money(d)
        assert balance_now["payable_minor"] == -30_000
        assert [s["net_minor"] for s in settlements] == [29_820]
        d.env.assert_ledger_clean()
