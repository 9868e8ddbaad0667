"""Migration 0027 fills the checkout counters of a book that had none: the same facts, day
counters and (after the nightly refresh) top-buyer bounds as the counters kept while the book
was made, on SQLite and PostgreSQL; down and up again gives them back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import make_runtime
from tests.factories import skip_on_citus
from tests.risk.test_counter_features import SCENARIO
from usefirst.kit.migrate import downgrade, upgrade
from usefirst.lab.sim.marketplace import simulate
from usefirst.risk import counters
from usefirst.risk.models import MerchantBuyerCounter, MerchantDayCounter, OrderFact


def _counters(session: Session, *, now: Any) -> tuple[list[tuple[Any, ...]], ...]:
    counters.refresh_window_bounds(session, now=now)
    session.flush()

    def rows(table: Any) -> list[tuple[Any, ...]]:
        names = [column.key for column in table.__table__.columns]
        return sorted(
            tuple(getattr(row, name) for name in names) for row in session.scalars(select(table))
        )

    buyers = [row for row in rows(MerchantBuyerCounter) if row[-1] > 0]
    return rows(OrderFact), rows(MerchantDayCounter), buyers


def test_the_migration_counts_an_existing_book_as_the_checkouts_did(database_url: str) -> None:
    skip_on_citus(
        database_url,
        "a downgrade past migration 0029/0039 drops a distribution column, which Citus refuses",
    )
    runtime = make_runtime(database_url, credit_policy="cold_start")
    try:
        summary = simulate(runtime, shoppers=8, merchants=2, days=30, seed=5, scenario=SCENARIO)
        assert summary.checkouts > 30
        with runtime.work() as work:
            kept = _counters(work.session, now=work.now)
            now = work.now
        runtime.database.dispose()
        downgrade(database_url, "0025")
        upgrade(database_url)
        with runtime.work() as work:
            assert _counters(work.session, now=now) == kept
            assert len(kept[0]) == summary.checkouts
    finally:
        runtime.database.dispose()
