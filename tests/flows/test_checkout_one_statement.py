"""The checkout's lean path on PostgreSQL (issue 14): its statements and round trips are counted,
so that a regression fails, and a credit line that moves between the checkout's read and its
write (a concurrent checkout or payment) is written as the reservation turned out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.pq import PipelineStatus, TransactionStatus
from sqlalchemy import event, func, select, update

from tests.conftest import make_runtime
from tests.factories import bearer, checkout_body, create_merchant, enrol, skip_on_citus
from usefirst.credit.models import CreditLine
from usefirst.flows import checkout as checkout_flow
from usefirst.kit.models import Event, IdempotencyRecord, OutboxMessage
from usefirst.orders.models import Order
from usefirst.repayment.models import Instalment
from usefirst.risk import decision as risk_decision
from usefirst.risk.models import LinkObservation, RiskDecision
from usefirst.runtime import Runtime

pytestmark = pytest.mark.postgresql


@pytest.fixture
def runtime(postgres_url: str) -> Iterator[Runtime]:
    # The system clock, as in production (the sandbox's test clock reads its time from a row).
    runtime = make_runtime(postgres_url, sandbox=False)
    yield runtime
    runtime.database.dispose()


@pytest.fixture
def headers(client: TestClient, runtime: Runtime) -> dict[str, str]:
    from usefirst.identity.service import create_api_key

    with runtime.work() as work:
        return bearer(create_api_key(work.session, kind="platform", now=work.now))


class RoundTrips:
    """Statements sent by the driver and the round trips they took: each statement on its own
    is one, statements sent together in pipeline mode are one with the BEGIN among them, and
    a BEGIN, COMMIT or ROLLBACK on its own is one."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.counts: Counter[str] = Counter()
        self.in_pipeline = False
        self.pipeline: object = None

    def sent(self, connection: psycopg.Connection[Any], query: Any) -> None:
        self.statements.append(" ".join(str(query).split())[:90])
        if connection.pgconn.pipeline_status != PipelineStatus.OFF:
            # One pipeline is one round trip; two sent one after the other are two.
            pipeline = connection._pipeline
            if not self.in_pipeline or pipeline is not self.pipeline:
                self.counts["pipeline"] += 1
            self.in_pipeline = True
            self.pipeline = pipeline
            return
        self.in_pipeline = False
        if connection.info.transaction_status == TransactionStatus.IDLE:
            self.counts["begin"] += 1
        self.counts["statement"] += 1

    def ended(self, kind: str) -> None:
        self.counts[kind] += 1
        self.in_pipeline = False

    @property
    def round_trips(self) -> int:
        return sum(self.counts.values())

    def clear(self) -> None:
        self.statements.clear()
        self.counts.clear()


@pytest.fixture
def round_trips(runtime: Runtime) -> Iterator[RoundTrips]:
    counter = RoundTrips()

    class CountingCursor(psycopg.Cursor[Any]):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            counter.sent(self.connection, query)
            return super().execute(query, params, **kwargs)

        def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> Any:
            counter.sent(self.connection, query)
            return super().executemany(query, params_seq, **kwargs)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.cursor_factory = CountingCursor

    engine = runtime.database.engine
    engine.dispose()  # every connection from here on counts
    listeners: list[tuple[str, Any]] = [
        ("connect", on_connect),
        ("commit", lambda _connection: counter.ended("commit")),
        ("rollback", lambda _connection: counter.ended("rollback")),
    ]
    for name, listener in listeners:
        event.listen(engine, name, listener)
    yield counter
    for name, listener in listeners:
        event.remove(engine, name, listener)


def test_an_approved_checkout_takes_five_statements_and_four_round_trips(
    client: TestClient, headers: dict[str, str], round_trips: RoundTrips, postgres_url: str
) -> None:
    skip_on_citus(
        postgres_url,
        "it pins the statements of one PostgreSQL; a cluster takes the path docs/operations.md"
        " describes (the risk features read in parts), counted in BENCHMARKS.md",
    )
    shopper = enrol(client, headers)["id"]
    merchant = create_merchant(client, headers, webhook_url="https://merchant.example/hooks")["id"]
    # The first checkout of a process reads the rules and model in force once.
    warm = client.post(
        "/v1/checkouts",
        headers={**headers, "Idempotency-Key": "warm"},
        json=checkout_body(shopper, merchant, 1_000),
    )
    assert warm.status_code == 201, warm.text
    round_trips.clear()

    response = client.post(
        "/v1/checkouts",
        headers={**headers, "Idempotency-Key": "counted"},
        json=checkout_body(shopper, merchant, 2_000),
    )

    assert response.status_code == 201, response.text
    assert response.json()["decision"]["outcome"] == "approved"
    listing = "\n".join(round_trips.statements)
    # Shopper, merchant and credit line together; risk's features; the write.
    assert len(round_trips.statements) == 5, listing
    assert round_trips.counts == {"pipeline": 1, "statement": 2, "commit": 1}, listing
    assert round_trips.round_trips == 4
    assert round_trips.statements[4].startswith("WITH reserved AS (UPDATE credit_lines")


