"""The provider the settings name, built once per process (an explicit registry: every provider
is imported here by name, none is loaded by a string)."""

from __future__ import annotations

from usefirst.kit.settings import Settings
from usefirst.rails.provider import PaymentProvider
from usefirst.rails.sandbox import SandboxProvider


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
    raise ProviderNotConfigured(f"payment provider {settings.payment_provider!r} is not set up")
