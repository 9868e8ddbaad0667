"""Concurrency on PostgreSQL: many checkouts and payments on one shopper at the same instant.

Threads start together on a barrier. Checkouts and idempotent payments go through the real
FastAPI app (TestClient); the storms drive the services, each call in its own transaction.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from tests.conftest import make_runtime
from tests.factories import bearer, checkout_body, create_merchant, enrol
from usefirst.api.app import create_app
from usefirst.credit.models import CreditLine
from usefirst.flows import cancellation, fulfilment
from usefirst.flows import checkout as checkout_flow
from usefirst.flows import payments as payment_flow
from usefirst.flows import refunds as refund_flow
from usefirst.flows.reconcile import audit
from usefirst.identity.service import create_api_key
from usefirst.kit.errors import UsefirstError
from usefirst.ledger import accounts
from usefirst.ledger.service import balance_of
from usefirst.orders import service as orders
from usefirst.orders.models import Order
from usefirst.repayment.models import Allocation, Instalment, Payment
from usefirst.runtime import Runtime

pytestmark = pytest.mark.postgresql

T = TypeVar("T")


@pytest.fixture
def runtime(postgres_url: str) -> Iterator[Runtime]:
    runtime = make_runtime(postgres_url)
    yield runtime
    runtime.database.dispose()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as test_client:
        yield test_client


@pytest.fixture
def headers(runtime: Runtime) -> dict[str, str]:
    with runtime.work() as work:
        return bearer(create_api_key(work.session, kind="platform", now=work.now))


def together(count: int, call: Callable[[int], T]) -> list[T]:
    """Run ``call(i)`` for i in range(count) on ``count`` threads released at the same moment."""
    barrier = threading.Barrier(count)

    def run(index: int) -> T:
        barrier.wait(timeout=30)
        return call(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def deliver(
    client: TestClient,
    headers: dict[str, str],
    merchant: dict[str, Any],
    shopper_id: str,
    amount_minor: int,
    plan: str,
    tag: str,
) -> str:
    response = client.post(
        "/v1/checkouts",
        headers=headers,
        json=checkout_body(shopper_id, merchant["id"], amount_minor, plan),
    )
    assert response.status_code == 201, response.text
    assert response.json()["decision"]["outcome"] == "approved"
    order_id = str(response.json()["order"]["id"])
    shipped = client.post(
        f"/v1/orders/{order_id}/ship",
        headers=bearer(merchant["api_key"]),
        json={"carrier": "SF", "tracking_number": f"SF{tag}0001"},
    )
    assert shipped.status_code == 200, shipped.text
    delivered = client.post(f"/v1/orders/{order_id}/confirm-receipt", headers=headers)
    assert delivered.status_code == 200, delivered.text
    return order_id


class Line:
    def __init__(self, line: CreditLine) -> None:
        self.used_minor = line.used_minor
        self.limit_minor = line.limit_minor
        self.status = line.status


def credit_line(runtime: Runtime, shopper_id: str) -> Line:
    with runtime.work(read_only=True) as work:
        line = work.session.get(CreditLine, shopper_id)
        assert line is not None
        return Line(line)


def live_principal(runtime: Runtime, shopper_id: str) -> int:
    with runtime.work(read_only=True) as work:
        total = work.session.scalar(
            select(
                func.coalesce(
                    func.sum(Instalment.principal_minor - Instalment.paid_principal_minor), 0
                )
            ).where(
                Instalment.shopper_id == shopper_id,
                Instalment.status.in_(("scheduled", "pending", "overdue")),
            )
        )
    return int(total or 0)


def assert_ledger_clean(runtime: Runtime) -> None:
    with runtime.work(read_only=True) as work:
        report = audit(work.session)
    assert report.problems == []
    assert report.debits_minor == report.credits_minor


# --- checkouts -----------------------------------------------------------------------------------


def test_fifty_concurrent_checkouts_never_exceed_the_limit(
    runtime: Runtime, client: TestClient, headers: dict[str, str]
) -> None:
    shopper = enrol(client, headers)
    merchant = create_merchant(client, headers)
    limit = shopper["credit"]["limit_minor"]
    assert limit == 100_000 and shopper["credit"]["used_minor"] == 0
    price = limit // 10  # exactly ten fit

    def checkout(index: int) -> Any:
        plan = ("pay_after_delivery", "instalments_3", "instalments_6")[index % 3]
        return client.post(
            "/v1/checkouts",
            headers={**headers, "Idempotency-Key": f"storm-{index}"},
            json=checkout_body(shopper["id"], merchant["id"], price, plan),
        )

    responses = together(50, checkout)
    assert [r.status_code for r in responses] == [201] * 50, [r.text for r in responses]
    outcomes = Counter(r.json()["decision"]["outcome"] for r in responses)
    assert outcomes == {"approved": 10, "declined": 40}
    for response in responses:
        decision = response.json()["decision"]
        if decision["outcome"] == "declined":
            assert [reason["code"] for reason in decision["reasons"]] == ["credit_limit_exceeded"]
            assert response.json()["order"]["status"] == "declined"
            assert response.json()["order"]["instalments"] == []

    line = credit_line(runtime, shopper["id"])
    assert line.used_minor == line.limit_minor == limit
    assert live_principal(runtime, shopper["id"]) == limit
    credit = client.get(f"/v1/shoppers/{shopper['id']}/credit", headers=headers).json()
    assert (credit["used_minor"], credit["available_minor"]) == (limit, 0)
    with runtime.work(read_only=True) as work:
        statuses = Counter(work.session.scalars(select(Order.status)))
    assert statuses == {"approved": 10, "declined": 40}
    assert_ledger_clean(runtime)

    # Nothing fits now, not even one fen; a cancellation frees exactly one order's worth.
    one_more = client.post(
        "/v1/checkouts", headers=headers, json=checkout_body(shopper["id"], merchant["id"], 1)
    )
    assert one_more.json()["decision"]["outcome"] == "declined"
    approved_id = next(
        r.json()["order"]["id"] for r in responses if r.json()["decision"]["outcome"] == "approved"
    )
    assert client.post(f"/v1/orders/{approved_id}/cancel", headers=headers).status_code == 200
    assert credit_line(runtime, shopper["id"]).used_minor == limit - price


def test_concurrent_checkouts_of_mixed_sizes_fit_greedily(runtime: Runtime) -> None:
    """Random sizes from 40 threads: the approved ones fit the limit, and every declined one was
    too big even for what was left at the end (used only grows during the storm)."""
    rng = random.Random(20261123)
    amounts = [rng.choice([1, 999, 7_777, 13_000, 25_000, 40_000, 100_001]) for _ in range(40)]
    shopper_id, merchant_id = _shopper_and_merchant(runtime)

    def checkout(index: int) -> tuple[str, int]:
        with runtime.work() as work:
            _, decision = checkout_flow.checkout(
                work.session,
                request=orders.CheckoutRequest(
                    shopper_id=shopper_id,
                    merchant_id=merchant_id,
                    currency="CNY",
                    items=[orders.Item("sku", "Thing", "toys", 1, amounts[index])],
                    plan="instalments_3" if index % 2 else "pay_after_delivery",
                    shipping_address="深圳市南山区科技园 3 号",
                ),
                cipher=runtime.cipher,
                settings=runtime.settings,
                now=work.now,
            )
        return decision.outcome, amounts[index]

    results = together(40, checkout)
    line = credit_line(runtime, shopper_id)
    approved = sum(amount for outcome, amount in results if outcome == "approved")
    assert line.used_minor == approved <= line.limit_minor
    assert live_principal(runtime, shopper_id) == approved
    for outcome, amount in results:
        if outcome == "declined":
            assert amount > line.limit_minor - line.used_minor
    assert_ledger_clean(runtime)


def _shopper_and_merchant(runtime: Runtime) -> tuple[str, str]:
    with TestClient(create_app(runtime)) as client:
        with runtime.work() as work:
            key = create_api_key(work.session, kind="platform", now=work.now)
        shopper = enrol(client, bearer(key))
        merchant = create_merchant(client, bearer(key))
    return str(shopper["id"]), str(merchant["id"])


# --- payments ------------------------------------------------------------------------------------


def test_twenty_identical_payments_with_one_key_make_one_payment(
    runtime: Runtime, client: TestClient, headers: dict[str, str]
) -> None:
    shopper = enrol(client, headers)
    merchant = create_merchant(client, headers)
    order_id = deliver(client, headers, merchant, shopper["id"], 30_000, "instalments_3", "a")
    body = {"shopper_id": shopper["id"], "amount_minor": 12_345, "method": "alipay"}

    def pay(_: int) -> Any:
        return client.post(
            "/v1/payments", headers={**headers, "Idempotency-Key": "pay-once"}, json=body
        )

    responses = together(20, pay)
    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses]
    bodies = [r.json() for r in responses]
    assert all(b == bodies[0] for b in bodies)
    assert len({b["id"] for b in bodies}) == 1
    replayed = [r.headers.get("Idempotent-Replayed") for r in responses]
    assert replayed.count("true") == 19

    with runtime.work(read_only=True) as work:
        payments = [(p.id, p.amount_minor) for p in work.session.scalars(select(Payment))]
        allocations = [
            (a.order_id, a.fees_minor + a.principal_minor)
            for a in work.session.scalars(select(Allocation))
        ]
        records = work.session.scalar(text("SELECT COUNT(*) FROM idempotency_records"))
        cash = balance_of(work.session, accounts.PLATFORM_CASH, "CNY")
    assert payments == [(bodies[0]["id"], 12_345)]
    assert sum(amount for _, amount in allocations) == 12_345
    assert {allocated_to for allocated_to, _ in allocations} == {order_id}
    assert records == 1
    assert cash == 12_345
    assert_ledger_clean(runtime)

    # A later retry still replays; the same key with another body is refused.
    again = client.post(
        "/v1/payments", headers={**headers, "Idempotency-Key": "pay-once"}, json=body
    )
    assert (again.status_code, again.json()) == (201, bodies[0])
    other = client.post(
        "/v1/payments",
        headers={**headers, "Idempotency-Key": "pay-once"},
        json={**body, "amount_minor": 1},
    )
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"


def test_concurrent_checkouts_with_one_key_make_one_order(
    runtime: Runtime, client: TestClient, headers: dict[str, str]
) -> None:
    shopper = enrol(client, headers)
    merchant = create_merchant(client, headers)
    body = checkout_body(shopper["id"], merchant["id"], 20_000, "instalments_6")

    responses = together(
        15,
        lambda _: client.post(
            "/v1/checkouts", headers={**headers, "Idempotency-Key": "one-order"}, json=body
        ),
    )
    assert [r.status_code for r in responses] == [201] * 15, [r.text for r in responses]
    assert len({r.json()["order"]["id"] for r in responses}) == 1
    with runtime.work(read_only=True) as work:
        assert work.session.scalar(select(func.count()).select_from(Order)) == 1
    assert credit_line(runtime, shopper["id"]).used_minor == 20_000


def test_concurrent_payments_with_distinct_keys_keep_the_books(
    runtime: Runtime, client: TestClient, headers: dict[str, str]
) -> None:
    shopper = enrol(client, headers)
    merchant = create_merchant(client, headers, fee_rate_bps=125)
    first = deliver(client, headers, merchant, shopper["id"], 30_000, "instalments_3", "b")
    second = deliver(client, headers, merchant, shopper["id"], 20_001, "pay_after_delivery", "c")
    third = deliver(client, headers, merchant, shopper["id"], 9_999, "instalments_6", "d")
    statement = client.get(f"/v1/shoppers/{shopper['id']}/statement", headers=headers).json()
    owed = statement["outstanding_minor"]
    assert owed >= 30_000 + 20_001 + 9_999

    rng = random.Random(7)
    amounts = [rng.choice([1, 250, 3_333, 10_000, 12_345]) for _ in range(24)]
    targets: list[str | None] = [None, None, first, third] * 6

    def pay(index: int) -> Any:
        body: dict[str, Any] = {
            "shopper_id": shopper["id"],
            "amount_minor": amounts[index],
            "method": "wechat",
        }
        if targets[index] is not None:
            body["order_id"] = targets[index]
        return client.post(
            "/v1/payments", headers={**headers, "Idempotency-Key": f"distinct-{index}"}, json=body
        )

    responses = together(24, pay)
    assert [r.status_code for r in responses] == [201] * 24, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 24
    total = sum(amounts)
    held = sum(r.json()["unapplied_minor"] for r in responses)
    allocated = sum(
        a["fees_minor"] + a["principal_minor"] for r in responses for a in r.json()["allocations"]
    )
    assert allocated + held == total

    with runtime.work(read_only=True) as work:
        cash = balance_of(work.session, accounts.PLATFORM_CASH, "CNY")
        receivable = balance_of(work.session, accounts.shopper_receivable(shopper["id"]), "CNY")
        unapplied = -balance_of(
            work.session, accounts.shopper_unapplied_credit(shopper["id"]), "CNY"
        )
        payments = work.session.scalar(select(func.count()).select_from(Payment))
    assert payments == 24
    assert cash == total
    assert unapplied == held >= 0
    assert receivable == owed - allocated
    # Money goes to debt before it is held: credit is held only once this scope is paid off.
    if held:
        assert allocated == owed or any(t is not None for t in targets)
    line = credit_line(runtime, shopper["id"])
    assert line.used_minor == live_principal(runtime, shopper["id"]) <= line.limit_minor
    after = client.get(f"/v1/shoppers/{shopper['id']}/statement", headers=headers).json()
    assert after["outstanding_minor"] == receivable
    assert second  # untargeted payments reach it oldest-due first
    assert_ledger_clean(runtime)


def test_concurrent_receipts_payments_and_checkouts_keep_the_books(
    runtime: Runtime, client: TestClient, headers: dict[str, str]
) -> None:
    """Receipts on the lean path (flows/fulfilment.py) for two shoppers at one merchant (one
    merchant-day counter row), each receipt raced by a second receipt of the same order, with
    payments and checkouts of the same shoppers at the same instant: every order is delivered
    once, the other receipt refused, and the books, lines and counters stay exact."""
    merchant = create_merchant(client, headers, fee_rate_bps=150)
    merchant_headers = bearer(merchant["api_key"])
    shoppers = [enrol(client, headers)["id"] for _ in range(2)]
    paid_orders = {
        shopper_id: deliver(client, headers, merchant, shopper_id, 8_000, "instalments_3", tag)
        for shopper_id, tag in zip(shoppers, ("e", "f"), strict=True)
    }
    shipped: list[str] = []
    for index in range(8):
        response = client.post(
            "/v1/checkouts",
            headers=headers,
            json=checkout_body(shoppers[index % 2], merchant["id"], 2_000 + index, "instalments_3"),
        )
        assert response.status_code == 201, response.text
        order_id = str(response.json()["order"]["id"])
        response = client.post(
            f"/v1/orders/{order_id}/ship",
            headers=merchant_headers,
            json={"carrier": "SF", "tracking_number": f"SF{9_000_000_000 + index}"},
        )
        assert response.status_code == 200, response.text
        shipped.append(order_id)

    calls: list[Callable[[], Any]] = []
    for order_id in shipped:
        for _ in range(2):
            calls.append(
                lambda o=order_id: client.post(f"/v1/orders/{o}/confirm-receipt", headers=headers)
            )
    for index, shopper_id in enumerate(shoppers * 2):
        calls.append(
            lambda s=shopper_id, i=index: client.post(
                "/v1/payments",
                headers={**headers, "Idempotency-Key": f"receipt-race-{i}"},
                json={
                    "shopper_id": s,
                    "amount_minor": 1_000,
                    "currency": "CNY",
                    "order_id": paid_orders[s],
                    "method": "alipay",
                },
            )
        )
        calls.append(
            lambda s=shopper_id, i=index: client.post(
                "/v1/checkouts",
                headers=headers,
                json=checkout_body(s, merchant["id"], 1_500 + i, "pay_after_delivery"),
            )
        )
    responses = together(len(calls), lambda index: calls[index]())
    receipts = responses[: 2 * len(shipped)]
    for first, second in zip(receipts[::2], receipts[1::2], strict=True):
        assert sorted([first.status_code, second.status_code]) == [200, 409], (
            first.text,
            second.text,
        )
    assert all(response.status_code == 201 for response in responses[2 * len(shipped) :]), [
        response.text for response in responses[2 * len(shipped) :]
    ]
    with runtime.work(read_only=True) as work:
        statuses = Counter(work.session.scalars(select(Order.status).where(Order.id.in_(shipped))))
        delivered_facts = work.session.scalar(
            text("SELECT COALESCE(SUM(delivered_orders), 0) FROM risk_merchant_days")
        )
        fact_rows = work.session.scalar(
            text("SELECT COUNT(*) FROM risk_order_facts WHERE is_delivered = 1")
        )
    assert statuses == {"delivered": len(shipped)}
    assert delivered_facts == fact_rows == len(shipped) + len(paid_orders)
    for shopper_id in shoppers:
        line = credit_line(runtime, shopper_id)
        assert 0 <= line.used_minor == live_principal(runtime, shopper_id) <= line.limit_minor
    assert_ledger_clean(runtime)


def test_storm_of_mixed_operations_on_two_shoppers(runtime: Runtime) -> None:
    """Checkouts, payments, cancellations, shipments, receipts and refunds for two shoppers, all
    at once. Refusals must be ordinary business errors; afterwards the books still balance."""
    shopper_ids = [_shopper_and_merchant(runtime) for _ in range(2)]
    shoppers = [shopper for shopper, _ in shopper_ids]
    merchants = [merchant for _, merchant in shopper_ids]

    # An opening book: approved, shipped and delivered orders for both shoppers.
    book: dict[str, list[str]] = {"approved": [], "shipped": [], "delivered": []}
    for index in range(9):
        shopper_id, merchant_id = shoppers[index % 2], merchants[index % 2]
        with runtime.work() as work:
            order, decision = checkout_flow.checkout(
                work.session,
                request=orders.CheckoutRequest(
                    shopper_id=shopper_id,
                    merchant_id=merchant_id,
                    currency="CNY",
                    items=[orders.Item("sku", "Thing", "toys", 1, 3_000 + index)],
                    plan=("pay_after_delivery", "instalments_3", "instalments_6")[index % 3],
                    shipping_address="杭州市西湖区 4 号",
                ),
                cipher=runtime.cipher,
                settings=runtime.settings,
                now=work.now,
            )
            assert decision.outcome == "approved"
        stage = ("approved", "shipped", "delivered")[index % 3]
        if stage != "approved":
            with runtime.work() as work:
                fulfilment.ship(
                    work.session,
                    order_id=order.id,
                    merchant_id=merchant_id,
                    carrier="SF",
                    tracking_number=f"SFstorm{index}",
                    settings=runtime.settings,
                    now=work.now,
                )
        if stage == "delivered":
            with runtime.work() as work:
                fulfilment.confirm_receipt(
                    work.session,
                    order_id=order.id,
                    delivered_on=work.today,
                    settings=runtime.settings,
                    now=work.now,
                )
        book[stage].append(order.id)

    def merchant_of(order_id: str) -> str:
        with runtime.work(read_only=True) as work:
            return orders.find_order(work.session, order_id=order_id).merchant_id

    owners = {order_id: merchant_of(order_id) for ids in book.values() for order_id in ids}
    operations: list[Callable[[Any], object]] = []
    for index in range(12):
        shopper_id, merchant_id = shoppers[index % 2], merchants[index % 2]
        operations.append(
            lambda work, s=shopper_id, m=merchant_id, i=index: checkout_flow.checkout(
                work.session,
                request=orders.CheckoutRequest(
                    shopper_id=s,
                    merchant_id=m,
                    currency="CNY",
                    items=[orders.Item("sku", "Thing", "toys", 1, 9_000 + i)],
                    plan="instalments_3",
                    shipping_address="杭州市西湖区 4 号",
                ),
                cipher=runtime.cipher,
                settings=runtime.settings,
                now=work.now,
            )
        )
    for index in range(10):
        operations.append(
            lambda work, s=shoppers[index % 2], i=index: payment_flow.pay(
                work.session,
                shopper_id=s,
                amount_minor=700 * (i + 1),
                currency="CNY",
                order_id=None,
                method="alipay",
                external_ref=None,
                today=work.today,
                settings=runtime.settings,
                now=work.now,
            )
        )
    for order_id in book["approved"]:
        operations.append(
            lambda work, o=order_id: cancellation.cancel(
                work.session,
                order_id=o,
                merchant_id=None,
                settings=runtime.settings,
                now=work.now,
            )
        )
        operations.append(  # races the cancellation: one of the two must lose
            lambda work, o=order_id: fulfilment.ship(
                work.session,
                order_id=o,
                merchant_id=owners[o],
                carrier="SF",
                tracking_number=f"SFrace{o[-6:]}",
                settings=runtime.settings,
                now=work.now,
            )
        )
    for order_id in book["shipped"]:
        operations.append(
            lambda work, o=order_id: fulfilment.confirm_receipt(
                work.session,
                order_id=o,
                delivered_on=work.today,
                settings=runtime.settings,
                now=work.now,
            )
        )
        operations.append(
            lambda work, o=order_id: refund_flow.refund(
                work.session,
                order_id=o,
                merchant_id=owners[o],
                amount_minor=1_000,
                reason="damaged",
                today=work.today,
                settings=runtime.settings,
                now=work.now,
            )
        )
    for order_id in book["delivered"]:
        operations.append(
            lambda work, o=order_id: refund_flow.refund(
                work.session,
                order_id=o,
                merchant_id=owners[o],
                amount_minor=2_000,
                reason="partial return",
                today=work.today,
                settings=runtime.settings,
                now=work.now,
            )
        )

    def run(index: int) -> str:
        try:
            with runtime.work() as work:
                operations[index](work)
        except UsefirstError as error:
            assert error.status_code < 500, repr(error)
            return type(error).__name__
        return "ok"

    results = together(len(operations), run)
    assert set(results) <= {"ok", "OrderStateConflict"}, results
    # Each approved order was either cancelled or shipped, never both.
    with runtime.work(read_only=True) as work:
        for order_id in book["approved"]:
            order = orders.find_order(work.session, order_id=order_id)
            assert order.status in ("cancelled", "shipped")
    assert results.count("OrderStateConflict") == len(book["approved"])
    for shopper_id in shoppers:
        line = credit_line(runtime, shopper_id)
        assert 0 <= line.used_minor == live_principal(runtime, shopper_id) <= line.limit_minor
    assert_ledger_clean(runtime)


def test_first_reads_of_a_fresh_sandbox_clock_do_not_collide(runtime: Runtime) -> None:
    """On a fresh database the sandbox clock has no row yet: many first requests at once must all
    see one and the same time, not fail on the row's key."""

    def read_clock(_: int) -> Any:
        with runtime.work() as work:
            return work.now

    moments = together(20, read_clock)
    assert len(set(moments)) == 1
