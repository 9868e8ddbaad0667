"""OpenTelemetry: one checkout is one trace (the HTTP request's server span, its SQL as child
spans), no span carries a parameter value, and tracing is off without the OTLP endpoint.
Needs the otel extra (`./dev test` installs every extra; CI fails if these tests skip)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_runtime
from tests.factories import bearer, checkout_body, create_merchant, enrol
from usefirst.api.app import create_app
from usefirst.identity.service import create_api_key
from usefirst.kit import tracing

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
export = pytest.importorskip("opentelemetry.sdk.trace.export")


@pytest.fixture
def spans(database_url: str) -> Iterator[tuple[TestClient, Any]]:
    exporter = in_memory.InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    runtime = make_runtime(database_url)
    traced = type(runtime)(
        runtime.settings,
        database=runtime.database,
        cipher=runtime.cipher,
        tracer_provider=provider,
    )
    with TestClient(create_app(traced)) as client:
        yield client, exporter
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    HTTPXClientInstrumentor().uninstrument()
    SQLAlchemyInstrumentor().uninstrument()
    traced.database.dispose()


def span_tree(spans: list[Any]) -> list[str]:
    """The spans as an indented tree, children in start order."""
    children: dict[int | None, list[Any]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent is not None else None
        children.setdefault(parent, []).append(span)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda item: item.start_time):
            lines.append("  " * depth + span.name)
            walk(span.context.span_id, depth + 1)

    walk(None, 0)
    return lines


def test_one_checkout_is_one_trace_with_its_sql_spans(
    spans: tuple[TestClient, Any],
) -> None:
    client, exporter = spans
    app_runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with app_runtime.work() as work:
        headers = bearer(create_api_key(work.session, kind="platform", now=work.now))
    shopper = enrol(client, headers)
    merchant = create_merchant(client, headers)
    exporter.clear()

    response = client.post(
        "/v1/checkouts",
        headers=headers,
        json=checkout_body(shopper["id"], merchant["id"], 30_000),
    )
    assert response.status_code == 201, response.text

    finished = list(exporter.get_finished_spans())
    assert len({span.context.trace_id for span in finished}) == 1
    roots = [span for span in finished if span.parent is None]
    assert [root.name for root in roots] == ["POST /v1/checkouts"]
    root = roots[0]
    status = root.attributes.get(
        "http.response.status_code", root.attributes.get("http.status_code")
    )
    assert status == 201
    sql = [
        span for span in finished if span.attributes.get("db.system") in ("sqlite", "postgresql")
    ]
    assert len(sql) >= 5
    by_id = {span.context.span_id: span for span in finished}
    for span in sql:
        ancestor = span
        while ancestor.parent is not None:
            ancestor = by_id[ancestor.parent.span_id]
        assert ancestor is root
        statement = str(span.attributes.get("db.statement", ""))
        assert shopper["id"] not in statement  # placeholders, never parameter values
    tree = span_tree(finished)
    assert tree[0] == "POST /v1/checkouts"
    print("\n".join(tree))


def test_tracing_is_off_without_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tracing.ENDPOINT_VARIABLE, raising=False)
    assert tracing.tracer_provider_from_environment() is None
    monkeypatch.setenv(tracing.ENDPOINT_VARIABLE, "http://127.0.0.1:4318")
    provider = tracing.tracer_provider_from_environment()
    assert isinstance(provider, sdk_trace.TracerProvider)
    provider.shutdown()
