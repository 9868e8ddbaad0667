#!/usr/bin/env python3
"""Checkout benchmark: real server, real HTTP, real PostgreSQL, with pgbench as the yardstick.

What one run does (defaults keep it under three minutes on a 2-core machine):

1. recreates the bench database, migrates it, creates a platform key and, over HTTP, a merchant
   (with a webhook URL, so each checkout also queues a webhook) and shoppers with large limits.
   Each shopper checks out from its own device and shipping address, with an IP in a /24 block
   shared by ``SHOPPERS_PER_IP_BLOCK`` shoppers (a household or an office: the IP block of the
   online signals, ``risk.signals.ip_block``); ``--hot-keys`` runs the old workload instead,
   every shopper on one device, one IP and one address (a fraud ring's shape, so every
   checkout's risk read covers every earlier order under those keys). Every pass prints its
   decision mix (approved, review, step_up, declined): anything but approved is also an error;
2. for each server configuration (``--workers``, default ``1,2``) starts the real server as a
   subprocess (``usefirst serve``; when that cannot run with several workers it falls back to
   ``uvicorn --factory`` on the same app and says so), waits for ``/healthz`` and
   a. runs ``--clients`` closed-loop clients (threads, keep-alive ``httpx.Client``) doing full
      ``POST /v1/checkouts`` with a unique ``Idempotency-Key`` for ``--duration`` seconds, and
   b. runs an open-loop pass paced at half the throughput just measured and reports p50/p99
      (latency counted from each request's scheduled send time, so queueing is not hidden);
3. runs pgbench (TPC-B-like, ``-i -s 10`` then ``-c N -j 2 -T duration``) on a separate database
   with the same client count and prints the checkout/pgbench ratio;
4. profiles: py-spy on the single-worker server under load (when py-spy is installed), the
   server-side ``usefirst_http_request_seconds`` histogram, CPU shares per process group from
   ``/proc``, and an in-process count of SQL statements and database round trips per checkout.

Run from the repository root::

    .venv/bin/python bench/checkout.py --clients 8 --duration 20
    .venv/bin/python bench/checkout.py --clients 8 --duration 20 --hot-keys
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
DEFAULT_URL = "postgresql://usefirst:usefirst@127.0.0.1:5432/usefirst_bench"
DEFAULT_PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
LARGE_LIMIT_MINOR = 100_000_000_000  # 1 billion CNY: no checkout is declined for credit
ORDER_AMOUNT_MINOR = 30_000
GOAL_RATIO = 0.5
GOAL_P99_MS = 25.0
PYSPY_RATE = 250


# --------------------------------------------------------------------------------------------
# Server factory for ``uvicorn --factory checkout:make_app`` (the multi-worker fallback).
# --------------------------------------------------------------------------------------------


def make_app() -> Any:
    """The same app ``usefirst serve`` builds, from USEFIRST_* environment settings."""
    from usefirst.api.app import create_app
    from usefirst.kit.settings import get_settings
    from usefirst.runtime import Runtime

    return create_app(Runtime(get_settings()))


# --------------------------------------------------------------------------------------------
# PostgreSQL helpers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgTarget:
    host: str
    port: int
    user: str
    password: str
    dbname: str

    @classmethod
    def from_url(cls, url: str) -> PgTarget:
        parts = urlsplit(url)
        if not parts.scheme.startswith("postgres"):
            raise SystemExit(f"--database-url must be a PostgreSQL URL, not {url!r}")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=unquote(parts.username or "usefirst"),
            password=unquote(parts.password or ""),
            dbname=parts.path.lstrip("/") or "usefirst_bench",
        )

    def connect(self, dbname: str) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname,
            autocommit=True,
        )


def recreate_database(target: PgTarget, name: str) -> None:
    with target.connect("postgres") as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


# Where pg_stat_statements is read (``enable_statement_stats``; None: not available).
STATEMENT_STATS: str | None = None
PG_COUNTERS = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_returned")


def pg_counters(target: PgTarget) -> dict[str, int]:
    """The bench database's cumulative counters from pg_stat_database (flushed within ~1 s)."""
    with target.connect("postgres") as conn:
        row = conn.execute(
            sql.SQL("SELECT {} FROM pg_stat_database WHERE datname = %s").format(
                sql.SQL(", ").join(sql.Identifier(name) for name in PG_COUNTERS)
            ),
            (target.dbname,),
        ).fetchone()
    return dict(zip(PG_COUNTERS, row or (0,) * len(PG_COUNTERS), strict=True))


# Per statement, from pg_stat_statements (when the server loads it): its cumulative counters.
STATEMENT_COUNTERS = (
    "calls",
    "total_exec_time",
    "shared_blks_hit",
    "shared_blks_read",
    "rows",
    "plans",
    "total_plan_time",
)
StatementSnapshot = dict[int, tuple[str, tuple[float, ...]]]  # queryid -> (text, counters)


def enable_statement_stats(target: PgTarget) -> str | None:
    """The database to read pg_stat_statements from, when the server loads it: the bench
    database (the extension created there) or, when the role may not create it, the
    ``postgres`` database if it has it (the view is server-wide; it is read filtered by the
    bench database). None: not available. Its counters are never reset (other users' figures
    would go too); each pass reads the difference."""
    for dbname, create in ((target.dbname, True), ("postgres", False)):
        try:
            with target.connect(dbname) as conn:
                if create:
                    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                conn.execute("SELECT 1 FROM pg_stat_statements LIMIT 1")
        except psycopg.Error:
            continue
        return dbname
    return None


def statement_snapshot(target: PgTarget, source: str) -> StatementSnapshot:
    """The bench database's statements and their counters (read in ``source``)."""
    with target.connect(source) as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT queryid, query, {} FROM pg_stat_statements WHERE dbid ="
                " (SELECT oid FROM pg_database WHERE datname = %s)"
            ).format(sql.SQL(", ").join(sql.Identifier(name) for name in STATEMENT_COUNTERS)),
            (target.dbname,),
        ).fetchall()
    return {
        int(row[0]): (str(row[1]), tuple(float(value or 0) for value in row[2:])) for row in rows
    }


