"""What the tests' local payment gateways (Alipay's and WeChat Pay's protocol servers) share: an
HTTP server on a free loopback port served from a thread, notifications posted back to the
engine as the provider would (a refused or failed delivery is the provider's problem, as in
life), timers for delayed outcomes that a test can wait for, and fresh RSA keys."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib import request as urllib_request

from cryptography.hazmat.primitives.asymmetric import rsa


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the test output clean."""

    def log_message(self, format: str, *args: Any) -> None:
        return


class LocalGateway:
    """The server half of a local gateway: ``handler`` answers its requests, with the gateway
    itself as the handler class's ``server_state``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.lock = threading.Lock()
        self.timers: list[threading.Timer] = []
        bound = type(handler.__name__, (handler,), {"server_state": self})
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), bound)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def post_notification(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        call = urllib_request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib_request.urlopen(call, timeout=10):
                pass
        except OSError:
            pass

    def wait_idle(self) -> None:
        for timer in list(self.timers):
            timer.join(10)


Gateway = TypeVar("Gateway", bound=LocalGateway)


@contextmanager
def serving(gateway: Gateway) -> Iterator[Gateway]:
    gateway.thread.start()
    try:
        yield gateway
    finally:
        gateway.http.shutdown()
        gateway.http.server_close()
        for timer in gateway.timers:
            timer.cancel()
