"""Channels against real servers: aiosmtpd for SMTP, http.server for the SMS gateway."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from usefirst.notify.channels import (
    ChannelSettings,
    Delivery,
    HttpSmsGateway,
    LogSmsGateway,
    SmtpEmailSender,
    build_channels,
)

FIXED_NOW = datetime(2025, 3, 15, 1, 2, 3, tzinfo=UTC)
SENDER = "reminders@usefirst.example"
RECIPIENT = "shopper@example.cn"
SUBJECT = "还款提醒：¥1,234.56将于2025年3月15日到期"
BODY = (
    "张*您好：\n\n您在小米之家的订单应还¥1,234.56，还款日为2025年3月15日。\n\n"
    "还款方式：打开App还款\n"
)


def fixed_now() -> datetime:
    return FIXED_NOW


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- SMTP -----------------------------------------------------------------------------------


class RecordingHandler:
    def __init__(self, *, refuse_recipients: bool = False) -> None:
        self.envelopes: list[Envelope] = []
        self.refuse_recipients = refuse_recipients

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.refuse_recipients:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


@dataclass
class SmtpServer:
    port: int
    handler: RecordingHandler
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)


def start_smtp(handler: RecordingHandler, **smtp_options: Any) -> tuple[Controller, int]:
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **smtp_options)
    controller.start()
    return controller, port


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    handler = RecordingHandler()
    controller, port = start_smtp(handler)
    try:
        yield SmtpServer(port=port, handler=handler)
    finally:
        controller.stop()


def make_sender(port: int, **options: Any) -> SmtpEmailSender:
    return SmtpEmailSender(
        host="127.0.0.1",
        port=port,
        sender_address=SENDER,
        timeout_seconds=5,
        now=fixed_now,
        **options,
    )


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_smtp_delivers_chinese_email_intact(smtp_server: SmtpServer) -> None:
    delivery = make_sender(smtp_server.port).send(
        to_address=RECIPIENT, subject=SUBJECT, text=BODY, reference="rem_01JD3ABC"
    )

    assert delivery.status == "sent"
    assert delivery.channel == "email"
    assert delivery.error is None
    assert delivery.provider_reference is not None
    assert delivery.provider_reference.startswith("<")
    assert delivery.provider_reference.endswith("@usefirst.example>")
    [envelope] = smtp_server.handler.envelopes
    assert envelope.mail_from == SENDER
    assert envelope.rcpt_tos == [RECIPIENT]
    raw = envelope.original_content
    assert isinstance(raw, bytes)
    raw.decode("ascii")  # encoded for any relay: no 8-bit bytes on the wire
    message = parse(raw)
    assert list(message.keys()) == [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "X-Usefirst-Reference",
        "Auto-Submitted",
        "Content-Type",
        "Content-Transfer-Encoding",
        "MIME-Version",
    ]
    assert message["From"] == SENDER
    assert message["To"] == RECIPIENT
    assert message["Subject"] == SUBJECT
    assert message["Date"] == "Sat, 15 Mar 2025 01:02:03 +0000"
    assert message["Message-ID"] == delivery.provider_reference
    assert message["X-Usefirst-Reference"] == "rem_01JD3ABC"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert message.get_content() == BODY


def test_each_email_gets_its_own_message_id(smtp_server: SmtpServer) -> None:
    sender = make_sender(smtp_server.port)
    first = sender.send(to_address=RECIPIENT, subject=SUBJECT, text=BODY, reference="rem_1")
    second = sender.send(to_address=RECIPIENT, subject=SUBJECT, text=BODY, reference="rem_1")

    assert first.provider_reference != second.provider_reference
    assert len(smtp_server.handler.envelopes) == 2


def test_smtp_connection_refused_is_a_failed_delivery() -> None:
    sender = make_sender(free_port())

    delivery = sender.send(to_address=RECIPIENT, subject=SUBJECT, text=BODY, reference="rem_1")

    assert delivery.status == "failed"
    assert delivery.channel == "email"
    assert delivery.provider_reference is None
    assert delivery.error is not None
    assert delivery.error.startswith("ConnectionRefusedError")


def test_smtp_refused_recipient_is_a_failed_delivery() -> None:
    handler = RecordingHandler(refuse_recipients=True)
    controller, port = start_smtp(handler)
    try:
        delivery = make_sender(port).send(
            to_address=RECIPIENT, subject=SUBJECT, text=BODY, reference="rem_1"
        )
    finally:
        controller.stop()

    assert delivery.status == "failed"
    assert delivery.error is not None
    assert delivery.error.startswith("SMTPRecipientsRefused")
    assert "no such mailbox" in delivery.error
    assert handler.envelopes == []


def test_smtp_login_with_credentials() -> None:
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"right password", handled=False)

    handler = RecordingHandler()
    controller, port = start_smtp(handler, authenticator=authenticator, auth_require_tls=False)
    try:
        accepted = make_sender(port, username="mailer", password="right password").send(
            to_address=RECIPIENT, subject=SUBJECT, text=BODY, reference="rem_1"
        )
        rejected = make_sender(port, username="mailer", password="wrong").send(
            to_address=RECIPIENT, subject=SUBJECT, text=BODY, reference="rem_2"
        )
    finally:
        controller.stop()

    assert accepted.status == "sent"
    assert rejected.status == "failed"
    assert rejected.error is not None
    assert rejected.error.startswith("SMTPAuthenticationError")
    assert logins[0] == (b"mailer", b"right password")
    assert set(logins[1:]) == {(b"mailer", b"wrong")}  # smtplib tries each offered mechanism
    assert len(handler.envelopes) == 1


def test_starttls_against_a_server_without_it_fails_instead_of_sending_in_clear(
    smtp_server: SmtpServer,
) -> None:
    delivery = make_sender(smtp_server.port, use_starttls=True).send(
        to_address=RECIPIENT, subject=SUBJECT, text=BODY, reference="rem_1"
    )

    assert delivery.status == "failed"
    assert smtp_server.handler.envelopes == []


@pytest.mark.parametrize(
    ("to_address", "subject"),
    [
        ("shopper@example.cn\r\nBcc: everyone@example.cn", SUBJECT),
        ("not an address", SUBJECT),
        ("@example.cn", SUBJECT),
        (RECIPIENT, "还款提醒\r\nBcc: everyone@example.cn"),
        (RECIPIENT, "  "),
    ],
)
def test_header_injection_and_bad_addresses_are_refused_before_connecting(
    smtp_server: SmtpServer, to_address: str, subject: str
) -> None:
    with pytest.raises(ValueError):
        make_sender(smtp_server.port).send(
            to_address=to_address, subject=subject, text=BODY, reference="rem_1"
        )
    assert smtp_server.handler.envelopes == []


def test_smtp_sender_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="username and password"):
        SmtpEmailSender(host="127.0.0.1", port=25, sender_address=SENDER, username="mailer")
    with pytest.raises(ValueError, match="not an email address"):
        SmtpEmailSender(host="127.0.0.1", port=25, sender_address="reminders")
    with pytest.raises(ValueError, match="out of range"):
        SmtpEmailSender(host="127.0.0.1", port=0, sender_address=SENDER)


def test_smtp_sender_repr_hides_the_password() -> None:
    sender = make_sender(25, username="mailer", password="hunter2-secret")
    assert "hunter2-secret" not in repr(sender)


# --- HTTP SMS gateway -----------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class GatewayServer:
    url: str
    requests: list[RecordedRequest] = field(default_factory=list)
    status: int = 200
    answer: bytes = b'{"id": "msg-42"}'
    content_type: str = "application/json"
    delay_seconds: float = 0.0
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def gateway() -> Iterator[GatewayServer]:
    state = GatewayServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            state.requests.append(
                RecordedRequest(
                    method="POST",
                    path=self.path,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=self.rfile.read(length),
                )
            )
            if state.delay_seconds:
                state.release.wait(state.delay_seconds)
            try:
                self.send_response(state.status)
                self.send_header("content-type", state.content_type)
                self.send_header("content-length", str(len(state.answer)))
                self.end_headers()
                self.wfile.write(state.answer)
            except OSError:
                pass  # the client gave up (the timeout test): nothing to answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1/sms"
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_http_gateway_posts_json_with_bearer_token(gateway: GatewayServer) -> None:
    with HttpSmsGateway(url=gateway.url, token="secret-token", timeout_seconds=5) as sms:
        delivery = sms.send(
            to_e164="+8613800138000", text="张*您好，账单今天到期。", reference="rem_1"
        )

    assert delivery == Delivery(
        channel="sms", status="sent", provider_reference="msg-42", error=None
    )
    [request] = gateway.requests
    assert request.path == "/v1/sms"
    assert request.headers["authorization"] == "Bearer secret-token"
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert request.headers["idempotency-key"] == "rem_1"
    assert json.loads(request.body.decode("utf-8")) == {
        "to": "+8613800138000",
        "text": "张*您好，账单今天到期。",
        "reference": "rem_1",
    }


def test_http_gateway_without_token_sends_no_authorization(gateway: GatewayServer) -> None:
    with HttpSmsGateway(url=gateway.url, token=None, timeout_seconds=5) as sms:
        sms.send(to_e164="+8613800138000", text="hello", reference="rem_1")

    [request] = gateway.requests
    assert "authorization" not in request.headers


@pytest.mark.parametrize(
    ("answer", "provider_reference"),
    [
        (b'{"id": 7}', "7"),
        (b'{"status": "queued"}', None),
        (b"[1, 2]", None),
        (b"queued", None),
        (b"", None),
    ],
)
def test_http_gateway_success_without_a_usable_id_is_still_sent(
    gateway: GatewayServer, answer: bytes, provider_reference: str | None
) -> None:
    gateway.status = 202
    gateway.answer = answer
    with HttpSmsGateway(url=gateway.url, token=None, timeout_seconds=5) as sms:
        delivery = sms.send(to_e164="+8613800138000", text="hello", reference="rem_1")

    assert delivery == Delivery(
        channel="sms", status="sent", provider_reference=provider_reference, error=None
    )


def test_http_gateway_500_is_a_failed_delivery(gateway: GatewayServer) -> None:
    gateway.status = 500
    gateway.answer = b"gateway down"
    gateway.content_type = "text/plain"
    with HttpSmsGateway(url=gateway.url, token="secret-token", timeout_seconds=5) as sms:
        delivery = sms.send(to_e164="+8613800138000", text="hello", reference="rem_1")

    assert delivery == Delivery(
        channel="sms", status="failed", provider_reference=None, error="HTTP 500: gateway down"
    )


def test_http_gateway_error_body_is_cut_short(gateway: GatewayServer) -> None:
    gateway.status = 503
    gateway.answer = b"x" * 5_000
    with HttpSmsGateway(url=gateway.url, token=None, timeout_seconds=5) as sms:
        delivery = sms.send(to_e164="+8613800138000", text="hello", reference="rem_1")

    assert delivery.error == "HTTP 503: " + "x" * 200


def test_http_gateway_timeout_is_a_failed_delivery(gateway: GatewayServer) -> None:
    gateway.delay_seconds = 3.0
    with HttpSmsGateway(url=gateway.url, token=None, timeout_seconds=0.3) as sms:
        delivery = sms.send(to_e164="+8613800138000", text="hello", reference="rem_1")

    assert delivery.status == "failed"
    assert delivery.provider_reference is None
    assert delivery.error is not None
    assert delivery.error.startswith("timed out after 0.3s")
    assert len(gateway.requests) == 1


def test_http_gateway_connection_refused_is_a_failed_delivery() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/sms"
    with HttpSmsGateway(url=url, token=None, timeout_seconds=2) as sms:
        delivery = sms.send(to_e164="+8613800138000", text="hello", reference="rem_1")

    assert delivery.status == "failed"
    assert delivery.error is not None
    assert delivery.error.startswith("ConnectError")


@pytest.mark.parametrize(
    "url", ["", "not a url", "ftp://sms.example/send", "http://", "/v1/sms", "http://[::1"]
)
def test_http_gateway_refuses_a_malformed_url(url: str) -> None:
    with pytest.raises(ValueError, match="SMS gateway URL"):
        HttpSmsGateway(url=url, token=None, timeout_seconds=5)


def test_http_gateway_refuses_a_non_positive_timeout() -> None:
    with pytest.raises(ValueError, match="timeout_seconds"):
        HttpSmsGateway(url="https://sms.example/send", token=None, timeout_seconds=0)


def test_http_gateway_repr_hides_the_token() -> None:
    sms = HttpSmsGateway(url="https://sms.example/send", token="secret-token", timeout_seconds=5)
    assert "secret-token" not in repr(sms)
    sms.close()


@pytest.mark.parametrize("to_e164", ["13800138000", "+86 138 0013 8000", "+0123456789", ""])
def test_sms_gateways_refuse_numbers_that_are_not_e164(
    gateway: GatewayServer, tmp_path: Path, to_e164: str
) -> None:
    log_gateway = LogSmsGateway(tmp_path / "sms.jsonl", now=fixed_now)
    with HttpSmsGateway(url=gateway.url, token=None, timeout_seconds=5) as http_gateway:
        for sms in (log_gateway, http_gateway):
            with pytest.raises(ValueError, match=r"E\.164"):
                sms.send(to_e164=to_e164, text="hello", reference="rem_1")

    assert gateway.requests == []
    assert not (tmp_path / "sms.jsonl").exists()


# --- Log SMS gateway ------------------------------------------------------------------------


def test_log_gateway_appends_exact_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "outbox" / "sms.jsonl"
    sms = LogSmsGateway(path, now=fixed_now)

    first = sms.send(to_e164="+8613800138000", text="张*您好，账单今天到期。", reference="rem_1")
    second = sms.send(to_e164="+8613900139000", text='say "hi"\nbye', reference="rem_2")

    assert first == Delivery(channel="sms", status="sent", provider_reference=None, error=None)
    assert second.status == "sent"
    assert path.read_text(encoding="utf-8") == (
        '{"at": "2025-03-15T01:02:03+00:00", "to": "+8613800138000", '
        '"text": "张*您好，账单今天到期。", "reference": "rem_1"}\n'
        '{"at": "2025-03-15T01:02:03+00:00", "to": "+8613900139000", '
        '"text": "say \\"hi\\"\\nbye", "reference": "rem_2"}\n'
    )


def test_log_gateway_unwritable_path_is_a_failed_delivery(tmp_path: Path) -> None:
    sms = LogSmsGateway(tmp_path, now=fixed_now)  # a directory cannot be appended to

    delivery = sms.send(to_e164="+8613800138000", text="hello", reference="rem_1")

    assert delivery.status == "failed"
    assert delivery.error is not None
    assert delivery.error.startswith("IsADirectoryError")


# --- Wiring ---------------------------------------------------------------------------------


def test_build_channels_defaults_to_the_log_gateway_and_no_email(tmp_path: Path) -> None:
    sms, email_sender = build_channels(ChannelSettings(sms_log_path=tmp_path / "sms.jsonl"))

    assert isinstance(sms, LogSmsGateway)
    assert sms.path == tmp_path / "sms.jsonl"
    assert email_sender is None


def test_build_channels_with_gateway_and_smtp() -> None:
    config = ChannelSettings(
        sms_gateway_url="https://sms.example/send",
        sms_gateway_token="secret-token",
        sms_gateway_timeout_seconds=3,
        smtp_host="smtp.example",
        smtp_port=587,
        smtp_sender=SENDER,
        smtp_username="mailer",
        smtp_password="hunter2-secret",
        smtp_starttls=True,
    )

    sms, email_sender = build_channels(config)

    assert isinstance(sms, HttpSmsGateway)
    assert sms.url == "https://sms.example/send"
    assert sms.timeout_seconds == 3
    sms.close()
    assert isinstance(email_sender, SmtpEmailSender)
    assert (email_sender.host, email_sender.port) == ("smtp.example", 587)
    assert email_sender.use_starttls is True
    assert email_sender.username == "mailer"
    assert "secret-token" not in repr(config)
    assert "hunter2-secret" not in repr(config)


def test_build_channels_needs_a_sender_address_for_smtp() -> None:
    with pytest.raises(ValueError, match="smtp_sender"):
        build_channels(ChannelSettings(smtp_host="smtp.example"))


def test_build_channels_refuses_a_malformed_gateway_url() -> None:
    with pytest.raises(ValueError, match="SMS gateway URL"):
        build_channels(ChannelSettings(sms_gateway_url="sms.example/send"))