def statement_lines(
    before: StatementSnapshot, after: StatementSnapshot, requests: int, top: int = 6
) -> list[str]:
    """The pass's most expensive statements: calls, mean execution and planning time, shared
    buffers and rows per call, and the database's execution time per request."""
    deltas = []
    for queryid, (query, counters) in after.items():
        earlier = before.get(queryid, ("", (0.0,) * len(counters)))[1]
        differences = (a - b for a, b in zip(counters, earlier, strict=True))
        delta = dict(zip(STATEMENT_COUNTERS, differences, strict=True))
        if delta["calls"] > 0:
            deltas.append((" ".join(query.split()), delta))
    deltas.sort(key=lambda item: -item[1]["total_exec_time"])
    total = sum(delta["total_exec_time"] for _, delta in deltas)
    lines = [f"execution {total / max(requests, 1):.2f} ms per request in all statements"]
    for query, delta in deltas[:top]:
        calls = delta["calls"]
        planned = (
            f", planned {delta['plans']:.0f} times, {delta['total_plan_time'] / calls:.3f} ms"
            if delta["plans"]
            else ""
        )
        lines.append(
            f"{calls:6.0f} calls  {delta['total_exec_time'] / calls:7.3f} ms  "
            f"{(delta['shared_blks_hit'] + delta['shared_blks_read']) / calls:7.1f} buffers  "
            f"{delta['rows'] / calls:5.1f} rows{planned}  {query[:70]}"
        )
    return lines


def analyze(target: PgTarget) -> None:
    """Refresh the bench database's planner statistics, as autovacuum keeps them on a database
    in use. The bench starts from empty tables that grow by thousands of rows a pass, faster
    than autovacuum's per-minute visits refresh their statistics: the server's prepared
    statements keep generic plans made for the tables' size at the last refresh (sequential
    scans of tables that were empty then), and each pass measured those stale plans. ANALYZE
    invalidates them, so each pass's plans are made for the data it runs on."""
    with target.connect(target.dbname) as conn:
        conn.execute("ANALYZE")


def prepare_database(url: str, keys_file: Path, *, citus: bool = False) -> str:
    """Recreate and migrate the bench database; return a new platform API key. ``citus``: the
    database is a Citus coordinator's (the extension created, workers added): its tables and
    functions are dropped instead, and after migrating it is distributed (``db distribute``)."""
    from sqlalchemy import create_engine

    from usefirst.distribution import cluster_violations, distribute, drop_schema_objects
    from usefirst.identity.service import create_api_key
    from usefirst.kit.db import normalize_database_url
    from usefirst.kit.migrate import upgrade
    from usefirst.kit.settings import Settings
    from usefirst.runtime import Runtime

    target = PgTarget.from_url(url)
    if citus:
        engine = create_engine(normalize_database_url(url))
        with engine.begin() as connection:
            drop_schema_objects(connection)
        upgrade(url)
        with engine.begin() as connection:
            distribute(connection)
            problems = cluster_violations(connection)
        engine.dispose()
        if problems:
            raise SystemExit(f"the cluster does not follow the layout: {problems}")
    else:
        recreate_database(target, target.dbname)
        upgrade(url)
        global STATEMENT_STATS
        STATEMENT_STATS = enable_statement_stats(target)
    runtime = Runtime(Settings(database_url=url, keys_file=keys_file))
    try:
        with runtime.work() as work:
            return create_api_key(work.session, kind="platform", now=work.now, label="bench")
    finally:
        runtime.database.dispose()


# --------------------------------------------------------------------------------------------
# CPU accounting from /proc (who used the two cores during a pass)
# --------------------------------------------------------------------------------------------


ProcTable = dict[int, tuple[int, str, int]]  # pid -> (ppid, comm, cpu ticks)
Classify = Callable[[int, str, ProcTable], str | None]


def _proc_table() -> ProcTable:
    """pid -> (ppid, comm, utime+stime ticks) for every readable process."""
    table: ProcTable = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), comm, int(fields[11]) + int(fields[12]))
    return table


def _cpu_total() -> tuple[int, int]:
    """(all ticks, idle ticks) summed over every CPU since boot."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(values), values[3] + values[4]


@dataclass
class CpuSnapshot:
    total: int
    idle: int
    groups: dict[str, int]


def cpu_snapshot(classify: Classify) -> CpuSnapshot:
    table = _proc_table()
    groups: Counter[str] = Counter()
    for pid, (_ppid, comm, ticks) in table.items():
        group = classify(pid, comm, table)
        if group is not None:
            groups[group] += ticks
    total, idle = _cpu_total()
    return CpuSnapshot(total=total, idle=idle, groups=dict(groups))


def cpu_shares(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    """Percent of all cores' time over the interval, per group, plus ``other`` and ``idle``."""
    total = max(after.total - before.total, 1)
    shares: dict[str, float] = {}
    accounted = 0
    for group in sorted(set(after.groups) | set(before.groups)):
        used = after.groups.get(group, 0) - before.groups.get(group, 0)
        accounted += used
        shares[group] = 100.0 * used / total
    idle = after.idle - before.idle
    shares["other"] = 100.0 * max(total - idle - accounted, 0) / total
    shares["idle"] = 100.0 * idle / total
    return shares


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ms_per(before: CpuSnapshot, after: CpuSnapshot, count: int) -> dict[str, float]:
    """CPU milliseconds per request (or transaction), per group (idle and other left out)."""
    return {
        group: 1000.0
        * (after.groups.get(group, 0) - before.groups.get(group, 0))
        / CLOCK_TICKS
        / max(count, 1)
        for group in sorted(set(after.groups) | set(before.groups))
        if not group.startswith("postgres: background")
    }


def descends_from(pid: int, root: int, table: ProcTable) -> bool:
    seen = 0
    while pid > 1 and seen < 64:
        if pid == root:
            return True
        pid = table.get(pid, (0, "", 0))[0]
        seen += 1
    return pid == root


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def classifier(server_pid: int | None, dbname: str) -> Classify:
    """Groups: this script, the server's process tree, PostgreSQL backends of the benchmarked
    database, PostgreSQL's shared background processes, pgbench. Everything else (for example
    other people's tests and their database sessions) stays in ``other``."""
    me = os.getpid()

    def classify(pid: int, comm: str, table: ProcTable) -> str | None:
        if pid == me:
            return "bench client"
        if comm == "postgres":
            command = _cmdline(pid)
            if f" {dbname} " in command:
                return "postgres: bench db backends"
            if "(" in command or "[local]" in command:
                return None  # a session on some other database
            return "postgres: background"
        if comm == "pgbench":
            return "pgbench client"
        if server_pid is not None and descends_from(pid, server_pid, table):
            return "usefirst server"
        return None

    return classify


def background_load(seconds: float = 1.0) -> float:
    """Percent of all cores busy before the benchmark starts (other people's work)."""
    before = _cpu_total()
    time.sleep(seconds)
    after = _cpu_total()
    total = max(after[0] - before[0], 1)
    return 100.0 * (total - (after[1] - before[1])) / total


