"""Migration 0042: ``risk_link_values`` filled from the link observations, each (kind, value,
shopper) once with the day of its latest observation, values erasure replaced left out; down and up again.
SQLite here (the schema test checks PostgreSQL's keys against the models)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text

from usefirst.kit.migrate import downgrade, upgrade

# (shopper, order, kind, value, observed at)
OBSERVATIONS = [
    ("shp_a", "ord_1", "device", "dev-hash", "2026-12-01 10:00:00.000000"),
    ("shp_a", "ord_2", "device", "dev-hash", "2026-12-03 09:00:00.000000"),
    ("shp_a", "ord_2", "ip", "ip-hash", "2026-12-03 09:00:00.000000"),
    ("shp_b", "ord_3", "device", "dev-hash", "2026-12-02 08:00:00.000000"),
    # An erased shopper's observation: its value is the tombstone.
    ("shp_c", "ord_4", "device", "erased:shp_c", "2026-12-02 07:00:00.000000"),
]


def test_link_values_are_the_distinct_observations(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'before.db'}"
    upgrade(url, "0041")
    engine = create_engine(url)
    with engine.begin() as connection:
        for shopper_id, order_id, kind, value, at in OBSERVATIONS:
            connection.execute(
                text(
                    "INSERT INTO risk_link_observations (shopper_id, order_id, kind, value_hash,"
                    " merchant_id, observed_at) VALUES (:shopper, :order_id, :kind, :value,"
                    " 'mer_1', :at)"
                ),
                {"shopper": shopper_id, "order_id": order_id, "kind": kind, "value": value,
                 "at": at},
            )  # fmt: skip
    upgrade(url, "0042")
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT kind, value_hash, shopper_id, last_observed_on FROM risk_link_values")
        ).all()
    assert sorted(tuple(row) for row in rows) == [
        ("device", "dev-hash", "shp_a", "2026-12-03"),
        ("device", "dev-hash", "shp_b", "2026-12-02"),
        ("ip", "ip-hash", "shp_a", "2026-12-03"),
    ]
    downgrade(url, "0041")
    with engine.connect() as connection:
        tables = connection.execute(
            text("SELECT name FROM sqlite_master WHERE name = 'risk_link_values'")
        ).all()
        observations = connection.execute(
            text("SELECT count(*) FROM risk_link_observations")
        ).scalar()
    engine.dispose()
    assert tables == [] and observations == len(OBSERVATIONS)
    upgrade(url, "0042")
