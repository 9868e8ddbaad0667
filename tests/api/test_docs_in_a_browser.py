"""The documentation pages render in a real browser that may reach no other host: Swagger UI at
/docs and ReDoc at /redoc show the operations, and neither page asks for anything outside the
server (a CDN, web fonts, the Redocly logo its ReDoc build links: the pages' Content-Security-
Policy stops that request in the browser)."""

from __future__ import annotations

from typing import Any

from tests.console.browser import serve
from tests.console.test_browser_sign_in import browser, browser_runtime
from usefirst.runtime import Runtime

__all__ = ["browser", "browser_runtime"]


def test_swagger_ui_and_redoc_render_with_no_other_host(
    browser_runtime: Runtime, browser: Any
) -> None:
    with serve(browser_runtime) as base_url:
        page = browser.new_page()
        elsewhere: list[str] = []
        refused_by_policy: list[str] = []
        page.on(
            "console",
            lambda message: (
                refused_by_policy.append(message.text)
                if "Content Security Policy" in message.text
                else None
            ),
        )

        def only_this_server(route: Any) -> None:
            url = route.request.url
            if url.startswith(base_url) or url.startswith(("blob:", "data:")):
                route.continue_()
            else:
                elsewhere.append(url)
                route.abort()

        page.route("**/*", only_this_server)
        page.goto(f"{base_url}/redoc")
        # ReDoc renders each operation under its summary (and lists it in its side menu).
        page.locator("h2", has_text="Create Checkout").first.wait_for(timeout=60_000)
        assert page.locator("h1").first.inner_text().startswith("usefirst")
        page.goto(f"{base_url}/docs")
        page.locator(".opblock-summary-path").first.wait_for(timeout=60_000)
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        assert "/v1/checkouts" in [path.replace("\u200b", "") for path in paths]
        page.close()
    assert elsewhere == []
    # What the policy refused is the logo on Redocly's CDN, nothing the pages need.
    assert all("cdn.redoc.ly" in message for message in refused_by_policy), refused_by_policy
