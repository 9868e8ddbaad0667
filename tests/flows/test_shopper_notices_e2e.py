"""Notices planned from their cause (issue 18), on SQLite and PostgreSQL over the HTTP API with
the sandbox clock: an approved order's agreement (schedule, total cost, annualised rate), the
receipt of a payment the platform reported, every change of the credit limit (raised, frozen,
available again) and the hardship decisions besides a plan (a settlement offered, a refusal).
Each is a webhook event with the shopper set and a push, SMS and e-mail in the shopper's
language under the contact policy. The worker's planner runs as ``usefirst worker`` would; the
deliverer sends as the sandbox clock moves."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from tests.collections.dunning_env import Env, open_env
from usefirst.credit.service import CREDIT_CHANGE_TOPIC
from usefirst.flows import shopper_notices
from usefirst.notify.service import NOTICE_TOPIC

HOW_TO_PAY = "在商城 App 的“先用后付”页面还款 / pay in the marketplace app"
TODAY = date(2027, 3, 2)  # the sandbox clock's start day, 12:00 in Shanghai
# Room for every notice on a day, so that these tests see each one go out (the daily cap's hold
# on notices is tested in tests/rails/test_money_notices_e2e.py).
ROOMY = {"max_contacts_per_day": 20}


def plan(env: Env) -> None:
    """What the worker does with the planner's messages: events published, notices planned."""
    env.runtime.deliver_outbox(topics=(NOTICE_TOPIC, CREDIT_CHANGE_TOPIC))


def told(env: Env, shopper_id: str, template: str) -> list[tuple[str, str, Any]]:
    return sorted(
        (c["channel"], c["status"], c["status_reason"])
        for c in env.contacts(shopper_id)
        if c["template"] == template
    )


def pushed(env: Env, template: str) -> list[str]:
    return [p["data"]["text"] for p in env.push_events() if p["data"]["template"] == template]


def data_of(events: list[dict[str, Any]], shopper_id: str) -> list[dict[str, Any]]:
    return [event["data"] for event in events if event["data"]["shopper_id"] == shopper_id]


def test_agreement_receipt_and_limit_raised_in_chinese(database_url: str, tmp_path: Path) -> None:
    with open_env(database_url, tmp_path, **ROOMY) as env:
        shopper = env.enrol(email="zhang@example.com")
        order = env.buy(shopper["id"], 30_000, plan="instalments_3")
        plan(env)

        # The agreement, from the checkout's order.approved event.
        [terms] = data_of(env.events("order.terms_disclosed"), shopper["id"])
        assert terms == {
            "order_id": order["id"],
            "shopper_id": shopper["id"],
            "plan": "instalments_3",
            "currency": "CNY",
            "principal_minor": 30_000,
            "fees_minor": 450,
            "total_cost_minor": 30_450,
            "apr_bps": 898,
            "schedule": [
                {"amount_minor": 10_150, "months_after_delivery": 1},
                {"amount_minor": 10_150, "months_after_delivery": 2},
                {"amount_minor": 10_150, "months_after_delivery": 3},
            ],
        }
        # A checkout that does not change the limit announces no change.
        assert data_of(env.events("credit.limit_changed"), shopper["id"]) == []
        env.advance(seconds=60)
        assert told(env, shopper["id"], "order_terms") == [
            ("email", "suppressed", "email_not_configured"),
            ("push", "sent", None),
            ("sms", "sent", None),
        ]
        assert pushed(env, "order_terms") == [
            f"张*您好，您在Test Shop的先用后付订单{order['id']}已批准：本金¥300.00，费用¥4.50，"
            "应还总额¥304.50，年化利率8.98%。还款计划：第1期¥101.50（收货后1个月）；"
            "第2期¥101.50（收货后2个月）；第3期¥101.50（收货后3个月）。"
        ]
        assert env.sms_lines()[-1]["text"] == (
            "张*您好，您在Test Shop的先用后付订单已批准：本金¥300.00，费用¥4.50，"
            "应还总额¥304.50，年化利率8.98%。还款计划详见App。"
        )
        assert {
            (c["order_id"], c["seq"], c["step"])
            for c in env.contacts(shopper["id"])
            if c["template"] == "order_terms"
        } == {(order["id"], 0, "account_notice")}

        # The platform reports the whole order paid, a month early: a receipt, and the on-time
        # repayment raises the limit.
        payment = env.pay(shopper["id"], 30_450, order["id"])
        plan(env)
        [received] = data_of(env.events("payment.received"), shopper["id"])
        assert received["payment_id"] == payment["id"]
        assert (received["provider"], received["charge_id"], received["method"]) == (
            None,
            None,
            "alipay",
        )
        assert received["orders"] == [
            {"order_id": order["id"], "paid_minor": 30_450, "left_minor": 0}
        ]
        [changed] = data_of(env.events("credit.limit_changed"), shopper["id"])
        assert {key: value for key, value in changed.items() if key != "change_id"} == {
            "shopper_id": shopper["id"],
            "kind": "raised",
            "previous_limit_minor": 100_000,
            "new_limit_minor": 120_000,
            "currency": "CNY",
            "previous_status": "active",
            "new_status": "active",
            "reason_code": "on_time_repayment",
            "reason": "Limit raised after 1 order(s) repaid on time.",
            "order_id": order["id"],
            "changed_at": "2027-03-02T04:01:00+00:00",
        }
        assert env.credit(shopper["id"])["limit_minor"] == 120_000
        env.advance(seconds=60)
        assert pushed(env, "payment_received") == [
            f"张*您好，我们已收到您对Test Shop订单{order['id']}的还款¥304.50，该订单剩余应还¥0.00。"
        ]
        assert pushed(env, "credit_limit_raised") == [
            "张*您好，您的先用后付额度已由¥1,000.00提升至¥1,200.00。原因：您按时还清了订单。"
        ]
        [limit_attempt] = [
            c
            for c in env.contacts(shopper["id"])
            if c["template"] == "credit_limit_raised" and c["channel"] == "sms"
        ]
        assert (limit_attempt["order_id"], limit_attempt["status"]) == (None, "sent")

        # A planner message delivered again (a worker that died before recording it) tells
        # nothing twice.
        before = len(env.contacts(shopper["id"]))
        with env.runtime.work() as work:
            for event in env.events("order.approved") + env.events("payment.received"):
                shopper_notices.plan_from_event(
                    work.session, event_id=event["id"], settings=env.runtime.settings, now=work.now
                )
        assert len(env.contacts(shopper["id"])) == before
        assert len(data_of(env.events("order.terms_disclosed"), shopper["id"])) == 1


