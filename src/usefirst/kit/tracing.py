"""OpenTelemetry tracing: off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, then every HTTP
request (FastAPI), its SQL (SQLAlchemy) and every outgoing call (httpx: webhooks, the SMS
gateway) become spans of one trace, exported over OTLP/HTTP. The standard ``OTEL_*`` variables
apply (``OTEL_SERVICE_NAME``, ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_TRACES_SAMPLER``, …).

The SDK and the instrumentations are the ``otel`` extra, so a serving install without tracing
stays lean; setting the endpoint without the extra installed stops the process at start with a
message, rather than running untraced while the operator believes otherwise.

Spans carry SQL text with its placeholders, never the parameters, and no request headers or
bodies: no personal data leaves in a trace.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy.engine import Engine

ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"


class TracingUnavailable(RuntimeError):
    pass


def tracer_provider_from_environment() -> Any | None:
    """A tracer provider exporting over OTLP when the endpoint is set, else None (no tracing)."""
    if not os.environ.get(ENDPOINT_VARIABLE):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as error:
        raise TracingUnavailable(
            f"{ENDPOINT_VARIABLE} is set but the tracing packages are not installed: "
            "install the otel extra (uv sync --locked --extra otel)"
        ) from error
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "usefirst")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def instrument_database(engine: Engine, provider: Any) -> None:
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    # The instrumentation declares "sqlalchemy < 2.1" but works with 2.1's engine events (the test
    # in tests/api/test_tracing.py shows the SQL spans); without skip_dep_check it does nothing.
    # The instrumentor is a process-wide singleton that ignores a second instrument() call: a
    # process traces one database, so a new Runtime's engine replaces the previous one's.
    instrumentor = SQLAlchemyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    instrumentor.instrument(engine=engine, tracer_provider=provider, skip_dep_check=True)


def instrument_outgoing_http(provider: Any) -> None:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    instrumentor = HTTPXClientInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider)


def instrument_app(app: Any, provider: Any) -> None:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # /metrics and /healthz are polled every few seconds: tracing them would drown the rest.
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, excluded_urls="/metrics,/healthz"
    )
