"""The keyed money routes (checkout, payment) handle a plain request without FastAPI's
dependency solving, and answer everything else as FastAPI does: the same request gets the same
answer from the lean handler and from FastAPI's own (forced by a dependency override), the
OpenAPI document is the one a plain route makes, and idempotency keeps its fingerprint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import fastapi.routing
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.factories import checkout_body, create_merchant, enrol
from usefirst.api import responses as r
from usefirst.api.app import create_app
from usefirst.api.deps import runtime_dependency
from usefirst.api.keyed_route import KeyedJsonRoute
from usefirst.api.routers.orders import create_checkout
from usefirst.api.routers.repayment import create_payment
from usefirst.kit.models import IdempotencyRecord
from usefirst.orders.models import Order
from usefirst.runtime import Runtime


@pytest.fixture
def standard_client(runtime: Runtime) -> Iterator[TestClient]:
    """The same app with an override (of a dependency by itself): every request goes through
    FastAPI's own handler."""
    app = create_app(runtime)
    app.dependency_overrides[runtime_dependency] = runtime_dependency
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def solved(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times FastAPI solved an endpoint's dependencies."""
    calls: list[int] = []
    original = fastapi.routing.solve_dependencies

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return await original(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    return calls


@pytest.fixture
def shop(client: TestClient, platform_headers: dict[str, str]) -> tuple[str, str]:
    """(a shopper's id, a merchant's id)."""
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    return shopper["id"], merchant["id"]


def test_the_documents_of_the_keyed_routes_are_those_of_plain_routes() -> None:
    def document(route_class: type[fastapi.routing.APIRoute]) -> str:
        app = FastAPI()
        router = APIRouter()
        for path, endpoint, model, tag in (
            ("/v1/checkouts", create_checkout, r.CheckoutOut, "orders"),
            ("/v1/payments", create_payment, r.PaymentOut, "payments"),
        ):
            router.add_api_route(
                path,
                endpoint,
                methods=["POST"],
                status_code=201,
                response_model=model,
                tags=[tag],
                route_class_override=route_class,
            )
        app.include_router(router)
        return json.dumps(app.openapi())

    assert document(KeyedJsonRoute) == document(fastapi.routing.APIRoute)


def _orders(runtime: Runtime) -> int:
    with runtime.work(read_only=True) as work:
        return int(work.session.scalar(select(func.count()).select_from(Order)) or 0)


def test_a_plain_checkout_is_handled_without_solving_dependencies(
    runtime: Runtime,
    client: TestClient,
    platform_headers: dict[str, str],
    shop: tuple[str, str],
    solved: list[int],
) -> None:
    body = checkout_body(*shop)
    solved.clear()
    response = client.post(
        "/v1/checkouts", headers={**platform_headers, "Idempotency-Key": "k-1"}, json=body
    )
    assert response.status_code == 201, response.text
    assert response.json()["decision"]["outcome"] == "approved"
    assert solved == []
    assert _orders(runtime) == 1
    # A body that differs only by a default it leaves out is the same request (the fingerprint
    # is of the validated body, as before): replayed, nothing written.
    without_default = {key: value for key, value in body.items() if key != "currency"}
    replayed = client.post(
        "/v1/checkouts",
        headers={**platform_headers, "Idempotency-Key": "k-1"},
        json=without_default,
    )
    assert replayed.status_code == 201
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == response.json()
    conflict = client.post(
        "/v1/checkouts",
        headers={**platform_headers, "Idempotency-Key": "k-1"},
        json={**body, "plan": "instalments_3"},
    )
    assert conflict.status_code == 409
    assert solved == []
    assert _orders(runtime) == 1
    with runtime.work(read_only=True) as work:
        assert work.session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 1


def _variants(body: dict[str, Any]) -> list[tuple[str, dict[str, str], bytes]]:
    """(what, extra headers, raw body): requests the lean handler must answer as FastAPI does."""
    as_json = {"Content-Type": "application/json"}
    item = body["items"][0]

    def changed(**fields: Any) -> bytes:
        return json.dumps({**body, **fields}, ensure_ascii=False).encode()

    def with_item(**fields: Any) -> bytes:
        return changed(items=[{**item, **fields}])

    plain = changed()
    return [
        (
            "missing field",
            as_json,
            json.dumps({k: v for k, v in body.items() if k != "plan"}).encode(),
        ),
        ("unknown field", as_json, changed(note="x")),
        ("contacts", as_json, changed(contacts=["+8613800000000"])),
        ("string quantity", as_json, with_item(quantity="1")),
        ("boolean quantity", as_json, with_item(quantity=True)),
        ("float quantity", as_json, with_item(quantity=1.0)),
        ("zero quantity", as_json, with_item(quantity=0)),
        ("no items", as_json, changed(items=[])),
        ("bad plan", as_json, changed(plan="later")),
        ("bad ip", as_json, changed(ip="300.1.1.1")),
        ("null shopper", as_json, changed(shopper_id=None)),
        ("unknown shopper", as_json, changed(shopper_id="shp_unknown0000")),
        ("a list", as_json, b"[]"),
        ("a string", as_json, b'"checkout"'),
        ("null", as_json, b"null"),
        ("empty", as_json, b""),
        ("not JSON", as_json, b"{"),
        ("text/plain", {"Content-Type": "text/plain"}, plain),
        ("no content type", {}, plain),
        ("empty key", {**as_json, "Idempotency-Key": ""}, plain),
        ("key with a leading space", {**as_json, "Idempotency-Key": " k"}, plain),
        ("key too long", {**as_json, "Idempotency-Key": "k" * 300}, plain),
    ]


def _answer(client: TestClient, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
    response = client.post("/v1/checkouts", headers=headers, content=raw)
    if response.status_code == 201:
        # A new order each time: compare what does not name it.
        answer = response.json()
        return 201, (answer["decision"]["outcome"], sorted(answer["order"]))
    return response.status_code, response.json()


def test_every_other_request_is_answered_as_fastapi_answers_it(
    runtime: Runtime,
    client: TestClient,
    standard_client: TestClient,
    platform_headers: dict[str, str],
    shop: tuple[str, str],
) -> None:
    body = checkout_body(*shop)
    body["ip"] = "203.0.113.7"
    for what, extra, raw in _variants(body):
        headers = {**platform_headers, **extra}
        lean = _answer(client, headers, raw)
        standard = _answer(standard_client, headers, raw)
        assert lean == standard, what
        assert lean[0] in (201, 404, 409, 415, 422), what


def test_a_repeated_key_header_is_left_to_fastapi(
    client: TestClient,
    standard_client: TestClient,
    platform_headers: dict[str, str],
    shop: tuple[str, str],
    solved: list[int],
) -> None:
    raw = json.dumps(checkout_body(*shop)).encode()
    headers = [
        *platform_headers.items(),
        ("Content-Type", "application/json"),
        ("Idempotency-Key", "a"),
        ("Idempotency-Key", "b"),
    ]
    solved.clear()
    lean = client.post("/v1/checkouts", headers=headers, content=raw)
    assert solved == [1]
    standard = standard_client.post("/v1/checkouts", headers=headers, content=raw)
    assert lean.status_code == standard.status_code
    assert sorted(lean.json()) == sorted(standard.json())


def test_a_payment_is_handled_without_solving_dependencies(
    client: TestClient,
    standard_client: TestClient,
    platform_headers: dict[str, str],
    solved: list[int],
) -> None:
    shopper = enrol(client, platform_headers)
    body = {"shopper_id": shopper["id"], "amount_minor": 500, "method": "alipay"}
    solved.clear()
    lean = client.post(
        "/v1/payments", headers={**platform_headers, "Idempotency-Key": "p-1"}, json=body
    )
    assert solved == []
    standard = standard_client.post(
        "/v1/payments", headers={**platform_headers, "Idempotency-Key": "p-2"}, json=body
    )
    assert lean.status_code == standard.status_code == 201, lean.text
    assert sorted(lean.json()) == sorted(standard.json())
    assert lean.json()["unapplied_minor"] == standard.json()["unapplied_minor"] == 500
    for amount in (0, "500", 5.0, None):
        raw = json.dumps({**body, "amount_minor": amount}).encode()
        headers = {**platform_headers, "Content-Type": "application/json"}
        lean = client.post("/v1/payments", headers=headers, content=raw)
        standard = standard_client.post("/v1/payments", headers=headers, content=raw)
        assert (lean.status_code, lean.json()) == (standard.status_code, standard.json())
        assert lean.status_code == 422
