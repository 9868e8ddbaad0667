"""Issue 16, hostile and careless input: every finding of the attack report, on SQLite and on
PostgreSQL. Each refusal is a 422/401/413 in the one error shape and leaves every table exactly
as it was (rows, ledger, credit, audit chain)."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from tests.console.browser import serve
from tests.factories import bearer, checkout_body, create_merchant, enrol
from usefirst.api.app import create_app
from usefirst.identity.service import create_api_key, create_operator
from usefirst.kit.db import Base
from usefirst.runtime import Runtime

SHIPMENT = {"carrier": "SF Express", "tracking_number": "SF1234567890"}


LAST_USE = ("api_keys", "last_used_at")


def snapshot(runtime: Runtime) -> dict[str, list[str]]:
    """Every row of every table, as text: equal snapshots mean nothing at all changed."""
    import usefirst.models  # noqa: F401  (registers every table on Base.metadata)

    def columns(table: Any) -> list[Any]:
        # A valid key's first use in a minute is recorded (last_used_at) whatever the request
        # then turns out to be: that is the credential's bookkeeping, not the refused request.
        return [column for column in table.columns if (table.name, column.name) != LAST_USE]

    with runtime.work(read_only=True) as work:
        return {
            table.name: sorted(
                repr(tuple(row)) for row in work.session.execute(select(*columns(table)))
            )
            for table in Base.metadata.sorted_tables
            # The sandbox clock's row follows the wall clock while it is not frozen.
            if table.name != "sandbox_clock"
        }


def assert_only_wrong_keys_counted(
    runtime: Runtime, before: dict[str, list[str]], wrong_keys: int
) -> None:
    """Nothing changed but the throttle's count of wrong keys: a row each on PostgreSQL, where
    every process counts in the database; on SQLite the count is in the process's memory."""
    after = snapshot(runtime)
    counted = after.pop("auth_throttle_hits")
    assert before.pop("auth_throttle_hits") == []
    assert after == before
    assert len(counted) == (wrong_keys if runtime.database.is_postgresql else 0)
    assert all("LIMITER/api-key/" in row for row in counted)


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    assert set(body["error"]) <= {"code", "message", "field"}
    if field is not None:
        assert body["error"].get("field") == field, body


@pytest.fixture
def world(client: TestClient, runtime: Runtime, platform_headers: dict[str, str]) -> dict[str, Any]:
    """A shopper, a merchant, a delivered order (refundable, payable) and an approved one (to
    ship), and operators."""
    shopper = enrol(client, platform_headers)
    merchant = create_merchant(client, platform_headers)
    merchant_headers = bearer(merchant["api_key"])
    delivered = client.post(
        "/v1/checkouts",
        headers=platform_headers,
        json=checkout_body(shopper["id"], merchant["id"], 20_000),
    ).json()["order"]["id"]
    assert (
        client.post(
            f"/v1/orders/{delivered}/ship", headers=merchant_headers, json=SHIPMENT
        ).status_code
        == 200
    )
    assert (
        client.post(f"/v1/orders/{delivered}/confirm-receipt", headers=platform_headers).status_code
        == 200
    )
    approved = client.post(
        "/v1/checkouts",
        headers=platform_headers,
        json=checkout_body(shopper["id"], merchant["id"], 10_000),
    ).json()["order"]["id"]
    operators = {}
    with runtime.work() as work:
        for role in ("admin", "compliance", "support"):
            _, token = create_operator(
                work.session, email=f"{role}@usefirst.example", role=role, now=work.now
            )
            operators[role] = bearer(token)
    return {
        "shopper": shopper,
        "merchant": merchant,
        "merchant_headers": merchant_headers,
        "delivered": delivered,
        "approved": approved,
        "operators": operators,
    }


def enrol_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "external_id": "u-hostile",
        "name": "张三",
        "national_id": "11010519491231002X",
        "phone": "+8613800138000",
        "consent": {"privacy_policy_version": "2026-01", "credit_report_authorized": True},
    }
    body.update(overrides)
    return body


