"""Alipay agreement deduction (商户代扣) end to end against a local server speaking its gateway
protocol, with RSA keys made in the test, on SQLite and PostgreSQL: a shopper with a signed
agreement is charged on the due date and the payment is posted through the waterfall once; every
notification that must not be believed (tampered, replayed, for a charge that is not ours, for
another amount) is refused and recorded with nothing posted; the day's trade bill reconciles and
the agreement is unsigned on revocation. Ends with the ledger audit balanced."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from tests.collections.dunning_env import Env, dump_tables
from tests.rails.alipay_server import APP_ID, AlipayKeys, AlipayServer, alipay_server
from tests.rails.rail_env import MONEY_TABLES, order_charges, provider_engine, send_charges
from usefirst.flows import rail_reconciliation
from usefirst.rails.alipay import AlipayProvider, signing_text
from usefirst.rails.wechatpay import sign_message, verify_message

DUE_ON = date(2027, 3, 9)
FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


@contextmanager
def alipay_env(database_url: str, tmp_path: Path) -> Iterator[tuple[Env, AlipayServer, str]]:
    keys = AlipayKeys.make()
    app_key_file, alipay_public_file = keys.write(tmp_path)
    with (
        alipay_server(keys) as server,
        provider_engine(
            database_url,
            tmp_path,
            "alipay",
            alipay_app_id=APP_ID,
            alipay_app_private_key_file=app_key_file,
            alipay_public_key_file=alipay_public_file,
            alipay_gateway_url=server.gateway_url,
        ) as (env, notify_url),
    ):
        yield env, server, notify_url


def resigned(server: AlipayServer, body: bytes, **changes: str) -> bytes:
    """The notification with ``changes``, signed again by Alipay's key."""
    params = {**dict(parse_qsl(body.decode(), keep_blank_values=True)), **changes}
    params["sign"] = sign_message(
        server.keys.alipay_key, signing_text(params, leave_out=("sign", "sign_type"))
    )
    return urlencode(params).encode()


