#!/usr/bin/env python3
"""Daily settlement benchmark: how long one business date's payouts take as history grows.

A fresh, migrated database (SQLite file, or the PostgreSQL URL given with ``--postgres``) gets
``--merchants`` merchants. Each simulated day, every merchant gets ``--orders-per-day`` deliveries
posted to the ledger exactly as delivery posts them (order activation, then the merchant fee),
a refund on ``--refund-share`` of the previous day's orders, and a hold on ``--hold-share`` of
them; then the settlement run (``settlement_run.settle``) pays out for the day in its own
transaction, as the daily sweep does, and is timed. The orders are ledger entries only (no
shopper, no order row): settlement reads the ledger and its own tables, nothing else, so this
measures exactly the settlement path.

Prints, for a few days along the way: postings on one merchant's payable so far, payouts made,
milliseconds for the day's settlement, and whether every merchant's statement reconciles.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

from usefirst.flows import settlement_run
from usefirst.flows.merchant_onboarding import create_merchant
from usefirst.kit.clock import business_day_start
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.db import Database, normalize_database_url
from usefirst.kit.ids import new_id
from usefirst.kit.migrate import upgrade
from usefirst.kit.money import basis_points_of
from usefirst.kit.settings import Settings
from usefirst.ledger import accounts
from usefirst.ledger.accounts import AccountKind, AccountRef, EntryKind
from usefirst.ledger.service import post_transfer
from usefirst.merchants import settlement
from usefirst.merchants.models import SettlementHold

TIME_ZONE = "Asia/Shanghai"
# Stands in for the shopper receivables of the real flow.
SUSPENSE = AccountRef(AccountKind.SUSPENSE)


def fresh_database(postgres_url: str | None) -> str:
    if postgres_url is None:
        path = Path(tempfile.mkdtemp()) / "settlement-bench.db"
        url = f"sqlite:///{path}"
    else:
        url = postgres_url
        engine = create_engine(normalize_database_url(url))
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    upgrade(url)
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", help="PostgreSQL URL (its public schema is recreated)")
    parser.add_argument("--merchants", type=int, default=20)
    parser.add_argument("--orders-per-day", type=int, default=200)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--refund-share", type=float, default=0.05)
    parser.add_argument("--hold-share", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=7)
    arguments = parser.parse_args()
    randomizer = random.Random(arguments.seed)
    url = fresh_database(arguments.postgres)
    settings = Settings(database_url=url, time_zone=TIME_ZONE, settlement_reserve_bps=500)
    database = Database(url)
    cipher = FieldCipher(keys={"k1": bytes(32)}, active_key_id="k1", blind_index_key=bytes(32))
    start = date(2027, 1, 1)
    with database.transaction() as session:
        merchant_ids = [
            create_merchant(
                session,
                name=f"bench {index}",
                category="electronics",
                webhook_url=None,
                settlement_days=1,
                fee_rate_bps=60,
                cipher=cipher,
                actor="bench",
                now=datetime(2026, 12, 31, tzinfo=UTC),
            ).merchant.id
            for index in range(arguments.merchants)
        ]
    yesterday: dict[str, list[tuple[str, int]]] = {m: [] for m in merchant_ids}
    print(f"{'day':>4} {'postings/merchant':>18} {'payouts':>8} {'settle ms':>10} reconciled")
    for day_index in range(arguments.days):
        today = start + timedelta(days=day_index)
        noon = business_day_start(today, TIME_ZONE) + timedelta(hours=12)
        with database.transaction() as session:
            for merchant_id in merchant_ids:
                for order_id, amount_minor in yesterday[merchant_id]:
                    if randomizer.random() < arguments.refund_share:
                        post_transfer(
                            session,
                            kind=EntryKind.REFUND_REDUCING_DEBT,
                            debit=accounts.merchant_payable(merchant_id),
                            credit=SUSPENSE,
                            amount_minor=amount_minor // 2,
                            currency="CNY",
                            now=noon,
                            merchant_id=merchant_id,
                            order_id=order_id,
                        )
                    if randomizer.random() < arguments.hold_share:
                        session.add(
                            SettlementHold(
                                merchant_id=merchant_id,
                                id=new_id("settlement_hold"),
                                order_id=order_id,
                                source="risk:bench",
                                reason="bench",
                                created_at=noon,
                                released_at=None,
                            )
                        )
                orders = []
                for _ in range(arguments.orders_per_day):
                    order_id = new_id("order")
                    amount_minor = randomizer.randint(1_000, 200_000)
                    post_transfer(
                        session,
                        kind=EntryKind.ORDER_ACTIVATION,
                        debit=SUSPENSE,
                        credit=accounts.merchant_payable(merchant_id),
                        amount_minor=amount_minor,
                        currency="CNY",
                        now=noon,
                        merchant_id=merchant_id,
                        order_id=order_id,
                    )
                    post_transfer(
                        session,
                        kind=EntryKind.MERCHANT_FEE,
                        debit=accounts.merchant_payable(merchant_id),
                        credit=accounts.MERCHANT_FEE_INCOME,
                        amount_minor=basis_points_of(amount_minor, 60),
                        currency="CNY",
                        now=noon,
                        merchant_id=merchant_id,
                        order_id=order_id,
                    )
                    orders.append((order_id, amount_minor))
                yesterday[merchant_id] = orders
        settle_on = today + timedelta(days=1)
        began = time.perf_counter()
        with database.transaction() as session:
            summary = settlement_run.settle(
                session,
                business_on=settle_on,
                settings=settings,
                now=business_day_start(settle_on, TIME_ZONE),
            )
        elapsed_ms = (time.perf_counter() - began) * 1000
        if day_index in (0, 1, 9, 29, 59, 89, 179, 364) or day_index == arguments.days - 1:
            with database.transaction(read_only=True) as session:
                statements = [
                    settlement.settlement_statement(session, merchant_id=m, currency="CNY")
                    for m in merchant_ids
                ]
            postings = len(statements[0].lines)
            reconciled = all(s.is_reconciled for s in statements)
            print(
                f"{day_index + 1:>4} {postings:>18} {summary.paid:>8} {elapsed_ms:>10.0f} "
                f"{reconciled}"
            )
    database.dispose()


if __name__ == "__main__":
    main()
