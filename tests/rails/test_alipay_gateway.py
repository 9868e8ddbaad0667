"""The Alipay client against the local gateway without the engine around it: an answer signed by
a key other than the configured Alipay public key is no answer (try again), a request signed with
the wrong app key is refused by the gateway, a refund is sent with the idempotency key as its
request number, and the settings refuse to start without the app's keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.rails.alipay_server import APP_ID, AlipayKeys, alipay_server
from usefirst.kit.settings import Settings
from usefirst.rails.alipay import AlipayConfig, AlipayProvider
from usefirst.rails.provider import ProviderRefused, ProviderUnavailable
from usefirst.rails.providers import ProviderNotConfigured, build_provider


def provider_for(keys: AlipayKeys, gateway_url: str) -> AlipayProvider:
    return AlipayProvider(
        AlipayConfig(
            app_id=APP_ID,
            app_private_key=keys.app_key,
            alipay_public_key=keys.alipay_key.public_key(),
            notify_url="http://127.0.0.1:1/v1/rails/alipay/callbacks",
            gateway_url=gateway_url,
        )
    )


def test_answers_and_requests_that_do_not_verify_are_refused() -> None:
    keys = AlipayKeys.make()
    with alipay_server(keys) as server:
        server.state.trades["chg_1"] = {
            "trade_no": "2027001",
            "out_trade_no": "chg_1",
            "total_amount": "12.34",
            "subject": "instalment 1",
            "trade_status": "TRADE_SUCCESS",
        }
        status = provider_for(keys, server.gateway_url).query(provider_charge_id="chg_1")
        assert (status.state, status.amount_minor, status.currency) == ("succeeded", 1_234, "CNY")

        wrong_alipay_key = AlipayKeys(app_key=keys.app_key, alipay_key=AlipayKeys.make().alipay_key)
        with pytest.raises(ProviderUnavailable, match="not verified"):
            provider_for(wrong_alipay_key, server.gateway_url).query(provider_charge_id="chg_1")

        wrong_app_key = AlipayKeys(app_key=AlipayKeys.make().app_key, alipay_key=keys.alipay_key)
        with pytest.raises(ProviderRefused) as refused:
            provider_for(wrong_app_key, server.gateway_url).query(provider_charge_id="chg_1")
        assert refused.value.code == "isv.invalid-signature"
        assert server.state.refused_requests == 1

        refund = provider_for(keys, server.gateway_url).refund(
            provider_charge_id="chg_1", amount_minor=1_000, idempotency_key="refund-key-1"
        )
        assert refund == "refund-key-1"
        with pytest.raises(ProviderRefused) as too_much:
            provider_for(keys, server.gateway_url).refund(
                provider_charge_id="chg_1", amount_minor=1_235, idempotency_key="refund-key-2"
            )
        assert too_much.value.code == "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
        assert server.state.calls == [
            "alipay.trade.query",
            "alipay.trade.query",
            "alipay.trade.refund",
            "alipay.trade.refund",
        ]


def test_settings_select_alipay_and_require_its_keys(tmp_path: Path) -> None:
    keys = AlipayKeys.make()
    app_key_file, alipay_public_file = keys.write(tmp_path)
    with pytest.raises(ProviderNotConfigured, match="USEFIRST_ALIPAY_PUBLIC_KEY_FILE"):
        build_provider(
            Settings(
                payment_provider="alipay",
                alipay_app_id=APP_ID,
                alipay_app_private_key_file=app_key_file,
                alipay_notify_url="https://bnpl.example/v1/rails/alipay/callbacks",
            )
        )
    provider = build_provider(
        Settings(
            payment_provider="alipay",
            alipay_app_id=APP_ID,
            alipay_app_private_key_file=app_key_file,
            alipay_public_key_file=alipay_public_file,
            alipay_notify_url="https://bnpl.example/v1/rails/alipay/callbacks",
        )
    )
    assert isinstance(provider, AlipayProvider)
    assert (provider.config.app_id, provider.config.gateway_url) == (
        APP_ID,
        "https://openapi.alipay.com/gateway.do",
    )
