"""The server's Python CPU per checkout, in process: the app called as ASGI, no HTTP server.

Approved, keyed checkouts through the whole app (middleware, request guard, routing, the
checkout flow, the real database), with the thread-pool hops run inline so that all of a
request's work is on this one thread and its CPU clock (``time.thread_time``) sees it all.
Then a second, shorter pass under cProfile: the Python function calls per checkout (exact for
a given sequence of checkouts) and the functions that cost most.

Each run recreates the database, so that every run sees the same history (the risk features
read it). Run two source trees alternately (``PYTHONPATH=<other tree>/src``) to compare them:
under load the absolute figures move with the machine, the pairs less so.

    .venv/bin/python bench/checkout_cpu.py --database-url postgresql://…/uf_h2_bench
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import checkout as bench  # bench/checkout.py: database set-up, the payload

Message = dict[str, Any]


def _run_inline() -> None:
    """Thread-pool hops (sync endpoints and dependencies, the key look-up) run on this
    thread: the CPU they take is then this thread's. Every module that imported Starlette's
    ``run_in_threadpool`` gets the inline one (call after the app is built)."""
    from starlette.concurrency import run_in_threadpool

    async def inline(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    for module in list(sys.modules.values()):
        if getattr(module, "run_in_threadpool", None) is run_in_threadpool:
            module.run_in_threadpool = inline  # type: ignore[attr-defined]


class AsgiClient:
    """Requests to the app as an ASGI server would make them (one body message)."""

    def __init__(self, app: Any, key: str) -> None:
        self.app = app
        self.headers = [(b"authorization", f"Bearer {key}".encode())]

    async def post(
        self,
        path: str,
        body: Any,
        headers: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
    ) -> tuple[int, Any]:
        raw = json.dumps(body, ensure_ascii=False).encode()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"host", b"bench"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
                *self.headers,
                *headers,
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        status = 0
        chunks: list[bytes] = []

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, json.loads(b"".join(chunks) or b"null")


async def _seed(client: AsgiClient, shoppers: int) -> tuple[str, list[str]]:
    status, merchant = await client.post(
        "/v1/merchants",
        {
            "name": "Bench Shop",
            "category": "electronics",
            "webhook_url": "https://merchant.example/webhooks/usefirst",
        },
    )
    assert status == 201, merchant
    shopper_ids = []
    for serial in range(shoppers):
        status, shopper = await client.post(
            "/v1/shoppers",
            {
                "external_id": f"bench-{serial}",
                "name": "张三",
                "national_id": bench.national_id(serial),
                "phone": f"+86138{serial:08d}",
                "consent": {"privacy_policy_version": "2026-01", "credit_report_authorized": True},
            },
        )
        assert status == 201, shopper
        shopper_ids.append(shopper["id"])
    return merchant["id"], shopper_ids


def _body(merchant_id: str, shopper_ids: list[str], index: int) -> dict[str, Any]:
    serial = index % len(shopper_ids)
    body = bench.checkout_body(shopper_ids[serial], merchant_id)
    # Each shopper their own device and address, as real shoppers have.
    body["device_id"] = f"bench-device-{serial}"
    body["ip"] = f"203.0.113.{serial + 1}"
    return body


async def _checkouts(
    client: AsgiClient, merchant_id: str, shopper_ids: list[str], start: int, count: int
) -> None:
    for index in range(start, start + count):
        status, answer = await client.post(
            "/v1/checkouts",
            _body(merchant_id, shopper_ids, index),
            [(b"idempotency-key", uuid.uuid4().hex.encode())],
        )
        if status != 201 or answer["decision"]["outcome"] != "approved":
            raise SystemExit(f"checkout {index}: {status} {answer}")


def run(
    url: str,
    *,
    shoppers: int,
    warmup: int,
    measured: int,
    profiled: int,
    top: int,
    sort: str,
    stats_file: str | None = None,
    interleave_standard: bool = False,
) -> None:
    from usefirst.api.app import create_app
    from usefirst.api.deps import runtime_dependency
    from usefirst.kit.settings import Settings
    from usefirst.runtime import Runtime

    keys_file = Path(tempfile.mkdtemp()) / "keys.json"
    key = bench.prepare_database(url, keys_file)
    settings = Settings(
        database_url=url,
        keys_file=keys_file,
        starting_limit_minor=bench.LARGE_LIMIT_MINOR,
        limit_cap_minor=bench.LARGE_LIMIT_MINOR,
        webhook_allow_private_destinations=True,
    )
    runtime = Runtime(settings)
    client = AsgiClient(create_app(runtime), key)
    # The same app with a dependency override: every request through FastAPI's own handler
    # (the keyed routes' plain path is not taken).
    standard_app = create_app(runtime)
    standard_app.dependency_overrides[runtime_dependency] = runtime_dependency
    standard = AsgiClient(standard_app, key)
    _run_inline()

    async def interleaved(merchant_id: str, shopper_ids: list[str], start: int) -> None:
        """Checkouts sent alternately to the app and to the override one, each's CPU summed:
        the two see the same machine load and the same history."""
        spent = {"lean": 0.0, "standard": 0.0}
        for index in range(start, start + measured):
            name, target = ("lean", client) if index % 2 else ("standard", standard)
            before = time.thread_time()
            await _checkouts(target, merchant_id, shopper_ids, index, 1)
            spent[name] += time.thread_time() - before
        for name, seconds in spent.items():
            print(f"CPU per checkout, {name} handler: {seconds * 1000 / (measured / 2):.2f} ms")

    async def main() -> None:
        merchant_id, shopper_ids = await _seed(client, shoppers)
        await _checkouts(client, merchant_id, shopper_ids, 0, warmup)
        if interleave_standard:
            await interleaved(merchant_id, shopper_ids, warmup)
            return
        thread_before, wall_before = time.thread_time(), time.perf_counter()
        await _checkouts(client, merchant_id, shopper_ids, warmup, measured)
        thread_ms = (time.thread_time() - thread_before) * 1000 / measured
        wall_ms = (time.perf_counter() - wall_before) * 1000 / measured
        print(f"CPU per checkout, this thread: {thread_ms:.2f} ms (wall {wall_ms:.2f} ms)")
        if not profiled:
            return
        profiler = cProfile.Profile(time.thread_time)
        profiler.enable()
        await _checkouts(client, merchant_id, shopper_ids, warmup + measured, profiled)
        profiler.disable()
        stats = pstats.Stats(profiler)
        if stats_file:
            stats.dump_stats(stats_file)
        print(f"Python function calls per checkout: {stats.total_calls / profiled:.0f}")  # type: ignore[attr-defined]
        if top:
            stats.sort_stats(sort).print_stats(top)

    try:
        asyncio.run(main())
    finally:
        runtime.database.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=bench.DEFAULT_URL)
    parser.add_argument("--shoppers", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--checkouts", type=int, default=300)
    parser.add_argument("--profiled", type=int, default=100)
    parser.add_argument("--top", type=int, default=0, help="print the N costliest functions")
    parser.add_argument("--sort", default="cumulative", help="pstats order: cumulative, tottime")
    parser.add_argument("--stats-file", help="write the cProfile statistics here (pstats)")
    parser.add_argument(
        "--interleave-standard",
        action="store_true",
        help="alternate checkouts with FastAPI's own handler (the keyed route's plain path off)",
    )
    args = parser.parse_args(argv)
    run(
        args.database_url,
        shoppers=args.shoppers,
        warmup=args.warmup,
        measured=args.checkouts,
        profiled=args.profiled,
        top=args.top,
        sort=args.sort,
        stats_file=args.stats_file,
        interleave_standard=args.interleave_standard,
    )


if __name__ == "__main__":
    main()
