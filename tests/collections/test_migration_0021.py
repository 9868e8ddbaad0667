"""Migration 0021: collections' state of an order (first delinquency, call queue, bureau report,
legal referral, charge-off) moves from ``orders`` to ``delinquent_orders``, disputes' (an open
dispute, the days it paused) to ``disputed_orders``; the downgrade moves both back. Rows in place,
both directions, exact values, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from tests.factories import checkout_body, create_merchant, enrol, skip_on_citus
from usefirst.kit.db import normalize_database_url
from usefirst.kit.migrate import downgrade, upgrade

COLLECTIONS = (
    "first_delinquent_on",
    "call_queue_since_on",
    "bureau_reported_on",
    "legal_referred_on",
    "charged_off_on",
    "charged_off_minor",
)
DISPUTES = ("is_disputed", "disputed_since_on", "dispute_paused_days", "dispute_resolved_on")
# The collections state of the order that went all the way, as inserted below.
CHARGED_OFF = (
    date(2027, 1, 2),
    date(2027, 1, 8),
    date(2027, 1, 31),
    date(2027, 4, 1),
    date(2027, 6, 30),
    12345,
)


def order_for(client: TestClient, headers: dict[str, str], merchant: dict[str, Any]) -> str:
    shopper = enrol(client, headers)
    response = client.post(
        "/v1/checkouts", headers=headers, json=checkout_body(shopper["id"], merchant["id"])
    )
    assert response.status_code == 201, response.text
    return str(response.json()["order"]["id"])


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    engine = create_engine(normalize_database_url(url))
    with engine.connect() as connection:
        found = [tuple(row) for row in connection.execute(text(query))]
    engine.dispose()
    return found


def execute(url: str, statement: str) -> None:
    engine = create_engine(normalize_database_url(url))
    with engine.begin() as connection:
        connection.execute(text(statement))
    engine.dispose()


def normalised(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Dates as dates: SQLite reads them back as text (its flags as 0 and 1, equal to False and
    True)."""
    return tuple(date.fromisoformat(value) if isinstance(value, str) else value for value in values)


def test_the_state_moves_to_its_owners_and_back(
    database_url: str, client: TestClient, platform_headers: dict[str, str]
) -> None:
    skip_on_citus(
        database_url,
        "a downgrade past migration 0029/0039 drops a distribution column, which Citus refuses",
    )
    merchant = create_merchant(client, platform_headers)
    charged_off, disputed, both, untouched = sorted(
        order_for(client, platform_headers, merchant) for _ in range(4)
    )
    # The state as the engine keeps it now: one row per order in each owner's table.
    execute(
        database_url,
        f"INSERT INTO delinquent_orders (shopper_id, order_id, {', '.join(COLLECTIONS)},"
        " updated_at) SELECT shopper_id, id, '2027-01-02', '2027-01-08', '2027-01-31',"
        " '2027-04-01', '2027-06-30', 12345, updated_at FROM orders"
        f" WHERE id = '{charged_off}'",
    )
    execute(
        database_url,
        f"INSERT INTO delinquent_orders (shopper_id, order_id, {', '.join(COLLECTIONS)},"
        " updated_at) SELECT shopper_id, id, '2027-02-02', '2027-02-08', NULL, NULL, NULL, 0,"
        f" updated_at FROM orders WHERE id = '{both}'",
    )
    for order_id, values in (
        (disputed, "TRUE, '2027-03-05', 0, NULL"),
        (both, "FALSE, NULL, 29, '2027-03-10'"),
    ):
        execute(
            database_url,
            f"INSERT INTO disputed_orders (shopper_id, order_id, {', '.join(DISPUTES)},"
            f" updated_at) SELECT shopper_id, id, {values}, updated_at FROM orders"
            f" WHERE id = '{order_id}'",
        )
    state_columns = ", ".join((*COLLECTIONS, *DISPUTES))

    downgrade(database_url, "0020")
    on_orders = {
        row[0]: normalised(row[1:])
        for row in rows(database_url, f"SELECT id, {state_columns} FROM orders")
    }
    try:
        assert on_orders == {
            charged_off: (*CHARGED_OFF, False, None, 0, None),
            disputed: (None, None, None, None, None, 0, True, date(2027, 3, 5), 0, None),
            both: (
                date(2027, 2, 2),
                date(2027, 2, 8),
                None,
                None,
                None,
                0,
                False,
                None,
                29,
                date(2027, 3, 10),
            ),
            untouched: (None, None, None, None, None, 0, False, None, 0, None),
        }
        # The state as the engine kept it before: an order's row changes on the way up too.
        execute(
            database_url,
            f"UPDATE orders SET bureau_reported_on = '2027-03-08' WHERE id = '{both}'",
        )
    finally:
        upgrade(database_url)

    updated_at = dict(rows(database_url, "SELECT id, updated_at FROM orders"))
    assert {
        row[1]: (*normalised(row[2:-1]), row[-1] == updated_at[row[1]])
        for row in rows(
            database_url,
            f"SELECT shopper_id, order_id, {', '.join(COLLECTIONS)}, updated_at"
            " FROM delinquent_orders",
        )
    } == {
        charged_off: (*CHARGED_OFF, True),
        both: (date(2027, 2, 2), date(2027, 2, 8), date(2027, 3, 8), None, None, 0, True),
    }
    assert {
        row[1]: (*normalised(row[2:-1]), row[-1] == updated_at[row[1]])
        for row in rows(
            database_url,
            f"SELECT shopper_id, order_id, {', '.join(DISPUTES)}, updated_at FROM disputed_orders",
        )
    } == {
        disputed: (True, date(2027, 3, 5), 0, None, True),
        both: (False, None, 29, date(2027, 3, 10), True),
    }
    columns = (
        {
            row[0]
            for row in rows(
                database_url,
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'orders'",
            )
        }
        if not database_url.startswith("sqlite")
        else {row[1] for row in rows(database_url, "PRAGMA table_info(orders)")}
    )
    assert columns.isdisjoint((*COLLECTIONS, *DISPUTES))
