"""Reminder channels: SMS through a gateway (or a local log file) and email over SMTP.

A channel reports the outcome of one message as a :class:`Delivery`. Delivery failures (refused
connections, timeouts, error answers) come back as a failed ``Delivery`` rather than an exception,
so the dunning ladder can record the attempt and decide itself whether to retry or fall back to
another channel. Mistakes by the caller (a malformed phone number, a header with a line break) or
by the operator (a malformed gateway URL) still raise ``ValueError``.
"""

from __future__ import annotations

import json
import re
import secrets
import smtplib
import ssl
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Literal, Protocol

import httpx

from usefirst.kit.clock import system_now

SMS_CHANNEL = "sms"
EMAIL_CHANNEL = "email"

DeliveryStatus = Literal["sent", "failed"]

# How much of a gateway's error answer is kept: enough to diagnose, not a whole HTML error page.
ERROR_BODY_LIMIT_CHARACTERS = 200

_E164 = re.compile(r"\+[1-9]\d{6,14}", flags=re.ASCII)


@dataclass(frozen=True)
class Delivery:
    channel: str
    status: DeliveryStatus
    provider_reference: str | None
    error: str | None

    @property
    def is_sent(self) -> bool:
        return self.status == "sent"


def _sent(channel: str, provider_reference: str | None) -> Delivery:
    return Delivery(
        channel=channel, status="sent", provider_reference=provider_reference, error=None
    )


def _failed(channel: str, error: str) -> Delivery:
    return Delivery(channel=channel, status="failed", provider_reference=None, error=error)


def _describe(error: BaseException) -> str:
    message = str(error).strip()
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _has_control_characters(value: str) -> bool:
    return any(unicodedata.category(character) == "Cc" for character in value)


def _check_sms_arguments(*, to_e164: str, text: str, reference: str) -> None:
    if not _E164.fullmatch(to_e164):
        raise ValueError(f"to_e164 must be an E.164 number such as +8613800138000, not {to_e164!r}")
    if not text.strip():
        raise ValueError("an SMS needs text")
    if not reference.strip() or _has_control_characters(reference):
        raise ValueError("reference must be non-empty text without control characters")


# --- SMS ------------------------------------------------------------------------------------


class SmsGateway(Protocol):
    def send(self, *, to_e164: str, text: str, reference: str) -> Delivery: ...


class LogSmsGateway:
    """The default local gateway: appends each message as one JSON line to a file.

    Nothing leaves the machine, which is what a demo, a sandbox or a test wants.
    """

    def __init__(self, path: Path, *, now: Callable[[], datetime] = system_now) -> None:
        self.path = path
        self.now = now

    def send(self, *, to_e164: str, text: str, reference: str) -> Delivery:
        _check_sms_arguments(to_e164=to_e164, text=text, reference=reference)
        line = json.dumps(
            {
                "at": self.now().isoformat(),
                "to": to_e164,
                "text": text,
                "reference": reference,
            },
            ensure_ascii=False,
        )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as log_file:
                log_file.write(line + "\n")
        except OSError as error:
            return _failed(SMS_CHANNEL, _describe(error))
        return _sent(SMS_CHANNEL, None)


class HttpSmsGateway:
    """POSTs ``{"to", "text", "reference"}`` as JSON to an SMS provider's (or a relay's) URL.

    ``timeout_seconds`` bounds each phase of the call (connect, write, each read), as httpx does.
    The reference also goes out as ``Idempotency-Key``: the outbox delivers at least once, and a
    gateway that honours the header will not text the shopper twice for one retried message.
    """

    def __init__(self, *, url: str, token: str | None, timeout_seconds: float) -> None:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as error:
            raise ValueError(f"SMS gateway URL {url!r} is malformed: {error}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"SMS gateway URL {url!r} must be an absolute http(s) URL")
        if not timeout_seconds > 0:
            raise ValueError("timeout_seconds must be positive")
        self.url = url
        self._token = token
        self.timeout_seconds = timeout_seconds
        self._client = httpx.Client(timeout=timeout_seconds, follow_redirects=False)

    def __repr__(self) -> str:
        return f"HttpSmsGateway(url={self.url!r}, timeout_seconds={self.timeout_seconds})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpSmsGateway:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send(self, *, to_e164: str, text: str, reference: str) -> Delivery:
        _check_sms_arguments(to_e164=to_e164, text=text, reference=reference)
        body = json.dumps({"to": to_e164, "text": text, "reference": reference}, ensure_ascii=False)
        headers = {
            "content-type": "application/json; charset=utf-8",
            "idempotency-key": reference,
        }
        if self._token:
            headers["authorization"] = f"Bearer {self._token}"
        try:
            response = self._client.post(self.url, content=body.encode("utf-8"), headers=headers)
        except httpx.TimeoutException as error:
            return _failed(
                SMS_CHANNEL, f"timed out after {self.timeout_seconds}s ({_describe(error)})"
            )
        except httpx.HTTPError as error:
            return _failed(SMS_CHANNEL, _describe(error))
        if not 200 <= response.status_code < 300:
            answer = response.text[:ERROR_BODY_LIMIT_CHARACTERS].strip()
            status = f"HTTP {response.status_code}"
            return _failed(SMS_CHANNEL, f"{status}: {answer}" if answer else status)
        return _sent(SMS_CHANNEL, _provider_id_of(response))


def _provider_id_of(response: httpx.Response) -> str | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    if isinstance(answer, dict):
        provider_id = answer.get("id")
        if isinstance(provider_id, str | int) and not isinstance(provider_id, bool):
            return str(provider_id)
    return None


# --- Email ----------------------------------------------------------------------------------


class EmailSender(Protocol):
    def send(self, *, to_address: str, subject: str, text: str, reference: str) -> Delivery: ...


def _check_address(address: str, *, name: str) -> None:
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in address):
        raise ValueError(f"{name} {address!r} is not an email address")
    if _has_control_characters(address):
        raise ValueError(f"{name} must not contain control characters")


