"""``usefirst admin`` credential commands: list, revoke and rotate API keys and operator tokens,
and issue operator tokens on the server.

Everything here runs on wall time (credentials expire on real time, whatever a sandbox clock
says) and is recorded in the audit chain with the actor ``cli:<user>``.
"""

from __future__ import annotations

import getpass
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from usefirst.cli.output import JsonOption, fail, print_json, stdout

if TYPE_CHECKING:
    from usefirst.runtime import Runtime


def cli_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"[:120]


def _runtime() -> Runtime:
    from usefirst.kit.settings import get_settings
    from usefirst.runtime import Runtime

    return Runtime(get_settings())


def register(admin_app: typer.Typer) -> None:
    admin_app.command("list-keys")(list_keys)
    admin_app.command("revoke-key")(revoke_key)
    admin_app.command("rotate-key")(rotate_key)
    admin_app.command("create-operator-token")(create_operator_token)


def list_keys(
    kind: Annotated[
        str | None, typer.Option(help="platform, merchant or operator; all when left out.")
    ] = None,
    merchant_id: Annotated[str | None, typer.Option(help="One merchant's keys.")] = None,
    active_only: Annotated[bool, typer.Option(help="Leave revoked keys out.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List API keys and operator tokens (never their secrets): state, expiry, last use.

    Exit codes:
    0 listed;
    2 an unknown kind."""
    from usefirst.identity import service
    from usefirst.kit.clock import system_now
    from usefirst.kit.errors import UsefirstError

    runtime = _runtime()
    now = system_now()
    try:
        with runtime.work(read_only=True) as work:
            keys = service.list_api_keys(
                work.session, kind=kind, merchant_id=merchant_id, include_revoked=not active_only
            )
            views = [service.api_key_view(key, now=now) for key in keys]
    except UsefirstError as error:
        fail(error.message, code=2)
    if as_json:
        print_json({"keys": views})
        return
    table = Table(title="API keys")
    for column in ("id", "kind", "holder", "role", "state", "created", "expires", "last used"):
        table.add_column(column)
    for view in views:
        table.add_row(
            str(view["id"]),
            str(view["kind"]),
            str(view["merchant_id"] or view["operator_id"] or "platform"),
            str(view["role"] or ""),
            str(view["state"]),
            _moment(view["created_at"]),
            _moment(view["expires_at"]),
            _moment(view["last_used_at"]),
        )
    stdout().print(table)


def _moment(value: object) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M} UTC"


def revoke_key(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_…), as list-keys shows it.")],
    reason: Annotated[str, typer.Option(help="Why; kept with the key and in the audit chain.")],
) -> None:
    """Revoke a key or token at once: its next use is refused (401 api_key_revoked).

    Exit codes:
    0 revoked (or revoked already: nothing changes);
    2 no such key, or no reason: nothing changes."""
    from usefirst.flows import credentials
    from usefirst.kit.clock import system_now
    from usefirst.kit.errors import UsefirstError

    runtime = _runtime()
    try:
        with runtime.work() as work:
            revoked = credentials.revoke_key(
                work.session, key_id=key_id, reason=reason, actor=cli_actor(), now=system_now()
            )
            revoked_at = revoked.key.revoked_at
    except UsefirstError as error:
        fail(error.message, code=2)
    runtime.forget_credential(revoked.secret_hash)
    stdout().print(f"Key {key_id} revoked at {_moment(revoked_at)}.")


def rotate_key(
    key_id: Annotated[str, typer.Argument(help="The platform or merchant key to replace.")],
    overlap_hours: Annotated[
        int, typer.Option(help="How long the old key keeps working (0 to 720).")
    ] = 24,
) -> None:
    """Issue a replacement key; the old one works for the overlap, then expires. The new key is
    printed alone on the last line, shown once.

    Exit codes:
    0 rotated;
    2 no such key, a revoked, expired or already rotated key, an operator token (issue a new one
    instead), or an overlap out of range: nothing changes."""
    from usefirst.flows import credentials
    from usefirst.kit.clock import system_now
    from usefirst.kit.errors import UsefirstError

    runtime = _runtime()
    try:
        with runtime.work() as work:
            rotated = credentials.rotate_key(
                work.session,
                key_id=key_id,
                actor=cli_actor(),
                now=system_now(),
                overlap=timedelta(hours=overlap_hours),
            )
            old_expires, new_id, old_hash = (
                rotated.old.expires_at,
                rotated.new.id,
                rotated.old.secret_hash,
            )
    except UsefirstError as error:
        fail(error.message, code=2)
    if overlap_hours == 0:
        runtime.forget_credential(old_hash)
    stdout().print(
        f"Key {key_id} works until {_moment(old_expires)}; its replacement is {new_id} "
        "(store it now; it is not shown again):"
    )
    print(rotated.secret)


def create_operator_token(
    email: Annotated[str, typer.Option(help="The operator's email.")],
    role: Annotated[
        str | None,
        typer.Option(help="Bind the token to this role (an admin's token may be narrower)."),
    ] = None,
    expires_in_days: Annotated[int, typer.Option(help="1 to 90 days.")] = 30,
) -> None:
    """Issue another personal API token of an operator; printed alone on the last line.

    Exit codes:
    0 issued;
    2 no such operator, a role the operator may not hold, or a lifetime out of range."""
    from usefirst.flows import credentials
    from usefirst.identity import service
    from usefirst.kit.clock import system_now
    from usefirst.kit.errors import UsefirstError

    runtime = _runtime()
    now = system_now()
    try:
        with runtime.work() as work:
            operator = service.operator_by_email(work.session, email=email)
            issued = credentials.issue_operator_token(
                work.session,
                operator=operator,
                actor=cli_actor(),
                now=now,
                role=role,
                lifetime=timedelta(days=expires_in_days),
            )
            key_id, expires_at = issued.key.id, issued.key.expires_at
    except UsefirstError as error:
        fail(error.message, code=2)
    stdout().print(
        f"Token {key_id} of {email.strip().lower()}, expires {_moment(expires_at)} (shown once):"
    )
    print(issued.secret)