def text_field_cases(world: dict[str, Any], bad: str) -> list[tuple[str, str, str, Any, str]]:
    """(method, path, who, JSON body, field) with ``bad`` placed in one text field each."""
    shopper_id, merchant_id = world["shopper"]["id"], world["merchant"]["id"]
    delivered, approved = world["delivered"], world["approved"]
    checkout = checkout_body(shopper_id, merchant_id, 5_000)
    checkout["items"][0]["sku"] = f"sku{bad}1"
    address = checkout_body(shopper_id, merchant_id, 5_000)
    return [
        ("POST", "/v1/merchants", "platform", {"name": f"Shop{bad}", "category": "toys"}, "name"),
        ("POST", "/v1/shoppers", "platform", enrol_body(external_id=f"u{bad}1"), "external_id"),
        ("POST", "/v1/shoppers", "platform", enrol_body(device_id=f"d{bad}1"), "device_id"),
        (
            "POST",
            "/v1/shoppers",
            "platform",
            enrol_body(
                consent={"privacy_policy_version": f"v{bad}", "credit_report_authorized": True}
            ),
            "consent.privacy_policy_version",
        ),
        ("POST", "/v1/checkouts", "platform", checkout, "items.0.sku"),
        ("POST", "/v1/checkouts", "platform", {**address, "device_id": f"x{bad}"}, "device_id"),
        (
            "POST",
            f"/v1/orders/{approved}/ship",
            "merchant",
            {"carrier": f"SF{bad}", "tracking_number": "SF1234567890"},
            "carrier",
        ),
        (
            "POST",
            f"/v1/orders/{approved}/ship",
            "merchant",
            {"carrier": "SF", "tracking_number": f"SF12345{bad}67890"},
            "tracking_number",
        ),
        (
            "POST",
            f"/v1/orders/{delivered}/refunds",
            "merchant",
            {"amount_minor": 100, "reason": f"r{bad}"},
            "reason",
        ),
        (
            "POST",
            "/v1/payments",
            "platform",
            {
                "shopper_id": shopper_id,
                "amount_minor": 100,
                "method": "alipay",
                "external_ref": f"p{bad}",
            },
            "external_ref",
        ),
        (
            "POST",
            "/v1/disputes",
            "platform",
            {
                "order_id": delivered,
                "opened_by": "shopper",
                "reason": "not_as_described",
                "description": f"d{bad}",
            },
            "description",
        ),
        (
            "POST",
            "/v1/complaints",
            "platform",
            {"shopper_id": shopper_id, "category": "billing", "description": f"c{bad}"},
            "description",
        ),
    ]


def headers_for(
    world: dict[str, Any], who: str, platform_headers: dict[str, str]
) -> dict[str, str]:
    return platform_headers if who == "platform" else world["merchant_headers"]


@pytest.mark.parametrize("bad", ["\x00", "\x1b[31m", "\x7f", "\u202e", "\x85"])
def test_control_characters_in_any_text_field_are_422_naming_it_and_change_nothing(
    client: TestClient,
    runtime: Runtime,
    platform_headers: dict[str, str],
    world: dict[str, Any],
    bad: str,
) -> None:
    """Before: a NUL was a 500 on PostgreSQL (psycopg DataError) and stored on SQLite; an ESC
    sequence, DEL or a bidi override was stored everywhere."""
    before = snapshot(runtime)
    for method, path, who, body, field in text_field_cases(world, bad):
        response = client.request(
            method, path, headers=headers_for(world, who, platform_headers), json=body
        )
        assert_error(response, 422, "validation_error", field)
    assert snapshot(runtime) == before


def test_control_characters_in_path_and_query_parameters_are_422_naming_them(
    client: TestClient, runtime: Runtime, platform_headers: dict[str, str], world: dict[str, Any]
) -> None:
    before = snapshot(runtime)
    admin = world["operators"]["admin"]
    for path, headers, field in [
        ("/v1/orders/ord_%00x", platform_headers, "order_id"),
        ("/v1/shoppers/shp_%0A1/credit", platform_headers, "shopper_id"),
        (f"/v1/orders/{world['approved']}%1b", platform_headers, "order_id"),
        ("/v1/events?type=a%00b", platform_headers, "type"),
        ("/v1/events?starting_after=evt_%00", platform_headers, "starting_after"),
        ("/v1/risk/cases?type=x%E2%80%AEy", admin, "type"),
        ("/v1/events?type=%FF%FE", platform_headers, None),  # not UTF-8
    ]:
        assert_error(client.get(path, headers=headers), 422, "validation_error", field)
    refused = client.get(
        f"/v1/orders/{world['approved']}", headers={**platform_headers, "X-Note": "a\x00b"}
    )
    assert_error(refused, 422, "validation_error", "x-note")
    idempotency = client.post(
        "/v1/payments",
        headers={**platform_headers, "Idempotency-Key": "k\x01"},
        json={"shopper_id": world["shopper"]["id"], "amount_minor": 100, "method": "alipay"},
    )
    assert_error(idempotency, 422, "validation_error", "idempotency-key")
    assert snapshot(runtime) == before