def _line(runtime: Runtime, shopper_id: str) -> tuple[int, int]:
    """(limit, used) of the shopper's line."""
    with runtime.work(read_only=True) as work:
        line = work.session.scalars(
            select(CreditLine).where(CreditLine.shopper_id == shopper_id)
        ).one()
        return line.limit_minor, line.used_minor


def _set_used(runtime: Runtime, shopper_id: str, used_minor: int) -> None:
    with runtime.work() as work:
        work.session.execute(
            update(CreditLine)
            .where(CreditLine.shopper_id == shopper_id)
            .values(used_minor=used_minor)
        )


def _rows_of(runtime: Runtime, shopper_id: str) -> dict[str, int]:
    with runtime.work(read_only=True) as work:
        session = work.session

        def count(model: Any, *where: Any) -> int:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

        return {
            "orders": count(Order, Order.shopper_id == shopper_id),
            "instalments": count(Instalment, Instalment.shopper_id == shopper_id),
            "decisions": count(RiskDecision, RiskDecision.shopper_id == shopper_id),
            "events": count(Event, Event.shopper_id == shopper_id),
            "messages": count(OutboxMessage),
            "records": count(IdempotencyRecord, IdempotencyRecord.key == "moved"),
        }


@pytest.mark.parametrize(
    ("used_when_read", "used_when_written", "outcome"),
    [
        # Read with room for it; another checkout took the room before the write.
        ("none", "nearly_all", "declined"),
        # Read without room; a payment freed it before the write.
        ("all", "none", "approved"),
    ],
)
def test_a_line_that_moves_between_read_and_write_decides_by_the_reservation(
    runtime: Runtime,
    client: TestClient,
    headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    used_when_read: str,
    used_when_written: str,
    outcome: str,
) -> None:
    shopper = enrol(client, headers)["id"]
    merchant = create_merchant(client, headers, webhook_url="https://merchant.example/hooks")["id"]
    limit, _used = _line(runtime, shopper)
    amount = 30_000
    used = {"none": 0, "nearly_all": limit - amount + 1, "all": limit}
    _set_used(runtime, shopper, used[used_when_read])
    assess = risk_decision.assess_checkout

    def assess_while_the_line_moves(*args: Any, **kwargs: Any) -> risk_decision.Assessment:
        # Between the checkout's read of the line and its write: another transaction commits.
        _set_used(runtime, shopper, used[used_when_written])
        return assess(*args, **kwargs)

    monkeypatch.setattr(checkout_flow.risk_decision, "assess_checkout", assess_while_the_line_moves)

    response = client.post(
        "/v1/checkouts",
        headers={**headers, "Idempotency-Key": "moved"},
        json=checkout_body(shopper, merchant, amount),
    )

    assert response.status_code == 201, response.text
    body = response.json()
    decision = body["decision"]
    assert decision["outcome"] == outcome
    if outcome == "declined":
        assert [reason["code"] for reason in decision["reasons"]] == ["credit_limit_exceeded"]
        assert body["order"]["instalments"] == []
        assert _line(runtime, shopper) == (limit, limit - amount + 1)
    else:
        assert [reason["code"] for reason in decision["reasons"]] == ["within_credit_limit"]
        assert sum(row["principal_minor"] for row in body["order"]["instalments"]) == amount
        assert _line(runtime, shopper) == (limit, amount)
    # One set of rows, for the outcome the reservation had; nothing of the first attempt.
    assert _rows_of(runtime, shopper) == {
        "orders": 1,
        "instalments": len(body["order"]["instalments"]),
        "decisions": 1,
        "events": 1,
        # The merchant's webhook; an approved order's also plans the agreement notice to the
        # shopper (flows/shopper_notices.py), a row of the same INSERT.
        "messages": 2 if outcome == "approved" else 1,
        "records": 1,
    }
    with runtime.work(read_only=True) as work:
        order = work.session.scalars(select(Order).where(Order.shopper_id == shopper)).one()
        assert (order.id, order.status) == (body["order"]["id"], outcome)
        observed = work.session.execute(
            select(LinkObservation.order_id, LinkObservation.kind).where(
                LinkObservation.shopper_id == shopper
            )
        ).all()
        assert sorted(observed) == [(order.id, "address"), (order.id, "phone")]
        recorded = work.session.scalars(
            select(IdempotencyRecord).where(IdempotencyRecord.key == "moved")
        ).one()
        assert (recorded.status_code, recorded.response_body) == (201, body)
        stored = work.session.scalars(select(Event).where(Event.shopper_id == shopper)).one()
        assert stored.type == f"order.{outcome}"
        assert stored.data == {"order": body["order"]}
