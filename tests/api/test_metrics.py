"""/metrics: closed to strangers in production, label values bounded whatever clients send, and
the book's figures (decisions, approval rate, overdue by bucket, webhook backlog and age, failed
deliveries, sweeps, settlements, reconciliation breaks) equal to what the database holds; the
Grafana dashboard in docs/ queries only metrics the engine exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from tests.api.test_events_and_webhooks import SHIPMENT, place
from tests.conftest import make_runtime
from tests.factories import bearer, checkout_body, create_merchant, enrol
from usefirst.api.app import create_app
from usefirst.collections.models import SweepRun
from usefirst.flows import daily_sweep
from usefirst.identity.service import create_api_key
from usefirst.kit.models import OutboxMessage
from usefirst.merchants.models import Settlement
from usefirst.repayment.models import Instalment
from usefirst.runtime import Runtime

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
TOKEN = "scrape-token-0123456789abcdef"


@pytest.fixture
def book_runtime(database_url: str) -> Iterator[Runtime]:
    runtime = make_runtime(
        database_url,
        metrics_book_refresh_seconds=0,
        webhook_max_attempts=1,
        webhook_timeout_seconds=1.0,
    )
    yield runtime
    runtime.database.dispose()


@pytest.fixture
def book_client(book_runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(book_runtime)) as client:
        yield client


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[(name, tuple(sorted(labels.items())))]


def test_metrics_need_the_token_in_production_and_do_not_exist_without_one(
    database_url: str,
) -> None:
    closed = make_runtime(database_url, sandbox=False)
    with TestClient(create_app(closed)) as client:
        response = client.get("/metrics")
        assert response.status_code == 404
        assert "usefirst_http_requests_total" not in response.text
    closed.database.dispose()

    guarded = make_runtime(database_url, sandbox=False, metrics_token=TOKEN)
    with TestClient(create_app(guarded)) as client:
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": f"Bearer {TOKEN}x"},
        ):
            refused = client.get("/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.json()["error"]["code"] == "unauthenticated"
            assert "usefirst_" not in refused.text
        allowed = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert allowed.status_code == 200
        assert 'usefirst_http_requests_total{method="GET",route="/metrics",status="401"} 4.0' in (
            allowed.text
        )
    guarded.database.dispose()


def test_clients_cannot_create_new_label_values(
    client: TestClient, platform_headers: dict[str, str]
) -> None:
    for index in range(25):
        client.get(f"/v1/nowhere/{index}")
        client.get(f"/v1/orders/ord_missing_{index}", headers=platform_headers)
        client.request("BREW", f"/coffee/{index}")
        client.request("PROPFIND", "/healthz")
    text = client.get("/metrics").text
    series = {labels for (name, labels) in samples(text) if name == "usefirst_http_requests_total"}
    assert series == {
        # /v1/ without a key is 401 before routing (the request guard), still "unmatched".
        (("method", "GET"), ("route", "unmatched"), ("status", "401")),
        (("method", "GET"), ("route", "/v1/orders/{order_id}"), ("status", "404")),
        (("method", "OTHER"), ("route", "unmatched"), ("status", "404")),
        (("method", "OTHER"), ("route", "/healthz"), ("status", "405")),
    }
    assert (
        value(text, "usefirst_http_requests_total", method="OTHER", route="unmatched", status="404")
        == 25
    )
    assert "ord_missing" not in text and "/coffee" not in text and "BREW" not in text


def test_the_book_on_metrics_is_what_the_database_holds(
    book_client: TestClient, book_runtime: Runtime
) -> None:
    client, runtime = book_client, book_runtime
    with runtime.work() as work:
        headers = bearer(create_api_key(work.session, kind="platform", now=work.now))
    # A merchant whose webhook endpoint does not answer: deliveries fail (one attempt allowed).
    merchant = create_merchant(client, headers, webhook_url="http://127.0.0.1:9/hooks")
    shopper = enrol(client, headers)
    order_id = place(client, headers, shopper["id"], merchant["id"], 30_000)
    declined = client.post(
        "/v1/checkouts",
        headers=headers,
        json=checkout_body(shopper["id"], merchant["id"], 200_000),
    )
    assert declined.status_code == 201, declined.text
    assert declined.json()["decision"]["outcome"] == "declined"
    text = client.get("/metrics").text
    assert (
        value(
            text,
            "usefirst_checkout_decisions_total",
            outcome="approved",
            reason="within_credit_limit",
        )
        == 1
    )
    assert (
        value(
            text,
            "usefirst_checkout_decisions_total",
            outcome="declined",
            reason="credit_limit_exceeded",
        )
        == 1
    )
    assert value(text, "usefirst_checkout_decisions_24h", outcome="approved") == 1
    assert value(text, "usefirst_checkout_approval_ratio_24h") == 0.5
    # order.approved and order.declined, waiting for the worker
    assert value(text, "usefirst_outbox_backlog", topic="webhook") == 2
    assert value(text, "usefirst_reconciliation_breaks") == 0

    shipped = client.post(
        f"/v1/orders/{order_id}/ship", headers=bearer(merchant["api_key"]), json=SHIPMENT
    )
    assert shipped.status_code == 200
    assert client.post(f"/v1/orders/{order_id}/confirm-receipt", headers=headers).status_code == 200
    # Ten days on, the order (due seven days after receipt) is three days overdue; the webhooks
    # have waited ten days (the clock's advance delivers reminders, not webhooks).
    assert (
        client.post("/v1/sandbox/clock/advance", headers=headers, json={"days": 10}).status_code
        == 200
    )
    text = client.get("/metrics").text
    with runtime.work(read_only=True) as work:
        overdue = work.session.scalar(
            select(
                func.sum(
                    Instalment.principal_minor
                    + Instalment.fees_minor
                    + Instalment.late_fees_minor
                    - Instalment.paid_principal_minor
                    - Instalment.paid_fees_minor
                )
            ).where(Instalment.status == "overdue")
        )
        pending = work.session.scalar(
            select(func.count()).where(
                OutboxMessage.topic == "webhook", OutboxMessage.delivered_at.is_(None)
            )
        )
        swept = work.session.scalar(select(func.count()).select_from(SweepRun))
        settlements = work.session.execute(
            select(func.count(), func.sum(Settlement.net_minor), func.sum(Settlement.gross_minor))
        ).one()
    assert overdue > 30_000
    assert value(text, "usefirst_overdue_minor", bucket="1-30", currency="cny") == overdue
    assert value(text, "usefirst_overdue_minor", bucket="31-60", currency="cny") == 0
    assert value(text, "usefirst_outbox_backlog", topic="webhook") == pending > 2
    assert value(text, "usefirst_outbox_oldest_age_seconds", topic="webhook") >= 10 * 86_400
    assert value(text, "usefirst_sweep_lag_days") == 0
    # Today's sweep and the ten business days the clock moved through.
    assert value(text, "usefirst_sweep_seconds_count") == swept == 11
    assert value(text, "usefirst_settlements_total", currency="cny") == settlements[0] >= 1
    assert (
        value(text, "usefirst_settlement_minor_total", component="net", currency="cny")
        == (settlements[1])
    )
    assert (
        value(text, "usefirst_settlement_minor_total", component="gross", currency="cny")
        == (settlements[2])
    )

    assert (
        client.post("/v1/sandbox/clock/advance", headers=headers, json={"days": 30}).status_code
        == 200
    )
    runtime.deliver_outbox()
    text = client.get("/metrics").text
    assert value(text, "usefirst_overdue_minor", bucket="1-30", currency="cny") == 0
    assert value(text, "usefirst_overdue_minor", bucket="31-60", currency="cny") > overdue
    assert value(text, "usefirst_outbox_backlog", topic="webhook") == 0
    assert value(text, "usefirst_outbox_failed_total", topic="webhook") == pending
    assert value(text, "usefirst_outbox_deliveries_total", topic="webhook", outcome="failed") == (
        pending
    )

    # A statement that no longer matches the ledger's receivable is a reconciliation break.
    with runtime.work() as work:
        instalment = work.session.scalars(select(Instalment).limit(1)).one()
        instalment.paid_principal_minor += 1
    text = client.get("/metrics").text
    assert value(text, "usefirst_reconciliation_breaks") == 1


def exported_names(text: str) -> set[str]:
    """Every series name /metrics declares, whether or not it has a sample yet."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    names = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def test_every_dashboard_panel_queries_metrics_the_engine_exports(
    book_client: TestClient, book_runtime: Runtime
) -> None:
    with book_runtime.work() as work:
        headers = bearer(create_api_key(work.session, kind="platform", now=work.now))
    book_client.post("/v1/sandbox/clock/advance", headers=headers, json={"days": 1})
    book_runtime.deliver_outbox()
    exported = exported_names(book_client.get("/metrics").text)

    dashboard = json.loads(DASHBOARD.read_text())
    panels = [panel for panel in dashboard["panels"] if panel.get("type") != "row"]
    assert len(panels) >= 12
    for panel in panels:
        expressions = [target["expr"] for target in panel["targets"]]
        assert expressions, panel["title"]
        for expression in expressions:
            named = set(re.findall(r"\busefirst_[a-z0-9_]+", expression))
            assert named, (panel["title"], expression)
            assert named <= exported, (panel["title"], named - exported)


def test_the_worker_serves_its_job_metrics_on_a_listener_of_its_own(runtime: Runtime) -> None:
    with runtime.work() as work:
        today = work.today
    runtime.sweep(today)
    port = runtime.job_metrics.serve(host="127.0.0.1", port=0)
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert value(text, "usefirst_sweep_seconds_count") == 1
    # Each step of the nightly run is timed on its own, once.
    for step in daily_sweep.STEPS:
        assert value(text, "usefirst_sweep_step_seconds_count", step=step.name) == 1, step.name
    assert "usefirst_http_requests_total" not in text  # the API's series stay on the API