def test_limit_frozen_and_available_again_in_english_with_receipt(
    database_url: str, tmp_path: Path
) -> None:
    with open_env(database_url, tmp_path, **ROOMY) as env:
        shopper = env.enrol(language="en", name="Li Lei")
        order = env.buy(shopper["id"], 15_000)
        plan(env)
        [terms] = data_of(env.events("order.terms_disclosed"), shopper["id"])
        assert (terms["total_cost_minor"], terms["apr_bps"], terms["schedule"]) == (
            15_000,
            0,
            [{"amount_minor": 15_000, "days_after_delivery": 7}],
        )
        env.advance(seconds=60)
        assert pushed(env, "order_terms") == [
            f"Hi L*****, your pay-later order {order['id']} at Test Shop is approved: ¥150.00 "
            "plus ¥0.00 in fees, ¥150.00 in all, annual rate 0.00%. Schedule: ¥150.00 within 7 "
            "days of delivery."
        ]

        # Unpaid after its due date (03-09): the night's sweep freezes the line.
        env.advance_to_day(TODAY + timedelta(days=8), hour=9)
        plan(env)
        [frozen] = data_of(env.events("credit.limit_changed"), shopper["id"])
        assert (
            frozen["kind"],
            frozen["previous_limit_minor"],
            frozen["new_limit_minor"],
            frozen["previous_status"],
            frozen["new_status"],
            frozen["reason_code"],
            frozen["order_id"],
        ) == ("frozen", 100_000, 100_000, "active", "frozen", "frozen_overdue", None)
        env.advance(seconds=60)
        assert told(env, shopper["id"], "credit_frozen") == [
            ("email", "suppressed", "no_verified_email"),
            ("push", "sent", None),
            ("sms", "sent", None),
        ]
        assert pushed(env, "credit_frozen") == [
            "Hi L*****, your pay-later limit (¥1,000.00) is on hold: it cannot be used for new "
            "orders for now. Why: a payment is overdue; paying it lifts the hold."
        ]

        # Paid (a day's late fee included): the line is available again, and a receipt.
        env.pay(shopper["id"], 15_000 + 8, order["id"])
        plan(env)
        frozen_then_unfrozen = data_of(env.events("credit.limit_changed"), shopper["id"])
        assert [(e["kind"], e["reason_code"]) for e in frozen_then_unfrozen] == [
            ("frozen", "frozen_overdue"),
            ("unfrozen", "overdue_cleared"),
        ]
        [received] = data_of(env.events("payment.received"), shopper["id"])
        assert received["orders"] == [
            {"order_id": order["id"], "paid_minor": 15_008, "left_minor": 0}
        ]
        sms_before = len(env.sms_lines())
        env.advance(seconds=60)
        assert sorted(line["text"] for line in env.sms_lines()[sms_before:]) == [
            "Hi L*****, we received your payment of ¥150.08 for your Test Shop pay-later bill. "
            "Left to pay: ¥0.00.",
            "Hi L*****, your pay-later limit (¥1,000.00) can be used again. Why: the overdue "
            "payment was made.",
        ]
        # Repaid late: the limit does not grow, so no change is announced for it.
        assert env.credit(shopper["id"])["limit_minor"] == 100_000