def test_console_login_form_refuses_a_nul_before_sign_in(
    runtime: Runtime, client: TestClient
) -> None:
    before = snapshot(runtime)
    response = client.post(
        "/console/login", data={"email": "a\x00@b.cn", "password": "x", "csrf_token": "t"}
    )
    # A person's form: refused with a console page that keeps the form and marks the field
    # (the API's JSON answer is for API clients; see tests/console/test_console_forms.py).
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert re.search(
        r'<input id="refused-\d+" name="email" value="a@b.cn" aria-invalid="true"', response.text
    )
    assert snapshot(runtime) == before


@pytest.mark.parametrize(
    ("path_of", "who", "body", "field"),
    [
        # Tracking numbers: NUL, newline, tab, DEL, and no letters or digits at all.
        (
            "approved",
            "merchant",
            {"carrier": "SF", "tracking_number": "SF12\n34567"},
            "tracking_number",
        ),
        (
            "approved",
            "merchant",
            {"carrier": "SF", "tracking_number": "SF12\t34567"},
            "tracking_number",
        ),
        (
            "approved",
            "merchant",
            {"carrier": "SF", "tracking_number": "SF1234567\x7f"},
            "tracking_number",
        ),
        (
            "approved",
            "merchant",
            {"carrier": "SF", "tracking_number": "<script>"},
            "tracking_number",
        ),
        ("approved", "merchant", {"carrier": "S\nF", "tracking_number": "SF1234567890"}, "carrier"),
        (None, "platform", {"name": "Shop\nName", "category": "toys"}, "name"),
        (None, "platform", {"name": "Shop", "category": "c\x1b[31m"}, "category"),
        (None, "platform", {"name": "Shop", "category": "<b>toys</b>"}, "category"),
        (None, "platform", {"name": "Shop", "category": "toys; DROP TABLE"}, "category"),
        ("shoppers", "platform", enrol_body(external_id="u\n1"), "external_id"),
        ("shoppers", "platform", enrol_body(ip="not-an-ip"), "ip"),
        ("shoppers", "platform", enrol_body(ip="999.1.1.1"), "ip"),
        ("shoppers", "platform", enrol_body(name="Ali\u202ecod.exe"), "name"),
        ("shoppers", "platform", enrol_body(national_id="1101051949123\x00002X"), "national_id"),
        ("checkouts", "platform", {"ip": "not-an-ip"}, "ip"),
        ("checkouts", "platform", {"currency": "cny"}, "currency"),
        ("checkouts", "platform", {"merchant_id": "mer_1; --"}, "merchant_id"),
        ("checkouts", "platform", {"shopper_id": "../shp_1"}, "shopper_id"),
    ],
)
def test_identifiers_ips_currencies_categories_and_tracking_numbers_have_their_shapes(
    client: TestClient,
    runtime: Runtime,
    platform_headers: dict[str, str],
    world: dict[str, Any],
    path_of: str | None,
    who: str,
    body: dict[str, Any],
    field: str,
) -> None:
    if path_of == "approved":
        path = f"/v1/orders/{world['approved']}/ship"
    elif path_of == "shoppers":
        path = "/v1/shoppers"
    elif path_of == "checkouts":
        path = "/v1/checkouts"
        body = {**checkout_body(world["shopper"]["id"], world["merchant"]["id"], 5_000), **body}
    else:
        path = "/v1/merchants"
    before = snapshot(runtime)
    response = client.post(path, headers=headers_for(world, who, platform_headers), json=body)
    assert_error(response, 422, "validation_error", field)
    assert snapshot(runtime) == before


