"""Key rotation: every PII value re-encrypted under the new key, readable after, none lost;
interrupted rotation resumes; the CLI adds a key and rotates."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from tests.conftest import TEST_BLIND_INDEX_KEY, TEST_KEYS, make_runtime
from tests.factories import checkout_body, create_merchant, enrol
from tests.privacy.privacy_env import operator_headers
from usefirst.api.app import create_app
from usefirst.cli.main import app
from usefirst.collections.bureau import bureau_file_text
from usefirst.collections.models import BureauFile
from usefirst.identity.service import create_api_key
from usefirst.kit.crypto import FieldCipher, new_key
from usefirst.kit.settings import get_settings
from usefirst.models import metadata
from usefirst.privacy import audit
from usefirst.privacy.keys import count_by_key, encrypted_targets, rotate_all
from usefirst.runtime import Runtime

NEW_KEY = bytes(range(100, 132))


def populate(client: TestClient, platform_headers: dict[str, str], runtime: Runtime) -> None:
    merchant = create_merchant(client, platform_headers, webhook_url="https://shop.example/hook")
    for index in range(3):
        shopper = enrol(client, platform_headers, email=f"person{index}@example.org")
        placed = client.post(
            "/v1/checkouts",
            headers={**platform_headers, "Idempotency-Key": f"co-rot-{index}"},
            json=checkout_body(shopper["id"], merchant["id"], 4_000 + index),
        )
        assert placed.status_code == 201, placed.text
        filed = client.post(
            "/v1/complaints",
            headers=platform_headers,
            json={"shopper_id": shopper["id"], "category": "other", "description": f"note {index}"},
        )
        assert filed.status_code == 201
    support = operator_headers(runtime, "support")
    answered = client.post(
        f"/v1/complaints/{filed.json()['id']}/responses",
        headers=support,
        json={"message": "we are on it"},
    )
    assert answered.status_code == 201, answered.text


def plaintexts(runtime: Runtime, cipher: FieldCipher) -> dict[tuple[str, str, Any], str]:
    """Every encrypted value, decrypted, by (table.column, primary key)."""
    values: dict[tuple[str, str, Any], str] = {}
    with runtime.database.engine.connect() as connection:
        for target in encrypted_targets(metadata.sorted_tables):
            keys = list(target.table.primary_key.columns)
            column = target.table.c[target.column]
            for row in connection.execute(select(*keys, column).where(column.is_not(None))):
                values[(target.label, target.field, tuple(row[:-1]))] = cipher.decrypt(
                    row[-1], field=target.field
                )
    return values


def ciphertext_key_ids(runtime: Runtime) -> set[str]:
    found = set()
    with runtime.database.engine.connect() as connection:
        for target in encrypted_targets(metadata.sorted_tables):
            column = target.table.c[target.column]
            for (value,) in connection.execute(select(column).where(column.is_not(None))):
                found.add(value.split(":")[1])
    return found


def test_rotation_round_trip(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    populate(client, platform_headers, runtime)
    before = plaintexts(runtime, runtime.cipher)
    labels = {label for label, _, _ in before}
    assert {
        "shoppers.name_encrypted",
        "shoppers.national_id_encrypted",
        "shoppers.phone_encrypted",
        "shoppers.email_encrypted",
        "orders.shipping_address_encrypted",
        "merchants.webhook_secret_encrypted",
        "complaints.description_encrypted",
        "complaint_responses.message_encrypted",
    } <= labels
    assert ciphertext_key_ids(runtime) == {"k1"}

    both = FieldCipher(
        keys={**TEST_KEYS, "k2": NEW_KEY}, active_key_id="k2", blind_index_key=TEST_BLIND_INDEX_KEY
    )
    progress: list[tuple[str, int]] = []
    result = rotate_all(
        runtime.database,
        cipher=both,
        clock=runtime.clock,
        tables=metadata.sorted_tables,
        batch_size=2,
        on_batch=lambda label, rotated: progress.append((label, rotated)),
    )
    assert result.rotated == len(before)
    assert sum(rotated for _, rotated in progress) == len(before)
    assert all(rotated <= 2 for _, rotated in progress)
    assert ciphertext_key_ids(runtime) == {"k2"}
    only_new = FieldCipher(
        keys={"k2": NEW_KEY}, active_key_id="k2", blind_index_key=TEST_BLIND_INDEX_KEY
    )
    assert plaintexts(runtime, only_new) == before
    with runtime.work(read_only=True) as work:
        assert count_by_key(work.session, active_key_id="k2", tables=metadata.sorted_tables) == {
            "k2": len(before)
        }
        [entry] = [e for e in audit.entries_about_action(work.session, action="keys.rotate")]
        assert entry.actor == "system:keys-rotate"
        assert audit.verify_chain(work.session).is_intact
    again = rotate_all(
        runtime.database,
        cipher=both,
        clock=runtime.clock,
        tables=metadata.sorted_tables,
        batch_size=2,
    )
    assert (again.rotated, again.batches) == (0, 0)


def test_an_interrupted_rotation_resumes_without_losing_a_record(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    populate(client, platform_headers, runtime)
    before = plaintexts(runtime, runtime.cipher)
    both = FieldCipher(
        keys={**TEST_KEYS, "k2": NEW_KEY}, active_key_id="k2", blind_index_key=TEST_BLIND_INDEX_KEY
    )
    done: list[int] = []

    def crash_after_three(label: str, rotated: int) -> None:
        done.append(rotated)
        if len(done) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rotate_all(
            runtime.database,
            cipher=both,
            clock=runtime.clock,
            tables=metadata.sorted_tables,
            batch_size=2,
            on_batch=crash_after_three,
        )
    assert ciphertext_key_ids(runtime) == {"k1", "k2"}
    # Mid-rotation the engine serves both: a reader holding both keys sees every record.
    assert plaintexts(runtime, both) == before
    with runtime.work(read_only=True) as work:
        assert count_by_key(work.session, active_key_id="k2", tables=metadata.sorted_tables) == {
            "k2": sum(done),
            "older keys": len(before) - sum(done),
        }
    assert 3 <= sum(done) <= 6
    resumed = rotate_all(
        runtime.database,
        cipher=both,
        clock=runtime.clock,
        tables=metadata.sorted_tables,
        batch_size=2,
    )
    assert resumed.rotated == len(before) - sum(done)
    assert ciphertext_key_ids(runtime) == {"k2"}
    assert plaintexts(runtime, both) == before


def test_cli_keys_add_and_rotate(long_tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from usefirst.kit.migrate import upgrade
    from usefirst.kit.settings import Settings, load_field_cipher

    url = f"sqlite:///{long_tmp_path / 'keys.db'}"
    upgrade(url)
    keys_file = long_tmp_path / "usefirst-keys.json"
    monkeypatch.setenv("USEFIRST_DATABASE_URL", url)
    monkeypatch.setenv("USEFIRST_KEYS_FILE", str(keys_file))
    for name in ("USEFIRST_ENCRYPTION_KEYS", "USEFIRST_BLIND_INDEX_KEY", "USEFIRST_SANDBOX"):
        monkeypatch.delenv(name, raising=False)
    first_cipher = load_field_cipher(Settings(database_url=url, keys_file=keys_file))
    runtime = make_runtime(url)
    runtime.cipher = first_cipher
    with TestClient(create_app(runtime)) as client:
        with runtime.work() as work:
            key = create_api_key(work.session, kind="platform", now=work.now)
        headers = {"Authorization": f"Bearer {key}"}
        populate(client, headers, runtime)
    before = plaintexts(runtime, first_cipher)
    get_settings.cache_clear()
    try:
        added = CliRunner().invoke(app, ["keys", "add", "--key-id", "k2"], catch_exceptions=False)
        assert added.exit_code == 0, added.output
        material = json.loads(keys_file.read_text())
        assert material["active_key_id"] == "k2" and set(material["keys"]) == {"k1", "k2"}
        assert oct(keys_file.stat().st_mode & 0o777) == "0o600"
        duplicate = CliRunner().invoke(app, ["keys", "add", "--key-id", "k2"])
        assert duplicate.exit_code == 2
        assert duplicate.stderr.splitlines() == [f"Key 'k2' already exists in {keys_file}."]
        get_settings.cache_clear()
        rotated = CliRunner().invoke(
            app, ["keys", "rotate", "--batch-size", "3"], catch_exceptions=False
        )
        again = CliRunner().invoke(app, ["keys", "rotate", "--json"], catch_exceptions=False)
    finally:
        get_settings.cache_clear()
        runtime.database.dispose()
    assert rotated.exit_code == 0, rotated.output
    starting, rotation, now, verdict = rotated.stdout.splitlines()
    assert starting == f"active key: k2; values by key: {{'k2': 0, 'older keys': {len(before)}}}"
    assert re.fullmatch(rf"rotated {len(before)} value\(s\) in \d+ batch\(es\)", rotation)
    assert now == f"values by key now: {{'k2': {len(before)}}}"
    assert verdict == (
        "every PII value is under the active key k2; the older keys are no longer needed for "
        "reading and may be removed from the key ring"
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == {
        "active_key_id": "k2",
        "batches": 0,
        "rotated": 0,
        "values_by_key_after": {"k2": len(before)},
        "values_by_key_before": {"k2": len(before)},
        "values_under_other_keys": {},
    }
    assert ciphertext_key_ids(runtime) == {"k2"}
    new_only = FieldCipher(
        keys={"k2": base64.urlsafe_b64decode(material["keys"]["k2"])},
        active_key_id="k2",
        blind_index_key=base64.urlsafe_b64decode(material["blind_index_key"]),
    )
    assert plaintexts(runtime, new_only) == before
    assert new_key() != NEW_KEY


def test_rotation_encrypts_a_bureau_file_stored_as_text_before_0016(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    """Bureau files made before they were encrypted at rest keep their text in the renamed column
    (a migration has no keys): they are served as they are, and rotation encrypts them."""
    populate(client, platform_headers, runtime)
    text_file = "0426HEADER legacy bureau file, stored before migration 0016\n"
    with runtime.work() as work:
        work.session.add(
            BureauFile(
                id="bur_legacy",
                period="2026-10",
                format="metro2",
                records=0,
                content_encrypted=text_file,
                created_at=work.now,
            )
        )
    with runtime.work(read_only=True) as work:
        legacy = work.session.get(BureauFile, "bur_legacy")
        assert legacy is not None
        assert bureau_file_text(legacy, runtime.cipher) == text_file
        ciphertexts = count_by_key(work.session, active_key_id="k1", tables=metadata.sorted_tables)[
            "k1"
        ]
        assert count_by_key(work.session, active_key_id="k1", tables=metadata.sorted_tables) == {
            "k1": ciphertexts,
            "older keys": 1,
        }
    result = rotate_all(
        runtime.database,
        cipher=runtime.cipher,
        clock=runtime.clock,
        tables=metadata.sorted_tables,
    )
    assert result.rotated == 1  # the text alone: everything else is under k1 already
    with runtime.work(read_only=True) as work:
        encrypted = work.session.get(BureauFile, "bur_legacy")
        assert encrypted is not None
        assert encrypted.content_encrypted.startswith("v1:k1:")
        assert "legacy" not in encrypted.content_encrypted
        assert bureau_file_text(encrypted, runtime.cipher) == text_file
        assert count_by_key(work.session, active_key_id="k1", tables=metadata.sorted_tables) == {
            "k1": ciphertexts + 1
        }
