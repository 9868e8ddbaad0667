"""Console lockout without enumeration or lock-out of the owner, on SQLite and PostgreSQL:
failures count per email at a client address, whether the email has an account or not, so the
message is the same for both; the owner signing in from another address is not locked out; an
address failing across many emails is throttled (429, Retry-After)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import make_runtime
from tests.console.test_sign_in import PASSWORD, account_row, add_operator, post_password
from usefirst.api.app import create_app
from usefirst.identity.models import ConsoleSession
from usefirst.runtime import Runtime

MESSAGE = re.compile(r'<p class="error" role="alert">([^<]+)</p>')
LOCKED_UNTIL = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC")


@pytest.fixture
def lockout_runtime(database_url: str) -> Iterator[Runtime]:
    runtime = make_runtime(database_url, sign_in_failures_per_address="12/15 minutes")
    yield runtime
    runtime.database.dispose()


def message_of(response: object) -> str:
    found = MESSAGE.search(response.text)  # type: ignore[attr-defined]
    assert found is not None
    return found.group(1)


def sessions(runtime: Runtime) -> list[str]:
    """The stage of every console session."""
    with runtime.work(read_only=True) as work:
        return list(work.session.scalars(select(ConsoleSession.stage)))


def test_a_locked_real_account_and_an_unknown_email_read_the_same(
    lockout_runtime: Runtime,
) -> None:
    runtime = lockout_runtime
    add_operator(runtime, "admin@example.com", "admin")
    client = TestClient(create_app(runtime), client=("198.51.100.20", 40000))
    real = [post_password(client, "admin@example.com", "wrong password!!") for _ in range(5)]
    unknown = [post_password(client, "ghost@example.com", "wrong password!!") for _ in range(5)]
    assert [r.status_code for r in real] == [r.status_code for r in unknown] == [401] * 5  # type: ignore[attr-defined]
    # Attempt by attempt the page says the same, the fifth "locked until …" for both.
    for real_answer, unknown_answer in zip(real, unknown, strict=True):
        real_text, unknown_text = message_of(real_answer), message_of(unknown_answer)
        assert LOCKED_UNTIL.sub("T", real_text) == LOCKED_UNTIL.sub("T", unknown_text)
    assert LOCKED_UNTIL.search(message_of(real[-1])) is not None
    # And once locked, the right password and a wrong one read the same too.
    right = post_password(client, "admin@example.com", PASSWORD)
    ghost = post_password(client, "ghost@example.com", PASSWORD)
    assert right.status_code == ghost.status_code == 401  # type: ignore[attr-defined]
    assert right.headers["Retry-After"] and ghost.headers["Retry-After"]  # type: ignore[attr-defined]
    assert LOCKED_UNTIL.sub("T", message_of(right)) == LOCKED_UNTIL.sub("T", message_of(ghost))
    assert sessions(runtime) == []


def test_failing_on_purpose_does_not_lock_the_owner_out_elsewhere(
    lockout_runtime: Runtime,
) -> None:
    runtime = lockout_runtime
    add_operator(runtime, "analyst@example.com", "risk_analyst")
    app = create_app(runtime)
    attacker = TestClient(app, client=("198.51.100.30", 40000))
    owner = TestClient(app, client=("203.0.113.30", 40000))
    for _ in range(6):
        assert (
            post_password(attacker, "analyst@example.com", "guess guess guess").status_code == 401
        )  # type: ignore[attr-defined]
    assert "UTC" in message_of(post_password(attacker, "analyst@example.com", PASSWORD))
    assert account_row(runtime, "analyst@example.com").locked_until is not None  # on record
    assert sessions(runtime) == []

    signed = post_password(owner, "analyst@example.com", PASSWORD)
    assert signed.status_code == 303  # type: ignore[attr-defined]
    assert signed.headers["location"] == "/console/second-factor"  # type: ignore[attr-defined]
    assert sessions(runtime) == ["second_factor"]


def test_an_address_spraying_many_emails_is_throttled(lockout_runtime: Runtime) -> None:
    runtime = lockout_runtime
    add_operator(runtime, "collector@example.com", "collector")
    app = create_app(runtime)
    sprayer = TestClient(app, client=("198.51.100.40", 40000))
    for number in range(12):
        answer = post_password(sprayer, f"person{number}@example.com", "password123456")
        assert answer.status_code == 401  # type: ignore[attr-defined]
    throttled = post_password(sprayer, "collector@example.com", PASSWORD)
    assert throttled.status_code == 429  # type: ignore[attr-defined]
    assert 1 <= int(throttled.headers["Retry-After"]) <= 900  # type: ignore[attr-defined]
    assert "Too many failed sign-ins from this address" in message_of(throttled) or (
        "此网络地址登录失败次数过多" in message_of(throttled)
    )
    assert sessions(runtime) == []
    # The same person from elsewhere still signs in.
    elsewhere = TestClient(app, client=("203.0.113.40", 40000))
    assert post_password(elsewhere, "collector@example.com", PASSWORD).status_code == 303  # type: ignore[attr-defined]
