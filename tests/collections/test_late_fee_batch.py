"""Issue 3: the daily late fees are charged set-based. One day's fee per overdue instalment,
the order's room (the lesser of the 25 % cap and the APR allowance, both net of every late fee
ever charged, waived ones included) taken lowest seq first; one ``late_fee`` journal entry per
charged order and day, carrying the order and the shopper, so the ledger stays traceable per
order; disputed orders are skipped."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.collections.dunning_env import open_env
from usefirst.disputes.models import DisputedOrder
from usefirst.flows.daily_sweep import accrue_late_fees
from usefirst.ledger.models import JournalEntry, LedgerPosting
from usefirst.ledger.repository import LedgerRepository
from usefirst.orders.models import Order
from usefirst.repayment.models import Instalment

SWEEP_ON = date(2027, 6, 1)
DELIVERED_AT = datetime.combine(SWEEP_ON - timedelta(days=100), time(12), tzinfo=UTC)


def make_overdue(
    session: Session, order_id: str, *, waived_minor: int = 0, disputed: bool = False
) -> tuple[int, list[int]]:
    """Back-date the order's delivery 100 days and make all its instalments overdue; the plan
    fees and principals. ``waived_minor`` of late fees were charged and waived before."""
    order = session.scalars(select(Order).where(Order.id == order_id)).one()
    order.delivered_at = DELIVERED_AT
    if disputed:
        session.add(
            DisputedOrder(
                shopper_id=order.shopper_id,
                order_id=order.id,
                is_disputed=True,
                dispute_paused_days=0,
                updated_at=order.updated_at,
            )
        )
    rows = list(
        session.scalars(
            select(Instalment).where(Instalment.order_id == order_id).order_by(Instalment.seq)
        )
    )
    for row in rows:
        row.status = "overdue"
        row.due_on = SWEEP_ON - timedelta(days=40 - row.seq)
    rows[0].late_fees_waived_minor = waived_minor
    return sum(row.fees_minor for row in rows), [row.principal_minor for row in rows]


def test_the_room_is_shared_lowest_seq_first_and_each_order_gets_one_entry(
    database_url: str, tmp_path: Path
) -> None:
    with open_env(database_url, tmp_path) as env:
        ann, bob, cat = env.enrol(), env.enrol(), env.enrol()
        capped = env.buy(ann["id"], amount_minor=30_000, plan="instalments_3")
        free = env.buy(bob["id"], amount_minor=30_000, plan="instalments_3")
        disputed = env.buy(cat["id"], amount_minor=30_000, plan="instalments_3")
        with env.runtime.work() as work:
            plan_fees, principals = make_overdue(work.session, free["id"])
            assert principals == [10_000, 10_000, 10_000]
            # APR allowance over 100 days: 30 000 × 24 % × 100 / 365 = 1 972; 7 of it left.
            make_overdue(work.session, capped["id"], waived_minor=1_972 - plan_fees - 7)
            make_overdue(work.session, disputed["id"], disputed=True)
        with env.runtime.work() as work:
            charged = accrue_late_fees(
                work.session, business_on=SWEEP_ON, settings=env.runtime.settings, now=work.now
            )
            assert charged == 7 + 15
            fees = {
                (row.order_id, row.seq): row.late_fees_minor
                for row in work.session.scalars(select(Instalment))
            }
            assert [fees[(capped["id"], seq)] for seq in (1, 2, 3)] == [5, 2, 0]
            assert [fees[(free["id"], seq)] for seq in (1, 2, 3)] == [5, 5, 5]
            assert [fees[(disputed["id"], seq)] for seq in (1, 2, 3)] == [0, 0, 0]
            ledger = LedgerRepository(work.session)
            for order, shopper, amount in ((capped, ann, 7), (free, bob, 15)):
                [entry] = [e for e in ledger.entries_for_order(order["id"]) if e.kind == "late_fee"]
                assert (entry.shopper_id, entry.memo, entry.posting_count) == (
                    shopper["id"],
                    "daily late fee",
                    2,
                )
                postings = list(
                    work.session.scalars(
                        select(LedgerPosting)
                        .where(LedgerPosting.entry_id == entry.id)
                        .order_by(LedgerPosting.seq)
                    )
                )
                assert [(p.account_code, p.amount_minor) for p in postings] == [
                    (f"shopper_receivable:{shopper['id']}:CNY", amount),
                    ("late_fee_income::CNY", -amount),
                ]
            assert not [e for e in ledger.entries_for_order(disputed["id"]) if e.kind == "late_fee"]
            # The next day the APR allowance grows by 20 (101 days): a full day for both.
            again = accrue_late_fees(
                work.session,
                business_on=SWEEP_ON + timedelta(days=1),
                settings=env.runtime.settings,
                now=work.now,
            )
            assert again == 15 + 15
            late_fee_entries = work.session.scalars(
                select(JournalEntry.order_id).where(JournalEntry.kind == "late_fee")
            ).all()
            assert sorted(str(order_id) for order_id in late_fee_entries) == sorted(
                [capped["id"], capped["id"], free["id"], free["id"]]
            )
        env.assert_ledger_clean()
