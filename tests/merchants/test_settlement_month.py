"""Settlement over a simulated month, to the cent against the ledger: fees, the rolling reserve
and its release, a risk hold, refunds before and after payout (clawback), a fine, a negative
balance carried forward, and a suspension that holds payouts. Every payout is made by the daily
sweep as the sandbox clock moves."""

from __future__ import annotations

from datetime import date
from typing import Any

from tests.factories import bearer
from tests.merchants.settlement_env import Env, open_env
from usefirst.merchants.settlement import hold_order_settlement, release_order_settlement_hold

RESERVE = {"settlement_reserve_bps": 500, "settlement_reserve_days": 7}


def payout(settlement: dict[str, Any]) -> dict[str, Any]:
    keys = ("settled_on", "order_count", "gross_minor", "refunded_minor", "fee_minor",
            "reserve_minor", "reserve_released_minor", "clawback_minor", "fines_minor",
            "net_minor")  # fmt: skip
    return {key: settlement[key] for key in keys}


def expected(
    day: str,
    *,
    orders: int = 0,
    gross: int = 0,
    refunded: int = 0,
    fee: int = 0,
    reserve: int = 0,
    released: int = 0,
    clawback: int = 0,
    fines: int = 0,
    net: int,
) -> dict[str, Any]:
    assert gross - refunded - fee - reserve + released - clawback - fines == net
    return {
        "settled_on": day,
        "order_count": orders,
        "gross_minor": gross,
        "refunded_minor": refunded,
        "fee_minor": fee,
        "reserve_minor": reserve,
        "reserve_released_minor": released,
        "clawback_minor": clawback,
        "fines_minor": fines,
        "net_minor": net,
    }


def hold(env: Env, merchant_id: str, order_id: str, *, release: bool = False) -> None:
    with env.runtime.work() as work:
        if release:
            release_order_settlement_hold(
                work.session,
                merchant_id=merchant_id,
                order_id=order_id,
                source="risk:cas_test",
                now=work.now,
            )
        else:
            hold_order_settlement(
                work.session,
                merchant_id=merchant_id,
                order_id=order_id,
                source="risk:cas_test",
                reason="reused tracking number",
                now=work.now,
            )