class SmtpEmailSender:
    """Sends plain-text UTF-8 email over SMTP, one connection per message.

    One connection per message keeps the sender stateless between outbox jobs; reminder volume is
    far below where connection reuse would matter.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender_address: str,
        username: str | None = None,
        password: str | None = None,
        use_starttls: bool = False,
        timeout_seconds: float = 10,
        now: Callable[[], datetime] = system_now,
    ) -> None:
        if not host:
            raise ValueError("SMTP host is required")
        if not 0 < port < 65536:
            raise ValueError(f"SMTP port {port} is out of range")
        _check_address(sender_address, name="sender_address")
        if (username is None) != (password is None):
            raise ValueError("SMTP username and password go together")
        if not timeout_seconds > 0:
            raise ValueError("timeout_seconds must be positive")
        self.host = host
        self.port = port
        self.sender_address = sender_address
        self.username = username
        self._password = password
        self.use_starttls = use_starttls
        self.timeout_seconds = timeout_seconds
        self.now = now

    def __repr__(self) -> str:
        return (
            f"SmtpEmailSender(host={self.host!r}, port={self.port}, "
            f"sender_address={self.sender_address!r}, use_starttls={self.use_starttls})"
        )

    def compose(self, *, to_address: str, subject: str, text: str, reference: str) -> EmailMessage:
        _check_address(to_address, name="to_address")
        for name, value in (("subject", subject), ("reference", reference)):
            if not value.strip() or _has_control_characters(value):
                raise ValueError(f"{name} must be non-empty text on one line")
        domain = self.sender_address.rpartition("@")[2]
        message = EmailMessage()
        message["From"] = self.sender_address
        message["To"] = to_address
        message["Subject"] = subject
        message["Date"] = format_datetime(self.now())
        message["Message-ID"] = f"<{secrets.token_hex(16)}@{domain}>"
        message["X-Usefirst-Reference"] = reference
        # RFC 3834: tells mail servers and clients not to send vacation auto-replies back.
        message["Auto-Submitted"] = "auto-generated"
        # Base64 keeps non-ASCII bodies 7-bit clean: relays without 8BITMIME pass them intact.
        message.set_content(text, charset="utf-8", cte=None if text.isascii() else "base64")
        return message

    def send(self, *, to_address: str, subject: str, text: str, reference: str) -> Delivery:
        message = self.compose(
            to_address=to_address, subject=subject, text=text, reference=reference
        )
        message_id = str(message["Message-ID"])
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_seconds) as connection:
                if self.use_starttls:
                    connection.starttls(context=ssl.create_default_context())
                if self.username is not None and self._password is not None:
                    connection.login(self.username, self._password)
                connection.send_message(
                    message, from_addr=self.sender_address, to_addrs=[to_address]
                )
        except (smtplib.SMTPException, OSError) as error:
            return _failed(EMAIL_CHANNEL, _describe(error))
        return _sent(EMAIL_CHANNEL, message_id)


# --- Wiring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelSettings:
    sms_gateway_url: str | None = None
    sms_gateway_token: str | None = field(default=None, repr=False)
    sms_log_path: Path = Path("usefirst-sms.jsonl")
    sms_gateway_timeout_seconds: float = 5.0
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_sender: str | None = None
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 10.0


def build_channels(
    config: ChannelSettings, *, now: Callable[[], datetime] = system_now
) -> tuple[SmsGateway, EmailSender | None]:
    """The SMS gateway (the local log unless a URL is set) and the email sender, if SMTP is set."""
    sms_gateway: SmsGateway
    if config.sms_gateway_url:
        sms_gateway = HttpSmsGateway(
            url=config.sms_gateway_url,
            token=config.sms_gateway_token,
            timeout_seconds=config.sms_gateway_timeout_seconds,
        )
    else:
        sms_gateway = LogSmsGateway(config.sms_log_path, now=now)
    email_sender: EmailSender | None = None
    if config.smtp_host:
        if not config.smtp_sender:
            raise ValueError("smtp_sender is required when smtp_host is set")
        email_sender = SmtpEmailSender(
            host=config.smtp_host,
            port=config.smtp_port,
            sender_address=config.smtp_sender,
            username=config.smtp_username,
            password=config.smtp_password,
            use_starttls=config.smtp_starttls,
            timeout_seconds=config.smtp_timeout_seconds,
            now=now,
        )
    return sms_gateway, email_sender
