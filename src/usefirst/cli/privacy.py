"""``usefirst audit …`` and ``usefirst keys …``: check the PII audit chain, rotate PII keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from usefirst.runtime import Runtime

audit_app = typer.Typer(help="The tamper-evident audit log of PII access.", no_args_is_help=True)
keys_app = typer.Typer(help="PII encryption keys.", no_args_is_help=True)
console = Console()


def _runtime() -> Runtime:
    from usefirst.kit.settings import get_settings
    from usefirst.runtime import Runtime

    return Runtime(get_settings())


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the hash chain of the audit log; report the first broken row (exit 1)."""
    from usefirst.privacy.audit import verify_chain

    runtime = _runtime()
    with runtime.work(read_only=True) as work:
        report = verify_chain(work.session)
    console.print(f"audit rows checked: {report.rows_checked}; chain head: {report.head_seq}")
    if report.first_break is None:
        console.print("[green]audit chain intact: yes[/green]")
        return
    problem = report.first_break
    console.print(
        f"[red]audit chain broken at row {problem.seq}[/red]"
        + (f" ({problem.entry_id})" if problem.entry_id else "")
        + f": {problem.reason}"
    )
    raise typer.Exit(code=1)


@keys_app.command("add")
def keys_add(
    key_id: Annotated[str, typer.Option("--key-id", help="Id of the new key, e.g. k2.")],
) -> None:
    """Add a new PII key to the key file and make it active (old keys stay for reading).

    Restart the serving processes, then run ``usefirst keys rotate``."""
    from usefirst.kit.settings import get_settings
    from usefirst.privacy.keys import KeyFileError, add_key_to_file

    settings = get_settings()
    try:
        add_key_to_file(settings, key_id=key_id)
    except KeyFileError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(code=2) from None
    console.print(
        f"key {key_id} added to {settings.keys_file} and made active; restart the servers and "
        "workers, then run `usefirst keys rotate`"
    )


@keys_app.command("rotate")
def keys_rotate(
    batch_size: Annotated[int, typer.Option(min=1, max=10_000)] = 500,
) -> None:
    """Re-encrypt every PII value not under the active key, in batches (resumable, online)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from usefirst.models import metadata
    from usefirst.privacy.keys import count_by_key, rotate_all

    runtime = _runtime()
    cipher = runtime.cipher
    with runtime.work(read_only=True) as work:
        before = count_by_key(
            work.session, active_key_id=cipher.active_key_id, tables=metadata.sorted_tables
        )
    to_rotate = sum(before.values()) - before.get(cipher.active_key_id, 0)
    console.print(
        f"active key: {cipher.active_key_id}; values by key: {dict(sorted(before.items()))}"
    )
    with Progress(
        TextColumn("[bold]re-encrypting[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("PII values", total=to_rotate)
        result = rotate_all(
            runtime.database,
            cipher=cipher,
            clock=runtime.clock,
            tables=metadata.sorted_tables,
            batch_size=batch_size,
            on_batch=lambda column, rotated: progress.update(
                task, advance=rotated, description=column
            ),
        )
    with runtime.work(read_only=True) as work:
        after = count_by_key(
            work.session, active_key_id=cipher.active_key_id, tables=metadata.sorted_tables
        )
    console.print(f"rotated {result.rotated} value(s) in {result.batches} batch(es)")
    console.print(f"values by key now: {dict(sorted(after.items()))}")
    leftover = {key: count for key, count in after.items() if key != cipher.active_key_id}
    if leftover:
        console.print(
            f"[yellow]values still under other keys: {leftover} (written by a process that has not "
            "reloaded the keys yet?) — run `usefirst keys rotate` again[/yellow]"
        )
        raise typer.Exit(code=1)
    console.print(
        f"[green]every PII value is under the active key {cipher.active_key_id}[/green]; the "
        "older keys are no longer needed for reading and may be removed from the key ring"
    )
