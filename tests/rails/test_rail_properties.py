"""Property: whatever the provider sends — callbacks duplicated, re-sent under new ids, reordered
or lost, statements (twice), reversals by callback or statement — every charge the provider
confirmed is posted exactly once, a reversed one is undone exactly once, a declined one posts
nothing, and the ledger balances after every step. The engine's real code runs on SQLite; the
provider's messages are the sandbox rail's, signed with its secret."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tests.conftest import make_runtime
from tests.factories import checkout_in_work, enrol_in_work, merchant_in_work
from usefirst.flows import auto_debit, fulfilment, rail_reconciliation
from usefirst.flows.reconcile import audit
from usefirst.kit.clock import TestClock
from usefirst.rails import service as rails_service
from usefirst.rails.provider import Mandate, StatementLine
from usefirst.rails.sandbox import SandboxProvider
from usefirst.rails.sandbox_signing import signed_headers
from usefirst.repayment.models import Payment
from usefirst.runtime import Runtime

SECRET = "property-secret"
SHOPPERS = 3
STATEMENT_ON = date(2027, 3, 9)

# One step: a callback about charge i (its first event, the same event again, or the same news
# under a new event id), a reversal of charge i, or the day's statement.
step = st.one_of(
    st.tuples(
        st.just("callback"), st.integers(0, SHOPPERS - 1), st.sampled_from(["first", "same", "new"])
    ),
    st.tuples(
        st.just("reverse"), st.integers(0, SHOPPERS - 1), st.sampled_from(["callback", "statement"])
    ),
    st.tuples(st.just("statement"), st.just(0), st.just("")),
)


def build(template: Path, directory: Path) -> tuple[Runtime, list[dict[str, Any]]]:
    path = directory / "property.db"
    shutil.copyfile(template, path)
    runtime = make_runtime(
        f"sqlite:///{path}",
        payment_provider="sandbox",
        sandbox_rail_secret=SECRET,
        sms_log_path=directory / "sms.jsonl",
    )
    clock = runtime.clock
    assert isinstance(clock, TestClock)
    charges = []
    with runtime.work() as work:
        clock.set(work.session, datetime(2027, 3, 2, 4, 0, tzinfo=UTC))
    with runtime.work() as work:
        merchant = merchant_in_work(runtime, work)
        for index in range(SHOPPERS):
            shopper, _ = enrol_in_work(runtime, work, external_id=f"p-{index}")
            order = checkout_in_work(
                runtime,
                work,
                shopper_id=shopper.id,
                merchant_id=merchant.id,
                amount_minor=5_000 + index,
            )
            fulfilment.ship(
                work.session,
                order_id=order.id,
                merchant_id=merchant.id,
                carrier="SF Express",
                tracking_number=f"SF12345678{index:02d}",
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
            mandate = rails_service.add_mandate(
                work.session,
                shopper_id=shopper.id,
                provider="sandbox",
                mandate=Mandate(provider_mandate_id=f"mdt_{index}", is_active=True),
                now=work.now,
            )
            charge = rails_service.schedule_charge(
                work.session,
                mandate=mandate,
                order_id=order.id,
                seq=1,
                attempt=1,
                amount_minor=5_000 + index,
                currency="CNY",
                charge_on=STATEMENT_ON,
                submit_at=work.now,
                now=work.now,
            )
            rails_service.mark_submitted(charge, provider_charge_id=f"ch_{index}", now=work.now)
            charges.append({"id": charge.id, "amount": charge.amount_minor, "order": order.id})
    return runtime, charges


def callback(runtime: Runtime, payload: dict[str, Any]) -> auto_debit.Outcome:
    body = json.dumps(payload).encode()
    headers = signed_headers(
        secret=SECRET, timestamp=str(int(time.time())), event_id=str(payload["id"]), body=body
    )
    provider = runtime.payment_provider
    assert provider is not None
    with runtime.work() as work:
        return auto_debit.receive_callback(
            work.session,
            provider=provider,
            headers=headers,
            body=body,
            settings=runtime.settings,
            now=work.now,
        )


def assert_balanced(runtime: Runtime) -> None:
    with runtime.work(read_only=True) as work:
        report = audit(work.session)
    assert report.problems == [] and report.is_balanced


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    succeeds=st.lists(st.booleans(), min_size=SHOPPERS, max_size=SHOPPERS),
    steps=st.lists(step, max_size=10),
)
# Found by this test: a provider re-sending a success after the charge was reversed.
@example(
    succeeds=[True, False, True],
    steps=[("callback", 0, "first"), ("reverse", 0, "callback"), ("callback", 0, "new")],
)
def test_every_confirmed_charge_is_posted_exactly_once(
    sqlite_template: Path, tmp_path_factory: Any, succeeds: list[bool], steps: list[Any]
) -> None:
    runtime, charges = build(sqlite_template, tmp_path_factory.mktemp("property"))
    provider = runtime.payment_provider
    assert isinstance(provider, SandboxProvider)
    counter = iter(range(10_000))
    reversed_at_provider: set[int] = set()
    told: set[int] = set()  # charges whose outcome reached us in a callback
    try:
        for kind, index, how in [*steps, ("statement", 0, "")]:
            charge = charges[index]
            event_type = "charge.succeeded" if succeeds[index] else "charge.failed"
            if kind == "callback":
                told.add(index)
                event_id = (
                    f"evt_{index}_first" if how in ("first", "same") else f"evt_{next(counter)}"
                )
                callback(
                    runtime,
                    {
                        "id": event_id,
                        "type": event_type,
                        "charge_id": f"ch_{index}",
                        "reference": charge["id"],
                        "amount_minor": charge["amount"],
                        "currency": "CNY",
                        "failure_code": None if succeeds[index] else "insufficient_funds",
                    },
                )
            elif kind == "reverse":
                # A provider reverses only what it settled.
                if not succeeds[index]:
                    continue
                reversed_at_provider.add(index)
                if how == "callback":
                    callback(
                        runtime,
                        {
                            "id": f"evt_rev_{next(counter)}",
                            "type": "charge.reversed",
                            "charge_id": f"ch_{index}",
                            "reference": charge["id"],
                            "amount_minor": charge["amount"],
                            "currency": "CNY",
                            "failure_code": None,
                        },
                    )
            if kind in ("statement", "reverse") and (kind == "statement" or how == "statement"):
                lines = [
                    StatementLine(f"ch_{i}", item["id"], "charge", item["amount"], "CNY")
                    for i, item in enumerate(charges)
                    if succeeds[i]
                ] + [
                    StatementLine(
                        f"ch_{i}", charges[i]["id"], "reversal", charges[i]["amount"], "CNY"
                    )
                    for i in sorted(reversed_at_provider)
                ]
                with runtime.work() as work:
                    rail_reconciliation.reconcile_statement(
                        work.session,
                        provider=provider,
                        statement_on=STATEMENT_ON,
                        lines=lines,
                        settings=runtime.settings,
                        now=work.now,
                    )
            assert_balanced(runtime)

        with runtime.work(read_only=True) as work:
            for index, charge in enumerate(charges):
                posted = work.session.scalar(
                    select(func.count())
                    .select_from(Payment)
                    .where(Payment.external_ref == f"sandbox:ch_{index}")
                )
                row = rails_service.charge_by_reference(
                    work.session, provider="sandbox", reference=charge["id"]
                )
                assert row is not None
                if succeeds[index]:
                    assert posted == 1
                    expected = "reversed" if index in reversed_at_provider else "succeeded"
                    assert row.status == expected
                    assert row.reversed_minor == (charge["amount"] if expected == "reversed" else 0)
                else:
                    # A decline is never on a statement: a lost one leaves the charge waiting for
                    # its query.
                    assert posted == 0
                    assert row.status == ("failed" if index in told else "submitted")
    finally:
        runtime.database.dispose()
