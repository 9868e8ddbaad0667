"""The nightly graph step alone, on a copy of a book kept by ``bench/sweep.py --book-database``.

    .venv/bin/python bench/graph_step.py --book uf_bench_book1m --copy uf_bench_graph1m

Copies the kept book once (``CREATE DATABASE … TEMPLATE``; ``--recopy`` again), migrates the
copy to the engine's head, then runs ``risk_monitoring.nightly_graph`` for the book's measured
night ``--repeat`` times, each in a transaction rolled back afterwards (the copy stays as it
was): wall seconds, this process's CPU, the PostgreSQL backend's CPU, statements and their wait,
the longest statement shapes. ``--findings F`` writes the run's scored groups (without ring and
case ids) to compare two engines on the same book (``PYTHONPATH`` selects the engine: a copy
migrated by a newer engine cannot be used by an older one, so give each its own ``--copy``).
``--profile P``: cProfile of the runs, written to ``P``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import event

from sweep import _process_cpu_seconds  # bench/sweep.py: the backend's CPU from /proc
from usefirst.flows import risk_monitoring
from usefirst.kit.business_day import DailyContext
from usefirst.kit.clock import business_day_start
from usefirst.kit.migrate import upgrade
from usefirst.kit.settings import Settings, load_field_cipher
from usefirst.risk import graph
from usefirst.runtime import Runtime

SERVER = "postgresql://usefirst:usefirst@127.0.0.1:5432/"


def _copy(server: str, book: str, copy: str, *, again: bool) -> dict[str, Any]:
    """The kept book's description; ``copy`` made from it unless it exists (or ``again``)."""
    with psycopg.connect(server + "postgres", autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (book,),
        ).fetchone()
        if row is None or not row[0]:
            raise SystemExit(f"no book kept in {book} (bench/sweep.py --book-database {book})")
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (copy,)).fetchone()
        if again or not exists:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(copy))
            )
            started = time.perf_counter()
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                    sql.Identifier(copy), sql.Identifier(book)
                )
            )
            print(f"copied {book} to {copy} in {time.perf_counter() - started:.1f} s")
    document: dict[str, Any] = json.loads(row[0])
    return document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default=SERVER, help="PostgreSQL URL without a database")
    parser.add_argument("--book", required=True, help="the database bench/sweep.py kept")
    parser.add_argument("--copy", required=True, help="the database to copy it to")
    parser.add_argument("--recopy", action="store_true")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--findings", type=Path)
    parser.add_argument("--profile", type=Path)
    arguments = parser.parse_args()
    document = _copy(arguments.server, arguments.book, arguments.copy, again=arguments.recopy)
    url = arguments.server + arguments.copy
    keys = Path(tempfile.mkdtemp()) / "keys.json"
    keys.write_text(json.dumps(document["keys"]))
    started = time.perf_counter()
    upgrade(url)
    print(f"migrated in {time.perf_counter() - started:.1f} s")
    settings = Settings(database_url=url, keys_file=keys)
    cipher = load_field_cipher(settings)
    business_on = date.fromisoformat(document["spec"]["business_on"])
    now = business_day_start(business_on, settings.time_zone)
    context = DailyContext(business_on=business_on, now=now, settings=settings, cipher=cipher)
    runtime = Runtime(settings, cipher=cipher)
    engine = runtime.database.engine
    shapes: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    clock = {"started": 0.0}

    def before(*_: Any) -> None:
        clock["started"] = time.perf_counter()

    def after(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        shape = shapes[" ".join(statement.split())[:110]]
        shape[0] += 1
        shape[1] += time.perf_counter() - clock["started"]

    scored: list[Any] = []
    score_groups = graph.score_groups

    def keeping(*args: Any, **kwargs: Any) -> Any:
        result = score_groups(*args, **kwargs)
        scored[:] = [result]
        return result

    graph.score_groups = keeping  # type: ignore[assignment]
    profile = cProfile.Profile() if arguments.profile else None
    for run in range(arguments.repeat):
        shapes.clear()
        with runtime.database.transaction() as session:
            pid = session.connection().connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
            event.listen(engine, "before_cursor_execute", before)
            event.listen(engine, "after_cursor_execute", after)
            cpu, backend, wall = time.process_time(), _process_cpu_seconds(pid), time.perf_counter()
            if profile:
                profile.enable()
            counts = risk_monitoring.nightly_graph(session, context)
            if profile:
                profile.disable()
            wall = time.perf_counter() - wall
            cpu, backend = time.process_time() - cpu, _process_cpu_seconds(pid) - backend
            event.remove(engine, "before_cursor_execute", before)
            event.remove(engine, "after_cursor_execute", after)
            summary, findings, _ = scored[0]
            print(
                f"run {run}: wall {wall:.2f} s, Python CPU {cpu:.2f} s, backend CPU "
                f"{backend:.2f} s, {sum(n for n, _ in shapes.values()):.0f} statements waiting "
                f"{sum(w for _, w in shapes.values()):.2f} s; {summary.mode}, "
                f"{summary.changed_shoppers:,} shoppers to start from, {summary.shoppers:,} in "
                f"the graph, {len(findings):,} groups; load average {os.getloadavg()[0]:.1f}"
            )
            print(f"  {counts}")
            for shape, (n, waited) in sorted(shapes.items(), key=lambda item: -item[1][1])[:12]:
                print(f"  {n:4.0f} {waited:6.2f} s  {shape}")
            if arguments.findings and run == 0:
                arguments.findings.write_text(
                    json.dumps(
                        {
                            "findings": sorted(
                                ({**asdict(f), "ring_id": None, "case_id": None} for f in findings),
                                key=lambda f: f["members"],
                            ),
                            "component_shoppers": sorted(summary.component_shoppers),
                            "counts": counts,
                        },
                        default=str,
                    )
                )
            session.rollback()
    if profile and arguments.profile:
        profile.dump_stats(arguments.profile)
    runtime.database.dispose()


if __name__ == "__main__":
    main()
