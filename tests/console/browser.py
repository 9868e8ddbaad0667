"""A real browser against a real server: Debian's chromium driven by Playwright, the app served
by uvicorn on a free local port. Screenshots go to test-artifacts/console/."""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyotp
import pytest
import uvicorn

from usefirst.api.app import create_app
from usefirst.runtime import Runtime

CHROMIUM = os.environ.get("USEFIRST_TEST_CHROMIUM", "/usr/bin/chromium")
ARTEFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
IN_CI = os.environ.get("CI", "").lower() == "true"
# Without these, chromium tries to reach Google's services, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_problem() -> str | None:
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        return f"no chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as error:
        return f"playwright is not installed: {error}"
    return None


def require_browser() -> None:
    problem = chromium_problem()
    if problem is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true but the browser tests cannot run: {problem}")
    pytest.skip(problem)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serve(runtime: Runtime) -> Iterator[str]:
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def screenshot(page: object, name: str) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def sign_in_with_enrolment(page: object, base_url: str, email: str, password: str) -> str:
    """Sign in for the first time: password, then scan (read) the TOTP key, then a code."""
    page.goto(f"{base_url}/console/login?lang=en")  # type: ignore[attr-defined]
    page.fill("input[name=email]", email)  # type: ignore[attr-defined]
    page.fill("input[name=password]", password)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_selector("#totp-secret")  # type: ignore[attr-defined]
    secret = page.inner_text("#totp-secret").strip()  # type: ignore[attr-defined]
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    page.fill("input[name=code]", pyotp.TOTP(secret).now())  # type: ignore[attr-defined]
    page.click("main button[type=submit]")  # type: ignore[attr-defined]
    return secret
