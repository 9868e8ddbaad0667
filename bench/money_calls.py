#!/usr/bin/env python3
"""The money calls of a peak day, each measured on its own: checkout, ship, confirm receipt and
payments (half of what the order owes, then the rest, which repays it). Real server, real
HTTP, real PostgreSQL (the set-up and CPU accounting of ``bench/checkout.py``).

For each call it prints:

- SQL statements and database round trips per call (in process, same app, same database:
  BEGIN, COMMIT and ROLLBACK count as round trips; statements sent together in psycopg's
  pipeline mode, with the BEGIN among them, count as one), and the statements of one call;
- CPU milliseconds per call of the server process and of the bench database's PostgreSQL
  backends, throughput and p50/p99 latency with ``--clients`` closed-loop clients.

The calls run in phases over the same orders: ``--orders`` checkouts, then each order is
shipped, its receipt confirmed, half of it paid and then the rest. Run from the repository
root::

    .venv/bin/python bench/money_calls.py --orders 400 --clients 4
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import checkout as checkout_bench

DEFAULT_URL = "postgresql://usefirst:usefirst@127.0.0.1:5432/usefirst_bench_calls"
CALLS = ("checkout", "ship", "confirm_receipt", "payment_part", "payment")


@dataclass
class Keys:
    platform: str
    merchant: str
    merchant_id: str
    shopper_ids: list[str]


@dataclass
class OrderRef:
    order_id: str
    shopper_id: str
    amount_minor: int = 0
    paid_minor: int = 0


def seed(client: httpx.Client, platform_key: str, shoppers: int) -> Keys:
    platform = {"Authorization": f"Bearer {platform_key}"}
    response = client.post(
        "/v1/merchants",
        headers=platform,
        json={
            "name": "Bench Shop",
            "category": "electronics",
            "webhook_url": "https://merchant.example/webhooks/usefirst",
        },
    )
    response.raise_for_status()
    merchant = response.json()
    shopper_ids = []
    for serial in range(shoppers):
        response = client.post(
            "/v1/shoppers",
            headers=platform,
            json={
                "external_id": f"bench-{serial}",
                "name": "张三",
                "national_id": checkout_bench.national_id(serial),
                "phone": f"+86138{serial:08d}",
                "consent": {"privacy_policy_version": "2026-01", "credit_report_authorized": True},
            },
        )
        response.raise_for_status()
        shopper_ids.append(str(response.json()["id"]))
    return Keys(platform_key, str(merchant["api_key"]), str(merchant["id"]), shopper_ids)


def call(client: httpx.Client, keys: Keys, kind: str, ref: OrderRef, serial: int) -> OrderRef:
    """One call of ``kind`` for ``ref`` (a checkout makes the order); fails loudly."""
    platform = {"Authorization": f"Bearer {keys.platform}"}
    if kind == "checkout":
        response = client.post(
            "/v1/checkouts",
            headers={**platform, "Idempotency-Key": uuid.uuid4().hex},
            json=checkout_bench.checkout_body(ref.shopper_id, keys.merchant_id),
        )
        if response.status_code != 201:
            raise SystemExit(f"checkout failed: {response.status_code} {response.text}")
        order = response.json()["order"]
        return OrderRef(order["id"], ref.shopper_id)
    if kind == "ship":
        response = client.post(
            f"/v1/orders/{ref.order_id}/ship",
            headers={"Authorization": f"Bearer {keys.merchant}"},
            json={"carrier": "SF Express", "tracking_number": f"SF{1_000_000_000 + serial}"},
        )
    elif kind == "confirm_receipt":
        response = client.post(f"/v1/orders/{ref.order_id}/confirm-receipt", headers=platform)
        if response.status_code == 200:
            instalments = response.json()["instalments"]
            ref.amount_minor = sum(row["amount_minor"] for row in instalments)
    else:
        owed = ref.amount_minor or checkout_bench.ORDER_AMOUNT_MINOR
        # Half of what the order owes, then the rest (which repays the order).
        amount_minor = owed // 2 if kind == "payment_part" else owed - ref.paid_minor
        ref.paid_minor += amount_minor
        response = client.post(
            "/v1/payments",
            headers={**platform, "Idempotency-Key": uuid.uuid4().hex},
            json={
                "shopper_id": ref.shopper_id,
                "amount_minor": amount_minor,
                "currency": "CNY",
                "order_id": ref.order_id,
                "method": "alipay",
                "external_ref": f"bench-{serial}",
            },
        )
    if response.status_code not in (200, 201):
        raise SystemExit(f"{kind} failed: {response.status_code} {response.text}")
    return ref


@dataclass
class Count:
    statements: float
    round_trips: float
    listing: list[str]


def count_calls(url: str, keys_file: Path, keys: Keys, repeats: int = 5) -> dict[str, Count]:
    """Statements and round trips per call, in process (one TestClient, warmed up)."""
    from fastapi.testclient import TestClient

    from usefirst.api.app import create_app
    from usefirst.kit.settings import Settings
    from usefirst.runtime import Runtime

    settings = Settings(
        database_url=url,
        keys_file=keys_file,
        starting_limit_minor=checkout_bench.LARGE_LIMIT_MINOR,
        limit_cap_minor=checkout_bench.LARGE_LIMIT_MINOR,
        webhook_allow_private_destinations=True,
    )
    runtime = Runtime(settings)
    engine = runtime.database.engine
    counts: dict[str, Count] = {}
    # Listening before the first connection, so that every connection counts its round trips.
    with (
        checkout_bench.counting(engine) as (statements, driver),
        TestClient(create_app(runtime)) as client,
    ):
        shopper = keys.shopper_ids[0]
        warm = [OrderRef("", shopper) for _ in range(2)]
        for index, ref in enumerate(warm):  # connections, dialect, auth cache, stmt cache
            for kind in CALLS:
                ref = call(client, keys, kind, ref, serial=900_000 + index)
        refs = [OrderRef("", shopper) for _ in range(repeats)]
        for kind in CALLS:
            statements.clear()
            driver.clear()
            listing: list[str] = []
            for index in range(repeats):
                if index == 1:
                    listing = [statement[:110] for statement in statements]
                refs[index] = call(client, keys, kind, refs[index], 800_000 + index)
            round_trips = sum(driver[name] for name in checkout_bench.ROUND_TRIPS)
            counts[kind] = Count(len(statements) / repeats, round_trips / repeats, listing)
    runtime.database.dispose()
    return counts


@dataclass
class Phase:
    kind: str
    calls: int
    seconds: float
    latencies_ms: list[float]
    cpu_ms: dict[str, float]
    other_share: float

    def line(self) -> str:
        ordered = sorted(self.latencies_ms)
        server = self.cpu_ms.get("usefirst server", 0.0)
        database = self.cpu_ms.get("postgres: bench db backends", 0.0)
        return (
            f"  {self.kind:<16} {self.calls / self.seconds:7.1f} /s  "
            f"p50 {checkout_bench.percentile(ordered, 50):6.2f} ms  "
            f"p99 {checkout_bench.percentile(ordered, 99):6.2f} ms  "
            f"CPU ms per call: server {server:5.2f}, PostgreSQL {database:5.2f}  "
            f"(other load {self.other_share:.0f}% of all cores)"
        )


def run_phase(
    base_url: str,
    keys: Keys,
    kind: str,
    refs: list[OrderRef],
    clients: int,
    classify: checkout_bench.Classify,
) -> Phase:
    latencies: list[float] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def run(index: int) -> None:
        mine = list(range(index, len(refs), clients))
        try:
            with httpx.Client(base_url=base_url, timeout=30.0) as client:
                for position in mine:
                    started = time.perf_counter()
                    refs[position] = call(client, keys, kind, refs[position], position)
                    elapsed = (time.perf_counter() - started) * 1000.0
                    with lock:
                        latencies.append(elapsed)
        except BaseException as error:  # reported after the threads join
            errors.append(error)

    before = checkout_bench.cpu_snapshot(classify)
    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    after = checkout_bench.cpu_snapshot(classify)
    if errors:
        raise errors[0]
    shares = checkout_bench.cpu_shares(before, after)
    return Phase(
        kind,
        len(refs),
        seconds,
        latencies,
        checkout_bench.cpu_ms_per(before, after, len(refs)),
        shares.get("other", 0.0),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--orders", type=int, default=400, help="orders (calls per phase; 0: counts only)"
    )
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--database-url", default=DEFAULT_URL, help="bench database (recreated)")
    parser.add_argument("--skip-counts", action="store_true", help="no in-process counting")
    args = parser.parse_args(argv)
    url: str = args.database_url
    target = checkout_bench.PgTarget.from_url(url)
    print(f"machine: {os.cpu_count()} CPUs; code: {checkout_bench._code_version()}")
    busy = checkout_bench.background_load()
    print(f"CPU already busy before starting: {busy:.0f}% of all cores")
    with tempfile.TemporaryDirectory(prefix="usefirst-calls-") as scratch:
        work_dir = Path(scratch)
        keys_file = work_dir / "keys.json"
        platform_key = checkout_bench.prepare_database(url, keys_file)
        port = checkout_bench.free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = checkout_bench.server_env(url, keys_file)
        server, launch = checkout_bench.start_server(
            workers=1, port=port, env=env, work_dir=work_dir
        )
        with checkout_bench.running(server):
            print(f"server: {launch.command}")
            with httpx.Client(base_url=base_url, timeout=30.0) as client:
                keys = seed(client, platform_key, shoppers=max(8, args.clients * 4))
                for index in range(20):  # warm up every call once the server is up
                    ref = OrderRef("", keys.shopper_ids[index % len(keys.shopper_ids)])
                    for kind in CALLS:
                        ref = call(client, keys, kind, ref, serial=700_000 + index)
            classify = checkout_bench.classifier(server.pid, target.dbname)
            refs = [
                OrderRef("", keys.shopper_ids[index % len(keys.shopper_ids)])
                for index in range(args.orders)
            ]
            if refs:
                print(f"\n{args.orders} calls per phase, {args.clients} clients, one worker:")
            for kind in CALLS if refs else ():
                print(run_phase(base_url, keys, kind, refs, args.clients, classify).line())
        if not args.skip_counts:
            print("\nstatements and round trips per call (in process):")
            for kind, count in count_calls(url, keys_file, keys).items():
                print(
                    f"  {kind:<16} {count.statements:4.1f} statements, {count.round_trips:4.1f} "
                    "round trips"
                )
                for statement in count.listing:
                    print(f"      {statement}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
