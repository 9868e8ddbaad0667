"""``usefirst admin list-keys``, ``revoke-key``, ``rotate-key`` and ``create-operator-token``
against a fresh SQLite file; what they do is refused or accepted over HTTP, and recorded in the
audit chain that ``usefirst audit verify`` checks."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from tests.cli.test_cli import environment, last_line, migrated, run
from tests.factories import bearer
from usefirst.api.app import create_app
from usefirst.kit.settings import get_settings
from usefirst.runtime import Runtime

__all__ = ["environment"]


def listed(*options: str) -> list[dict[str, object]]:
    result = run("admin", "list-keys", "--json", *options)
    assert result.exit_code == 0, result.output
    keys: list[dict[str, object]] = json.loads(result.stdout)["keys"]
    return keys


def status_with(key: str) -> tuple[int, str | None]:
    get_settings.cache_clear()
    runtime = Runtime(get_settings())
    try:
        with TestClient(create_app(runtime)) as client:
            response = client.get("/v1/events", headers=bearer(key))
            code = response.json()["error"]["code"] if response.status_code >= 400 else None
            return response.status_code, code
    finally:
        runtime.database.dispose()


def test_list_revoke_and_rotate_keys_from_the_command_line(environment: Path) -> None:
    migrated(environment)
    first = last_line(run("admin", "create-platform-key", "--label", "ci"))
    second = last_line(run("admin", "create-platform-key", "--expires-in-days", "7"))
    keys = listed()
    assert [(key["kind"], key["label"], key["state"]) for key in keys] == [
        ("platform", "ci", "active"),
        ("platform", "platform", "active"),
    ]
    assert keys[0]["expires_at"] is None and keys[1]["expires_at"] is not None
    assert first not in json.dumps(keys) and second not in json.dumps(keys)
    first_id, second_id = str(keys[0]["id"]), str(keys[1]["id"])

    table = run("admin", "list-keys")
    assert table.exit_code == 0 and first_id in table.stdout

    revoked = run("admin", "revoke-key", first_id, "--reason", "left in a repository")
    assert revoked.exit_code == 0, revoked.output
    assert status_with(first) == (401, "api_key_revoked")
    assert status_with(second) == (200, None)
    assert [key["id"] for key in listed("--active-only")] == [second_id]
    # Unknown key, missing reason: exit 2, nothing changes.
    assert run("admin", "revoke-key", "key_missing", "--reason", "x").exit_code == 2
    assert run("admin", "revoke-key", second_id, "--reason", " ").exit_code == 2
    assert status_with(second) == (200, None)

    rotated = run("admin", "rotate-key", second_id, "--overlap-hours", "0")
    assert rotated.exit_code == 0, rotated.output
    replacement = last_line(rotated)
    assert replacement.startswith("uf_plat_")
    assert status_with(second) == (401, "api_key_expired")
    assert status_with(replacement) == (200, None)
    assert run("admin", "rotate-key", first_id).exit_code == 2  # revoked: not rotated

    verified = run("audit", "verify", "--json")
    assert verified.exit_code == 0, verified.output
    # Two keys issued, one revoked, one rotated: four rows, the chain intact.
    assert json.loads(verified.stdout)["rows_checked"] == 4


def test_operator_tokens_from_the_command_line(environment: Path) -> None:
    migrated(environment)
    assert (
        run("admin", "create-operator", "--email", "ops@example.com", "--role", "admin").exit_code
        == 0
    )
    issued = run(
        "admin",
        "create-operator-token",
        "--email",
        "ops@example.com",
        "--role",
        "support",
        "--expires-in-days",
        "3",
    )
    assert issued.exit_code == 0, issued.output
    token = last_line(issued)
    assert token.startswith("uf_op_")
    [_, support] = listed("--kind", "operator")
    assert support["role"] == "support"
    assert status_with(token) == (200, None)  # support may list events
    refused = run(
        "admin", "create-operator-token", "--email", "ops@example.com", "--expires-in-days", "91"
    )
    assert refused.exit_code == 2
    assert run("admin", "rotate-key", str(support["id"])).exit_code == 2
    assert len(listed("--kind", "operator")) == 2
    verified = run("audit", "verify", "--json")
    # The operator's first token and the support token were recorded.
    assert json.loads(verified.stdout)["rows_checked"] == 2