def test_valid_shapes_are_still_accepted(
    client: TestClient, platform_headers: dict[str, str], world: dict[str, Any]
) -> None:
    shopper = client.post(
        "/v1/shoppers",
        headers=platform_headers,
        json=enrol_body(ip="2001:db8::1", device_id="dev-1", name="O'Brien-张"),
    )
    assert shopper.status_code == 201, shopper.text
    merchant = client.post(
        "/v1/merchants",
        headers=platform_headers,
        json={"name": "Café\tdu Nord", "category": "home & garden"},
    )
    assert_error(merchant, 422, "validation_error", "name")  # a tab is not part of a one-line name
    merchant = client.post(
        "/v1/merchants",
        headers=platform_headers,
        json={"name": "Café du Nord 数码", "category": "数码 electronics"},
    )
    assert merchant.status_code == 201, merchant.text
    assert merchant.json()["category"] == "数码 electronics"
    shipped = client.post(
        f"/v1/orders/{world['approved']}/ship",
        headers=world["merchant_headers"],
        json={"carrier": "顺丰速运", "tracking_number": "sf 1234-5678-90"},
    )
    assert shipped.status_code == 200, shipped.text
    assert shipped.json()["shipment"]["tracking_number"] == "SF1234567890"
    # Multi-line text keeps its line breaks.
    dispute = client.post(
        "/v1/disputes",
        headers=platform_headers,
        json={
            "order_id": world["delivered"],
            "opened_by": "shopper",
            "reason": "not_as_described",
            "description": "Line one\nLine two\tindented",
        },
    )
    assert dispute.status_code == 201, dispute.text
    assert dispute.json()["description"] == "Line one\nLine two\tindented"


def ledger_and_credit(runtime: Runtime) -> tuple[Any, ...]:
    with runtime.work(read_only=True) as work:
        entries = work.session.execute(text("SELECT count(*) FROM journal_entries")).scalar_one()
        lines = work.session.execute(
            text("SELECT shopper_id, limit_minor, used_minor FROM credit_lines ORDER BY shopper_id")
        ).all()
        return entries, [tuple(line) for line in lines]


@pytest.mark.parametrize(
    ("kind", "patch", "field"),
    [
        ("refund", {"amount_minor": True}, "amount_minor"),
        ("refund", {"amount_minor": "100"}, "amount_minor"),
        ("refund", {"amount_minor": " 100 "}, "amount_minor"),
        ("refund", {"amount_minor": 100.0}, "amount_minor"),
        ("payment", {"amount_minor": True}, "amount_minor"),
        ("payment", {"amount_minor": 100.0}, "amount_minor"),
        ("payment", {"amount_minor": "100"}, "amount_minor"),
        ("checkout", {"unit_price_minor": True}, "items.0.unit_price_minor"),
        ("checkout", {"unit_price_minor": "100"}, "items.0.unit_price_minor"),
        ("checkout", {"quantity": 1.0}, "items.0.quantity"),
        ("checkout", {"quantity": True}, "items.0.quantity"),
        ("merchant", {"settlement_days": True}, "settlement_days"),
        ("merchant", {"fee_rate_bps": 100.0}, "fee_rate_bps"),
        (
            "shopper",
            {"consent": {"privacy_policy_version": "v1", "credit_report_authorized": 1}},
            "consent.credit_report_authorized",
        ),
    ],
)
def test_money_and_counts_accept_json_integers_only(
    client: TestClient,
    runtime: Runtime,
    platform_headers: dict[str, str],
    world: dict[str, Any],
    kind: str,
    patch: dict[str, Any],
    field: str,
) -> None:
    """Before: ``"amount_minor": true`` refunded or paid 1 fen (201), ``"100"`` and ``100.0``
    were taken as 100."""
    if kind == "refund":
        path, headers = f"/v1/orders/{world['delivered']}/refunds", world["merchant_headers"]
        body: dict[str, Any] = {"amount_minor": 100, "reason": "returned", **patch}
    elif kind == "payment":
        path, headers = "/v1/payments", platform_headers
        body = {
            "shopper_id": world["shopper"]["id"],
            "amount_minor": 100,
            "method": "alipay",
            **patch,
        }
    elif kind == "checkout":
        path, headers = "/v1/checkouts", platform_headers
        body = checkout_body(world["shopper"]["id"], world["merchant"]["id"], 100)
        body["items"][0].update(patch)
    elif kind == "merchant":
        path, headers = "/v1/merchants", platform_headers
        body = {"name": "Shop", "category": "toys", **patch}
    else:
        path, headers = "/v1/shoppers", platform_headers
        body = enrol_body(**patch)
    before, money_before = snapshot(runtime), ledger_and_credit(runtime)
    assert_error(client.post(path, headers=headers, json=body), 422, "validation_error", field)
    assert ledger_and_credit(runtime) == money_before
    assert snapshot(runtime) == before


