#!/usr/bin/env python3
"""Checkout risk decision latency, in process: features, rules, the fraud model and links.

What one run does, on SQLite and then PostgreSQL (``--skip-postgres`` to leave it out):

1. creates a fresh database (SQLite: a file in a temporary directory; PostgreSQL: recreates the
   ``--postgres-database`` database) and migrates it;
2. builds a history through the real services: ``--merchants`` merchants, ``--shoppers``
   shoppers and ``--history`` checkouts (about a third of them on devices, IPs and addresses
   shared by small groups, so link look-ups find something; half shipped and delivered), then
   on PostgreSQL runs ``VACUUM ANALYZE`` as autovacuum would on a live server;
3. times ``risk.decision.assess_checkout`` — the whole risk half of a checkout: the feature
   queries (shopper history, merchant book, links, known fraud), the rule set, the ONNX fraud
   model (the shipped artefact) and the link signals — for ``--samples`` new checkouts, each in
   its own transaction, as the checkout calls it (after ``--warmup`` untimed ones). It also
   times the model alone and the full ``flows.checkout.checkout`` (decision recorded, credit
   reserved, order and schedule written) for context;
4. prints p50 / p90 / p99 / max per database, with the goal (p99 ≤ 5 ms), as wall time and as
   this thread's CPU time (on a shared machine wall time includes waiting for a core; SQLite
   runs in process, so there CPU time is the decision's own compute). On PostgreSQL on the same
   machine it also reads the server backend's CPU for each decision (``/proc/<pid>/schedstat``).
   It prints the load average (and CPU pressure) before and after the timed decisions, and how
   many statements one decision sends (counted during the warm-up; one round trip each). On
   PostgreSQL it also times one bare round trip (``SELECT 1``) the same way: the floor under
   the decision's wall time on this machine.

Run from the repository root::

    .venv/bin/python bench/decision.py --shoppers 2000 --history 8000 --samples 2000
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from usefirst.credit import service as credit_service  # noqa: E402
from usefirst.credit.service import policy_from_settings  # noqa: E402
from usefirst.flows import checkout as checkout_flow  # noqa: E402
from usefirst.flows import (  # noqa: E402
    enrolment,
    fulfilment,
    merchant_onboarding,
)
from usefirst.identity.validation import national_id_check_character  # noqa: E402
from usefirst.kit.migrate import upgrade  # noqa: E402
from usefirst.kit.settings import Settings  # noqa: E402
from usefirst.orders import service as order_service  # noqa: E402
from usefirst.risk import decision as risk_decision  # noqa: E402
from usefirst.risk.features import FEATURE_NAMES  # noqa: E402
from usefirst.runtime import Runtime  # noqa: E402

GOAL_P99_MS = 5.0
DEFAULT_POSTGRES = "postgresql://usefirst:usefirst@127.0.0.1:5432/postgres"
CATEGORIES = ("phones", "gold", "apparel", "home", "books", "groceries", "electronics")


@dataclass(frozen=True)
class Percentiles:
    samples: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Percentiles:
        ordered = sorted(value * 1000 for value in seconds)

        def at(share: float) -> float:
            return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

        return cls(len(ordered), at(0.50), at(0.90), at(0.99), ordered[-1])


def settings_for(url: str, directory: Path) -> Settings:
    return Settings(
        database_url=url,
        sandbox=True,
        encryption_keys=f"b:{base64.urlsafe_b64encode(os.urandom(32)).decode()}",
        active_key_id="b",
        blind_index_key=base64.urlsafe_b64encode(os.urandom(64)).decode(),
        sms_log_path=directory / "sms.jsonl",
        keys_file=directory / "keys.json",
        credit_policy="cold_start",
        starting_limit_minor=100_000_000,
        limit_cap_minor=100_000_000,
    )


def national_id(rng: random.Random) -> str:
    first = f"110105{rng.randint(1960, 2000)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    first += f"{rng.randrange(1000):03d}"
    return first + national_id_check_character(first)


@dataclass
class Population:
    merchant_ids: list[str]
    shopper_ids: list[str]
    devices: list[str]
    ips: list[str]
    addresses: list[str]


def build_history(
    runtime: Runtime, *, shoppers: int, merchants: int, history: int, rng: random.Random
) -> Population:
    population = Population([], [], [], [], [])
    population.devices = [f"dev-{rng.getrandbits(40):010x}" for _ in range(shoppers)]
    population.ips = [
        f"100.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        for _ in range(shoppers)
    ]
    population.addresses = [
        f"北京市朝阳区建国路 {rng.randint(1, 999)} 号 {rng.randint(101, 2802)} 室"
        for _ in range(shoppers)
    ]
    with runtime.work() as work:
        for index in range(merchants):
            population.merchant_ids.append(
                merchant_onboarding.create_merchant(
                    work.session,
                    name=f"bench merchant {index}",
                    category=rng.choice(CATEGORIES),
                    webhook_url=None,
                    settlement_days=None,
                    fee_rate_bps=None,
                    cipher=runtime.cipher,
                    actor="bench",
                    now=work.now,
                ).merchant.id
            )
    enrolled = 0
    while enrolled < shoppers:
        with runtime.work() as work:
            for _ in range(min(200, shoppers - enrolled)):
                request = enrolment.EnrolmentRequest(
                    external_id=f"bench-{rng.getrandbits(48)}",
                    name="张三",
                    national_id=national_id(rng),
                    phone=f"+86139{rng.randrange(10**8):08d}",
                    email=None,
                    privacy_policy_version="2026-01",
                    credit_report_authorized=True,
                    consent_source="bench",
                )
                try:
                    with work.session.begin_nested():
                        shopper, _ = enrolment.enrol_shopper(
                            work.session,
                            request=request,
                            cipher=runtime.cipher,
                            policy=policy_from_settings(runtime.settings),
                            currency="CNY",
                            default_time_zone=runtime.settings.time_zone,
                            today=work.today,
                            now=work.now,
                        )
                except Exception:  # a random national ID collided: draw another
                    continue
                population.shopper_ids.append(shopper.id)
                enrolled += 1
    for start in range(0, history, 200):
        with runtime.work() as work:
            for _ in range(min(200, history - start)):
                order, _decision = checkout_flow.checkout(
                    work.session,
                    request=checkout_request(population, rng),
                    cipher=runtime.cipher,
                    settings=runtime.settings,
                    now=work.now,
                )
                if order.status == "approved" and rng.random() < 0.5:
                    fulfilment.ship(
                        work.session,
                        order_id=order.id,
                        merchant_id=order.merchant_id,
                        carrier="SF",
                        tracking_number=f"SF{rng.randrange(10**12):012d}",
                        settings=runtime.settings,
                        now=work.now,
                    )
                    fulfilment.confirm_receipt(
                        work.session,
                        order_id=order.id,
                        delivered_on=work.today,
                        settings=runtime.settings,
                        now=work.now,
                    )
    return population


def checkout_request(population: Population, rng: random.Random) -> order_service.CheckoutRequest:
    index = rng.randrange(len(population.shopper_ids))
    # A third of checkouts share a device, IP and address with a small group of neighbours.
    signal = index if rng.random() > 1 / 3 else (index // 5) * 5
    category = rng.choice(CATEGORIES)
    return order_service.CheckoutRequest(
        shopper_id=population.shopper_ids[index],
        merchant_id=rng.choice(population.merchant_ids),
        currency="CNY",
        items=[
            order_service.Item(
                sku=f"{category}-{rng.randrange(100)}",
                name="商品",
                category=category,
                quantity=1,
                unit_price_minor=rng.choice([4_900, 19_900, 59_900, 99_900, 249_900]),
            )
        ],
        plan=rng.choice(["pay_after_delivery", "instalments_3"]),
        shipping_address=population.addresses[signal],
        device_id=population.devices[signal],
        ip=population.ips[signal],
    )


def backend_cpu_reader(work_session: Any) -> Callable[[], float] | None:
    """A reader of the on-CPU time (seconds) of this session's PostgreSQL backend, from
    ``/proc/<pid>/schedstat`` (nanosecond resolution); None on SQLite or when the server's
    processes cannot be read (another machine, no permission)."""
    connection = work_session.connection()
    if connection.dialect.name != "postgresql":
        return None
    pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    path = Path(f"/proc/{pid}/schedstat")

    def read() -> float:
        return int(path.read_text().split()[0]) / 1e9

    try:
        read()
    except OSError:
        return None
    return read


def machine_load() -> str:
    """The load average and, where the kernel reports it, CPU pressure (share of time some
    runnable task waited for a core), to print beside the figures."""
    one, five, fifteen = os.getloadavg()
    text = f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        text += f"; CPU pressure {some.split()[2].replace('avg60=', 'some avg60 = ')} %"
    except (OSError, IndexError):
        pass
    return text


def time_calls(count: int, call: Callable[[], Any]) -> list[float]:
    elapsed = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        elapsed.append(time.perf_counter() - started)
    return elapsed


def measure(
    runtime: Runtime, population: Population, *, samples: int, warmup: int, rng: random.Random
) -> dict[str, Percentiles]:
    model = risk_decision.default_model()

    def assess() -> None:
        request = checkout_request(population, rng)
        with runtime.work() as work:
            line = credit_service.get_credit_line(work.session, shopper_id=request.shopper_id)
            items = [item.__dict__ for item in request.items]
            amount = sum(item.quantity * item.unit_price_minor for item in request.items)
            read_backend_cpu = backend_cpu_reader(work.session)
            backend_started = read_backend_cpu() if read_backend_cpu else 0.0
            if counting_on_driver[0]:
                count_on_driver(work.session)
            counting[0] = True
            started, cpu_started = time.perf_counter(), time.thread_time()
            risk_decision.assess_checkout(
                work.session,
                shopper_id=request.shopper_id,
                merchant_id=request.merchant_id,
                amount_minor=amount,
                items=items,
                device_id=request.device_id,
                ip=request.ip,
                shipping_address=request.shipping_address,
                credit_limit_minor=line.limit_minor,
                credit_used_minor=line.used_minor,
                cipher=runtime.cipher,
                settings=runtime.settings,
                now=work.now,
            )
            timings.append(time.perf_counter() - started)
            cpu_timings.append(time.thread_time() - cpu_started)
            counting[0] = False
            statement_counts.append(statements[0])
            statements[0] = 0
            if read_backend_cpu:
                backend_timings.append(read_backend_cpu() - backend_started)

    def full_checkout() -> None:
        with runtime.work() as work:
            checkout_flow.checkout(
                work.session,
                request=checkout_request(population, rng),
                cipher=runtime.cipher,
                settings=runtime.settings,
                now=work.now,
            )

    timings: list[float] = []
    cpu_timings: list[float] = []
    backend_timings: list[float] = []
    # Statements the decision sends (each one round trip on PostgreSQL: its transaction has
    # already begun), counted during the warm-up only so the timed calls carry no listener.
    counting, statements = [False], [0]
    statement_counts: list[int] = []

    def count_statement(*_: Any) -> None:
        if counting[0]:
            statements[0] += 1

    # On PostgreSQL the decision's long read goes to psycopg directly (kit.db.first_row_prepared,
    # past SQLAlchemy's events) through a cursor of the connection's cursor class: statements are
    # counted there, on every connection the warm-up uses, and restored to plain cursors after.
    class CountingCursor(psycopg.Cursor[Any]):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            count_statement()
            return super().execute(query, params, **kwargs)

        def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> Any:
            count_statement()
            return super().executemany(query, params_seq, **kwargs)

    counted_drivers: dict[int, tuple[Any, Any]] = {}

    def count_on_driver(session: Any) -> None:
        driver = session.connection().connection.driver_connection
        if id(driver) not in counted_drivers:
            counted_drivers[id(driver)] = (driver, driver.cursor_factory)
            driver.cursor_factory = CountingCursor

    engine = runtime.database.engine
    counting_on_driver = [engine.dialect.name == "postgresql"]
    if not counting_on_driver[0]:
        event.listen(engine, "before_cursor_execute", count_statement)
    try:
        for _ in range(warmup):
            assess()
    finally:
        if counting_on_driver[0]:
            for driver, factory in counted_drivers.values():
                driver.cursor_factory = factory
            counting_on_driver[0] = False
        else:
            event.remove(engine, "before_cursor_execute", count_statement)
    if statement_counts:
        print(
            f"  statements per decision (warm-up): {min(statement_counts)} to "
            f"{max(statement_counts)}, mean {statistics.fmean(statement_counts):.2f}",
            flush=True,
        )
    timings.clear()
    cpu_timings.clear()
    backend_timings.clear()
    statement_counts.clear()
    print(f"  before the timed decisions: {machine_load()}", flush=True)
    for _ in range(samples):
        assess()
    print(f"  after the timed decisions:  {machine_load()}", flush=True)
    results = {
        "decision (features + rules + model + links)": Percentiles.of(timings),
        # CPU of this thread only: on a shared machine the wall time above includes waiting
        # for a core; for SQLite (in process) this is the decision's own compute.
        "decision, CPU of this thread": Percentiles.of(cpu_timings),
    }
    if backend_timings:
        # PostgreSQL runs the queries in its own process: its CPU for the same decisions.
        results["decision, CPU of the PostgreSQL backend"] = Percentiles.of(backend_timings)
        results["decision, CPU of this thread + backend"] = Percentiles.of(
            [mine + theirs for mine, theirs in zip(cpu_timings, backend_timings, strict=True)]
        )
    if model is not None:
        features = dict.fromkeys(FEATURE_NAMES, 1.0)
        results[f"model alone ({model.version})"] = Percentiles.of(
            time_calls(samples, lambda: model.score(features))
        )
    results["full checkout service call (incl. commit)"] = Percentiles.of(
        time_calls(max(samples // 4, 50), full_checkout)
    )
    if runtime.database.is_postgresql:
        # The floor under the decision's wall time: one bare round trip to the server, timed
        # the same way (its own transaction, begun by a read first).
        round_trips: list[float] = []

        def round_trip() -> None:
            with runtime.work() as work:
                connection = work.session.connection()
                started = time.perf_counter()
                connection.exec_driver_sql("SELECT 1").scalar()
                round_trips.append(time.perf_counter() - started)

        for _ in range(samples):
            round_trip()
        results["one bare round trip (SELECT 1)"] = Percentiles.of(round_trips)
    return results


def run(label: str, url: str, directory: Path, args: argparse.Namespace) -> dict[str, Percentiles]:
    upgrade(url)
    runtime = Runtime(settings_for(url, directory))
    rng = random.Random(args.seed)
    try:
        started = time.perf_counter()
        population = build_history(
            runtime, shoppers=args.shoppers, merchants=args.merchants, history=args.history, rng=rng
        )
        print(f"{label}: history built in {time.perf_counter() - started:.0f} s", flush=True)
        if runtime.database.is_postgresql:
            # As autovacuum would have by now on a live server: statistics for the planner and
            # a visibility map, so index-only scans need not visit the table.
            engine = runtime.database.engine
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("VACUUM ANALYZE")
        return measure(runtime, population, samples=args.samples, warmup=args.warmup, rng=rng)
    finally:
        runtime.database.dispose()


def recreate_postgres(maintenance_url: str, name: str) -> str:
    with psycopg.connect(maintenance_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return maintenance_url.rsplit("/", 1)[0] + f"/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--shoppers", type=int, default=2000)
    parser.add_argument("--merchants", type=int, default=40)
    parser.add_argument("--history", type=int, default=8000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres-maintenance-url", default=DEFAULT_POSTGRES)
    parser.add_argument("--postgres-database", default="usefirst_bench_decision")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    model = risk_decision.default_model()
    print(f"fraud model: {model.version if model else 'none shipped'}")
    results: dict[str, dict[str, Percentiles]] = {}
    with tempfile.TemporaryDirectory(prefix="usefirst-bench-decision-") as scratch:
        directory = Path(scratch)
        if not args.skip_sqlite:
            url = f"sqlite:///{directory / 'bench.db'}"
            results["SQLite"] = run("SQLite", url, directory, args)
        if not args.skip_postgres:
            url = recreate_postgres(args.postgres_maintenance_url, args.postgres_database)
            results["PostgreSQL"] = run("PostgreSQL", url, directory, args)
    print()
    print(
        f"{'database':<11} {'what':<48} {'n':>6} {'p50 ms':>8} {'p90 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8}"
    )
    for database, rows in results.items():
        for what, row in rows.items():
            print(
                f"{database:<11} {what:<48} {row.samples:>6} {row.p50_ms:>8.2f} "
                f"{row.p90_ms:>8.2f} {row.p99_ms:>8.2f} {row.max_ms:>8.2f}"
            )
    decision_rows = [rows[next(iter(rows))] for rows in results.values()]
    met = all(row.p99_ms <= GOAL_P99_MS for row in decision_rows)
    cpu_rows = [
        rows.get("decision, CPU of this thread + backend", rows["decision, CPU of this thread"])
        for rows in results.values()
    ]
    cpu_met = all(row.p99_ms <= GOAL_P99_MS for row in cpu_rows)
    print(f"\ngoal p99 <= {GOAL_P99_MS} ms for the decision, wall: {'met' if met else 'NOT met'}")
    print(
        f"goal p99 <= {GOAL_P99_MS} ms for the decision, CPU (this thread, + backend on "
        f"PostgreSQL): {'met' if cpu_met else 'NOT met'}"
    )
    print(f"(median of medians, wall: {statistics.median(r.p50_ms for r in decision_rows):.2f} ms)")
    print(machine_load())


if __name__ == "__main__":
    main()
