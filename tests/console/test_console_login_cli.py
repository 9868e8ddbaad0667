"""`usefirst admin console-login`: console sign-ins for operators and merchants' staff."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from tests.cli.test_cli import environment, last_line, migrated, run
from usefirst.console import auth
from usefirst.identity.models import ConsoleAccount
from usefirst.kit.clock import system_now
from usefirst.kit.db import Database
from usefirst.kit.settings import get_settings

__all__ = ["environment"]


def test_operator_gets_a_generated_password_and_a_reset_requires_totp_again(
    environment: Path,
) -> None:
    migrated(environment)
    created = run("admin", "create-operator", "--email", "ops@example.com", "--role", "admin")
    assert created.exit_code == 0, created.output
    first = run("admin", "console-login", "--email", "ops@example.com", "--generate-password")
    assert first.exit_code == 0, first.output
    password = last_line(first)
    assert len(password) == 20
    database = Database(f"sqlite:///{environment}")
    try:
        with database.transaction() as session:
            started = auth.check_password(
                session,
                email="ops@example.com",
                password=password,
                settings=get_settings(),
                now=system_now(),
            )
            assert started.session.stage == "second_factor"
            account = session.scalars(select(ConsoleAccount)).one()
            account.totp_enrolled_at = system_now()
            account.totp_secret_encrypted = "v1:k1:placeholder-for-this-test"
        reset = run(
            "admin", "console-login", "--email", "ops@example.com", "--reset", "--generate-password"
        )
        assert reset.exit_code == 0, reset.output
        assert last_line(reset) != password
        with database.transaction(read_only=True) as session:
            account = session.scalars(select(ConsoleAccount)).one()
            assert account.totp_enrolled_at is None
            assert account.totp_secret_encrypted is None
    finally:
        database.dispose()


def test_unknown_operator_is_refused_and_nothing_is_created(environment: Path) -> None:
    migrated(environment)
    result = run("admin", "console-login", "--email", "ghost@example.com", "--generate-password")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["No operator with this email: create it first."]
    assert result.stdout == ""
    database = Database(f"sqlite:///{environment}")
    try:
        with database.transaction(read_only=True) as session:
            assert session.scalar(select(func.count()).select_from(ConsoleAccount)) == 0
    finally:
        database.dispose()
