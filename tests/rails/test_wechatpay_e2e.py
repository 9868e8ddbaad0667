"""WeChat Pay API v3 (委托代扣) end to end against a local server speaking its protocol, with
keys and a platform certificate made in the test, on SQLite and PostgreSQL: a shopper with a
signed contract is charged on the due date, a declined deduction is retried and then paid, every
notification that must not be believed is refused and recorded with nothing posted, and the day's
trade bill reconciles. Ends with the ledger audit balanced."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.collections.dunning_env import Env, dump_tables
from tests.rails.rail_env import MONEY_TABLES, order_charges, provider_engine, send_charges
from tests.rails.wechatpay_server import (
    APIV3_KEY,
    APPID,
    MCHID,
    PLAN_ID,
    WeChatKeys,
    WeChatPayServer,
    wechatpay_server,
)
from usefirst.flows import rail_reconciliation

DUE_ON = date(2027, 3, 9)


@contextmanager
def wechat_env(database_url: str, tmp_path: Path) -> Iterator[tuple[Env, WeChatPayServer, str]]:
    keys = WeChatKeys.make()
    key_file, certificate_file = keys.write(tmp_path)
    with (
        wechatpay_server(keys) as server,
        provider_engine(
            database_url,
            tmp_path,
            "wechatpay",
            wechatpay_mchid=MCHID,
            wechatpay_appid=APPID,
            wechatpay_plan_id=PLAN_ID,
            wechatpay_merchant_serial=keys.merchant_serial,
            wechatpay_private_key_file=key_file,
            wechatpay_apiv3_key=APIV3_KEY,
            wechatpay_platform_certificate_files=str(certificate_file),
            wechatpay_base_url=server.url,
        ) as (env, notify_url),
    ):
        yield env, server, notify_url


def test_deduction_through_wechatpay_with_retry_refused_notifications_and_bill(
    database_url: str, tmp_path: Path
) -> None:
    with wechat_env(database_url, tmp_path) as (env, server, notify_url):
        shopper = env.enrol()
        server.state.contracts["CT-signed"] = "SIGNED"
        server.state.contracts["CT-ended"] = "TERMINATED"
        headers = {**env.platform, "Idempotency-Key": "m-1"}
        refused = env.client.post(
            f"/v1/shoppers/{shopper['id']}/mandates",
            headers={**env.platform, "Idempotency-Key": "m-0"},
            json={"provider_mandate_id": "CT-ended"},
        )
        assert refused.status_code == 409 and refused.json()["error"]["code"] == (
            "mandate_not_in_force"
        )
        created = env.client.post(
            f"/v1/shoppers/{shopper['id']}/mandates",
            headers=headers,
            json={"provider_mandate_id": "CT-signed"},
        )
        assert created.status_code == 201, created.text
        assert (created.json()["provider"], created.json()["provider_mandate_id"]) == (
            "wechatpay",
            "CT-signed",
        )
        order = env.buy(shopper["id"], 18_800)
        server.state.outcomes.extend(["decline", "succeed"])

        env.advance_to_day(DUE_ON, hour=10, minute=5)
        send_charges(env, server.wait_idle)
        [first] = order_charges(env, order["id"])
        assert (first["status"], first["failure_code"]) == ("failed", "payerror")
        assert first["provider_charge_id"] == first["id"]  # out_trade_no is our charge id

        server.state.business_on = DUE_ON + timedelta(days=1)
        env.advance_to_day(DUE_ON + timedelta(days=1), hour=10, minute=5)
        send_charges(env, server.wait_idle)
        _, second = order_charges(env, order["id"])
        assert (second["attempt"], second["status"], second["confirmed_by"]) == (
            2,
            "succeeded",
            "callback",
        )
        assert env.order(order["id"])["status"] == "repaid"
        money = dump_tables(env.runtime, MONEY_TABLES)
        [payment] = money["payments"]
        assert "wechat" in payment and f"wechatpay:{second['id']}" in payment
        assert server.state.refused_requests == 0

        # Notifications that must not be believed: refused, recorded, nothing posted.
        last_headers, last_body = server.state.notifications[-1]
        replay = httpx.post(notify_url, content=last_body, headers=last_headers)
        assert replay.status_code == 200 and replay.json()["reason"] == "replayed"
        tampered = httpx.post(
            notify_url,
            content=last_body.replace(b'"id": "EV-', b'"id": "EX-'),
            headers=last_headers,
        )
        assert tampered.status_code == 401 and tampered.json()["reason"] == "signature_invalid"
        stale_headers = server.signed_headers(last_body, timestamp=int(time.time()) - 1_000)
        stale = httpx.post(notify_url, content=last_body, headers=stale_headers)
        assert stale.status_code == 401 and stale.json()["reason"] == "timestamp_stale"
        stranger = WeChatPayServer(WeChatKeys.make())
        try:
            forged = httpx.post(
                notify_url, content=last_body, headers=stranger.signed_headers(last_body)
            )
        finally:
            stranger.http.server_close()
        assert forged.status_code == 401 and forged.json()["reason"] == "unknown_certificate"
        transaction = {
            "out_trade_no": second["id"],
            "transaction_id": "4200x",
            "trade_state": "SUCCESS",
            "amount": {"total": second["amount_minor"], "currency": "CNY"},
        }
        unknown = httpx.post(
            notify_url,
            **_request(server, {**transaction, "out_trade_no": "chg_not_ours"}),
        )
        assert unknown.status_code == 400 and unknown.json()["reason"] == "unknown_charge"
        mismatch = httpx.post(
            notify_url,
            **_request(server, {**transaction, "amount": {"total": 1, "currency": "CNY"}}),
        )
        assert mismatch.status_code == 400 and mismatch.json()["reason"] == "amount_mismatch"
        body = json.loads(last_body)
        body["resource"]["ciphertext"] = body["resource"]["ciphertext"][:-4] + "AAAA"
        garbled = json.dumps(body).encode()
        undecryptable = httpx.post(
            notify_url, content=garbled, headers=server.signed_headers(garbled)
        )
        assert undecryptable.status_code == 400
        assert undecryptable.json()["reason"] == "decryption_failed"
        assert dump_tables(env.runtime, MONEY_TABLES) == money
        _, second = order_charges(env, order["id"])
        assert [(c["outcome"], c["reason"]) for c in second["callbacks"]] == [
            ("posted", None),
            ("rejected", "replayed"),
            ("rejected", "amount_mismatch"),
        ]

        # The trade bill of the day (downloaded, hash checked) matches the books.
        report = rail_reconciliation.reconcile_day(
            env.runtime.rail_work(), statement_on=DUE_ON + timedelta(days=1)
        )
        assert (report.lines, report.matched, report.posted, report.breaks) == (1, 1, 0, [])
        env.assert_ledger_clean()

        # Revoking the mandate terminates the contract by plan and out_contract_code (解除签约协议).
        mandate_id = created.json()["id"]
        revoked = env.client.post(
            f"/v1/shoppers/{shopper['id']}/mandates/{mandate_id}/revoke", headers=env.platform
        )
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
        assert server.state.contracts["CT-signed"] == "TERMINATED"
        assert server.state.refused_requests == 0


def _request(server: WeChatPayServer, transaction: dict[str, Any]) -> dict[str, Any]:
    headers, body = server.notification(transaction)
    return {"content": body, "headers": headers}
