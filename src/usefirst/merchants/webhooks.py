"""A merchant's webhook endpoint: its URL and the secret its webhooks are signed with (Standard
Webhooks). Pure helpers: notify signs a merchant's webhooks with them, calling no service."""

from __future__ import annotations

import base64
import secrets
from urllib.parse import urlparse

from usefirst.kit.crypto import FieldCipher
from usefirst.kit.errors import ValidationFailed
from usefirst.merchants.models import Merchant

SECRET_FIELD = "webhook_secret"


def validate_webhook_url(url: str, *, field: str = "webhook_url") -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValidationFailed("webhook_url must be an http(s) URL.", field=field)
    return url


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def webhook_secret_of(merchant: Merchant, *, cipher: FieldCipher) -> str:
    return cipher.decrypt(merchant.webhook_secret_encrypted, field=SECRET_FIELD)
