"""What a process's jobs did, for Prometheus: daily sweeps (duration, what each phase did) and
outbox deliveries (by topic and outcome). The worker serves these on a listener of its own
(``usefirst worker --metrics-port``); an API process adds them to its /metrics (sandbox clock
advances sweep and deliver inside a request). Label values are code-defined: sweep phases and
steps are the registered sweep steps, items their summary keys, topics the outbox's, outcomes
three words."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

SWEEP_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
DELIVERY_OUTCOMES = ("delivered", "retry", "failed")


class JobMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sweep_seconds = Histogram(
            "usefirst_sweep_seconds",
            "Wall time of one business date's daily sweep",
            registry=self.registry,
            buckets=SWEEP_BUCKETS,
        )
        self.sweep_phase_items = Counter(
            "usefirst_sweep_phase_items",
            "What each phase of the daily sweep did (its summary's counts)",
            ["phase", "item"],
            registry=self.registry,
        )
        self.sweep_step_seconds = Histogram(
            "usefirst_sweep_step_seconds",
            "Wall time of one step of the daily sweep (its own committed transaction)",
            ["step"],
            registry=self.registry,
            buckets=SWEEP_BUCKETS,
        )
        self.deliveries = Counter(
            "usefirst_outbox_deliveries",
            "Outbox delivery attempts by topic and outcome",
            ["topic", "outcome"],
            registry=self.registry,
        )
        self.delivery_seconds = Histogram(
            "usefirst_outbox_delivery_seconds",
            "Time one outbox delivery took (the webhook's HTTP call, the SMS gateway, …)",
            ["topic"],
            registry=self.registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    def serve(self, *, host: str, port: int) -> int:
        """Serve these metrics over HTTP from a background thread; returns the bound port."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)

    def record_sweep(self, seconds: float, phases: Mapping[str, Mapping[str, int]]) -> None:
        self.sweep_seconds.observe(seconds)
        for phase, items in phases.items():
            for item, count in items.items():
                if isinstance(count, int) and count > 0:
                    self.sweep_phase_items.labels(phase, item).inc(count)

    def record_sweep_step(self, step: str, seconds: float) -> None:
        self.sweep_step_seconds.labels(step).observe(seconds)

    def record_delivery(self, topic: str, outcome: str, seconds: float) -> None:
        self.deliveries.labels(topic, outcome).inc()
        self.delivery_seconds.labels(topic).observe(seconds)