def test_duplicate_json_keys_are_422_so_no_proxy_reads_another_amount(
    client: TestClient, runtime: Runtime, platform_headers: dict[str, str], world: dict[str, Any]
) -> None:
    """Before: the last key won, ``"amount_minor":100,"amount_minor":99999`` paid 999.99."""
    before, money_before = snapshot(runtime), ledger_and_credit(runtime)
    raw = (
        f'{{"shopper_id": "{world["shopper"]["id"]}", "amount_minor": 100, '
        f'"method": "alipay", "amount_minor": 99999}}'
    )
    response = client.post(
        "/v1/payments",
        headers={**platform_headers, "Content-Type": "application/json"},
        content=raw.encode(),
    )
    assert_error(response, 422, "validation_error", "amount_minor")
    nested = json.dumps(checkout_body(world["shopper"]["id"], world["merchant"]["id"], 100))
    nested = nested.replace('"quantity": 1', '"quantity": 1, "quantity": 50')
    response = client.post(
        "/v1/checkouts",
        headers={**platform_headers, "Content-Type": "application/json"},
        content=nested.encode(),
    )
    assert_error(response, 422, "validation_error", "quantity")
    assert ledger_and_credit(runtime) == money_before
    assert snapshot(runtime) == before


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "Shop\xff\xfe", "category": "toys"}',  # invalid UTF-8
        b"[" * 1000 + b"]" * 1000,  # 1,000-deep nesting
        b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}",  # deeper than any body of the API
        b'{"name": "Shop", "category": "toys", "settlement_days": ' + b"9" * 4300 + b"}",
        b'{"name": "Shop", "category": "toys", "settlement_days": 1e400}',
        b'{"name": "Shop", "category": "toys", "settlement_days": NaN}',
        b'{"name": "Shop", "category": "toys", "name": "Other"}',
        b'{"name": "Shop\\u0000", "category": "toys"}',  # NUL as a JSON escape
        b'{"name": "Shop\\ud800", "category": "toys"}',  # a lone surrogate
        b"{not json",
    ],
)
def test_malformed_json_is_422_in_the_error_shape(
    client: TestClient, runtime: Runtime, platform_headers: dict[str, str], raw: bytes
) -> None:
    """Before: invalid UTF-8, deep nesting and a 4,300-digit number were 400 ``http_error``."""
    before = snapshot(runtime)
    response = client.post(
        "/v1/merchants",
        headers={**platform_headers, "Content-Type": "application/json"},
        content=raw,
    )
    assert_error(response, 422, "validation_error")
    assert snapshot(runtime) == before


