"""Per-request observability as plain ASGI (no BaseHTTPMiddleware: no extra task or body
buffering per request): a request id, one log line and the HTTP metrics, with label values
bounded so that no client can create new time series (methods from a fixed set, route templates
rather than raw paths, "unmatched" for every path no route knows)."""

from __future__ import annotations

import hmac
import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from usefirst.kit.errors import AuthenticationRequired, NotFound
from usefirst.kit.logs import REQUEST_ID_HEADER, get_logger, request_scope, sane_request_id
from usefirst.kit.settings import Settings

log = get_logger("usefirst.http")

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"
_REQUEST_ID_HEADER_BYTES = REQUEST_ID_HEADER.lower().encode("latin-1")


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "usefirst_http_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "usefirst_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )


def bounded_method(method: str) -> str:
    return method if method in KNOWN_METHODS else "OTHER"


def route_template(scope: Scope) -> str:
    """The template of the route that handled the request (``/v1/orders/{order_id}``), never the
    path a client sent."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == _REQUEST_ID_HEADER_BYTES:
            return sane_request_id(value.decode("latin-1"))
    return None


class RequestObservability:
    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        with request_scope(_incoming_request_id(scope)) as request_id:

            async def send_with_request_id(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
                await send(message)

            try:
                await self.app(scope, receive, send_with_request_id)
            finally:
                elapsed = time.perf_counter() - started
                method = bounded_method(scope["method"])
                route = route_template(scope)
                self.metrics.latency.labels(method, route).observe(elapsed)
                self.metrics.requests.labels(method, route, str(status)).inc()
                log.info(
                    "http_request",
                    method=method,
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 1),
                )


def check_metrics_access(settings: Settings, authorization: str | None) -> None:
    """/metrics answers a scraper with the bearer token; in sandbox mode without a token it is
    open (the demo), in production without one it does not exist."""
    token = settings.metrics_token
    if token is None:
        if settings.sandbox:
            return
        raise NotFound("Not Found")
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        presented.strip().encode(), token.encode()
    ):
        raise AuthenticationRequired("/metrics needs the metrics bearer token.")
