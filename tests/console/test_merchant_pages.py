"""The merchant portal without a browser, on SQLite and PostgreSQL: a merchant's staff see only
their own orders, disputes and payouts (another merchant's ids answer 404, exactly as unknown
ids do), the balance equals the API's, evidence is stored as the disputes API stores it (and a
refused file leaves nothing), forms need the CSRF token, and hostile text is escaped."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pyotp
from fastapi.testclient import TestClient

from tests.collections.dunning_env import SHIPMENT
from tests.console.test_sign_in import PASSWORD, add_operator, post_password, sign_in
from tests.disputes.dispute_env import PNG_BYTES, DisputeEnv, open_dispute_env, sha256_of
from tests.factories import bearer, checkout_body, create_merchant, enrol
from usefirst.api.app import create_app
from usefirst.console import auth
from usefirst.runtime import Runtime

HOSTILE = "<script>alert(1)</script>"
MAX_EVIDENCE_BYTES = 4096


def csrf_of(text: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', text)
    assert match is not None
    return match.group(1)


def merchant_console(runtime: Runtime, merchant_id: str, email: str) -> TestClient:
    """A browser-like client signed in as one merchant's staff member."""
    with runtime.work() as work:
        auth.create_account(
            work.session, email=email, password=PASSWORD, merchant_id=merchant_id, now=work.now
        )
    client = TestClient(create_app(runtime))
    assert post_password(client, email, PASSWORD).status_code == 303  # type: ignore[attr-defined]
    page = client.get("/console/second-factor")
    secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', page.text)
    assert secret is not None
    done = client.post(
        "/console/second-factor",
        data={"code": pyotp.TOTP(secret.group(1)).now(), "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/console/merchant"
    return client


def shipped_order(denv: DisputeEnv, merchant: dict[str, Any], body: dict[str, Any]) -> str:
    created = denv.client.post("/v1/checkouts", headers=denv.platform, json=body)
    assert created.status_code == 201, created.text
    order_id = str(created.json()["order"]["id"])
    shipped = denv.client.post(
        f"/v1/orders/{order_id}/ship", headers=bearer(merchant["api_key"]), json=SHIPMENT
    )
    assert shipped.status_code == 200, shipped.text
    return order_id


def two_merchants(denv: DisputeEnv) -> dict[str, Any]:
    """Merchant A with a plain order, an order with a hostile item name and a dispute; merchant B
    with an order and a dispute of its own."""
    a, b = denv.env.merchant(), denv.other_merchant
    shopper = denv.env.enrol()
    plain = shipped_order(denv, a, checkout_body(shopper["id"], a["id"], 30_000))
    hostile_body = checkout_body(shopper["id"], a["id"], 12_345)
    hostile_body["items"][0]["name"] = HOSTILE
    hostile = shipped_order(denv, a, hostile_body)
    other = shipped_order(denv, b, checkout_body(shopper["id"], b["id"], 20_000))
    dispute_a = denv.open(plain)
    dispute_b = denv.open(other)
    return {
        "a": a,
        "b": b,
        "plain": plain,
        "hostile": hostile,
        "other": other,
        "dispute_a": dispute_a["id"],
        "dispute_b": dispute_b["id"],
    }


def test_merchant_sees_only_its_own(database_url: str, tmp_path: Path) -> None:
    with open_dispute_env(database_url, tmp_path) as denv:
        world = two_merchants(denv)
        console = merchant_console(denv.env.runtime, world["a"]["id"], "staff@a.example.com")

        home = console.get("/console/merchant?lang=en")
        assert home.status_code == 200
        assert f'href="/console/merchant/disputes/{world["dispute_a"]}"' in home.text
        assert world["dispute_b"] not in home.text and world["other"] not in home.text

        orders = console.get("/console/merchant/orders")
        assert orders.status_code == 200
        listed = re.findall(r'href="/console/merchant/orders/([^"]+)"', orders.text)
        assert sorted(listed) == sorted([world["plain"], world["hostile"]])

        page = console.get(f"/console/merchant/orders/{world['plain']}?lang=en")
        assert page.status_code == 200
        assert '<strong id="order-amount">¥300.00</strong>' in page.text
        assert '<strong id="order-status">shipped</strong>' in page.text
        assert SHIPMENT["tracking_number"] in page.text

        # A hostile item name is shown as text, never as markup.
        hostile = console.get(f"/console/merchant/orders/{world['hostile']}")
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in hostile.text
        assert HOSTILE not in hostile.text and "<script" not in hostile.text

        disputes = console.get("/console/merchant/disputes")
        assert re.findall(r'href="/console/merchant/disputes/([^"]+)"', disputes.text) == [
            world["dispute_a"]
        ]
        assert console.get(f"/console/merchant/disputes/{world['dispute_a']}").status_code == 200

        # Another merchant's ids answer exactly as ids that do not exist.
        unknown_order = console.get("/console/merchant/orders/ord_unknown")
        for path, unknown in (
            (f"/console/merchant/orders/{world['other']}", unknown_order),
            (f"/console/merchant/disputes/{world['dispute_b']}", unknown_order),
            ("/console/merchant/settlements/stl_unknown", unknown_order),
        ):
            response = console.get(path)
            assert response.status_code == 404
            assert response.text == unknown.text
        assert unknown_order.status_code == 404
        assert world["other"] not in unknown_order.text

        # Merchant B, signed in, sees its own and not A's.
        console_b = merchant_console(denv.env.runtime, world["b"]["id"], "staff@b.example.com")
        assert console_b.get(f"/console/merchant/orders/{world['other']}").status_code == 200
        assert console_b.get(f"/console/merchant/orders/{world['plain']}").status_code == 404
        assert console_b.get(f"/console/merchant/disputes/{world['dispute_a']}").status_code == 404


def test_balance_equals_the_api(database_url: str, tmp_path: Path) -> None:
    with open_dispute_env(database_url, tmp_path) as denv:
        merchant = denv.env.merchant()
        shopper = denv.env.enrol()
        denv.buy(shopper["id"], 30_000)
        denv.buy(shopper["id"], 45_000)
        api = denv.client.get(
            f"/v1/merchants/{merchant['id']}/balance", headers=bearer(merchant["api_key"])
        )
        assert api.status_code == 200, api.text
        balance = api.json()
        console = merchant_console(denv.env.runtime, merchant["id"], "staff@a.example.com")
        page = console.get("/console/merchant/settlements?lang=en")
        assert page.status_code == 200
        shown = dict(re.findall(r'<strong id="(payable|held|reserve)">([^<]+)</strong>', page.text))

        def money(minor: int) -> str:
            units, cents = divmod(abs(minor), 100)
            return f"{'-' if minor < 0 else ''}¥{units:,}.{cents:02d}"

        assert shown == {
            "payable": money(balance["payable_minor"]),
            "held": money(balance["held_minor"]),
            "reserve": money(balance["reserve_minor"]),
        }
        assert balance["payable_minor"] != 0  # the figures compared are real ones
        home = console.get("/console/merchant")
        assert f'<strong id="payable">{money(balance["payable_minor"])}</strong>' in home.text


def test_evidence_upload(database_url: str, tmp_path: Path) -> None:
    with open_dispute_env(
        database_url, tmp_path, dispute_evidence_max_bytes=MAX_EVIDENCE_BYTES
    ) as denv:
        world = two_merchants(denv)
        console = merchant_console(denv.env.runtime, world["a"]["id"], "staff@a.example.com")
        path = f"/console/merchant/disputes/{world['dispute_a']}"
        token = csrf_of(console.get(path).text)
        before = (denv.row_counts(), denv.stored_files())

        def upload(
            content: bytes, name: str, kind: str, csrf: str = token, target: str = path
        ) -> Any:
            return console.post(
                f"{target}/evidence?lang=en",
                data={"csrf_token": csrf},
                files={"file": (name, content, kind)},
                follow_redirects=False,
            )

        # No CSRF token, a wrong type, a file too large, another merchant's dispute: nothing kept.
        assert upload(PNG_BYTES, "a.png", "image/png", csrf="forged").status_code == 403
        wrong = upload(
            b"MZ\x90\x00\x03\x00\x00\x00" + bytes(64), "run.exe", "application/x-msdownload"
        )
        assert wrong.status_code == 415
        assert "Only PDF, PNG, JPEG, plain-text or JSON files are accepted" in html.unescape(
            wrong.text
        )
        big = PNG_BYTES + bytes(MAX_EVIDENCE_BYTES)
        too_large = upload(big, "big.png", "image/png")
        assert too_large.status_code == 413
        assert "The file is too large; nothing was stored." in too_large.text
        huge = upload(PNG_BYTES + bytes(200 * 1024), "huge.png", "image/png")
        assert huge.status_code == 413  # refused on Content-Length, before the body is read
        theirs = upload(
            PNG_BYTES,
            "a.png",
            "image/png",
            target=f"/console/merchant/disputes/{world['dispute_b']}",
        )
        assert theirs.status_code == 404
        assert upload(PNG_BYTES, "../../parcel.png", "image/png").status_code == 422
        assert (denv.row_counts(), denv.stored_files()) == before

        stored = upload(PNG_BYTES, "parcel at the door.png", "image/png")
        assert stored.status_code == 303
        assert stored.headers["location"] == f"{path}?uploaded=1"
        dispute = denv.get(world["dispute_a"], headers=bearer(world["a"]["api_key"]))
        digest = sha256_of(PNG_BYTES)
        [evidence] = dispute["evidence"]
        assert (evidence["sha256"], evidence["content_type"], evidence["size_bytes"]) == (
            digest,
            "image/png",
            len(PNG_BYTES),
        )
        assert evidence["submitted_by"] == "merchant"
        assert dispute["status"] == "under_review"  # the merchant answered the shopper's dispute
        # Stored by content, never under the name the browser sent.
        assert denv.stored_files() == [denv.evidence_dir / digest[:2] / digest[2:4] / digest]
        assert denv.stored_files()[0].read_bytes() == PNG_BYTES
        assert evidence["filename"] == "parcel at the door.png"
        shown = console.get(f"{path}?uploaded=1&lang=en")
        assert "The evidence was stored." in shown.text
        assert digest in shown.text


def test_roles_are_kept_apart(database_url: str, tmp_path: Path) -> None:
    with open_dispute_env(database_url, tmp_path) as denv:
        merchant = denv.env.merchant()
        add_operator(denv.env.runtime, "boss@example.com", "admin")
        operator = TestClient(create_app(denv.env.runtime))
        sign_in(operator, "boss@example.com")
        for path in ("/console/merchant", "/console/merchant/orders", "/console/merchant/disputes"):
            assert operator.get(path).status_code == 403
        console = merchant_console(denv.env.runtime, merchant["id"], "staff@a.example.com")
        assert console.get("/console/dashboard").status_code == 403
        assert console.get("/console/collections").status_code == 403
        signed_out = TestClient(create_app(denv.env.runtime))
        response = signed_out.get("/console/merchant", follow_redirects=False)
        assert response.headers["location"] == "/console/login"


def test_held_order_shows_the_merchant_warning(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    # The shop's own address as the delivery address: held, and the merchant is warned.
    merchant = create_merchant(client, platform_headers, address="北京市朝阳区建国路1号")
    shopper = enrol(client, platform_headers)
    created = client.post(
        "/v1/checkouts", headers=platform_headers, json=checkout_body(shopper["id"], merchant["id"])
    )
    assert created.status_code == 201, created.text
    order = created.json()["order"]
    assert order["status"] == "review"
    console = merchant_console(runtime, merchant["id"], "staff@shop.example.com")
    warning = "The delivery address or phone number of this order is your own shop's."
    page = console.get(f"/console/merchant/orders/{order['id']}?lang=en")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "Please do not ship this order yet" in text
    assert f"<li>{warning}</li>" in text
    home = html.unescape(console.get("/console/merchant").text)
    assert f'href="/console/merchant/orders/{order["id"]}"' in home
    assert warning in home
