"""The FastAPI application: routers, one error format, health and metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

from usefirst import __version__
from usefirst.api.routers import collections as collections_endpoints
from usefirst.api.routers import credentials as credential_endpoints
from usefirst.api.routers import disputes as dispute_endpoints
from usefirst.api.routers import identity as identity_endpoints
from usefirst.api.routers import ledger as ledger_endpoints
from usefirst.api.routers import merchants as merchant_endpoints
from usefirst.api.routers import notify as notify_endpoints
from usefirst.api.routers import orders as order_endpoints
from usefirst.api.routers import privacy as privacy_endpoints
from usefirst.api.routers import repayment as repayment_endpoints
from usefirst.api.routers import risk as risk_endpoints
from usefirst.api.routers import sandbox
from usefirst.console import site as console_site
from usefirst.kit.errors import UsefirstError, ValidationFailed
from usefirst.kit.settings import get_settings
from usefirst.runtime import Runtime

FORBIDDEN_FIELDS = {"contacts", "contact_list", "address_book", "emergency_contacts"}


def _validation_error(exc: RequestValidationError) -> ValidationFailed:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    location = [
        str(part)
        for part in first.get("loc", ())
        if part not in ("body", "query", "path", "header")
    ]
    field = ".".join(location) or None
    if first.get("type") == "json_invalid":
        # Its location is a character offset, not a field of the request.
        return ValidationFailed("The request body is not valid JSON.")
    if first.get("type") == "extra_forbidden" and location and location[-1] in FORBIDDEN_FIELDS:
        return ValidationFailed(
            "usefirst never accepts a shopper's contacts or address book.", field=field
        )
    if first.get("type") == "extra_forbidden":
        return ValidationFailed(f"Unknown field {field!r}.", field=field)
    return ValidationFailed(str(first.get("msg", "invalid request")), field=field)


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="usefirst",
        version=__version__,
        description=(
            "Buy Now, Pay Later (先用后付) engine, v1 API. Money is in integer minor units."
        ),
    )
    app.state.runtime = runtime
    registry = CollectorRegistry()
    requests_total = Counter(
        "usefirst_http_requests_total",
        "HTTP requests",
        ["method", "route", "status"],
        registry=registry,
    )
    latency = Histogram(
        "usefirst_http_request_seconds",
        "HTTP request latency",
        ["method", "route"],
        registry=registry,
        buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    )

    @app.middleware("http")
    async def measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        route_path = getattr(route, "path", "unmatched")
        latency.labels(request.method, route_path).observe(time.perf_counter() - started)
        requests_total.labels(request.method, route_path, str(response.status_code)).inc()
        return response

    @app.exception_handler(UsefirstError)
    async def on_usefirst_error(request: Request, exc: UsefirstError) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status_code, content=exc.to_body(), headers=exc.headers()
        )

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        error = _validation_error(exc)
        return JSONResponse(status_code=error.status_code, content=error.to_body())

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        body: dict[str, Any] = {
            "error": {"code": codes.get(exc.status_code, "http_error"), "message": str(exc.detail)}
        }
        return JSONResponse(status_code=exc.status_code, content=body)

    for router in (
        identity_endpoints.router,
        merchant_endpoints.router,
        order_endpoints.router,
        repayment_endpoints.router,
        notify_endpoints.router,
        ledger_endpoints.router,
        collections_endpoints.router,
        risk_endpoints.router,
        dispute_endpoints.router,
        privacy_endpoints.router,
        sandbox.router,
        credential_endpoints.router,
    ):
        app.include_router(router)
    console_site.install(app)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        with runtime.database.transaction(read_only=True) as session:
            session.execute(text("SELECT 1"))
        return {"status": "ok"}

    @app.get("/metrics", tags=["operations"])
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` (one app per worker process), configured from
    ``USEFIRST_*`` environment variables."""
    return create_app(Runtime(get_settings()))
