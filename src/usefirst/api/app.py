"""The FastAPI application: routers, one error format, health and metrics."""

from __future__ import annotations

import gc
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

from usefirst import __version__
from usefirst.api.book_metrics import BookCollector
from usefirst.api.credential_cache import CredentialCache
from usefirst.api.deps import authenticate_authorization, client_address, credential_cache
from usefirst.api.docs import install_offline_docs
from usefirst.api.guard import BodyLimits, RequestGuard, error_response_headers
from usefirst.api.observability import HttpMetrics, RequestObservability, check_metrics_access
from usefirst.api.openapi import install_openapi
from usefirst.api.responses import HealthOut
from usefirst.api.route_memo import remember_routes
from usefirst.api.routers import collections as collections_endpoints
from usefirst.api.routers import credentials as credential_endpoints
from usefirst.api.routers import disputes as dispute_endpoints
from usefirst.api.routers import identity as identity_endpoints
from usefirst.api.routers import ledger as ledger_endpoints
from usefirst.api.routers import merchants as merchant_endpoints
from usefirst.api.routers import notify as notify_endpoints
from usefirst.api.routers import orders as order_endpoints
from usefirst.api.routers import privacy as privacy_endpoints
from usefirst.api.routers import rails as rail_endpoints
from usefirst.api.routers import repayment as repayment_endpoints
from usefirst.api.routers import risk as risk_endpoints
from usefirst.api.routers import sandbox
from usefirst.api.text_rules import LINE_PATTERN, LINE_RULE_MESSAGE, TEXT_PATTERN, TEXT_RULE_MESSAGE
from usefirst.console import site as console_site
from usefirst.kit.errors import InternalError, UsefirstError, ValidationFailed
from usefirst.kit.logs import configure_logging
from usefirst.kit.settings import get_settings
from usefirst.kit.tracing import instrument_app, tracer_provider_from_environment
from usefirst.runtime import Runtime

# Room for the multipart boundaries and part headers around an evidence file.
UPLOAD_OVERHEAD_BYTES = 64 * 1024

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
    if first.get("type") == "string_pattern_mismatch":
        context = first.get("ctx")
        pattern = context.get("pattern") if isinstance(context, dict) else None
        if pattern == LINE_PATTERN:
            return ValidationFailed(f"This field {LINE_RULE_MESSAGE}.", field=field)
        if pattern == TEXT_PATTERN:
            return ValidationFailed(f"This field {TEXT_RULE_MESSAGE}.", field=field)
    return ValidationFailed(str(first.get("msg", "invalid request")), field=field)


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="usefirst",
        version=__version__,
        description=(
            "Buy Now, Pay Later (先用后付) engine, v1 API. Money is in integer minor units."
        ),
        # Served from the installed swagger-ui-bundle package (api.docs), never from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    # API keys this process has authenticated, remembered briefly; a revocation in this process
    # forgets the key at once (Runtime.forget_credential), other processes within the TTL.
    app.state.credential_cache = CredentialCache(
        ttl_seconds=runtime.settings.credential_cache_seconds
    )
    runtime.credential_listeners.append(app.state.credential_cache.forget_secret_hash)
    # Added before the metrics middleware, so that one stays outermost and counts refusals too.
    app.add_middleware(
        RequestGuard,
        limits=BodyLimits(
            json_bytes=runtime.settings.http_max_json_body_bytes,
            form_bytes=runtime.settings.http_max_form_body_bytes,
            upload_bytes=runtime.settings.dispute_evidence_max_bytes + UPLOAD_OVERHEAD_BYTES,
        ),
        authenticate=lambda authorization, client: authenticate_authorization(
            runtime, credential_cache(app.state), authorization, client_address(client)
        ),
        documented_paths=lambda: app.openapi()["paths"],
        form_refusal_page=console_site.form_refusal_page,
    )
    registry = CollectorRegistry()
    app.add_middleware(RequestObservability, metrics=HttpMetrics(registry))
    book = CollectorRegistry()
    book.register(
        BookCollector(runtime, refresh_seconds=runtime.settings.metrics_book_refresh_seconds)
    )

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
        codes = {
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
            422: "validation_error",
        }
        # A body Starlette could not parse is, by the contract, a 422 like any invalid request.
        status = 422 if exc.status_code == 400 else exc.status_code
        body: dict[str, Any] = {
            "error": {
                "code": codes.get(status, "http_error"),
                "message": str(exc.detail),
            }
        }
        # Kept: a 405 names the methods that are allowed (Allow), a 401 its scheme.
        return JSONResponse(status_code=status, content=body, headers=exc.headers)

    @app.exception_handler(Exception)
    async def on_unexpected_error(request: Request, exc: Exception) -> Response:
        # Runs outside the request guard, so the security headers are set here. The message says
        # nothing of the cause (no SQL, no stack); the log has it.
        error = InternalError()
        response = JSONResponse(status_code=500, content=error.to_body())
        for name, value in error_response_headers():
            response.headers[name.decode()] = value.decode()
        return response

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
        rail_endpoints.router,
        sandbox.router,
        credential_endpoints.router,
    ):
        app.include_router(router)
    console_site.install(app)
    if runtime.tracer_provider is not None:
        instrument_app(app, runtime.tracer_provider)
    install_offline_docs(app)
    install_openapi(app)

    @app.get("/healthz", tags=["operations"], response_model=HealthOut)
    def healthz() -> dict[str, str]:
        with runtime.database.transaction(read_only=True) as session:
            session.execute(text("SELECT 1"))
        return {"status": "ok"}

    @app.get("/metrics", tags=["operations"])
    def metrics(request: Request) -> PlainTextResponse:
        # The token is read from the request rather than declared as a parameter, so that the
        # contract documents /metrics as it answers (401/404 in the error shape, never a 422).
        check_metrics_access(runtime.settings, request.headers.get("authorization"))
        exposition = b"".join(
            generate_latest(each) for each in (registry, runtime.job_metrics.registry, book)
        )
        return PlainTextResponse(exposition, media_type=CONTENT_TYPE_LATEST)

    remember_routes(app.router)
    return app


def freeze_startup_heap() -> None:
    """Put what starting the server made (modules, the app, the rules, the model: some 460,000
    objects) beyond the cyclic garbage collector's reach: they live as long as the process, and
    every full collection, which a busy server runs every few seconds, walked them all (0.2–1 s
    with the machine under load: the checkout's p99 stalls). Called once, by the server only (a
    test process builds many apps and must be able to collect them)."""
    gc.collect()
    gc.freeze()


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` (one app per worker process), configured from
    ``USEFIRST_*`` environment variables."""
    settings = get_settings()
    configure_logging(log_format=settings.log_format, level=settings.log_level)
    app = create_app(Runtime(settings, tracer_provider=tracer_provider_from_environment()))
    freeze_startup_heap()
    return app
