"""Shared set-up for the payment-rail tests: the engine of the collections tests (sandbox clock,
HTTP API) served over real HTTP as well, so that a provider's callbacks reach it the way they
would in production, and the local sandbox rail on a real port beside it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from tests.collections.dunning_env import Env, dump_tables, free_port, open_env
from usefirst.api.app import create_app
from usefirst.flows import auto_debit
from usefirst.rails.sandbox_server import SandboxConfig, SandboxRailServer

SECRET = "sandbox-rail-test-secret"
MONEY_TABLES = [
    "payments",
    "allocations",
    "journal_entries",
    "ledger_postings",
    "instalments",
    "rail_charges",
    "credit_lines",
]


@contextmanager
def serve(app: FastAPI, port: int | None = None) -> Iterator[str]:
    """The app on a real local port (uvicorn in a thread); yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def order_charges(env: Env, order_id: str) -> list[dict[str, Any]]:
    response = env.client.get(f"/v1/orders/{order_id}/charges", headers=env.platform)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def send_charges(env: Env, wait_for_rail: Callable[[], None]) -> None:
    """The worker sends the charges due now, then the rail decides and calls back."""
    env.runtime.deliver_outbox(topics=(auto_debit.CHARGE_TOPIC,))
    wait_for_rail()


@contextmanager
def provider_engine(
    database_url: str, tmp_path: Path, provider: str, **settings: Any
) -> Iterator[tuple[Env, str]]:
    """The engine configured for a real provider's implementation (its gateway already served
    locally), served over HTTP so that the gateway's notifications reach it; yields the engine
    and the notification URL it gave the provider."""
    port = free_port()
    notify_url = f"http://127.0.0.1:{port}/v1/rails/{provider}/callbacks"
    with (
        open_env(
            database_url,
            tmp_path,
            payment_provider=provider,
            **{f"{provider}_notify_url": notify_url},
            **settings,
        ) as env,
        serve(create_app(env.runtime), port=port),
    ):
        yield env, notify_url


@dataclass
class RailEnv:
    env: Env
    rail: SandboxRailServer
    engine_url: str

    @property
    def callback_url(self) -> str:
        return f"{self.engine_url}/v1/rails/sandbox/callbacks"

    def mandate(self, shopper_id: str, key: str = "mandate-1") -> dict[str, Any]:
        response = self.env.client.post(
            f"/v1/shoppers/{shopper_id}/mandates",
            headers={**self.env.platform, "Idempotency-Key": key},
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    def charges(self, order_id: str) -> list[dict[str, Any]]:
        return order_charges(self.env, order_id)

    def force(self, *outcomes: str) -> None:
        with self.rail.rail.lock:
            self.rail.rail.state.forced_outcomes.extend(outcomes)

    def send_charges(self) -> None:
        send_charges(self.env, self.rail.rail.wait_idle)

    def send_queries(self) -> None:
        self.env.runtime.deliver_outbox(topics=(auto_debit.QUERY_TOPIC,))

    def money(self) -> dict[str, list[tuple[Any, ...]]]:
        return dump_tables(self.env.runtime, MONEY_TABLES)


@contextmanager
def open_rail_env(database_url: str, tmp_path: Path, **settings: Any) -> Iterator[RailEnv]:
    rail = SandboxRailServer(
        SandboxConfig(secret=SECRET, min_delay_seconds=0.2, max_delay_seconds=0.3, seed=18)
    ).start()
    try:
        with (
            open_env(
                database_url,
                tmp_path,
                payment_provider="sandbox",
                sandbox_rail_url=rail.url,
                sandbox_rail_secret=SECRET,
                **settings,
            ) as env,
            serve(create_app(env.runtime)) as engine_url,
        ):
            rail_env = RailEnv(env=env, rail=rail, engine_url=engine_url)
            rail.rail.config.callback_url = rail_env.callback_url
            yield rail_env
    finally:
        rail.stop()