def test_a_settlement_offer_and_a_refusal_are_told(database_url: str, tmp_path: Path) -> None:
    with open_env(database_url, tmp_path, **ROOMY) as env:
        offered_to = env.enrol()
        declined_to = env.enrol(language="en", name="Li Lei")
        decisions = []
        for shopper, body in (
            (offered_to, {"decision": "settlement", "settlement_minor": 20_000}),
            (declined_to, {"decision": "declined", "note": "income covers the instalment"}),
        ):
            order = env.buy(shopper["id"], 30_000)
            opened = env.client.post(
                f"/v1/orders/{order['id']}/hardship",
                headers=env.platform,
                json={"reason": "lost my job in March"},
            )
            assert opened.status_code == 201, opened.text
            decided = env.client.post(
                f"/v1/hardship-requests/{opened.json()['id']}/decision",
                headers=env.collector,
                json=body,
            )
            assert decided.status_code == 200, decided.text
            decisions.append((order, decided.json()))
        [(offered_order, offer), (declined_order, refusal)] = decisions
        assert (offer["status"], offer["settlement_valid_until_on"]) == ("offered", "2027-04-01")
        assert refusal["status"] == "declined"
        [decided_offer, decided_refusal] = env.events("hardship.decided")
        assert decided_offer["data"]["shopper_id"] == offered_to["id"]
        assert decided_refusal["data"]["shopper_id"] == declined_to["id"]
        env.advance(seconds=60)
        assert told(env, offered_to["id"], "hardship_settlement_offered") == [
            ("email", "suppressed", "no_verified_email"),
            ("push", "sent", None),
            ("sms", "sent", None),
        ]
        assert pushed(env, "hardship_settlement_offered") == [
            f"张*您好，您在Test Shop的订单{offered_order['id']}的困难申请已处理：如在2027年4月1日前"
            f"还款¥200.00，该订单即结清，余下欠款予以免除。还款方式：{HOW_TO_PAY}。"
        ]
        assert pushed(env, "hardship_declined") == [
            f"Hi L*****, we are sorry: your hardship request for Test Shop order "
            f"{declined_order['id']} was not approved. Your agreement applies again: ¥300.00 due "
            f"on 9 March 2027. How to pay: {HOW_TO_PAY}"
        ]
        assert told(env, declined_to["id"], "hardship_declined") == [
            ("email", "suppressed", "no_verified_email"),
            ("push", "sent", None),
            ("sms", "sent", None),
        ]

        # The settlement paid: a receipt, the rest being forgiven, says nothing is left.
        paid = env.client.post(
            f"/v1/hardship-requests/{offer['id']}/settlement-payment",
            headers=env.platform,
            json={"amount_minor": 20_000, "method": "wechat"},
        )
        assert paid.status_code == 200, paid.text
        plan(env)
        [received] = data_of(env.events("payment.received"), offered_to["id"])
        assert received["orders"] == [
            {"order_id": offered_order["id"], "paid_minor": 20_000, "left_minor": 0}
        ]
        env.advance(seconds=60)
        assert pushed(env, "payment_received") == [
            f"张*您好，我们已收到您对Test Shop订单{offered_order['id']}的还款¥200.00，"
            "该订单剩余应还¥0.00。"
        ]
