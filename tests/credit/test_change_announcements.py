"""Every change of a credit line is recorded in one place (``credit.service._record_changes``),
which announces exactly those that raised, lowered, froze, unfroze or closed a line: on SQLite
and PostgreSQL, for a single change and for the night's batch of freezes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from tests.factories import enrol_in_work
from usefirst.credit import service as credit_service
from usefirst.credit.models import CreditLineChange
from usefirst.kit.models import OutboxMessage
from usefirst.runtime import Runtime


def announced(runtime: Runtime) -> list[dict[str, Any]]:
    with runtime.work(read_only=True) as work:
        return [
            message.payload
            for message in work.session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.topic == credit_service.CREDIT_CHANGE_TOPIC)
                .order_by(OutboxMessage.id)
            )
        ]


def test_only_changes_that_move_the_line_are_announced(runtime: Runtime) -> None:
    with runtime.work() as work:
        shoppers = [
            enrol_in_work(runtime, work, external_id=f"announce-{serial}")[0].id
            for serial in range(3)
        ]
    # Opening a line (enrolment) is recorded, not announced.
    assert announced(runtime) == []

    with runtime.work() as work:
        credit_service.lock_credit_lines(work.session, shopper_ids=shoppers)
        assert credit_service.freeze_many_for_overdue(
            work.session, shopper_ids=shoppers, now=work.now
        ) == len(shoppers)
    batch = announced(runtime)
    assert sorted(
        (p["shopper_id"], p["kind"], p["reason_code"], p["previous_status"], p["new_status"])
        for p in batch
    ) == sorted((shopper, "frozen", "frozen_overdue", "active", "frozen") for shopper in shoppers)

    first, second, third = shoppers
    with runtime.work() as work:
        # A risk hold on a frozen line changes why it is held, not the line: not announced.
        assert credit_service.freeze_for_review(work.session, shopper_id=first, now=work.now)
        # Available again once nothing is overdue.
        assert credit_service.unfreeze_after_overdue_cleared(
            work.session, shopper_id=second, now=work.now
        )
        # Erasure closes the line; there is no one left to tell.
        assert credit_service.close_for_erasure(work.session, shopper_id=third, now=work.now)
    later = announced(runtime)[len(batch) :]
    assert [(p["shopper_id"], p["kind"], p["reason_code"]) for p in later] == [
        (second, "unfrozen", "overdue_cleared")
    ]

    with runtime.work() as work:
        credit_service.record_on_time_repayment(
            work.session,
            shopper_id=second,
            order_id="ord_announce",
            policy=credit_service.policy_from_settings(runtime.settings),
            now=work.now,
        )
        recorded = {
            change.reason_code
            for change in work.session.scalars(
                select(CreditLineChange).where(CreditLineChange.shopper_id == third)
            )
        }
    [raised] = announced(runtime)[len(batch) + 1 :]
    assert {
        key: raised[key]
        for key in ("shopper_id", "kind", "previous_limit_minor", "new_limit_minor", "order_id")
    } == {
        "shopper_id": second,
        "kind": "raised",
        "previous_limit_minor": 100_000,
        "new_limit_minor": 120_000,
        "order_id": "ord_announce",
    }
    # Every change is still recorded, announced or not.
    assert recorded == {"cold_start_limit", "frozen_overdue", "closed_erasure"}


def test_change_kinds() -> None:
    def kind(previous: int, new: int, before: str | None, after: str) -> str | None:
        return credit_service.change_kind(
            previous_limit_minor=previous,
            new_limit_minor=new,
            previous_status=before,
            new_status=after,
        )

    assert kind(0, 100, None, "active") is None
    assert kind(100, 120, "active", "active") == "raised"
    assert kind(120, 100, "active", "active") == "lowered"
    assert kind(100, 100, "active", "frozen") == "frozen"
    assert kind(100, 100, "frozen", "active") == "unfrozen"
    assert kind(100, 100, "frozen", "closed") == "closed"
    assert kind(100, 100, "frozen", "frozen") is None
