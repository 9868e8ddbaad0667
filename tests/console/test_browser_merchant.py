"""A merchant's staff member in a real browser: signs in, opens its dispute, uploads a PNG as
evidence, and is shown 404 for another merchant's order typed into the address bar."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

from tests.console.browser import require_browser, screenshot, serve, sign_in_with_enrolment
from tests.console.test_browser_sign_in import browser
from tests.console.test_merchant_pages import two_merchants
from tests.console.test_sign_in import PASSWORD
from tests.disputes.dispute_env import open_dispute_env, sha256_of
from tests.factories import bearer
from usefirst.console import auth

__all__ = ["browser"]


def tiny_png() -> bytes:
    """A real 1×1 PNG (one white pixel)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\xff\xff")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def test_merchant_uploads_evidence_and_cannot_see_another_merchants_order(
    sqlite_template: Path, tmp_path: Path, browser: Any
) -> None:
    require_browser()
    database = tmp_path / "usefirst.db"
    database.write_bytes(sqlite_template.read_bytes())
    with open_dispute_env(f"sqlite:///{database}", tmp_path) as denv:
        world = two_merchants(denv)
        with denv.env.runtime.work() as work:
            auth.create_account(
                work.session,
                email="staff@a.example.com",
                password=PASSWORD,
                merchant_id=world["a"]["id"],
                now=work.now,
            )
        png = tmp_path / "parcel.png"
        png.write_bytes(tiny_png())
        with serve(denv.env.runtime) as base_url:
            page = browser.new_page()
            sign_in_with_enrolment(page, base_url, "staff@a.example.com", PASSWORD)
            page.wait_for_url(f"{base_url}/console/merchant")
            screenshot(page, "merchant-portal")
            page.click(f"text={world['dispute_a']}")
            page.wait_for_selector("#evidence")
            page.set_input_files("input[name=file]", str(png))
            page.click("main form button[type=submit]")
            page.wait_for_selector("p.ok")
            assert sha256_of(png.read_bytes()) in page.inner_text("#evidence")
            screenshot(page, "merchant-dispute")
            response = page.goto(f"{base_url}/console/merchant/orders/{world['other']}?lang=en")
            assert response is not None and response.status == 404
            assert page.inner_text("p.error") == "Not found."
            assert world["other"] not in page.content()
        dispute = denv.get(world["dispute_a"], headers=bearer(world["a"]["api_key"]))
        assert [(e["sha256"], e["content_type"], e["filename"]) for e in dispute["evidence"]] == [
            (sha256_of(png.read_bytes()), "image/png", "parcel.png")
        ]
