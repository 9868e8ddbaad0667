"""Reconciliation of the sandbox rail's daily statement, end to end on SQLite and PostgreSQL: a
lost callback is found and posted once; a payment the provider never settled is flagged and kept;
an amount that differs and a line for an unknown charge are flagged, nothing posted; a chargeback
reverses the allocation with a ledger entry and reopens the instalment. Every scenario ends with
the ledger audit balanced."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from tests.collections.dunning_env import balance
from tests.rails.rail_env import RailEnv, open_rail_env
from usefirst.flows import rail_reconciliation

DUE_ON = date(2027, 3, 9)


def reconcile(rail_env: RailEnv, on: date) -> dict[str, Any]:
    report = rail_reconciliation.reconcile_day(rail_env.env.runtime.rail_work(), statement_on=on)
    return report.as_dict()


def test_statement_posts_a_lost_callback_once_and_flags_every_break(
    database_url: str, tmp_path: Path
) -> None:
    with open_rail_env(database_url, tmp_path) as rail_env:
        env = rail_env.env
        rail_env.rail.rail.state.business_on = DUE_ON
        shoppers = {role: env.enrol() for role in ("lost", "unsettled", "mismatch")}
        orders = {}
        for index, (role, shopper) in enumerate(shoppers.items()):
            rail_env.mandate(shopper["id"], key=f"m-{role}")
            orders[role] = env.buy(shopper["id"], 10_000 + index * 1_000)
        outcome = {"lost": "lose_callback", "unsettled": "succeed", "mismatch": "lose_callback"}
        # Charges are sent in the order of the shoppers' ids.
        by_id = sorted(shoppers, key=lambda role: shoppers[role]["id"])
        rail_env.force(*(outcome[role] for role in by_id))
        env.advance_to_day(DUE_ON, hour=10, minute=1)
        rail_env.send_charges()
        statuses = {role: rail_env.charges(orders[role]["id"])[0]["status"] for role in shoppers}
        assert statuses == {"lost": "submitted", "unsettled": "succeeded", "mismatch": "submitted"}

        # The provider's statement: the unsettled charge is missing, the mismatched one differs,
        # and one line is for a charge nobody here made.
        lines = rail_env.rail.rail.state.statements[DUE_ON]
        unsettled = rail_env.charges(orders["unsettled"]["id"])[0]
        mismatch = rail_env.charges(orders["mismatch"]["id"])[0]
        lost = rail_env.charges(orders["lost"]["id"])[0]
        lines[:] = [line for line in lines if line["reference"] != unsettled["id"]]
        for line in lines:
            if line["reference"] == mismatch["id"]:
                line["amount_minor"] += 100
        lines.append(
            {
                "charge_id": "ch_not_ours",
                "reference": "charge_not_ours",
                "type": "charge",
                "amount_minor": 999,
                "currency": "CNY",
            }
        )
        payments_before = len(rail_env.money()["payments"])

        report = reconcile(rail_env, DUE_ON)
        assert (report["lines"], report["matched"], report["posted"], report["new_breaks"]) == (
            3,
            0,
            1,
            3,
        )
        kinds = {(row["kind"], row["charge_id"]) for row in report["breaks"]}
        assert kinds == {
            ("amount_mismatch", mismatch["id"]),
            ("unknown_charge", None),
            ("missing_on_provider", unsettled["id"]),
        }
        assert len(rail_env.money()["payments"]) == payments_before + 1
        lost = rail_env.charges(orders["lost"]["id"])[0]
        assert (lost["status"], lost["confirmed_by"]) == ("succeeded", "statement")
        assert env.order(orders["lost"]["id"])["status"] == "repaid"
        # Flagged, not reversed: the unsettled payment stays posted; the mismatch is not posted.
        assert env.order(orders["unsettled"]["id"])["status"] == "repaid"
        assert rail_env.charges(orders["mismatch"]["id"])[0]["status"] == "submitted"
        assert env.order(orders["mismatch"]["id"])["status"] == "delivered"

        # Again: nothing changes, no break is found twice.
        before = rail_env.money()
        again = reconcile(rail_env, DUE_ON)
        assert (again["matched"], again["posted"], again["new_breaks"]) == (1, 0, 0)
        assert len(again["breaks"]) == 3
        assert rail_env.money() == before

        # The report, with the breaks' age, over the API and the CLI.
        env.advance_to_day(DUE_ON + timedelta(days=2), hour=9)
        listed = env.client.get("/v1/rails/reconciliation/breaks", headers=env.admin)
        assert listed.status_code == 200, listed.text
        assert sorted((row["kind"], row["age_days"]) for row in listed.json()["data"]) == [
            ("amount_mismatch", 2),
            ("missing_on_provider", 2),
            ("unknown_charge", 2),
        ]
        assert (
            env.client.get("/v1/rails/reconciliation/breaks", headers=env.platform).status_code
            == 403
        )
        unknown = next(row for row in listed.json()["data"] if row["kind"] == "unknown_charge")
        resolved = env.client.post(
            f"/v1/rails/reconciliation/breaks/{unknown['id']}/resolve", headers=env.admin
        )
        assert resolved.status_code == 200 and resolved.json()["resolved_at"] is not None
        listed = env.client.get("/v1/rails/reconciliation/breaks", headers=env.admin)
        assert len(listed.json()["data"]) == 2
        env.assert_ledger_clean()


def test_chargeback_reverses_the_allocation_and_reopens_the_instalment(
    database_url: str, tmp_path: Path
) -> None:
    with open_rail_env(database_url, tmp_path) as rail_env:
        env = rail_env.env
        rail_env.rail.rail.state.business_on = DUE_ON
        shopper = env.enrol()
        rail_env.mandate(shopper["id"])
        order = env.buy(shopper["id"], 25_000)
        credit_before = env.credit(shopper["id"])
        rail_env.force("succeed")
        env.advance_to_day(DUE_ON, hour=10, minute=1)
        rail_env.send_charges()
        [charge] = rail_env.charges(order["id"])
        assert charge["status"] == "succeeded"
        assert env.order(order["id"])["status"] == "repaid"
        cash_paid = balance(env.account_balances(), "platform_cash")

        # Two days later the shopper's bank takes the money back.
        env.advance_to_day(DUE_ON + timedelta(days=2), hour=11)
        rail_env.rail.rail.reverse(charge["provider_charge_id"], None)
        [charge] = rail_env.charges(order["id"])
        assert (charge["status"], charge["reversed_minor"]) == ("reversed", 25_000)
        assert [(c["event_type"], c["outcome"]) for c in charge["callbacks"]] == [
            ("charge.succeeded", "posted"),
            ("charge.reversed", "reversed"),
        ]
        reopened = env.order(order["id"])
        assert reopened["status"] == "overdue"
        [instalment] = reopened["instalments"]
        assert (instalment["status"], instalment["paid_minor"]) == ("overdue", 0)
        balances = env.account_balances()
        assert balance(balances, "platform_cash") == cash_paid - 25_000
        assert (
            balance(balances, "shopper_receivable", shopper["id"])
            == 25_000 + (instalment["fees_minor"])
        )
        [reversal] = env.events("payment.reversed")
        assert (reversal["data"]["charge_id"], reversal["data"]["amount_minor"]) == (
            charge["id"],
            25_000,
        )
        credit = env.credit(shopper["id"])
        assert credit["status"] == "frozen"
        assert credit["used_minor"] == credit_before["used_minor"] == 25_000

        # The reversal is on the statement too: reconciliation matches it, undoes nothing twice.
        before = rail_env.money()
        report = reconcile(rail_env, DUE_ON)
        assert (report["matched"], report["reversed"], report["new_breaks"]) == (2, 0, 0)
        assert rail_env.money() == before
        # A reversed charge is not tried again.
        env.advance_to_day(DUE_ON + timedelta(days=4), hour=11)
        assert len(rail_env.charges(order["id"])) == 1
        env.assert_ledger_clean()


def test_reconcile_command_reports_breaks_and_exits_one(
    database_url: str, tmp_path: Path, monkeypatch: Any
) -> None:
    from usefirst.cli.main import app
    from usefirst.kit.settings import get_settings

    with open_rail_env(database_url, tmp_path) as rail_env:
        env = rail_env.env
        rail_env.rail.rail.state.business_on = DUE_ON
        rail_env.rail.rail.state.statements[DUE_ON] = [
            {
                "charge_id": "ch_x",
                "reference": "charge_x",
                "type": "charge",
                "amount_minor": 5,
                "currency": "CNY",
            }
        ]
        settings = env.runtime.settings
        for name, value in {
            "DATABASE_URL": settings.database_url,
            "SANDBOX": "true",
            "ENCRYPTION_KEYS": settings.encryption_keys,
            "ACTIVE_KEY_ID": settings.active_key_id,
            "BLIND_INDEX_KEY": settings.blind_index_key,
            "PAYMENT_PROVIDER": "sandbox",
            "SANDBOX_RAIL_URL": settings.sandbox_rail_url,
            "SANDBOX_RAIL_SECRET": settings.sandbox_rail_secret,
        }.items():
            monkeypatch.setenv(f"USEFIRST_{name}", str(value))
        get_settings.cache_clear()
        try:
            runner = CliRunner()
            bad = runner.invoke(
                app, ["reconcile", "--provider", "wechatpay", "--date", "2027-03-09"]
            )
            assert bad.exit_code == 2
            result = runner.invoke(
                app, ["reconcile", "--provider", "sandbox", "--date", "2027-03-09"]
            )
            assert result.exit_code == 1, result.output
            assert "1 lines, 0 matched, 0 posted, 0 reversed, 1 breaks (1 new)" in result.output
            assert "unknown_charge" in result.output
            listed = runner.invoke(app, ["report", "reconciliation-breaks", "--json"])
            assert listed.exit_code == 1
            assert '"kind": "unknown_charge"' in listed.output
        finally:
            get_settings.cache_clear()
