"""A credit-bureau file made on demand for a past month reports the book as that month left it:
the same file the nightly run wrote at the month's end, however much was paid, charged or waived
since. Balances come from the ledger entries made by the period's end and the payments applied by
then; the instalments are taken back to where they stood."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from tests.collections.dunning_env import Env, jsonl_records, open_env
from tests.collections.metro2_parser import parse_metro2
from tests.factories import bearer
from tests.rails.rail_env import open_rail_env

# Bought and delivered on the start day, 2027-03-02: Ann's single payment is due 03-09 (reported
# on 04-08), Bob's three instalments 04-02, 05-02 and 06-02 (reported on 05-02).
MAY = "2027-05"


def _waive_late_fees(env: Env, order_id: str, amount_minor: int | None) -> None:
    """Waive ``amount_minor`` of the order's unpaid late fees (None: all of them)."""
    response = env.client.post(
        f"/v1/orders/{order_id}/late-fees/waive",
        headers={**env.collector, "Idempotency-Key": f"waive-{order_id}-{amount_minor}"},
        json={"amount_minor": amount_minor, "reason": "first late payment, goodwill"},
    )
    assert response.status_code == 200, response.text


def _instalments(env: Env, order_id: str) -> list[dict[str, object]]:
    return list(env.order(order_id)["instalments"])


