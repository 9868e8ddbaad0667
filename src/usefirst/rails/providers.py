"""The provider the settings name, built once per process (an explicit registry: every provider
is imported here by name, none is loaded by a string)."""

from __future__ import annotations

from pathlib import Path

from usefirst.kit.settings import Settings
from usefirst.rails.alipay import AlipayConfig, AlipayProvider
from usefirst.rails.provider import PaymentProvider
from usefirst.rails.sandbox import SandboxProvider
from usefirst.rails.wechatpay import WeChatPayConfig, WeChatPayProvider


class ProviderNotConfigured(ValueError):
    pass


def build_provider(settings: Settings) -> PaymentProvider | None:
    """The configured payment provider, or None when the engine does not collect itself."""
    if settings.payment_provider == "none":
        return None
    if settings.payment_provider == "sandbox":
        if not settings.sandbox_rail_secret:
            raise ProviderNotConfigured(
                "USEFIRST_SANDBOX_RAIL_SECRET is required with USEFIRST_PAYMENT_PROVIDER=sandbox"
            )
        return SandboxProvider(
            base_url=settings.sandbox_rail_url,
            secret=settings.sandbox_rail_secret,
            timeout_seconds=settings.payment_provider_timeout_seconds,
        )
    if settings.payment_provider == "alipay":
        return AlipayProvider(
            alipay_config(settings), timeout_seconds=settings.payment_provider_timeout_seconds
        )
    return WeChatPayProvider(
        wechatpay_config(settings), timeout_seconds=settings.payment_provider_timeout_seconds
    )


def wechatpay_config(settings: Settings) -> WeChatPayConfig:
    required = {
        "USEFIRST_WECHATPAY_MCHID": settings.wechatpay_mchid,
        "USEFIRST_WECHATPAY_APPID": settings.wechatpay_appid,
        "USEFIRST_WECHATPAY_PLAN_ID": settings.wechatpay_plan_id,
        "USEFIRST_WECHATPAY_MERCHANT_SERIAL": settings.wechatpay_merchant_serial,
        "USEFIRST_WECHATPAY_PRIVATE_KEY_FILE": settings.wechatpay_private_key_file,
        "USEFIRST_WECHATPAY_APIV3_KEY": settings.wechatpay_apiv3_key,
        "USEFIRST_WECHATPAY_PLATFORM_CERTIFICATE_FILES": (
            settings.wechatpay_platform_certificate_files
        ),
        "USEFIRST_WECHATPAY_NOTIFY_URL": settings.wechatpay_notify_url,
    }
    missing = [name for name, value in required.items() if not value]
    if missing:
        raise ProviderNotConfigured(
            f"{', '.join(missing)} required with USEFIRST_PAYMENT_PROVIDER=wechatpay"
        )
    assert settings.wechatpay_private_key_file is not None
    return WeChatPayConfig.from_files(
        mchid=str(settings.wechatpay_mchid),
        appid=str(settings.wechatpay_appid),
        plan_id=str(settings.wechatpay_plan_id),
        merchant_serial=str(settings.wechatpay_merchant_serial),
        private_key_file=settings.wechatpay_private_key_file,
        apiv3_key=str(settings.wechatpay_apiv3_key),
        platform_certificate_files=[
            Path(item.strip())
            for item in str(settings.wechatpay_platform_certificate_files).split(",")
            if item.strip()
        ],
        notify_url=str(settings.wechatpay_notify_url),
        base_url=settings.wechatpay_base_url,
    )


def alipay_config(settings: Settings) -> AlipayConfig:
    required = {
        "USEFIRST_ALIPAY_APP_ID": settings.alipay_app_id,
        "USEFIRST_ALIPAY_APP_PRIVATE_KEY_FILE": settings.alipay_app_private_key_file,
        "USEFIRST_ALIPAY_PUBLIC_KEY_FILE": settings.alipay_public_key_file,
        "USEFIRST_ALIPAY_NOTIFY_URL": settings.alipay_notify_url,
    }
    missing = [name for name, value in required.items() if not value]
    if missing:
        raise ProviderNotConfigured(
            f"{', '.join(missing)} required with USEFIRST_PAYMENT_PROVIDER=alipay"
        )
    assert settings.alipay_app_private_key_file is not None
    assert settings.alipay_public_key_file is not None
    return AlipayConfig.from_files(
        app_id=str(settings.alipay_app_id),
        app_private_key_file=settings.alipay_app_private_key_file,
        alipay_public_key_file=settings.alipay_public_key_file,
        notify_url=str(settings.alipay_notify_url),
        gateway_url=settings.alipay_gateway_url,
    )
