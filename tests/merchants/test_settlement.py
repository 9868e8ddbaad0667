"""Settlement details: holds from several sources, clawbacks, idempotency per business date, the
statement lines of a payout, paging, and who may read a merchant's money."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select, text

from tests.factories import bearer
from tests.merchants.settlement_env import Env, open_env
from usefirst.flows.merchant_clawbacks import claw_back, claw_back_paid_order
from usefirst.flows.settlement_run import settle
from usefirst.identity.service import create_operator
from usefirst.kit.errors import NotFound, ValidationFailed
from usefirst.ledger.models import JournalEntry
from usefirst.merchants.models import Settlement, SettlementHold, SettlementLine
from usefirst.merchants.settlement import hold_order_settlement, release_order_settlement_hold


def hold(env: Env, merchant_id: str, order_id: str, source: str) -> None:
    with env.runtime.work() as work:
        hold_order_settlement(
            work.session,
            merchant_id=merchant_id,
            order_id=order_id,
            source=source,
            reason=f"held by {source}",
            now=work.now,
        )


def release(env: Env, merchant_id: str, order_id: str, source: str) -> None:
    with env.runtime.work() as work:
        release_order_settlement_hold(
            work.session, merchant_id=merchant_id, order_id=order_id, source=source, now=work.now
        )


def row_counts(env: Env) -> tuple[int, int, int, int]:
    with env.runtime.work(read_only=True) as work:
        return tuple(  # type: ignore[return-value]
            int(work.session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Settlement, SettlementLine, SettlementHold, JournalEntry)
        )


def test_an_order_is_paid_only_when_every_hold_on_it_is_released(database_url: str) -> None:
    with open_env(database_url) as env:
        merchant = env.merchant()
        merchant_id = merchant["id"]
        held = env.deliver(merchant, 10_000)
        env.deliver(merchant, 5_000)
        hold(env, merchant_id, held, "risk:cas_1")
        hold(env, merchant_id, held, "dispute:dsp_1")
        hold(env, merchant_id, held, "dispute:dsp_1")
        assert row_counts(env)[2] == 2

        env.advance_to_day(date(2027, 3, 3))
        [first] = env.settlements(merchant_id)
        assert (first["order_count"], first["gross_minor"], first["net_minor"]) == (
            1,
            5_000,
            5_000 - 30,
        )
        assert env.balance(merchant_id)["held_minor"] == 10_000 - 60

        release(env, merchant_id, held, "risk:cas_1")
        release(env, merchant_id, held, "risk:cas_1")  # idempotent
        env.advance_to_day(date(2027, 3, 4))
        assert len(env.settlements(merchant_id)) == 1  # the dispute still holds it
        assert env.balance(merchant_id)["held_minor"] == 10_000 - 60

        release(env, merchant_id, held, "dispute:dsp_1")
        env.advance_to_day(date(2027, 3, 5))
        second = env.settlements(merchant_id)[1]
        assert (second["settled_on"], second["gross_minor"], second["net_minor"]) == (
            "2027-03-05",
            10_000,
            10_000 - 60,
        )
        assert env.balance(merchant_id) == {
            "merchant_id": merchant_id,
            "payable_minor": 0,
            "held_minor": 0,
            "reserve_minor": 0,
            "currency": "CNY",
        }
        env.assert_reconciled(merchant_id)


def test_holding_someone_elses_order_is_refused_and_stores_nothing(database_url: str) -> None:
    with open_env(database_url) as env:
        merchant_a, merchant_b = env.merchant(), env.merchant()
        order_id = env.deliver(merchant_a, 10_000)
        before = row_counts(env)
        with pytest.raises(NotFound):
            hold(env, merchant_b["id"], order_id, "risk:cas_1")
        with pytest.raises(ValidationFailed):
            hold(env, merchant_a["id"], order_id, " ")
        assert row_counts(env) == before


def test_a_clawback_after_payout_is_netted_and_a_negative_balance_carries_forward(
    database_url: str,
) -> None:
    with open_env(database_url) as env:
        merchant = env.merchant()
        merchant_id = merchant["id"]
        order_id = env.deliver(merchant, 10_000)
        env.advance_to_day(date(2027, 3, 3))
        assert env.settlements(merchant_id)[0]["net_minor"] == 9_940

        before = row_counts(env)
        with env.runtime.work() as work, pytest.raises(ValidationFailed):
            claw_back(
                work.session,
                merchant_id=merchant_id,
                order_id=order_id,
                amount_minor=0,
                currency="CNY",
                reason="dispute dsp_1 decided for the shopper",
                now=work.now,
            )
        assert row_counts(env) == before
        with env.runtime.work() as work:
            entry_id = claw_back(
                work.session,
                merchant_id=merchant_id,
                order_id=order_id,
                amount_minor=12_000,
                currency="CNY",
                reason="dispute dsp_1 decided for the shopper",
                now=work.now,
            )
        assert entry_id.startswith("je_")
        assert env.balance(merchant_id)["payable_minor"] == -12_000
        assert env.account_balances()["merchant_recoveries::CNY"] == -12_000

        env.advance_to_day(date(2027, 3, 4))
        assert len(env.settlements(merchant_id)) == 1  # nothing to pay: carried forward
        env.deliver(merchant, 5_000)
        env.advance_to_day(date(2027, 3, 5))
        assert len(env.settlements(merchant_id)) == 1  # 5 000 - 30 still short of 12 000
        assert env.balance(merchant_id)["payable_minor"] == -12_000 + 4_970
        env.deliver(merchant, 20_000)
        env.advance_to_day(date(2027, 3, 6))
        latest = env.settlements(merchant_id)[-1]
        assert {k: latest[k] for k in ("gross_minor", "fee_minor", "clawback_minor")} == {
            "gross_minor": 25_000,
            "fee_minor": 150,
            "clawback_minor": 12_000,
        }
        assert latest["net_minor"] == 25_000 - 150 - 12_000
        assert env.balance(merchant_id)["payable_minor"] == 0
        env.assert_reconciled(merchant_id)


def test_settling_a_date_twice_changes_nothing(database_url: str) -> None:
    with open_env(database_url) as env:
        merchant = env.merchant()
        env.deliver(merchant, 10_000)
        env.advance_to_day(date(2027, 3, 3))
        before = row_counts(env)
        assert before[0] == 1
        with env.runtime.work() as work:
            summary = settle(
                work.session,
                business_on=date(2027, 3, 3),
                settings=env.runtime.settings,
                now=work.now,
            )
        assert (summary.paid, summary.already_settled) == (0, 1)
        assert row_counts(env) == before
        assert len(env.events("settlement.paid")) == 1


def test_settlement_detail_lists_its_ledger_entries_and_pages(database_url: str) -> None:
    with open_env(database_url, settlement_reserve_bps=1_000) as env:
        merchant = env.merchant()
        merchant_id = merchant["id"]
        order_id = env.deliver(merchant, 10_000)
        env.advance_to_day(date(2027, 3, 3))
        env.deliver(merchant, 3_000)
        env.advance_to_day(date(2027, 3, 4))
        newest, oldest = env.client.get(
            f"/v1/merchants/{merchant_id}/settlements", headers=env.platform
        ).json()["data"]
        detail = env.client.get(
            f"/v1/merchants/{merchant_id}/settlements/{oldest['id']}",
            headers=bearer(merchant["api_key"]),
        ).json()
        lines = [
            (line["component"], line["order_id"], line["amount_minor"]) for line in detail["lines"]
        ]
        assert sorted(lines, key=lambda line: line[0]) == [
            ("fee", order_id, -60),
            ("payout", None, -8_940),
            ("reserve", None, -1_000),
            ("sale", order_id, 10_000),
        ]
        assert detail["net_minor"] == 8_940
        assert detail["reserve_release_on"] == "2027-05-02"  # 60 days by default
        page_one = env.client.get(
            f"/v1/merchants/{merchant_id}/settlements",
            headers=env.platform,
            params={"limit": 1},
        ).json()
        assert page_one["has_more"] is True
        assert [s["id"] for s in page_one["data"]] == [newest["id"]]
        page_two = env.client.get(
            f"/v1/merchants/{merchant_id}/settlements",
            headers=env.platform,
            params={"limit": 1, "starting_after": newest["id"]},
        ).json()
        assert page_two == {"data": [oldest], "has_more": False}
        missing = env.client.get(
            f"/v1/merchants/{merchant_id}/settlements/stl_missing", headers=env.platform
        )
        assert missing.status_code == 404


def test_only_the_platform_admins_and_the_merchant_itself_read_its_money(
    database_url: str,
) -> None:
    with open_env(database_url) as env:
        merchant_a, merchant_b = env.merchant(), env.merchant()
        env.deliver(merchant_a, 10_000)
        env.advance_to_day(date(2027, 3, 3))
        settlement_id = env.settlements(merchant_a["id"])[0]["id"]
        with env.runtime.work() as work:
            roles = {
                role: bearer(
                    create_operator(
                        work.session, email=f"{role}@example.com", role=role, now=work.now
                    )[1]
                )
                for role in ("collector", "compliance", "support")
            }
        paths = [
            f"/v1/merchants/{merchant_a['id']}/balance",
            f"/v1/merchants/{merchant_a['id']}/settlements",
            f"/v1/merchants/{merchant_a['id']}/settlements/{settlement_id}",
        ]
        for path in paths:
            for headers in (env.platform, env.admin, bearer(merchant_a["api_key"])):
                assert env.client.get(path, headers=headers).status_code == 200, path
            other: Any = env.client.get(path, headers=bearer(merchant_b["api_key"]))
            assert other.status_code == 404, path
            assert other.json()["error"]["code"] == "not_found"
            for headers in (*roles.values(), env.analyst):
                assert env.client.get(path, headers=headers).status_code == 403, path
            assert env.client.get(path).status_code == 401
        # Merchant B's own balance is its own.
        assert env.balance(merchant_b["id"], bearer(merchant_b["api_key"]))["payable_minor"] == 0
        assert (
            env.client.get("/v1/merchants/mer_missing/balance", headers=env.admin).status_code
            == 404
        )


def test_the_statement_reconciles_and_catches_a_tampered_payout(database_url: str) -> None:
    with open_env(database_url, settlement_reserve_bps=500) as env:
        merchant = env.merchant()
        merchant_id = merchant["id"]
        paid_order = env.deliver(merchant, 10_000)
        env.advance_to_day(date(2027, 3, 3))
        held_order = env.deliver(merchant, 4_000)
        hold(env, merchant_id, held_order, "dispute:dsp_1")
        path = f"/v1/merchants/{merchant_id}/statement"
        body = env.client.get(path, headers=bearer(merchant["api_key"])).json()
        [payout] = env.settlements(merchant_id)
        assert {k: body[k] for k in ("ledger_payable_minor", "pending_minor", "settled_minor")} == {
            "ledger_payable_minor": 4_000 - 24,
            "pending_minor": 4_000 - 24,
            "settled_minor": 0,
        }
        assert (body["is_reconciled"], body["problems"]) == (True, [])
        assert [
            (line["entry_kind"], line["order_id"], line["amount_minor"], line["settlement_id"],
             line["is_held"])
            for line in body["lines"]
        ] == [
            ("order_activation", paid_order, 10_000, payout["id"], False),
            ("merchant_fee", paid_order, -60, payout["id"], False),
            ("reserve_withheld", None, -500, payout["id"], False),
            ("merchant_payout", None, -9_440, payout["id"], False),
            ("order_activation", held_order, 4_000, None, True),
            ("merchant_fee", held_order, -24, None, True),
        ]  # fmt: skip
        other = env.merchant()
        assert env.client.get(path, headers=bearer(other["api_key"])).status_code == 404

        with env.runtime.work() as work:
            work.session.execute(
                text("UPDATE settlements SET net_minor = net_minor + 1 WHERE id = :id"),
                {"id": payout["id"]},
            )
            work.session.execute(
                text(
                    "UPDATE settlement_lines SET amount_minor = 59 "
                    "WHERE settlement_id = :id AND component = 'fee'"
                ),
                {"id": payout["id"]},
            )
        tampered = env.client.get(path, headers=env.admin).json()
        assert tampered["is_reconciled"] is False
        assert sorted(tampered["problems"]) == sorted(
            [
                f"settlement {payout['id']}: fee_minor != its fee lines",
                f"settlement {payout['id']}: line {body['lines'][1]['entry_id']} != its posting",
                f"settlement {payout['id']}: net_minor != its payout lines",
            ]
        )


def test_clawing_back_a_paid_order_takes_what_the_merchant_kept_of_it_once(
    database_url: str,
) -> None:
    with open_env(database_url) as env:
        merchant = env.merchant()
        merchant_id = merchant["id"]
        unpaid = env.deliver(merchant, 5_000)
        hold(env, merchant_id, unpaid, "risk:cas_1")
        paid = env.deliver(merchant, 10_000)
        env.advance_to_day(date(2027, 3, 3))
        assert env.settlements(merchant_id)[0]["net_minor"] == 9_940
        env.refund(merchant, paid, 4_000)  # after the payout: netted from the next one
        before = env.balance(merchant_id)["payable_minor"]

        def claw(order_id: str) -> tuple[str, int] | None:
            with env.runtime.work() as work:
                return claw_back_paid_order(
                    work.session,
                    merchant_id=merchant_id,
                    order_id=order_id,
                    currency="CNY",
                    reason="confirmed fraud in case cas_1",
                    now=work.now,
                )

        assert claw(unpaid) is None  # never paid out: the hold keeps it so
        clawed = claw(paid)
        assert clawed is not None and clawed[1] == 9_940 - 4_000
        assert claw(paid) is None
        assert env.balance(merchant_id)["payable_minor"] == before - (9_940 - 4_000)
        assert env.account_balances()["merchant_recoveries::CNY"] == -(9_940 - 4_000)
        env.assert_reconciled(merchant_id)