# --------------------------------------------------------------------------------------------
# The server under test
# --------------------------------------------------------------------------------------------


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_healthy(self, base_url: str, timeout: float = 120.0) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base_url}/healthz", timeout=2.0).status_code == 200:
                    return True
            time.sleep(0.1)
        return False

    def log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text[-lines:])

    def last_errors(self, count: int = 2) -> list[str]:
        """The last exception lines the server logged (why requests failed)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        pattern = re.compile(r"^[\w.]+(Error|Exception|Exit)\b")
        found = [line.strip() for line in lines if pattern.match(line.strip())]
        return [line[:300] for line in found[-count:]]

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            # The group is the one this script created for the server (start_new_session).
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def server_env(url: str, keys_file: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "USEFIRST_DATABASE_URL": url,
            "USEFIRST_KEYS_FILE": str(keys_file),
            "USEFIRST_STARTING_LIMIT_MINOR": str(LARGE_LIMIT_MINOR),
            "USEFIRST_LIMIT_CAP_MINOR": str(LARGE_LIMIT_MINOR),
            "USEFIRST_SANDBOX": "false",
            # The bench merchant's webhook host (merchant.example) resolves nowhere.
            "USEFIRST_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS": "true",
        }
    )
    return env


@dataclass
class ServerLaunch:
    workers: int
    command: str
    note: str = ""


def start_server(
    *, workers: int, port: int, env: dict[str, str], work_dir: Path
) -> tuple[Server, ServerLaunch]:
    base_url = f"http://127.0.0.1:{port}"
    if not port_is_free(port):
        raise SystemExit(f"port {port} is in use; pass --port")
    cli = [str(VENV_BIN / "usefirst"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    cli += ["--workers", str(workers)]
    server = Server(cli, env, work_dir / f"server-cli-w{workers}.log")
    server.start()
    if server.wait_healthy(base_url):
        return server, ServerLaunch(workers=workers, command=" ".join(["usefirst", *cli[1:]]))
    server.stop()
    code = server.process.returncode if server.process is not None else None
    note = (
        f"`usefirst serve --workers {workers}` did not come up (exit {code}): {server.log_tail()}"
    )
    print(f"  ! {note}")
    print("  ! falling back to uvicorn --factory on the same app (bench/checkout.py:make_app)")
    fallback = [str(VENV_BIN / "python"), "-m", "uvicorn", "--factory", "checkout:make_app"]
    fallback += ["--app-dir", str(ROOT / "bench"), "--host", "127.0.0.1", "--port", str(port)]
    fallback += ["--workers", str(workers), "--log-level", "info"]
    server = Server(fallback, env, work_dir / f"server-uvicorn-w{workers}.log")
    server.start()
    if not server.wait_healthy(base_url):
        server.stop()
        raise SystemExit(f"the server did not start: {server.log_tail()}")
    time.sleep(1.0)  # let every worker finish booting
    command = "uvicorn --factory checkout:make_app --app-dir bench " + " ".join(fallback[8:])
    return server, ServerLaunch(workers=workers, command=command, note=note)


# --------------------------------------------------------------------------------------------
# Data set-up over HTTP
# --------------------------------------------------------------------------------------------


def national_id(serial: int) -> str:
    from usefirst.identity.validation import national_id_check_character

    birth = date(1980, 1, 1) + timedelta(days=serial)
    first = f"110105{birth:%Y%m%d}{serial % 1000:03d}"
    return first + national_id_check_character(first)


def seed(base_url: str, key: str, shoppers: int) -> tuple[str, list[str]]:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30.0) as client:
        response = client.post(
            "/v1/merchants",
            json={
                "name": "Bench Shop",
                "category": "electronics",
                "webhook_url": "https://merchant.example/webhooks/usefirst",
            },
        )
        if response.status_code != 201:
            raise SystemExit(f"merchant creation failed: {response.status_code} {response.text}")
        merchant_id = str(response.json()["id"])
        shopper_ids: list[str] = []
        for serial in range(shoppers):
            response = client.post(
                "/v1/shoppers",
                json={
                    "external_id": f"bench-{serial}",
                    "name": "张三",
                    "national_id": national_id(serial),
                    "phone": f"+86138{serial:08d}",
                    "consent": {
                        "privacy_policy_version": "2026-01",
                        "credit_report_authorized": True,
                    },
                },
            )
            if response.status_code != 201:
                raise SystemExit(f"enrolment failed: {response.status_code} {response.text}")
            body = response.json()
            if body["credit"]["limit_minor"] < LARGE_LIMIT_MINOR:
                raise SystemExit("the server did not pick up USEFIRST_STARTING_LIMIT_MINOR")
            shopper_ids.append(str(body["id"]))
    return merchant_id, shopper_ids


# One IP block (the /24 of ``risk.signals.ip_block``) per this many seeded shoppers.
SHOPPERS_PER_IP_BLOCK = 4


@dataclass(frozen=True)
class Identity:
    """What a checkout says about where it comes from: its device, client IP, shipping address."""

    device_id: str
    ip: str
    shipping_address: str


# The workload before: every shopper on one device, one IP and one address (a fraud ring's
# shape: every checkout reads every earlier one's history under those keys).
HOT_KEYS = Identity(
    device_id="bench-device", ip="203.0.113.7", shipping_address="北京市朝阳区建国路 1 号"
)


def identity_of(serial: int, *, hot_keys: bool) -> Identity:
    """The ``serial``-th seeded shopper's identity: with ``hot_keys`` the old shared one; else
    its own device and address, and an IP in a /24 (198.18.0.0/15, the benchmarking range)
    that ``SHOPPERS_PER_IP_BLOCK`` shoppers share, as a household or an office does."""
    if hot_keys:
        return HOT_KEYS
    block, host = divmod(serial, SHOPPERS_PER_IP_BLOCK)
    return Identity(
        device_id=f"bench-device-{serial}",
        ip=f"198.18.{block % 256}.{10 + host}",
        shipping_address=f"北京市朝阳区建国路 {serial + 1} 号 {serial % 30 + 1} 单元",
    )


def workload_description(*, hot_keys: bool) -> str:
    if hot_keys:
        return (
            "--hot-keys: every shopper on one device, one IP and one shipping address (a fraud"
            " ring's shape; each checkout's risk read covers every earlier order)"
        )
    return (
        "each shopper on its own device and shipping address, IPs in /24 blocks shared by"
        f" {SHOPPERS_PER_IP_BLOCK} shoppers each"
    )


def checkout_body(
    shopper_id: str, merchant_id: str, identity: Identity = HOT_KEYS
) -> dict[str, Any]:
    return {
        "shopper_id": shopper_id,
        "merchant_id": merchant_id,
        "currency": "CNY",
        "items": [
            {
                "sku": "sku-1",
                "name": "Headphones",
                "category": "electronics",
                "quantity": 1,
                "unit_price_minor": ORDER_AMOUNT_MINOR,
            }
        ],
        "plan": "pay_after_delivery",
        "shipping_address": identity.shipping_address,
        "device_id": identity.device_id,
        "ip": identity.ip,
    }


# --------------------------------------------------------------------------------------------
# Load generation
# --------------------------------------------------------------------------------------------


@dataclass
class Workload:
    base_url: str
    key: str
    merchant_id: str
    shopper_ids: list[str]
    clients: int
    target: PgTarget
    hot_keys: bool = False
    # Every checkout's outcome (approved, review, step_up, declined) or HTTP status, counted.
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def dbname(self) -> str:
        return self.target.dbname

    def body(self, shopper_id: str) -> dict[str, Any]:
        serial = self.shopper_ids.index(shopper_id)
        return checkout_body(
            shopper_id, self.merchant_id, identity_of(serial, hot_keys=self.hot_keys)
        )

    def shoppers_of(self, client_index: int) -> list[str]:
        # Each client has its own shoppers, so clients never queue on one credit-line row.
        mine = self.shopper_ids[client_index :: self.clients]
        return mine or self.shopper_ids

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=30.0,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )


OUTCOMES_LOCK = threading.Lock()

# (scheduled, sent, finished, ok) in perf_counter seconds.
Sample = tuple[float, float, float, bool]


def _checkout(
    client: httpx.Client, body: dict[str, Any], errors: list[str], outcomes: Counter[str]
) -> bool:
    try:
        response = client.post(
            "/v1/checkouts", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
    except httpx.HTTPError as error:
        errors.append(f"{type(error).__name__}: {error}")
        with OUTCOMES_LOCK:
            outcomes[type(error).__name__] += 1
        return False
    if response.status_code != 201:
        errors.append(f"{response.status_code}: {response.text[:200]}")
        with OUTCOMES_LOCK:
            outcomes[f"HTTP {response.status_code}"] += 1
        return False
    outcome = response.json()["decision"]["outcome"]
    with OUTCOMES_LOCK:
        outcomes[outcome] += 1
    if outcome != "approved":
        errors.append(f"not approved: {response.text[:200]}")
        return False
    return True


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return math.nan
    rank = max(math.ceil(pct / 100.0 * len(sorted_values)) - 1, 0)
    return sorted_values[rank]


@dataclass
class PassResult:
    name: str
    seconds: float
    completed: int
    errors: int
    throughput: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    target_rate: float | None = None
    service_p99_ms: float | None = None
    error_samples: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    cpu_ms: dict[str, float] = field(default_factory=dict)
    server_mean_ms: float | None = None
    pg_per_request: dict[str, float] = field(default_factory=dict)
    sent: int = 0  # every request of the pass, warm-up included
    # The decisions of every request of the pass (warm-up included): outcome -> count.
    outcomes: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        text = (
            f"{self.throughput:8.1f} req/s  p50 {self.p50_ms:6.2f} ms  p90 {self.p90_ms:6.2f} ms  "
            f"p99 {self.p99_ms:6.2f} ms  max {self.max_ms:7.2f} ms  errors {self.errors}"
        )
        if self.service_p99_ms is not None:
            text += f"  (p99 from actual send {self.service_p99_ms:.2f} ms)"
        return text


def summarize(
    name: str,
    samples: list[Sample],
    window: tuple[float, float],
    error_messages: list[str],
    *,
    target_rate: float | None = None,
) -> PassResult:
    start, end = window
    seconds = end - start
    in_window = [sample for sample in samples if start <= sample[0] < end]
    ok = [sample for sample in in_window if sample[3]]
    latencies = sorted((sample[2] - sample[0]) * 1000.0 for sample in ok)
    service = sorted((sample[2] - sample[1]) * 1000.0 for sample in ok)
    completed_in_window = sum(1 for sample in samples if sample[3] and start <= sample[2] < end)
    return PassResult(
        name=name,
        seconds=seconds,
        completed=len(ok),
        errors=len(in_window) - len(ok),
        throughput=completed_in_window / seconds,
        p50_ms=percentile(latencies, 50),
        p90_ms=percentile(latencies, 90),
        p99_ms=percentile(latencies, 99),
        max_ms=latencies[-1] if latencies else math.nan,
        mean_ms=sum(latencies) / len(latencies) if latencies else math.nan,
        target_rate=target_rate,
        service_p99_ms=percentile(service, 99) if target_rate is not None else None,
        error_samples=error_messages[:3],
        sent=len(samples),
    )


def closed_loop(workload: Workload, *, warmup: float, duration: float, name: str) -> PassResult:
    """``clients`` threads, each sending the next checkout as soon as the last one answered."""
    samples: list[list[Sample]] = [[] for _ in range(workload.clients)]
    errors: list[str] = []
    begin = time.perf_counter() + 0.2
    measure_from = begin + warmup
    stop_at = measure_from + duration

    def run(index: int) -> None:
        shoppers = workload.shoppers_of(index)
        bodies = [workload.body(shopper) for shopper in shoppers]
        mine = samples[index]
        with workload.client() as client:
            time.sleep(max(begin - time.perf_counter(), 0))
            turn = 0
            while True:
                sent = time.perf_counter()
                if sent >= stop_at:
                    return
                ok = _checkout(client, bodies[turn % len(bodies)], errors, workload.outcomes)
                mine.append((sent, sent, time.perf_counter(), ok))
                turn += 1

    _run_threads(run, workload.clients)
    flat = [sample for chunk in samples for sample in chunk]
    return summarize(name, flat, (measure_from, stop_at), errors)


def open_loop(workload: Workload, *, rate: float, duration: float, name: str) -> PassResult:
    """Requests scheduled at a fixed rate (one every 1/rate s) and served by ``clients`` threads;
    latency counts from the scheduled time, so a late send (all threads busy) is not hidden."""
    samples: list[list[Sample]] = [[] for _ in range(workload.clients)]
    errors: list[str] = []
    interval = 1.0 / rate
    begin = time.perf_counter() + 0.5
    stop_at = begin + duration
    slot_lock = threading.Lock()
    next_slot = [0]

    def run(index: int) -> None:
        shoppers = workload.shoppers_of(index)
        bodies = [workload.body(shopper) for shopper in shoppers]
        mine = samples[index]
        with workload.client() as client:
            turn = 0
            while True:
                with slot_lock:
                    slot = next_slot[0]
                    next_slot[0] += 1
                scheduled = begin + slot * interval
                if scheduled >= stop_at:
                    return
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                sent = time.perf_counter()
                ok = _checkout(client, bodies[turn % len(bodies)], errors, workload.outcomes)
                mine.append((scheduled, sent, time.perf_counter(), ok))
                turn += 1

    _run_threads(run, workload.clients)
    flat = [sample for chunk in samples for sample in chunk]
    return summarize(name, flat, (begin, stop_at), errors, target_rate=rate)


def _run_threads(target: Callable[[int], None], count: int) -> None:
    threads = [
        threading.Thread(target=target, args=(index,), daemon=True) for index in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# --------------------------------------------------------------------------------------------
# Server-side view: /metrics histogram, py-spy
# --------------------------------------------------------------------------------------------

_METRIC = re.compile(
    r'^usefirst_http_request_seconds_(sum|count)\{method="POST",route="/v1/checkouts"\}\s+(\S+)$'
)


def scrape_checkout_metrics(base_url: str) -> tuple[float, float]:
    """(sum of seconds, count) of the server's POST /v1/checkouts latency histogram."""
    text = httpx.get(f"{base_url}/metrics", timeout=5.0).text
    found = {"sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        match = _METRIC.match(line)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found["sum"], found["count"]


LIBRARIES = (
    ("(usefirst/", "usefirst (app code)"),
    ("(sqlalchemy/", "SQLAlchemy"),
    ("(psycopg/", "psycopg"),
    ("(pydantic_core/", "pydantic"),
    ("(pydantic/", "pydantic"),
    ("(fastapi/", "FastAPI"),
    ("(starlette/", "Starlette"),
    ("(uvicorn/", "uvicorn"),
    ("(h11/", "h11"),
    ("(anyio/", "anyio (threadpool hand-off)"),
    ("(prometheus_client/", "prometheus_client"),
    ("(cryptography/", "cryptography"),
    ("(json/", "json (stdlib)"),
    ("(asyncio/", "asyncio (stdlib)"),
    ("(selectors.py", "asyncio (stdlib)"),
    ("(threading.py", "threading (stdlib)"),
    ("(concurrent/", "threading (stdlib)"),
    ("(logging/", "logging (stdlib, access log)"),
)

# Inclusive-time probes: (label, function name, substring of its file path).
PROBES = (
    ("checkout endpoint (create_checkout)", "create_checkout", "usefirst/api/routers/orders.py"),
    ("  flows.checkout.checkout", "checkout", "usefirst/flows/checkout.py"),
    ("    order_view (twice: event + response)", "order_view", "usefirst/orders/service.py"),
    ("    publish_event", "publish_event", "usefirst/notify/service.py"),
    ("    FieldCipher.encrypt (shipping address)", "encrypt", "usefirst/kit/crypto.py"),
    ("  run_idempotent", "run_idempotent", "usefirst/kit/idempotency.py"),
    ("  idempotency fingerprint", "fingerprint", "usefirst/kit/idempotency.py"),
    ("  Session.flush", "flush", "sqlalchemy/orm/session.py"),
    ("  Session.commit", "commit", "sqlalchemy/orm/session.py"),
    ("  jsonable_encoder", "jsonable_encoder", "fastapi/encoders.py"),
    ("auth dependency (get_principal)", "get_principal", "usefirst/api/deps.py"),
    ("pool checkout incl. pre-ping", "_checkout", "sqlalchemy/pool/base.py"),
    ("SQL compilation (SQLAlchemy)", "_compiler", "sqlalchemy/sql/elements.py"),
    ("psycopg cursor execute", "execute", "psycopg/cursor.py"),
    ("request parsing + validation", "solve_dependencies", "fastapi/dependencies/utils.py"),
    ("metrics middleware (BaseHTTPMiddleware)", "measure", "usefirst/api/app.py"),
    ("uvicorn/h11 protocol", "", "uvicorn/protocols/http/h11_impl.py"),
    ("access log", "", "logging/"),
)


def _frame_matches(frame: str, function: str, path: str) -> bool:
    """py-spy frames read ``Class.function (package/module.py:line)``."""
    if function and not (frame.startswith(f"{function} (") or f".{function} (" in frame):
        return False
    return f"({path}" in frame


@dataclass
class Profile:
    samples: int
    by_library: dict[str, float]
    probes: dict[str, float]
    top_self: list[tuple[str, float]]
    seconds: float = 0.0
    checkouts: int = 0

    @property
    def gil_busy(self) -> float:
        """Share of wall time some server thread held the GIL (``--gil`` samples only then)."""
        return self.samples / (self.seconds * PYSPY_RATE) if self.seconds else math.nan

    @property
    def gil_ms_per_checkout(self) -> float:
        held = self.samples / PYSPY_RATE
        return 1000.0 * held / self.checkouts if self.checkouts else math.nan


def analyse_pyspy(raw_path: Path) -> Profile | None:
    """Aggregate py-spy's collapsed stacks: self time by library, inclusive time per probe."""
    if not raw_path.exists():
        return None
    total = 0
    by_library: Counter[str] = Counter()
    probes: Counter[str] = Counter()
    self_frames: Counter[str] = Counter()
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        leaf = frames[-1]
        library = next((name for marker, name in LIBRARIES if marker in leaf), "other")
        by_library[library] += count
        self_frames[leaf.replace(str(ROOT), "")] += count
        for label, function, path in PROBES:
            if any(_frame_matches(frame, function, path) for frame in frames):
                probes[label] += count
    if total == 0:
        return None

    def share(value: int) -> float:
        return round(100.0 * value / total, 1)

    return Profile(
        samples=total,
        by_library={name: share(value) for name, value in by_library.most_common()},
        probes={label: share(probes[label]) for label, _, _ in PROBES},
        top_self=[(frame, share(value)) for frame, value in self_frames.most_common(12)],
    )


# --------------------------------------------------------------------------------------------
# SQL statements per checkout (in process, through the same app and the real database)
# --------------------------------------------------------------------------------------------


@dataclass
class StatementCount:
    checkouts: int
    statements: float
    driver_executes: float
    begins: float
    commits: float
    rollbacks: float
    round_trips: float
    listing: list[str]


ROUND_TRIPS = ("execute", "executemany", "begin", "commit", "rollback", "pipeline")


@contextlib.contextmanager
def counting(engine: Any) -> Iterator[tuple[list[str], Counter[str]]]:
    """Every statement the driver is sent (SQLAlchemy's pre-ping included), and its round
    trips: executes, the implicit BEGIN psycopg sends before the first statement of a
    transaction, COMMITs and ROLLBACKs, except that statements sent together in pipeline mode
    (``kit.db.rows_together``), and the BEGIN that goes with them, are one round trip."""
    from psycopg.pq import PipelineStatus, TransactionStatus
    from sqlalchemy import event

    statements: list[str] = []
    driver: Counter[str] = Counter()
    in_pipeline = [False]
    current_pipeline: list[object] = [None]

    class CountingCursor(psycopg.Cursor[Any]):
        def _count(self, query: Any, kind: str) -> None:
            connection = self.connection
            statements.append(" ".join(str(query).split()))
            if connection.pgconn.pipeline_status != PipelineStatus.OFF:
                # One pipeline is one round trip; two sent one after the other are two.
                pipeline = connection._pipeline
                if not in_pipeline[0] or pipeline is not current_pipeline[0]:
                    driver["pipeline"] += 1
                in_pipeline[0] = True
                current_pipeline[0] = pipeline
                return
            in_pipeline[0] = False
            if connection.info.transaction_status == TransactionStatus.IDLE and not (
                connection.autocommit
            ):
                driver["begin"] += 1
            driver[kind] += 1

        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            self._count(query, "execute")
            return super().execute(query, params, **kwargs)

        def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> Any:
            self._count(query, "executemany")
            return super().executemany(query, params_seq, **kwargs)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.cursor_factory = CountingCursor

    def on_commit(_conn: Any) -> None:
        driver["commit"] += 1
        in_pipeline[0] = False

    def on_rollback(_conn: Any) -> None:
        driver["rollback"] += 1
        in_pipeline[0] = False

    listeners: list[tuple[str, Callable[..., None]]] = [
        ("connect", on_connect),
        ("commit", on_commit),
        ("rollback", on_rollback),
    ]
    for name, listener in listeners:
        event.listen(engine, name, listener)
    try:
        yield statements, driver
    finally:
        for name, listener in listeners:
            event.remove(engine, name, listener)


def count_statements(
    url: str, keys_file: Path, key: str, body: dict[str, Any], repeats: int = 5
) -> StatementCount:
    from fastapi.testclient import TestClient

    from usefirst.api.app import create_app
    from usefirst.kit.settings import Settings
    from usefirst.runtime import Runtime

    settings = Settings(
        database_url=url,
        keys_file=keys_file,
        starting_limit_minor=LARGE_LIMIT_MINOR,
        limit_cap_minor=LARGE_LIMIT_MINOR,
        webhook_allow_private_destinations=True,
    )
    runtime = Runtime(settings)
    engine = runtime.database.engine
    headers = {"Authorization": f"Bearer {key}"}
    listing: list[str] = []
    try:
        with counting(engine) as (statements, driver), TestClient(create_app(runtime)) as client:
            for _ in range(2):  # warm up: first connection, dialect initialisation
                client.post(
                    "/v1/checkouts",
                    json=body,
                    headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
                )
            statements.clear()
            driver.clear()
            for index in range(repeats):
                response = client.post(
                    "/v1/checkouts",
                    json=body,
                    headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
                )
                if response.status_code != 201:
                    raise SystemExit(f"in-process checkout failed: {response.text}")
                if index == 0:
                    listing = [statement[:110] for statement in statements]
    finally:
        runtime.database.dispose()
    per = float(repeats)
    round_trips = sum(driver[name] for name in ROUND_TRIPS)
    return StatementCount(
        checkouts=repeats,
        statements=len(statements) / per,
        driver_executes=(driver["execute"] + driver["executemany"]) / per,
        begins=driver["begin"] / per,
        commits=driver["commit"] / per,
        rollbacks=driver["rollback"] / per,
        round_trips=round_trips / per,
        listing=listing,
    )


# --------------------------------------------------------------------------------------------
# pgbench
# --------------------------------------------------------------------------------------------


@dataclass
class PgbenchResult:
    tps: float
    latency_ms: float
    failed: int
    scale: int
    command: str
    cpu: dict[str, float] = field(default_factory=dict)
    cpu_ms: dict[str, float] = field(default_factory=dict)


def run_pgbench(
    pgbench: str, target: PgTarget, dbname: str, *, scale: int, clients: int, duration: int
) -> PgbenchResult:
    recreate_database(target, dbname)
    env = dict(os.environ, PGPASSWORD=target.password)
    common = ["-h", target.host, "-p", str(target.port), "-U", target.user]
    subprocess.run(
        [pgbench, "-i", "-q", "-s", str(scale), *common, dbname],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    jobs = min(2, clients)
    argv = [pgbench, "-c", str(clients), "-j", str(jobs), "-T", str(duration), *common, dbname]
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    # Sample CPU inside the run (pgbench's own process is gone once it has finished).
    time.sleep(min(1.0, duration / 4))
    before = cpu_snapshot(classifier(None, dbname))
    window = max(duration - 2 * min(1.0, duration / 4), 0.5)
    time.sleep(window)
    after = cpu_snapshot(classifier(None, dbname))
    cpu = cpu_shares(before, after)
    output, errors = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"pgbench failed ({process.returncode}):\n{errors}")
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", output)
    latency = re.search(r"latency average = ([\d.]+) ms", output)
    failed = re.search(r"number of failed transactions: (\d+)", output)
    if tps is None:
        raise SystemExit(f"could not read pgbench output:\n{output}\n{errors}")
    transactions = round(float(tps.group(1)) * window)
    return PgbenchResult(
        cpu_ms=cpu_ms_per(before, after, transactions),
        tps=float(tps.group(1)),
        latency_ms=float(latency.group(1)) if latency else math.nan,
        failed=int(failed.group(1)) if failed else 0,
        scale=scale,
        command=f"pgbench -c {clients} -j {jobs} -T {duration} (after pgbench -i -s {scale})",
        cpu=cpu,
    )


# --------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------


@dataclass
class ConfigResult:
    launch: ServerLaunch
    full: PassResult
    half: PassResult
    baseline: PassResult | None = None


def format_ms(per: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in per.items() if value > 0.005)


def format_outcomes(outcomes: dict[str, int]) -> str:
    total = sum(outcomes.values())
    return (
        ", ".join(
            f"{name} {count} ({100.0 * count / total:.1f}%)"
            for name, count in sorted(outcomes.items(), key=lambda item: -item[1])
        )
        if total
        else "none"
    )


def format_cpu(shares: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.0f}%" for name, value in shares.items())


def measured(
    workload: Workload,
    server: Server,
    launch: ServerLaunch,
    run: Callable[[], PassResult],
    label: str,
) -> PassResult:
    """Run one pass with CPU accounting (and, for one worker, the server's own latency mean)."""
    classify = classifier(server.pid, workload.dbname)
    metrics_before = scrape_checkout_metrics(workload.base_url) if launch.workers == 1 else None
    analyze(workload.target)
    time.sleep(1.1)  # earlier work's pending statistics reach pg_stat_database first
    counters_before = pg_counters(workload.target)
    statements_before = (
        statement_snapshot(workload.target, STATEMENT_STATS) if STATEMENT_STATS else None
    )
    outcomes_before = Counter(workload.outcomes)
    cpu_before = cpu_snapshot(classify)
    result = run()
    cpu_after = cpu_snapshot(classify)
    result.outcomes = dict(Counter(workload.outcomes) - outcomes_before)
    result.cpu = cpu_shares(cpu_before, cpu_after)
    result.cpu_ms = cpu_ms_per(cpu_before, cpu_after, result.sent)
    time.sleep(1.2)  # let backends flush their pending statistics
    counters_after = pg_counters(workload.target)
    # The counters cover every request of the pass, warm-up included.
    requests = max(result.sent, 1)
    result.pg_per_request = {
        name: (counters_after[name] - counters_before[name]) / requests for name in PG_COUNTERS
    }
    if metrics_before is not None:
        total, count = scrape_checkout_metrics(workload.base_url)
        served = count - metrics_before[1]
        if served > 0:
            result.server_mean_ms = 1000.0 * (total - metrics_before[0]) / served
    suffix = f"  [target {result.target_rate:.1f} req/s]" if result.target_rate else ""
    print(f"  {label:<12} {result.line()}{suffix}")
    print(f"  {'':<12} CPU (% of all cores): {format_cpu(result.cpu)}")
    print(f"  {'':<12} CPU ms per checkout: {format_ms(result.cpu_ms)}")
    print(f"  {'':<12} decisions: {format_outcomes(result.outcomes)}")
    if result.server_mean_ms is not None:
        print(
            f"  {'':<12} mean {result.mean_ms:.2f} ms at the client, {result.server_mean_ms:.2f} ms"
            " inside the server (middleware histogram)"
        )
    pg = result.pg_per_request
    print(
        f"  {'':<12} PostgreSQL per request: {pg['xact_commit'] + pg['xact_rollback']:.1f} "
        f"transactions (pings count as one each), {pg['tup_inserted']:.1f} rows inserted, "
        f"{pg['tup_updated']:.1f} updated"
    )
    if statements_before is not None:
        after = statement_snapshot(workload.target, STATEMENT_STATS or "postgres")
        for line in statement_lines(statements_before, after, requests):
            print(f"  {'':<12} {line}")
    for message in result.error_samples:
        print(f"  {'':<12} error: {message}")
    if result.errors:
        for line in server.last_errors():
            print(f"  {'':<12} server log: {line}")
    return result


def run_config(
    workload: Workload,
    server: Server,
    launch: ServerLaunch,
    *,
    warmup: float,
    duration: float,
    half_duration: float,
    baseline_seconds: float,
) -> ConfigResult:
    label = f"{launch.workers} worker{'s' if launch.workers > 1 else ''}"
    baseline: PassResult | None = None
    if baseline_seconds > 0:
        single = Workload(
            workload.base_url,
            workload.key,
            workload.merchant_id,
            workload.shopper_ids,
            1,
            workload.target,
            hot_keys=workload.hot_keys,
            outcomes=workload.outcomes,
        )
        baseline = measured(
            single,
            server,
            launch,
            lambda: closed_loop(single, warmup=0.5, duration=baseline_seconds, name="1 client"),
            "1 client",
        )
    full = measured(
        workload,
        server,
        launch,
        lambda: closed_loop(
            workload, warmup=warmup, duration=duration, name=f"closed loop, {label}"
        ),
        "full speed",
    )
    rate = max(full.throughput / 2.0, 1.0)
    half = measured(
        workload,
        server,
        launch,
        lambda: open_loop(workload, rate=rate, duration=half_duration, name=f"half rate, {label}"),
        "half rate",
    )
    return ConfigResult(launch=launch, full=full, half=half, baseline=baseline)


def profile_server(
    workload: Workload, server: Server, *, seconds: float, out_dir: Path
) -> Profile | None:
    pyspy = VENV_BIN / "py-spy"
    if not pyspy.exists():
        found = shutil.which("py-spy")
        if found is None:
            print("  py-spy not installed; skipping the sampling profile")
            return None
        pyspy = Path(found)
    raw = out_dir / "pyspy.txt"
    argv = [str(pyspy), "record", "--pid", str(server.pid), "--duration", str(int(seconds))]
    argv += ["--rate", str(PYSPY_RATE), "--gil", "--nonblocking", "--format", "raw", "-o", str(raw)]
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)  # attach
    loaded = closed_loop(workload, warmup=0.0, duration=seconds + 1.0, name="profiled")
    try:
        _, err = spy.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        spy.terminate()
        _, err = spy.communicate()
    if spy.returncode != 0:
        print(f"  py-spy failed: {err.decode(errors='replace').strip()[:300]}")
        return None
    profile = analyse_pyspy(raw)
    if profile is not None:
        profile.seconds = float(int(seconds))
        # Checkouts served while py-spy sampled (the load ran slightly longer than the sampling).
        profile.checkouts = round(loaded.throughput * int(seconds))
    return profile