def test_agreement_deduction_through_alipay_with_refused_notifications_and_bill(
    database_url: str, tmp_path: Path
) -> None:
    with alipay_env(database_url, tmp_path) as (env, server, notify_url):
        shopper = env.enrol()
        server.state.agreements["20275309000000000001"] = "NORMAL"
        server.state.agreements["20275309000000000002"] = "STOP"
        refused = env.client.post(
            f"/v1/shoppers/{shopper['id']}/mandates",
            headers={**env.platform, "Idempotency-Key": "m-0"},
            json={"provider_mandate_id": "20275309000000000002"},
        )
        assert refused.status_code == 409 and refused.json()["error"]["code"] == (
            "mandate_not_in_force"
        )
        created = env.client.post(
            f"/v1/shoppers/{shopper['id']}/mandates",
            headers={**env.platform, "Idempotency-Key": "m-1"},
            json={"provider_mandate_id": "20275309000000000001"},
        )
        assert created.status_code == 201, created.text
        assert (created.json()["provider"], created.json()["provider_mandate_id"]) == (
            "alipay",
            "20275309000000000001",
        )
        order = env.buy(shopper["id"], 18_800)
        server.state.outcomes.extend(["decline", "succeed"])

        # The first deduction is declined in trade.pay's answer: a confirmed decline, retried.
        env.advance_to_day(DUE_ON, hour=10, minute=5)
        send_charges(env, server.wait_idle)
        [first] = order_charges(env, order["id"])
        assert (first["status"], first["failure_code"], first["confirmed_by"]) == (
            "failed",
            "acq.buyer_balance_not_enough",
            "request",
        )
        assert dump_tables(env.runtime, ["payments"])["payments"] == []

        server.state.business_on = DUE_ON + timedelta(days=1)
        env.advance_to_day(DUE_ON + timedelta(days=1), hour=10, minute=5)
        send_charges(env, server.wait_idle)
        _, charge = order_charges(env, order["id"])
        assert (charge["attempt"], charge["status"], charge["confirmed_by"]) == (
            2,
            "succeeded",
            "callback",
        )
        assert charge["provider_charge_id"] == charge["id"]  # out_trade_no is our charge id
        trade = server.state.trades[charge["id"]]
        # Retried a day later, the charge is for what is owed by then (a late fee included).
        assert (first["amount_minor"], charge["amount_minor"]) == (18_800, 18_809)
        charged = f"{Decimal(charge['amount_minor']) / 100:.2f}"
        assert (trade["total_amount"], trade["trade_status"]) == (charged, "TRADE_SUCCESS")
        assert env.order(order["id"])["status"] == "repaid"
        money = dump_tables(env.runtime, MONEY_TABLES)
        [payment] = money["payments"]
        assert "alipay" in payment and f"alipay:{charge['id']}" in payment
        assert server.state.refused_requests == 0

        # Notifications that must not be believed: refused, recorded, nothing posted.
        [delivered] = server.state.notifications
        replay = httpx.post(notify_url, content=delivered, headers=FORM)
        # Acknowledged as Alipay needs ("success"), so it stops sending; recorded as a replay.
        assert (replay.status_code, replay.text) == (200, "success")
        tampered = httpx.post(
            notify_url,
            content=delivered.replace(f"total_amount={charged}".encode(), b"total_amount=1.88"),
            headers=FORM,
        )
        assert tampered.status_code == 401 and tampered.json()["reason"] == "signature_invalid"
        stranger = AlipayServer(AlipayKeys.make())
        try:
            forged = httpx.post(notify_url, content=resigned(stranger, delivered), headers=FORM)
        finally:
            stranger.http.server_close()
        assert forged.status_code == 401 and forged.json()["reason"] == "signature_invalid"
        unsigned = httpx.post(
            notify_url,
            content=urlencode(
                {k: v for k, v in parse_qsl(delivered.decode()) if k != "sign"}
            ).encode(),
            headers=FORM,
        )
        assert unsigned.status_code == 401 and unsigned.json()["reason"] == "signature_missing"
        unknown = httpx.post(
            notify_url,
            content=resigned(server, delivered, notify_id="2027u", out_trade_no="chg_not_ours"),
            headers=FORM,
        )
        assert unknown.status_code == 400 and unknown.json()["reason"] == "unknown_charge"
        mismatch = httpx.post(
            notify_url,
            content=resigned(server, delivered, notify_id="2027m", total_amount="1.88"),
            headers=FORM,
        )
        assert mismatch.status_code == 400 and mismatch.json()["reason"] == "amount_mismatch"
        assert dump_tables(env.runtime, MONEY_TABLES) == money
        first, charge = order_charges(env, order["id"])
        assert [(c["outcome"], c["reason"]) for c in first["callbacks"]] == [("recorded", None)]
        assert [(c["outcome"], c["reason"]) for c in charge["callbacks"]] == [
            ("posted", None),
            ("rejected", "replayed"),
            ("rejected", "amount_mismatch"),
        ]
        recorded = dump_tables(env.runtime, ["rail_callbacks"])["rail_callbacks"]
        reasons = sorted(str(row) for row in recorded)
        assert sum("signature_invalid" in row for row in reasons) == 2
        assert sum("signature_missing" in row for row in reasons) == 1
        assert sum("unknown_charge" in row for row in reasons) == 1
        assert len(recorded) == 8  # with the decline stated in the first trade.pay answer

        # A query reports the same trade; the day's bill (zip of GBK CSV) matches the books.
        provider = env.runtime.payment_provider
        assert isinstance(provider, AlipayProvider)
        status = provider.query(provider_charge_id=charge["id"])
        assert (status.state, status.amount_minor, status.currency) == ("succeeded", 18_809, "CNY")
        report = rail_reconciliation.reconcile_day(
            env.runtime.rail_work(), statement_on=DUE_ON + timedelta(days=1)
        )
        assert (report.lines, report.matched, report.posted, report.breaks) == (1, 1, 0, [])
        env.assert_ledger_clean()

        # The signing page the platform's app opens carries a request Alipay can verify.
        url = provider.sign_page_url(external_agreement_no="shopper-1", sign_notify_url=notify_url)
        params = dict(parse_qsl(urlsplit(url).query))
        assert params["method"] == "alipay.user.agreement.page.sign"
        assert verify_message(
            server.keys.app_key.public_key(), signing_text(params), params["sign"]
        )

        # Revoking the mandate unsigns the agreement (alipay.user.agreement.unsign).
        revoked = env.client.post(
            f"/v1/shoppers/{shopper['id']}/mandates/{created.json()['id']}/revoke",
            headers=env.platform,
        )
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
        assert server.state.agreements["20275309000000000001"] == "STOP"
        assert server.state.refused_requests == 0