def _ann_and_bob(
    env: Env, *, bobs_plan: str = "pay_after_delivery"
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Ann and Bob, each with an order bought and delivered on the start day (Ann's paid after
    delivery, Bob's on ``bobs_plan``): the shoppers, then their orders."""
    ann, bob = env.enrol(), env.enrol()
    return ann, bob, env.buy(ann["id"]), env.buy(bob["id"], plan=bobs_plan)


def _assert_mays_file_made_today_is(
    env: Env, month_end_jsonl: str, month_end_metro2: str, *, period: str = MAY
) -> None:
    """May's file (or ``period``'s) made today is the month-end file: JSONL byte for byte;
    Metro 2 the same accounts and totals, only the header's dates (when the file was made)
    differ."""
    _, on_demand_jsonl = env.bureau_file(period, "jsonl")
    assert on_demand_jsonl == month_end_jsonl
    _, on_demand_metro2 = env.bureau_file(period, "metro2")
    later, then = parse_metro2(on_demand_metro2), parse_metro2(month_end_metro2)
    assert later.bases == then.bases
    assert later.trailer == then.trailer
    changed = {key for key in then.header if later.header[key] != then.header[key]}
    assert changed <= {"activity_date", "date_created"}


def test_a_past_months_file_made_later_is_the_month_end_file(
    database_url: str, tmp_path: Path
) -> None:
    with open_env(database_url, tmp_path) as env:
        ann, bob, single, spread = _ann_and_bob(env, bobs_plan="instalments_3")

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


def _open_dispute(env: Env, order_id: str) -> str:
    """The shopper disputes the order: the dispute's id."""
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
    return str(response.json()["id"])


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


def _refund(env: Env, order_id: str, amount_minor: int, key: str) -> None:
    response = env.client.post(
        f"/v1/orders/{order_id}/refunds",
        headers={**bearer(env.merchant()["api_key"]), "Idempotency-Key": key},
        json={"amount_minor": amount_minor, "reason": "customer returned part of the goods"},
    )
    assert response.status_code == 201, response.text


def _account(record: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "account_status_code",
        "special_comment_code",
        "terms_duration",
        "scheduled_monthly_payment_minor",
        "current_balance_minor",
        "amount_past_due_minor",
        "days_past_due",
    )
    return {key: record[key] for key in keys}


def test_a_refund_counts_in_its_month_and_not_in_a_month_before_it(
    database_url: str, tmp_path: Path
) -> None:
    with open_env(database_url, tmp_path) as env:
        _, _, single, spread = _ann_and_bob(env, bobs_plan="instalments_3")

        # In May the merchant refunds 10,000 of Ann's order, its one instalment late: May's file
        # counts it (the refund before the month's end).
        env.advance_to_day(date(2027, 5, 10))
        _refund(env, single["id"], 10_000, "refund-ann")
        env.advance_to_day(date(2027, 6, 1))
        month_end_jsonl = env.month_end_file(MAY, "jsonl")
        month_end_metro2 = env.month_end_file(MAY, "metro2")
        may = jsonl_records(month_end_jsonl)
        # Ann's one instalment owes 20,000 of principal and its late fees: all past due.
        assert _account(may[single["id"]]) == {
            "account_status_code": "78",
            "special_comment_code": "",
            "terms_duration": 1,
            "scheduled_monthly_payment_minor": 20_000,
            "current_balance_minor": 21_123,
            "amount_past_due_minor": 21_123,
            "days_past_due": 83,
        }
        mays_bob = {
            "account_status_code": "71",
            "special_comment_code": "",
            "terms_duration": 3,
            "scheduled_monthly_payment_minor": 10_150,
            "current_balance_minor": 30_890,
            "amount_past_due_minor": 20_740,
            "days_past_due": 59,
        }
        assert _account(may[spread["id"]]) == mays_bob

        # In June the merchant refunds 25,000 of Bob's order, latest instalments first: the
        # third (not due at May's end) and the second (late then) in full, 5,000 of the first
        # (late then).
        env.advance_to_day(date(2027, 6, 5))
        _refund(env, spread["id"], 25_000, "refund-bob")
        assert [
            (row["seq"], row["principal_minor"], row["status"])
            for row in _instalments(env, spread["id"])
        ] == [(1, 5_000, "overdue"), (2, 0, "cancelled"), (3, 0, "cancelled")]
        # June's file counts the refund; May's made later does not: the month-end file.
        assert _account(env.jsonl_records("2027-06")[spread["id"]]) == {
            **mays_bob,
            "account_status_code": "78",
            "scheduled_monthly_payment_minor": 5_150,
            "current_balance_minor": 5_470,
            "amount_past_due_minor": 5_470,
            "days_past_due": 64,
        }
        assert _account(env.jsonl_records(MAY)[spread["id"]]) == mays_bob
        _assert_mays_file_made_today_is(env, month_end_jsonl, month_end_metro2)
        env.assert_ledger_clean()


def _relieve(env: Env, order_id: str, key: str) -> None:
    opened = env.client.post(
        f"/v1/orders/{order_id}/hardship",
        headers={**env.platform, "Idempotency-Key": key},
        json={"reason": "lost my job"},
    )
    assert opened.status_code == 201, opened.text
    decided = env.client.post(
        f"/v1/hardship-requests/{opened.json()['id']}/decision",
        headers=env.collector,
        json={"decision": "plan", "plan_months": 3},
    )
    assert decided.status_code == 200, decided.text


def test_a_hardship_plan_counts_in_its_month_and_not_in_a_month_before_it(
    database_url: str, tmp_path: Path
) -> None:
    with open_env(database_url, tmp_path) as env:
        _, _, ann_order, bob_order = _ann_and_bob(env)

        # In May Ann, 60 days late, agrees a three-month plan: May's file reports it.
        env.advance_to_day(date(2027, 5, 10))
        _relieve(env, ann_order["id"], "hardship-ann")
        env.advance_to_day(date(2027, 6, 1))
        month_end_jsonl = env.month_end_file(MAY, "jsonl")
        month_end_metro2 = env.month_end_file(MAY, "metro2")
        may = jsonl_records(month_end_jsonl)
        assert _account(may[ann_order["id"]]) == {
            "account_status_code": "11",
            "special_comment_code": "AC",
            "terms_duration": 3,
            "scheduled_monthly_payment_minor": 10_310,
            "current_balance_minor": 30_930,
            "amount_past_due_minor": 0,
            "days_past_due": 0,
        }
        mays_bob = {
            "account_status_code": "78",
            "special_comment_code": "",
            "terms_duration": 1,
            "scheduled_monthly_payment_minor": 30_000,
            "current_balance_minor": 31_245,
            "amount_past_due_minor": 31_245,
            "days_past_due": 83,
        }
        assert _account(may[bob_order["id"]]) == mays_bob

        # In June Bob agrees one too: June's file reports it; May's made later does not (his
        # old instalment is as it stood then, the plan's did not exist): the month-end file.
        env.advance_to_day(date(2027, 6, 5))
        _relieve(env, bob_order["id"], "hardship-bob")
        assert _account(env.jsonl_records("2027-06")[bob_order["id"]]) == {
            "account_status_code": "11",
            "special_comment_code": "AC",
            "terms_duration": 3,
            "scheduled_monthly_payment_minor": 10_440,
            "current_balance_minor": 31_320,
            "amount_past_due_minor": 0,
            "days_past_due": 0,
        }
        assert _account(env.jsonl_records(MAY)[bob_order["id"]]) == mays_bob
        _assert_mays_file_made_today_is(env, month_end_jsonl, month_end_metro2)
        env.assert_ledger_clean()


def _settle_for_less(env: Env, order_id: str, settlement_minor: int, key: str) -> None:
    """The shopper asks for relief, is offered a settlement of ``settlement_minor`` and pays
    it: the rest of the order is forgiven and written off."""
    opened = env.client.post(
        f"/v1/orders/{order_id}/hardship",
        headers={**env.platform, "Idempotency-Key": key},
        json={"reason": "lost my job"},
    )
    assert opened.status_code == 201, opened.text
    request_id = opened.json()["id"]
    offered = env.client.post(
        f"/v1/hardship-requests/{request_id}/decision",
        headers=env.collector,
        json={"decision": "settlement", "settlement_minor": settlement_minor},
    )
    assert offered.status_code == 200, offered.text
    paid = env.client.post(
        f"/v1/hardship-requests/{request_id}/settlement-payment",
        headers={**env.platform, "Idempotency-Key": f"{key}-paid"},
        json={"amount_minor": settlement_minor, "method": "alipay"},
    )
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "settled"


def test_a_settlement_forgiven_after_the_month_does_not_change_its_file(
    database_url: str, tmp_path: Path
) -> None:
    with open_env(database_url, tmp_path) as env:
        _, _, _, spread = _ann_and_bob(env, bobs_plan="instalments_3")
        env.advance_to_day(date(2027, 6, 1))
        month_end_jsonl = env.month_end_file(MAY, "jsonl")
        month_end_metro2 = env.month_end_file(MAY, "metro2")
        # Bob's first two instalments late at May's end, the third (due 2 June) not yet due.
        mays_bob = {
            "account_status_code": "71",
            "special_comment_code": "",
            "terms_duration": 3,
            "scheduled_monthly_payment_minor": 10_150,
            "current_balance_minor": 30_890,
            "amount_past_due_minor": 20_740,
            "days_past_due": 59,
        }
        assert _account(jsonl_records(month_end_jsonl)[spread["id"]]) == mays_bob

        # On 5 June Bob settles for 20,000: it pays the first instalment, the rest of the second
        # and third is forgiven.
        env.advance_to_day(date(2027, 6, 5))
        _settle_for_less(env, spread["id"], 20_000, "settle-bob")
        assert [row["status"] for row in _instalments(env, spread["id"])] == [
            "paid",
            "forgiven",
            "forgiven",
        ]
        # June's file reports it: paid for less (13, AU), nothing owed.
        assert _account(env.jsonl_records("2027-06")[spread["id"]]) == {
            "account_status_code": "13",
            "special_comment_code": "AU",
            "terms_duration": 3,
            "scheduled_monthly_payment_minor": 10_150,
            "current_balance_minor": 0,
            "amount_past_due_minor": 0,
            "days_past_due": 64,
        }
        # May's made later does not: the month-end file, byte for byte.
        assert _account(env.jsonl_records(MAY)[spread["id"]]) == mays_bob
        _assert_mays_file_made_today_is(env, month_end_jsonl, month_end_metro2)
        env.assert_ledger_clean()


JUNE = "2027-06"


def test_a_broken_plans_late_fees_after_the_month_do_not_change_its_file(
    database_url: str, tmp_path: Path
) -> None:
    with open_env(database_url, tmp_path) as env:
        ann = env.enrol()
        order = env.buy(ann["id"])
        # On 10 May Ann, 62 days late, agrees a three-month plan: the 30,000 and the late fees
        # charged by then move to instalments due 10 June, 10 July and 10 August.
        env.advance_to_day(date(2027, 5, 10))
        _relieve(env, order["id"], "hardship-ann")
        plan = [row for row in _instalments(env, order["id"]) if row["status"] == "pending"]
        assert [(row["seq"], row["due_on"]) for row in plan] == [
            (2, "2027-06-10"),
            (3, "2027-07-10"),
            (4, "2027-08-10"),
        ]
        carried_minor = [row["late_fees_minor"] for row in plan]
        assert carried_minor == [310, 310, 310]

        # She misses June's payment: the plan ends broken on 25 June and the June instalment
        # runs up late fees from then. June's month-end file: the June instalment past due, the
        # July and August ones (with the late fees the plan carried onto them) not yet due.
        env.advance_to_day(date(2027, 7, 1))
        month_end_jsonl = env.month_end_file(JUNE, "jsonl")
        month_end_metro2 = env.month_end_file(JUNE, "metro2")
        junes = {
            "account_status_code": "11",
            "special_comment_code": "",
            "terms_duration": 3,
            "scheduled_monthly_payment_minor": 10_310,
            # 25 to 30 June: 5 bps a day of the June instalment's 10,000 principal.
            "current_balance_minor": 30_930 + 6 * 5,
            "amount_past_due_minor": 10_310 + 6 * 5,
            "days_past_due": 20,
        }
        assert _account(jsonl_records(month_end_jsonl)[order["id"]]) == junes

        # In July the July instalment falls due and runs up late fees of its own.
        env.advance_to_day(date(2027, 7, 20))
        july_row = _instalments(env, order["id"])[2]
        assert (july_row["status"], july_row["late_fees_minor"]) == ("overdue", 310 + 10 * 5)
        _assert_mays_file_made_today_is(env, month_end_jsonl, month_end_metro2, period=JUNE)

        # An operator waives all the unpaid late fees, the August instalment's carried ones too.
        _waive_late_fees(env, order["id"], None)
        assert [row["late_fees_minor"] for row in _instalments(env, order["id"])[1:]] == [0, 0, 0]
        _assert_mays_file_made_today_is(env, month_end_jsonl, month_end_metro2, period=JUNE)
        # July's file (the month so far) reports today's book: nothing but principal owed.
        assert _account(env.jsonl_records("2027-07")[order["id"]]) == {
            **junes,
            "account_status_code": "71",
            "current_balance_minor": 30_000,
            "amount_past_due_minor": 20_000,
            "days_past_due": 40,
        }
        env.assert_ledger_clean()


def test_a_dispute_closed_after_the_month_does_not_change_its_file(
    database_url: str, tmp_path: Path
) -> None:
    with open_env(database_url, tmp_path) as env:
        ann = env.enrol()
        single = env.buy(ann["id"])
        # Ann disputes her order on 28 May (its payment 80 days late): May's file reports it
        # disputed, the three days since then paused.
        env.advance_to_day(date(2027, 5, 28))
        dispute_id = _open_dispute(env, single["id"])
        env.advance_to_day(date(2027, 6, 1))
        month_end_jsonl = env.month_end_file(MAY, "jsonl")
        month_end_metro2 = env.month_end_file(MAY, "metro2")
        mays = jsonl_records(month_end_jsonl)[single["id"]]
        assert (mays["is_disputed"], mays["compliance_condition_code"]) == (True, "XB")
        assert mays["days_past_due"] == 83 - 3

        # On 2 June (before the merchant's deadline to respond) the dispute is decided for the
        # merchant: June's file reports it resolved (XH) and dunning resumed, five days paused;
        # May's made later still reports it open.
        env.advance_to_day(date(2027, 6, 2))
        resolved = env.client.post(
            f"/v1/disputes/{dispute_id}/resolve",
            headers=env.admin,
            json={"outcome": "for_merchant", "note": "Delivered as described."},
        )
        assert resolved.status_code == 200, resolved.text
        env.advance_to_day(date(2027, 6, 10))
        junes = env.jsonl_records("2027-06")[single["id"]]
        assert (junes["is_disputed"], junes["compliance_condition_code"]) == (False, "XH")
        assert junes["days_past_due"] == 93 - 5
        _assert_mays_file_made_today_is(env, month_end_jsonl, month_end_metro2)
        env.assert_ledger_clean()


def test_a_payment_reversed_after_the_month_does_not_change_its_file(
    database_url: str, tmp_path: Path
) -> None:
    with open_rail_env(database_url, tmp_path) as rail_env:
        env = rail_env.env
        bob = env.enrol()
        spread = env.buy(bob["id"], plan="instalments_3")
        # Bob pays all but 1 of his first instalment (due 2 April) on 20 April and sets up
        # auto-debit: its charge on 2 May (the day the order reaches the bureau) pays the rest
        # of the first, settling it, then part of the second.
        env.advance_to_day(date(2027, 4, 20))
        first = _instalments(env, spread["id"])[0]
        env.pay(bob["id"], int(first["amount_minor"]) - int(first["paid_minor"]) - 1, spread["id"])
        rail_env.mandate(bob["id"])
        rail_env.rail.rail.state.business_on = date(2027, 5, 2)
        rail_env.force("succeed")
        env.advance_to_day(date(2027, 5, 2), hour=10, minute=1)
        rail_env.send_charges()
        [charge] = rail_env.charges(spread["id"])
        assert charge["status"] == "succeeded"
        statuses = [row["status"] for row in _instalments(env, spread["id"])]
        assert statuses == ["paid", "pending", "pending"]
        env.advance_to_day(date(2027, 6, 1))
        month_end_jsonl = env.month_end_file(MAY, "jsonl")
        month_end_metro2 = env.month_end_file(MAY, "metro2")
        # The first instalment settled on 2 May, 1 of the second late at May's end.
        assert _account(jsonl_records(month_end_jsonl)[spread["id"]]) == {
            "account_status_code": "11",
            "special_comment_code": "",
            "terms_duration": 3,
            "scheduled_monthly_payment_minor": 10_150,
            "current_balance_minor": 10_151,
            "amount_past_due_minor": 1,
            "days_past_due": 29,
        }

        # On 5 June Bob's bank takes the money back: the second instalment owes it again.
        env.advance_to_day(date(2027, 6, 5), hour=11)
        rail_env.rail.rail.reverse(charge["provider_charge_id"], None)
        statuses = [row["status"] for row in _instalments(env, spread["id"])]
        assert statuses == ["overdue", "overdue", "overdue"]
        # June's file reports it: the first instalment 64 days late again, and no payment in
        # June (the reversal undoes May's).
        junes = env.jsonl_records("2027-06")[spread["id"]]
        assert (junes["actual_payment_minor"], junes["date_last_payment"]) == (0, "2027-05-02")
        assert _account(junes) == {
            "account_status_code": "78",
            "special_comment_code": "",
            "terms_duration": 3,
            "scheduled_monthly_payment_minor": 10_150,
            "current_balance_minor": 20_316,
            "amount_past_due_minor": 20_316,
            "days_past_due": 64,
        }
        _assert_mays_file_made_today_is(env, month_end_jsonl, month_end_metro2)
        env.assert_ledger_clean()