def print_profile(profile: Profile) -> None:
    print(
        f"  py-spy --gil: {profile.samples} samples at {PYSPY_RATE} Hz over {profile.seconds:.0f} s"
        f" -> the GIL was held {100 * profile.gil_busy:.0f}% of the time, "
        f"{profile.gil_ms_per_checkout:.2f} ms of GIL time per checkout "
        f"(single-process ceiling ~{1000 / profile.gil_ms_per_checkout:.0f} checkouts/s)"
    )
    print("  self time by library (innermost frame):")
    for name, value in profile.by_library.items():
        print(f"    {value:5.1f}%  {name}")
    print("  inclusive time (share of GIL samples whose stack contains it):")
    for label, value in profile.probes.items():
        print(f"    {value:5.1f}%  {label}")
    print("  hottest frames (self):")
    for frame, value in profile.top_self:
        print(f"    {value:5.1f}%  {frame}")


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--duration", type=int, default=20, help="seconds per pass (default 20)")
    parser.add_argument("--database-url", default=DEFAULT_URL, help="bench database (recreated)")
    parser.add_argument("--port", type=int, default=None, help="server port (default: a free port)")
    parser.add_argument(
        "--workers", default="1,2", help="comma-separated server worker counts (default 1,2)"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument(
        "--half-rate-duration", type=int, default=None, help="seconds (default: --duration)"
    )
    parser.add_argument("--pgbench", default=shutil.which("pgbench") or DEFAULT_PGBENCH)
    parser.add_argument("--pgbench-scale", type=int, default=10)
    parser.add_argument(
        "--profile-seconds", type=float, default=8.0, help="py-spy seconds (0: no profile)"
    )
    parser.add_argument(
        "--baseline-seconds",
        type=float,
        default=4.0,
        help="single-client latency floor, one worker (0: skip)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    parser.add_argument(
        "--hot-keys",
        action="store_true",
        help="the old workload: every shopper checks out from one device, one IP and one"
        " shipping address (hot keys: each checkout's risk read covers every earlier order)."
        " Default: each shopper has its own device and address, and an IP in a /24 shared by"
        f" {SHOPPERS_PER_IP_BLOCK} shoppers (an IP block as risk.signals.ip_block defines it)",
    )
    parser.add_argument(
        "--shoppers",
        type=int,
        default=None,
        help="shoppers seeded, every checkout by one of them in turn (default: 32, or 4 per"
        " client if more). Each checkout's risk read covers its shopper's history in the"
        " windows, so with few shoppers it grows with every pass (32 shoppers at 200"
        " checkouts/s: about 100 orders each per 15 s pass); a sale day has many shoppers"
        f" with a few orders each (at most {256 * SHOPPERS_PER_IP_BLOCK})",
    )
    parser.add_argument(
        "--citus",
        action="store_true",
        help="--database-url is a Citus coordinator's database (emptied and distributed, not"
        " recreated)",
    )
    args = parser.parse_args(argv)
    if args.clients < 1 or args.duration < 1:
        parser.error("--clients and --duration must be positive")
    if args.shoppers is not None and not 1 <= args.shoppers <= 256 * SHOPPERS_PER_IP_BLOCK:
        parser.error(f"--shoppers must be from 1 to {256 * SHOPPERS_PER_IP_BLOCK}")
    worker_counts = [int(value) for value in args.workers.split(",") if value.strip()]
    half_duration = args.half_rate_duration or args.duration
    url: str = args.database_url
    target = PgTarget.from_url(url)
    port: int = args.port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    started = time.monotonic()

    print(f"machine: {os.cpu_count()} CPUs, {_cpu_model()}; code: {_code_version()}")
    print(f"clients {args.clients}, {args.duration} s per pass, database {target.dbname}")
    print(f"workload: {workload_description(hot_keys=args.hot_keys)}")
    busy = background_load()
    print(f"CPU already busy before starting: {busy:.0f}% of all cores")
    if busy > 10:
        print("  ! the machine is not idle: figures below are depressed by other work")
    with tempfile.TemporaryDirectory(prefix="usefirst-bench-") as scratch:
        work_dir = Path(scratch)
        keys_file = work_dir / "keys.json"
        print("setting up: recreate + migrate database, platform key ...")
        key = prepare_database(url, keys_file, citus=args.citus)
        env = server_env(url, keys_file)
        workload: Workload | None = None
        results: list[ConfigResult] = []
        profile: Profile | None = None
        for workers in worker_counts:
            print(f"\n== server with {workers} worker(s) ==")
            server, launch = start_server(workers=workers, port=port, env=env, work_dir=work_dir)
            with running(server):
                print(f"  command: {launch.command}")
                if workload is None:
                    shoppers = args.shoppers or max(32, args.clients * 4)
                    merchant_id, shopper_ids = seed(base_url, key, shoppers)
                    print(f"  seeded 1 merchant (with webhook) and {len(shopper_ids)} shoppers")
                    workload = Workload(
                        base_url,
                        key,
                        merchant_id,
                        shopper_ids,
                        args.clients,
                        target,
                        hot_keys=args.hot_keys,
                    )
                results.append(
                    run_config(
                        workload,
                        server,
                        launch,
                        warmup=args.warmup,
                        duration=args.duration,
                        half_duration=half_duration,
                        baseline_seconds=args.baseline_seconds if workers == 1 else 0.0,
                    )
                )
                if workers == 1 and args.profile_seconds > 0 and profile is None:
                    profile = profile_server(
                        workload, server, seconds=args.profile_seconds, out_dir=work_dir
                    )
        assert workload is not None

        print("\n== pgbench (TPC-B-like) ==")
        bench = run_pgbench(
            args.pgbench,
            target,
            f"{target.dbname}_pgbench",
            scale=args.pgbench_scale,
            clients=args.clients,
            duration=args.duration,
        )
        print(f"  {bench.command}")
        print(
            f"  {bench.tps:.1f} TPS, latency average {bench.latency_ms:.2f} ms, "
            f"failed {bench.failed}"
        )
        print(f"  CPU (% of all cores): {format_cpu(bench.cpu)}")
        print(f"  CPU ms per transaction: {format_ms(bench.cpu_ms)}")

        print("\n== statements per checkout (in process, same app, same database) ==")
        counted = count_statements(url, keys_file, key, workload.body(workload.shopper_ids[0]))
        print(
            f"  {counted.statements:.1f} SQL statements issued by SQLAlchemy; "
            f"{counted.round_trips:.1f} database round trips in all "
            f"({counted.driver_executes:.1f} executes incl. pre-ping, {counted.begins:.1f} BEGIN, "
            f"{counted.commits:.1f} COMMIT, {counted.rollbacks:.1f} ROLLBACK)"
        )
        for statement in counted.listing:
            print(f"    {statement}")

        if profile is not None:
            print("\n== where the server's CPU time goes ==")
            print_profile(profile)

    print("\n== summary ==")
    best = max(results, key=lambda result: result.full.throughput)
    ratio = best.full.throughput / bench.tps if bench.tps else math.nan
    for result in results:
        print(
            f"  workers {result.launch.workers}: {result.full.throughput:.1f} checkouts/s "
            f"(p50 {result.full.p50_ms:.1f} ms, p99 {result.full.p99_ms:.1f} ms, "
            f"errors {result.full.errors}); at {result.half.target_rate or 0:.1f}/s: "
            f"p50 {result.half.p50_ms:.1f} ms, p99 {result.half.p99_ms:.1f} ms, "
            f"errors {result.half.errors}; ratio to pgbench "
            f"{result.full.throughput / bench.tps:.3f}"
        )
    print(f"  pgbench: {bench.tps:.1f} TPS")
    print(f"  workload: {workload_description(hot_keys=args.hot_keys)}")
    print(f"  decisions, every pass: {format_outcomes(dict(workload.outcomes))}")
    print(
        f"  statements per checkout: {counted.statements:.1f} "
        f"({counted.round_trips:.1f} round trips)"
    )
    ratio_ok = ratio >= GOAL_RATIO
    p99_ok = best.half.p99_ms <= GOAL_P99_MS
    print(
        f"  goal throughput >= {GOAL_RATIO} x pgbench: {'MET' if ratio_ok else 'NOT MET'} "
        f"(best {best.full.throughput:.1f}/s = {ratio:.3f} x {bench.tps:.1f})"
    )
    print(
        f"  goal p99 <= {GOAL_P99_MS:.0f} ms at half rate: {'MET' if p99_ok else 'NOT MET'} "
        f"({best.half.p99_ms:.1f} ms at {best.half.target_rate or 0:.1f}/s, "
        f"workers {best.launch.workers})"
    )
    print(f"  total run time {time.monotonic() - started:.0f} s")
    if args.json is not None:
        payload = {
            "cpus": os.cpu_count(),
            "clients": args.clients,
            "duration": args.duration,
            "hot_keys": args.hot_keys,
            "outcomes": dict(workload.outcomes),
            "configs": [asdict(result) for result in results],
            "pgbench": asdict(bench),
            "ratio": ratio,
            "statements": asdict(counted),
            "profile": (
                {
                    **asdict(profile),
                    "gil_busy": profile.gil_busy,
                    "gil_ms_per_checkout": profile.gil_ms_per_checkout,
                }
                if profile is not None
                else None
            ),
        }
        args.json.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str))
    return 0


def _code_version() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head or 'unknown'}{' + uncommitted changes in src/' if dirty else ''}"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
