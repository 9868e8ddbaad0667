"""A merchant's webhook endpoint: its URL and the secrets its webhooks are signed with (Standard
Webhooks), and the guard that keeps webhook destinations off the engine's own network.

Pure helpers, apart from name resolution: notify signs and sends a merchant's webhooks with them,
calling no service.

The guard: a destination URL given through the API could point at the engine's own machine or
network (loopback, link-local — where cloud metadata services answer —, private, shared and
reserved ranges), turning webhooks into requests the caller could not make. The host is resolved
and every address it resolves to must be public, when the URL is set and again at each delivery
(a name may resolve elsewhere later: DNS rebinding); the delivery then connects to the very
address it checked. ``USEFIRST_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS=true`` lifts the guard for
local development and tests, whose receivers listen on 127.0.0.1.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from usefirst.kit.crypto import FieldCipher
from usefirst.kit.errors import ValidationFailed
from usefirst.merchants.models import Merchant

SECRET_FIELD = "webhook_secret"
# Each *_encrypted column is bound to the field named without the suffix (key rotation relies on
# it), so the previous secret is encrypted anew under its own column's field.
PREVIOUS_SECRET_FIELD = "previous_webhook_secret"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebhookDestinationRefused(ValidationFailed):
    code = "webhook_destination_refused"
    default_message = "Webhooks cannot be sent to this address."


def validate_webhook_url(url: str, *, field: str = "webhook_url") -> str:
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or not parsed.hostname:
        raise ValidationFailed("webhook_url must be an http(s) URL.", field=field)
    if parsed.username is not None or parsed.password is not None:
        raise ValidationFailed("webhook_url must not carry a user name or password.", field=field)
    return url


def is_public_address(address: IPAddress) -> bool:
    """True only for addresses on the public internet: not loopback, link-local (169.254/16,
    fe80::/10, where metadata services answer), private (10/8, 172.16/12, 192.168/16, fc00::/7),
    shared (100.64/10), reserved, unspecified or multicast. An IPv4 address inside IPv6 (mapped,
    NAT64) is judged as the IPv4 address it carries."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped
        if embedded is None and address in ipaddress.IPv6Network("64:ff9b::/96"):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public_address(embedded)
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class CheckedDestination:
    """A webhook URL whose host resolved to public addresses only; ``address`` is the one to
    connect to (so no second resolution can send the request elsewhere)."""

    url: str
    host: str
    address: IPAddress

    def connect_url(self) -> str:
        """The URL with the checked address in place of the host name (the Host header and the
        TLS server name still carry the name)."""
        parsed = urlsplit(self.url)
        literal = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        netloc = f"{literal}:{parsed.port}" if parsed.port is not None else literal
        return urlunsplit(parsed._replace(netloc=netloc))

    def host_header(self) -> str:
        parsed = urlsplit(self.url)
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{parsed.port}" if parsed.port is not None else host


def resolve_addresses(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (a literal address is itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for info in infos:
        # An IPv6 link-local result may carry a zone ("fe80::1%eth0"); the zone is no part of it.
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def check_destination(url: str, *, field: str = "webhook_url") -> CheckedDestination:
    """Resolve the URL's host and refuse it unless every address is public (422, the field)."""
    validate_webhook_url(url, field=field)
    parsed = urlsplit(url)
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        addresses = resolve_addresses(host, port)
    except (OSError, UnicodeError):
        raise WebhookDestinationRefused(
            f"The host {host!r} of webhook_url does not resolve.", field=field
        ) from None
    if not addresses:
        raise WebhookDestinationRefused(
            f"The host {host!r} of webhook_url does not resolve.", field=field
        )
    for address in addresses:
        if not is_public_address(address):
            raise WebhookDestinationRefused(
                f"webhook_url resolves to {address}, which is not a public address "
                "(loopback, link-local, private and metadata ranges are refused).",
                field=field,
            )
    return CheckedDestination(url=url, host=host, address=addresses[0])


def check_webhook_url(
    url: str, *, allow_private_destinations: bool, field: str = "webhook_url"
) -> str:
    """The URL, checked as an API caller's destination (shape always, addresses unless the
    operator allows private destinations)."""
    validate_webhook_url(url, field=field)
    if not allow_private_destinations:
        check_destination(url, field=field)
    return url


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def webhook_secret_of(merchant: Merchant, *, cipher: FieldCipher) -> str:
    return cipher.decrypt(merchant.webhook_secret_encrypted, field=SECRET_FIELD)


def signing_secrets_of(merchant: Merchant, *, cipher: FieldCipher, now: datetime) -> list[str]:
    """The secrets a webhook is signed with now: the current one, then the previous one while
    its overlap lasts (Standard Webhooks: several space-separated signatures)."""
    found = [webhook_secret_of(merchant, cipher=cipher)]
    previous = merchant.previous_webhook_secret_encrypted
    ends = merchant.previous_webhook_secret_expires_at
    if previous is not None and ends is not None and ends > now:
        found.append(cipher.decrypt(previous, field=PREVIOUS_SECRET_FIELD))
    return found
