"""A credit-bureau file made on demand for a past month reports the book as that month left it:
the same file the nightly run wrote at the month's end, however much was paid, charged or waived
since. Balances come from the ledger entries made by the period's end and the payments applied by
then; the instalments are taken back to where they stood."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from tests.collections.dunning_env import Env, jsonl_records, open_env
from tests.collections.metro2_parser import parse_metro2

# Bought and delivered on the start day, 2027-03-02: Ann's single payment is due 03-09 (reported
# on 04-08), Bob's three instalments 04-02, 05-02 and 06-02 (reported on 05-02).
MAY = "2027-05"


def _waive_late_fees(env: Env, order_id: str, amount_minor: int) -> None:
    response = env.client.post(
        f"/v1/orders/{order_id}/late-fees/waive",
        headers={**env.collector, "Idempotency-Key": f"waive-{order_id}"},
        json={"amount_minor": amount_minor, "reason": "first late payment, goodwill"},
    )
    assert response.status_code == 200, response.text


def _instalments(env: Env, order_id: str) -> list[dict[str, object]]:
    return list(env.order(order_id)["instalments"])


def _assert_mays_file_made_today_is(env: Env, month_end_jsonl: str, month_end_metro2: str) -> None:
    """May's file made today is the month-end file: JSONL byte for byte; Metro 2 the same
    accounts and totals, only the header's dates (when the file was made) differ."""
    _, on_demand_jsonl = env.bureau_file(MAY, "jsonl")
    assert on_demand_jsonl == month_end_jsonl
    _, on_demand_metro2 = env.bureau_file(MAY, "metro2")
    later, then = parse_metro2(on_demand_metro2), parse_metro2(month_end_metro2)
    assert later.bases == then.bases
    assert later.trailer == then.trailer
    changed = {key for key in then.header if later.header[key] != then.header[key]}
    assert changed <= {"activity_date", "date_created"}


def test_a_past_months_file_made_later_is_the_month_end_file(
    database_url: str, tmp_path: Path
) -> None:
    with open_env(database_url, tmp_path) as env:
        ann = env.enrol()
        bob = env.enrol()
        single = env.buy(ann["id"])
        spread = env.buy(bob["id"], plan="instalments_3")

        # In May Bob pays a little: May's file reports it as May's payment.
        env.advance_to_day(date(2027, 5, 20))
        env.pay(bob["id"], 5_000, order_id=spread["id"])

        # The nightly run of 1 June writes May's file first.
        env.advance_to_day(date(2027, 6, 1))
        month_end_jsonl = env.month_end_file(MAY, "jsonl")
        month_end_metro2 = env.month_end_file(MAY, "metro2")
        may = jsonl_records(month_end_jsonl)
        assert sorted(may) == sorted([single["id"], spread["id"]])
        assert (
            may[spread["id"]]["actual_payment_minor"],
            may[spread["id"]]["date_last_payment"],
        ) == (
            5_000,
            "2027-05-20",
        )
        owed_then = {order_id: record["current_balance_minor"] for order_id, record in may.items()}

        # June: payments (one settles Bob's first instalment), a late-fee waiver, and Bob's third
        # instalment (due 2 June, not yet due when May ended) falls overdue and runs up late fees.
        env.advance_to_day(date(2027, 6, 5))
        env.pay(ann["id"], 10_000, order_id=single["id"])
        first, *_ = _instalments(env, spread["id"])
        env.pay(bob["id"], 12_000, order_id=spread["id"])
        assert _instalments(env, spread["id"])[0]["status"] == "paid"
        assert first["status"] == "overdue"
        env.advance_to_day(date(2027, 6, 10))
        _waive_late_fees(env, single["id"], 100)
        env.advance_to_day(date(2027, 6, 20))
        third = _instalments(env, spread["id"])[2]
        assert (third["status"], third["late_fees_minor"] > 0) == ("overdue", True)
        # Today's book differs from May's end in every balance the file reports.
        for shopper, order in ((ann, single), (bob, spread)):
            assert env.statement(shopper["id"])["outstanding_minor"] != owed_then[order["id"]]

        _assert_mays_file_made_today_is(env, month_end_jsonl, month_end_metro2)

        # June's file (the month so far) reports today's book.
        june = env.jsonl_records("2027-06")
        assert (
            june[single["id"]]["current_balance_minor"]
            == env.statement(ann["id"])["outstanding_minor"]
        )
        assert june[single["id"]]["actual_payment_minor"] == 10_000
        env.assert_ledger_clean()


def _open_dispute(env: Env, order_id: str) -> None:
    response = env.client.post(
        "/v1/disputes",
        headers=env.platform,
        json={
            "order_id": order_id,
            "opened_by": "shopper",
            "reason": "not_as_described",
            "description": "The headphones arrived with a cracked left cup.",
        },
    )
    assert response.status_code == 201, response.text


def test_a_dispute_opened_after_the_month_does_not_change_its_file(
    database_url: str, tmp_path: Path
) -> None:
    with open_env(database_url, tmp_path) as env:
        ann = env.enrol()
        single = env.buy(ann["id"])
        env.advance_to_day(date(2027, 6, 1))
        month_end_jsonl = env.month_end_file(MAY, "jsonl")
        month_end_metro2 = env.month_end_file(MAY, "metro2")
        assert jsonl_records(month_end_jsonl)[single["id"]]["is_disputed"] is False

        # In June Ann disputes the order: June's file reports it, May's made later does not.
        env.advance_to_day(date(2027, 6, 5))
        _open_dispute(env, single["id"])
        env.advance_to_day(date(2027, 6, 10))
        assert env.jsonl_records("2027-06")[single["id"]]["is_disputed"] is True
        _assert_mays_file_made_today_is(env, month_end_jsonl, month_end_metro2)
        env.assert_ledger_clean()