def _raw_request(
    base_url: str, head: str, body_prefix: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """Send a request head (and the start of a body) over a socket and read the answer, without
    sending the rest of the body: an answer proves the server did not wait to read it."""
    address = urlsplit(base_url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(head.encode("latin-1") + body_prefix)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
        head_bytes, _, rest = received.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {
            name.strip().lower(): value.strip()
            for name, value in (line.split(":", 1) for line in lines[1:])
        }
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = connection.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, headers, rest


@pytest.fixture
def server(runtime: Runtime) -> Iterator[str]:
    with serve(runtime) as base_url:
        yield base_url


def test_a_huge_body_without_a_valid_key_is_401_before_it_is_read(
    server: str, runtime: Runtime, platform_key: str
) -> None:
    """Before: a 64 MB body without a key was parsed (4.3 s, +640 MiB) and then answered 401."""
    before = snapshot(runtime)
    huge = 64 * 1024 * 1024
    for authorization in ("", "Authorization: Bearer uf_plat_not-a-real-key\r\n"):
        status, headers, body = _raw_request(
            server,
            f"POST /v1/checkouts HTTP/1.1\r\nHost: test\r\n{authorization}"
            f"Content-Type: application/json\r\nContent-Length: {huge}\r\n\r\n",
            b'{"shopper_id": "' + b"x" * 1000,
        )
        assert status == 401
        assert json.loads(body)["error"]["code"] == "unauthenticated"
        assert headers["x-content-type-options"] == "nosniff"
    # With a valid key, a body over the limit is refused on its Content-Length alone.
    status, headers, body = _raw_request(
        server,
        f"POST /v1/checkouts HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {platform_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {10 * 1024 * 1024}\r\n\r\n",
    )
    assert status == 413
    assert json.loads(body) == {
        "error": {
            "code": "payload_too_large",
            "message": f"The request body may have at most {1024 * 1024} bytes here.",
        }
    }
    # The made-up key counts against the address; no key at all is no guess.
    assert_only_wrong_keys_counted(runtime, before, wrong_keys=1)


def test_a_malformed_body_without_a_key_is_401_not_422(
    client: TestClient, runtime: Runtime
) -> None:
    before = snapshot(runtime)
    response = client.post(
        "/v1/checkouts", headers={"Content-Type": "application/json"}, content=b"{not json"
    )
    assert_error(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"
    response = client.post(
        "/v1/payments",
        headers={"Authorization": "Bearer nope", "Content-Type": "application/json"},
        content=b'{"amount_minor": true, "amount_minor": 1}',
    )
    assert_error(response, 401, "unauthenticated")
    assert_only_wrong_keys_counted(runtime, before, wrong_keys=1)


def test_bodies_over_the_limit_are_413_by_length_and_by_streamed_bytes(
    client: TestClient, runtime: Runtime, platform_headers: dict[str, str]
) -> None:
    """Before: a 10 MB body with a key got 422, never 413."""
    before = snapshot(runtime)
    big = b'{"name": "' + b"a" * (10 * 1024 * 1024) + b'", "category": "toys"}'
    response = client.post(
        "/v1/merchants",
        headers={**platform_headers, "Content-Type": "application/json"},
        content=big,
    )
    assert_error(response, 413, "payload_too_large")

    def streamed() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        yield b'{"name": "'
        for _ in range(40):
            yield b"a" * 65536
        yield b'", "category": "toys"}'

    response = client.post(
        "/v1/merchants",
        headers={**platform_headers, "Content-Type": "application/json"},
        content=streamed(),
    )
    assert_error(response, 413, "payload_too_large")
    form = client.post("/console/login", data={"email": "a" * (1100 * 1024), "password": "x"})
    assert_error(form, 413, "payload_too_large")
    assert snapshot(runtime) == before


def test_security_headers_on_every_api_response(
    client: TestClient, platform_headers: dict[str, str], world: dict[str, Any]
) -> None:
    compliance = world["operators"]["compliance"]
    export = client.get(f"/v1/shoppers/{world['shopper']['id']}/export", headers=compliance)
    assert export.status_code == 200, export.text
    for response in (
        export,
        client.get(f"/v1/shoppers/{world['shopper']['id']}", headers=platform_headers),
        client.get("/v1/shoppers/shp_nope", headers=platform_headers),
        client.get("/v1/events"),
        client.post("/v1/merchants", headers=platform_headers, json={}),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert (
            response.headers["content-security-policy"]
            == "default-src 'none'; frame-ancestors 'none'"
        )
        assert response.headers["referrer-policy"] == "no-referrer"
    health = client.get("/healthz")
    assert health.headers["x-content-type-options"] == "nosniff"


def test_405_names_the_allowed_methods(
    client: TestClient, platform_headers: dict[str, str]
) -> None:
    response = client.delete("/v1/checkouts", headers=platform_headers)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"
    response = client.put("/v1/orders/ord_x", headers=platform_headers)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET"


def test_an_unexpected_error_is_500_in_the_error_shape_on_both_databases(runtime: Runtime) -> None:
    """Before: a 500 on PostgreSQL came back as plain text ``Internal Server Error``."""
    app = create_app(runtime)

    @app.get("/v1/broken-for-this-test")
    def broken() -> None:
        # A real database error from the real driver of each database.
        with runtime.work(read_only=True) as work:
            work.session.execute(text("SELECT secret_column FROM no_such_table"))

    with TestClient(app, raise_server_exceptions=False) as client:
        unknown_key = client.get("/v1/broken-for-this-test", headers=bearer("uf_plat_nope"))
        assert_error(unknown_key, 401, "unauthenticated")  # the guard answers first
        with runtime.work() as work:
            key = create_api_key(work.session, kind="platform", now=work.now)
        response = client.get("/v1/broken-for-this-test", headers=bearer(key))
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": {
            "code": "internal_error",
            "message": "An internal error occurred; nothing was committed. Try again later.",
        }
    }
    assert "no_such_table" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


def test_openapi_documents_the_real_contract(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    text_of_document = json.dumps(document)
    assert "HTTPValidationError" not in text_of_document
    # FastAPI's {"detail": …} error shape is gone; the one field of that name is a dispute
    # history entry's (what happened), in the response models.
    with_detail = [
        name
        for name, schema in document["components"]["schemas"].items()
        if "detail" in schema.get("properties", {})
    ]
    assert with_detail == ["DisputeActionOut"]
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    operations = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if not path.startswith("/v1/"):
                continue
            operations += 1
            assert operation["security"] == [{"bearerAuth": []}], (method, path)
            names = {parameter["name"].lower() for parameter in operation.get("parameters", [])}
            assert "authorization" not in names, (method, path)
            for status in ("401", "403", "404", "422", "500"):
                schema = operation["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
            if "requestBody" in operation:
                assert "413" in operation["responses"], (method, path)
            for parameter in operation.get("parameters", []):
                schema = parameter["schema"]
                strings = [schema, *schema.get("anyOf", [])]
                for option in strings:
                    if option.get("type") == "string":
                        assert {"pattern", "enum", "format"} & option.keys(), (path, parameter)
    assert operations >= 50
    schemas = document["components"]["schemas"]
    assert schemas["ErrorBody"]["required"] == ["error"]
    assert schemas["OpenDisputeIn"]["properties"]["reason"]["enum"] == [
        "unpaid",
        "suspected_cash_out",
        "not_received",
        "not_as_described",
        "unauthorized",
    ]
    assert (
        schemas["ShipIn"]["properties"]["tracking_number"]["pattern"]
        == "^ *[A-Za-z0-9][A-Za-z0-9 -]*$"
    )
    assert (
        schemas["EnrolShopperIn"]["properties"]["national_id"]["pattern"]
        == "^ *[0-9]{17}[0-9Xx] *$"
    )
    assert schemas["PaymentIn"]["properties"]["currency"]["pattern"] == "^[A-Z]{3}$"
    assert schemas["RefundIn"]["properties"]["reason"]["pattern"].startswith("^[^\\x00-\\x08")
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]


def test_docs_are_served_without_any_other_host(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn." not in page.text
    assert "https://" not in page.text and "http://" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        response = client.get(f"/docs/assets/{asset}")
        assert response.status_code == 200
        assert len(response.content) > 100_000


def test_redoc_is_served_without_any_other_host(client: TestClient) -> None:
    page = client.get("/redoc")
    assert page.status_code == 200
    assert '<redoc spec-url="/openapi.json">' in page.text
    # No CDN script and no Google Fonts stylesheet (FastAPI's page links both by default).
    assert "https://" not in page.text and "http://" not in page.text
    assert '<script src="/redoc/assets/redoc.standalone.js">' in page.text
    # And the browser may fetch nothing from another host for it (the build links a logo).
    for url in ("/redoc", "/docs"):
        policy = client.get(url).headers["content-security-policy"]
        assert policy.startswith("default-src 'self'; script-src 'self' 'unsafe-inline';")
        assert "img-src 'self' data:;" in policy and "connect-src 'self';" in policy
    script = client.get("/redoc/assets/redoc.standalone.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert len(script.content) > 500_000
