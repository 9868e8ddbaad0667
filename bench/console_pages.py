"""Console page load times on the demo data (the issue's goal: under 300 ms per page).

Builds the same demo `./dev run` seeds (50 shoppers, 5 merchants, 45 days, seed 7) in a fresh
SQLite file, signs an admin in (password + TOTP, as a browser would), then loads every console
page over the ASGI app in-process and prints p50 / p95 / max per page. Pages that need an id take
the first one the page before them links to.

    .venv/bin/python bench/console_pages.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import functools
import html
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyotp
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select

from usefirst.api.app import create_app
from usefirst.console import auth
from usefirst.identity.models import ConsoleAccount
from usefirst.identity.service import create_operator
from usefirst.kit.migrate import upgrade
from usefirst.kit.settings import Settings
from usefirst.lab.sim.marketplace import simulate
from usefirst.runtime import Runtime

# (label, path, pattern of a link to follow next or None)
PAGES: list[tuple[str, str]] = [
    ("dashboard", "/console/dashboard"),
    ("collections queue", "/console/collections"),
    ("collections account", r"/console/collections/(ord_[0-9A-Z]+)"),
    ("risk review queue", "/console/risk"),
    ("risk case", r"/console/risk/cases/(cas_[0-9A-Z]+)"),
    ("audit log", "/console/compliance/audit"),
    ("complaints", "/console/compliance/complaints"),
    ("rules editor", "/console/config/rules"),
    ("ladder editor", "/console/config/ladder"),
]


def signed_in_client(runtime: Runtime) -> TestClient:
    email, password = "bench-admin@example.com", "bench password 123"
    with runtime.work() as work:
        operator, _ = create_operator(work.session, email=email, role="admin", now=work.now)
        auth.create_account(
            work.session, email=email, password=password, operator_id=operator.id, now=work.now
        )
    client = TestClient(create_app(runtime))
    login = client.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
    assert token is not None
    client.post(
        "/console/login",
        data={"email": email, "password": password, "csrf_token": token.group(1)},
    )
    with runtime.work(read_only=True) as work:
        account = work.session.scalars(
            select(ConsoleAccount).where(ConsoleAccount.email == email)
        ).one()
        assert account.totp_secret_encrypted is not None
        secret = runtime.cipher.decrypt(account.totp_secret_encrypted, field="totp_secret")
    page = client.get("/console/second-factor")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    done = client.post(
        "/console/second-factor",
        data={"code": pyotp.TOTP(secret).now(), "csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    return client


def timed(label: str, repeats: int, call: Callable[[], Response]) -> Response:
    """Run ``call`` ``repeats`` times and print its p50 / p95 / max; the last response."""
    timings = []
    response = None
    for _ in range(repeats):
        begin = time.perf_counter()
        response = call()
        timings.append((time.perf_counter() - begin) * 1000)
    assert response is not None
    timings.sort()
    p95 = timings[max(0, int(len(timings) * 0.95) - 1)]
    print(
        f"{label:<22} {response.status_code:>6} {statistics.median(timings):>8.1f} "
        f"{p95:>8.1f} {timings[-1]:>8.1f}"
    )
    return response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=30)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'demo.db'}"
        upgrade(url)
        settings = Settings(database_url=url, sandbox=True, keys_file=Path(folder) / "keys.json")
        runtime = Runtime(settings)
        started = time.perf_counter()
        simulate(runtime, shoppers=50, merchants=5, days=45, seed=7)
        print(f"demo data seeded in {time.perf_counter() - started:.1f} s")
        client = signed_in_client(runtime)
        previous_html = ""
        print(f"{'page':<22} {'status':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        for label, path in PAGES:
            if "(" in path:
                found = re.search(path, previous_html)
                if found is None:
                    print(f"{label:<22} {'-':>6}  (no link to follow on the page before)")
                    continue
                path = found.group(0)
            response = timed(label, arguments.repeats, functools.partial(client.get, path))
            previous_html = response.text
        # The check step: validate the document in force and backtest it on the demo history.
        for label, slug in (("rules check+backtest", "rules"), ("ladder check+backtest", "ladder")):
            editor = client.get(f"/console/config/{slug}")
            token = re.search(r'name="csrf_token" value="([^"]+)"', editor.text)
            content = re.search(
                r'<textarea name="content"[^>]*>(.*?)</textarea>', editor.text, re.S
            )
            assert token is not None and content is not None
            form = {
                "csrf_token": token.group(1),
                "based_on": "0",
                "content": html.unescape(content.group(1)),
            }
            timed(
                label,
                arguments.repeats,
                functools.partial(client.post, f"/console/config/{slug}/check", data=form),
            )
        runtime.database.dispose()


if __name__ == "__main__":
    main()
