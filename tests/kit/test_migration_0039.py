"""Migration 0039: messages queued before it take the shopper, else the merchant, their payload
names, else the platform, as their shard key; down and up again keep them. SQLite here (the
schema test checks PostgreSQL's keys against the models)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import create_engine, text

from usefirst.kit.migrate import downgrade, upgrade

PAYLOADS = {
    "obx_shopper": {"shopper_id": "shp_1", "merchant_id": "mer_1"},
    "obx_merchant": {"event_id": "evt_1", "merchant_id": "mer_2"},
    "obx_platform": {"event_id": "evt_2", "destination": "platform"},
    "obx_empty": {"shopper_id": ""},
}


def _rows(url: str) -> list[tuple[str, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [
                tuple(row)
                for row in connection.execute(
                    text("SELECT * FROM outbox_messages ORDER BY id")
                ).all()
            ]
    finally:
        engine.dispose()


def test_queued_messages_are_keyed_by_what_their_payload_names(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'before.db'}"
    upgrade(url, "0037")
    engine = create_engine(url)
    with engine.begin() as connection:
        for message_id, payload in PAYLOADS.items():
            connection.execute(
                text(
                    "INSERT INTO outbox_messages (id, topic, payload, available_at, attempts,"
                    " created_at) VALUES (:id, 'webhook', :payload, '2026-12-01 00:00:00', 0,"
                    " '2026-12-01 00:00:00')"
                ),
                {"id": message_id, "payload": json.dumps(payload)},
            )
    before = _rows(url)
    upgrade(url, "0039")
    with engine.connect() as connection:
        keys = dict(connection.execute(text("SELECT id, shard_key FROM outbox_messages")).all())
    engine.dispose()
    assert keys == {
        "obx_shopper": "shp_1",
        "obx_merchant": "mer_2",
        "obx_platform": "platform",
        "obx_empty": "platform",
    }
    downgrade(url, "0037")
    assert _rows(url) == before