def test_a_month_of_settlement_reconciles_to_the_cent(database_url: str) -> None:
    with open_env(database_url, **RESERVE) as env:
        merchant = env.merchant()
        merchant_id = merchant["id"]
        own = bearer(merchant["api_key"])

        # 03-02: three orders delivered; fees 180 + 120 + 0 (60 bps of 1 fen rounds to 0) are
        # taken from the payable at delivery.
        order_a = env.deliver(merchant, 30_000)
        env.deliver(merchant, 20_000)
        order_tiny = env.deliver(merchant, 1)
        assert env.balance(merchant_id, own) == {
            "merchant_id": merchant_id,
            "payable_minor": 50_001 - 300,
            "held_minor": 0,
            "reserve_minor": 0,
            "currency": "CNY",
        }
        assert env.settlements(merchant_id) == []

        # 03-03: paid for 03-02, 5 % reserve withheld. Then a new order is held by risk, the first
        # order is partly refunded after its payout, and another is delivered and refunded
        # before its payout.
        env.advance_to_day(date(2027, 3, 3))
        assert [payout(s) for s in env.settlements(merchant_id)] == [
            expected("2027-03-03", orders=3, gross=50_001, fee=300, reserve=2_500, net=47_201)
        ]
        order_c = env.deliver(merchant, 10_000)
        hold(env, merchant_id, order_c)
        hold(env, merchant_id, order_c)  # idempotent: one hold
        env.refund(merchant, order_a, 5_000)
        order_d = env.deliver(merchant, 8_000)
        env.refund(merchant, order_d, 2_000)
        assert env.balance(merchant_id) == {
            "merchant_id": merchant_id,
            "payable_minor": -5_000 + (10_000 - 60) + (8_000 - 48 - 2_000),
            "held_minor": 10_000 - 60,
            "reserve_minor": 2_500,
            "currency": "CNY",
        }

        # 03-04: order D (net of its refund, 5 % reserve on what it sold) less the clawback of
        # order A's refund; order C stays held. Then a fine, a refund of the 1 fen order (after
        # its payout) and a new order.
        env.advance_to_day(date(2027, 3, 4))
        fined = env.client.post(
            f"/v1/merchants/{merchant_id}/fines",
            headers={**env.admin, "Idempotency-Key": "fine-1"},
            json={
                "amount_minor": 1_000,
                "reason": "shipped to its own address",
                "evidence": ["https://evidence.example/cas_1"],
            },
        )
        assert fined.status_code == 201, fined.text
        env.refund(merchant, order_tiny, 1)
        big = env.deliver(merchant, 20_000)
        assert [payout(s) for s in env.settlements(merchant_id)][1] == expected(
            "2027-03-04", orders=1, gross=8_000, refunded=2_000, fee=48, reserve=300,
            clawback=5_000, net=652,
        )  # fmt: skip

        env.advance_to_day(date(2027, 3, 5))
        assert [payout(s) for s in env.settlements(merchant_id)][2] == expected(
            "2027-03-05", orders=1, gross=20_000, fee=120, reserve=1_000, clawback=1,
            fines=1_000, net=17_879,
        )  # fmt: skip
        # The order just paid is refunded in full: more than anything due tomorrow.
        env.refund(merchant, big, 20_000)

        # 03-06: nothing new to sell, 20 000 to claw back: no payout, the negative balance
        # carries forward.
        env.advance_to_day(date(2027, 3, 6))
        assert len(env.settlements(merchant_id)) == 3
        assert env.balance(merchant_id) == {
            "merchant_id": merchant_id,
            "payable_minor": (10_000 - 60) - 20_000,
            "held_minor": 10_000 - 60,
            "reserve_minor": 2_500 + 300 + 1_000,
            "currency": "CNY",
        }
        env.deliver(merchant, 40_000)

        # 03-07: the new sale covers the carried clawback.
        env.advance_to_day(date(2027, 3, 7))
        assert [payout(s) for s in env.settlements(merchant_id)][3] == expected(
            "2027-03-07", orders=1, gross=40_000, fee=240, reserve=2_000, clawback=20_000,
            net=17_760,
        )  # fmt: skip
        hold(env, merchant_id, order_c, release=True)

        # 03-08: the released order is paid.
        env.advance_to_day(date(2027, 3, 8))
        assert [payout(s) for s in env.settlements(merchant_id)][4] == expected(
            "2027-03-08", orders=1, gross=10_000, fee=60, reserve=500, net=9_440
        )
        suspended = env.client.post(
            f"/v1/merchants/{merchant_id}/standing",
            headers=env.analyst,
            json={
                "status": "suspended",
                "reason": "cash-out ring under investigation",
                "evidence": ["https://console.example/cases/cas_9"],
            },
        )
        assert suspended.status_code == 201, suspended.text
        blocked = env.checkout(merchant, 5_000)
        assert blocked["decision"]["outcome"] == "declined"
        assert [r["code"] for r in blocked["decision"]["reasons"]] == ["merchant_not_accepting"]

        # 03-10 would release the 03-03 reserve: a suspended merchant keeps its reserve and is
        # not paid.
        env.advance_to_day(date(2027, 3, 15))
        assert len(env.settlements(merchant_id)) == 5
        balance = env.balance(merchant_id)
        assert balance["reserve_minor"] == 2_500 + 300 + 1_000 + 2_000 + 500
        reinstated = env.client.post(
            f"/v1/merchants/{merchant_id}/standing",
            headers=env.admin,
            json={"status": "active", "reason": "investigation cleared the merchant"},
        )
        assert reinstated.status_code == 201, reinstated.text

        # 03-16: every reserve whose day came is released and paid out.
        env.advance_to_day(date(2027, 3, 16))
        assert [payout(s) for s in env.settlements(merchant_id)][5] == expected(
            "2027-03-16", released=2_500 + 300 + 1_000 + 2_000 + 500, net=6_300
        )
        env.advance_to_day(date(2027, 3, 31))
        settlements = env.settlements(merchant_id)
        assert len(settlements) == 6
        assert env.balance(merchant_id) == {
            "merchant_id": merchant_id,
            "payable_minor": 0,
            "held_minor": 0,
            "reserve_minor": 0,
            "currency": "CNY",
        }
        paid = sum(s["net_minor"] for s in settlements)
        assert paid == 47_201 + 652 + 17_879 + 17_760 + 9_440 + 6_300
        balances = env.account_balances()
        assert balances.get(f"merchant_payable:{merchant_id}:CNY", 0) == 0
        assert balances.get(f"merchant_reserve:{merchant_id}:CNY", 0) == 0
        assert balances["merchant_penalty_income::CNY"] == -1_000
        assert balances["merchant_fee_income::CNY"] == -(300 + 48 + 120 + 240 + 60)
        # What shoppers owe for this merchant's sales, less its refunds, went out as payouts,
        # fees and the fine.
        sold = 50_001 + 10_000 + 8_000 + 20_000 + 40_000
        refunds = 5_000 + 2_000 + 1 + 20_000
        assert paid + (300 + 48 + 120 + 240 + 60) + 1_000 == sold - refunds
        assert len(env.events("settlement.paid")) == 6
        env.assert_reconciled(merchant_id)
