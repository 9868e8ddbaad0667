"""The shopper's options end to end on SQLite and PostgreSQL: a payoff quote and an early payoff
that closes the order exactly (unearned plan fee rebated); a due-date extension, once per order,
before past due, that reminders, overdue and auto-debit follow; an overpayment refunded through
the provider or the platform, after which erasure works. Each ends with the ledger audit
balanced."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from tests.collections.dunning_env import balance
from tests.factories import bearer
from tests.rails.rail_env import open_rail_env
from usefirst.identity.service import create_operator

DELIVERED_ON = date(2027, 3, 2)
DUE_ON = date(2027, 3, 9)


def test_payoff_quote_and_early_payoff_close_the_order_exactly(
    database_url: str, tmp_path: Path
) -> None:
    with open_rail_env(database_url, tmp_path) as rail_env:
        env = rail_env.env
        shopper = env.enrol()
        order = env.buy(shopper["id"], 60_000, plan="instalments_3")
        fees = [row["fees_minor"] for row in order["instalments"]]
        assert all(fee > 0 for fee in fees)
        fee_income_before = balance(env.account_balances(), "instalment_fee_income")
        # After the first instalment fell due (and was paid), pay the rest off early.
        first_due = date.fromisoformat(order["instalments"][0]["due_on"])
        env.advance_to_day(first_due, hour=12)
        first = order["instalments"][0]
        env.pay(shopper["id"], first["amount_minor"], order["id"])
        quote = env.client.get(f"/v1/orders/{order['id']}/payoff-quote", headers=env.platform)
        assert quote.status_code == 200, quote.text
        body = quote.json()
        principal_left = sum(row["principal_minor"] for row in order["instalments"][1:])
        assert body == {
            "order_id": order["id"],
            "currency": "CNY",
            "principal_minor": principal_left,
            "late_fees_minor": 0,
            "plan_fees_earned_minor": 0,
            "plan_fees_rebated_minor": fees[1] + fees[2],
            "payoff_minor": principal_left,
            "valid_on": first_due.isoformat(),
        }
        wrong = env.client.post(
            f"/v1/orders/{order['id']}/payoff",
            headers=env.platform,
            json={"amount_minor": principal_left + 1, "method": "alipay"},
        )
        assert wrong.status_code == 409
        assert wrong.json()["error"]["code"] == "payoff_amount_mismatch"
        paid = env.client.post(
            f"/v1/orders/{order['id']}/payoff",
            headers={**env.platform, "Idempotency-Key": "payoff-1"},
            json={"amount_minor": principal_left, "method": "alipay"},
        )
        assert paid.status_code == 200, paid.text
        assert paid.json()["plan_fees_rebated_minor"] == fees[1] + fees[2]
        assert paid.json()["order_status"] == "repaid"
        closed = env.order(order["id"])
        assert closed["status"] == "repaid"
        assert all(row["status"] == "paid" for row in closed["instalments"])
        balances = env.account_balances()
        assert balance(balances, "shopper_receivable", shopper["id"]) == 0
        assert balance(balances, "shopper_unapplied_credit", shopper["id"]) == 0
        assert balance(balances, "instalment_fee_income") == fee_income_before + fees[1] + fees[2]
        gone = env.client.get(f"/v1/orders/{order['id']}/payoff-quote", headers=env.platform)
        assert gone.status_code == 409
        env.assert_ledger_clean()


def test_extension_moves_the_due_date_once_and_overdue_follows(
    database_url: str, tmp_path: Path
) -> None:
    with open_rail_env(database_url, tmp_path) as rail_env:
        env = rail_env.env
        shopper = env.enrol()
        rail_env.mandate(shopper["id"])
        order = env.buy(shopper["id"], 15_000)
        too_long = env.client.post(
            f"/v1/orders/{order['id']}/extension",
            headers=env.platform,
            json={"seq": 1, "days": 11},
        )
        assert too_long.status_code == 422
        moved = env.client.post(
            f"/v1/orders/{order['id']}/extension",
            headers=env.platform,
            json={"seq": 1, "days": 10},
        )
        assert moved.status_code == 200, moved.text
        new_due = DUE_ON + timedelta(days=10)
        assert moved.json() == {
            "order_id": order["id"],
            "seq": 1,
            "due_on": new_due.isoformat(),
            "extended_days": 10,
        }
        [extended] = env.events("order.due_date_extended")
        assert extended["data"]["due_on"] == new_due.isoformat()
        again = env.client.post(
            f"/v1/orders/{order['id']}/extension",
            headers=env.platform,
            json={"seq": 1, "days": 1},
        )
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "extension_already_used"
        # The old due date passes: not overdue, not charged.
        env.advance_to_day(DUE_ON + timedelta(days=2), hour=12)
        assert env.order(order["id"])["status"] == "delivered"
        assert rail_env.charges(order["id"]) == []
        # On the new due date the charge is scheduled; the day after, unpaid, it is overdue.
        rail_env.force("decline")
        env.advance_to_day(new_due, hour=10, minute=5)
        rail_env.send_charges()
        [charge] = rail_env.charges(order["id"])
        assert (charge["charge_on"], charge["status"]) == (new_due.isoformat(), "failed")
        env.advance_to_day(new_due + timedelta(days=1), hour=8)
        assert env.order(order["id"])["status"] == "overdue"
        env.assert_ledger_clean()


def test_overpayment_is_refunded_then_erasure_works(database_url: str, tmp_path: Path) -> None:
    with open_rail_env(database_url, tmp_path) as rail_env:
        env = rail_env.env
        with env.runtime.work() as work:
            _, token = create_operator(
                work.session, email="compliance@example.com", role="compliance", now=work.now
            )
        compliance = bearer(token)
        via_platform, via_provider = env.enrol(), env.enrol()
        rail_env.mandate(via_provider["id"])
        first = env.buy(via_platform["id"], 10_000)
        second = env.buy(via_provider["id"], 12_000)
        env.pay(via_platform["id"], 10_000, first["id"])
        env.pay(via_platform["id"], 2_500)  # paid beyond what was owed: held as credit
        held = env.client.post(f"/v1/shoppers/{via_platform['id']}/erasure", headers=compliance)
        assert held.status_code == 409
        assert held.json()["error"]["code"] == "credit_balance_held"
        refunded = env.client.post(
            f"/v1/shoppers/{via_platform['id']}/credit-balance/refund",
            headers={**env.platform, "Idempotency-Key": "refund-1"},
            json={"via": "platform", "external_ref": "bank-transfer-77"},
        )
        assert refunded.status_code == 200, refunded.text
        assert (refunded.json()["refunded_minor"], refunded.json()["via"]) == (2_500, "platform")
        balances = env.account_balances()
        assert balance(balances, "shopper_unapplied_credit", via_platform["id"]) == 0
        nothing = env.client.post(
            f"/v1/shoppers/{via_platform['id']}/credit-balance/refund",
            headers={**env.platform, "Idempotency-Key": "refund-2"},
            json={"via": "platform"},
        )
        assert nothing.status_code == 409
        erased = env.client.post(f"/v1/shoppers/{via_platform['id']}/erasure", headers=compliance)
        assert erased.status_code == 200, erased.text

        # Paid twice: by hand, and by the auto-debit charge already on its way; the charge's
        # money is held, then refunded through the provider against that charge.
        rail_env.rail.rail.config.min_delay_seconds = 1.0
        rail_env.rail.rail.config.max_delay_seconds = 1.2
        rail_env.force("succeed")
        env.advance_to_day(DUE_ON, hour=10, minute=1)
        env.runtime.deliver_outbox(topics=("rails.charge",))
        env.pay(via_provider["id"], 12_000, second["id"])
        rail_env.rail.rail.wait_idle()
        [charge] = rail_env.charges(second["id"])
        assert charge["status"] == "succeeded"
        balances = env.account_balances()
        assert balance(balances, "shopper_unapplied_credit", via_provider["id"]) == -12_000
        refunded = env.client.post(
            f"/v1/shoppers/{via_provider['id']}/credit-balance/refund",
            headers={**env.platform, "Idempotency-Key": "refund-3"},
            json={"via": "provider"},
        )
        assert refunded.status_code == 200, refunded.text
        assert refunded.json()["refunded_minor"] == 12_000
        assert refunded.json()["external_ref"].startswith("sandbox:rf_")
        refunds = env.events("credit_balance.refunded")
        assert [event["data"]["refunded_minor"] for event in refunds] == [2_500, 12_000]
        provider_charge = rail_env.rail.rail.state.charges[charge["provider_charge_id"]]
        assert provider_charge.refunded_minor == 12_000
        erased = env.client.post(f"/v1/shoppers/{via_provider['id']}/erasure", headers=compliance)
        assert erased.status_code == 200, erased.text
        env.assert_ledger_clean()
