"""``usefirst audit …`` and ``usefirst keys …``: check the PII audit chain, rotate PII keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from usefirst.cli.output import JsonOption, fail, print_json, stderr, stdout

if TYPE_CHECKING:
    from usefirst.runtime import Runtime

audit_app = typer.Typer(help="The tamper-evident audit log of PII access.", no_args_is_help=True)
keys_app = typer.Typer(help="PII encryption keys.", no_args_is_help=True)


def _runtime() -> Runtime:
    from usefirst.kit.settings import get_settings
    from usefirst.runtime import Runtime

    return Runtime(get_settings())


@audit_app.command("verify")
def audit_verify(as_json: JsonOption = False) -> None:
    """Recompute the hash chain of the audit log; report the first broken row.

    Exit codes:
    0 the chain is intact;
    1 it is broken."""
    from usefirst.privacy.audit import verify_chain

    runtime = _runtime()
    with runtime.work(read_only=True) as work:
        report = verify_chain(work.session)
    problem = report.first_break
    if as_json:
        print_json(
            {
                "rows_checked": report.rows_checked,
                "head_seq": report.head_seq,
                "intact": report.is_intact,
                "first_break": None
                if problem is None
                else {"seq": problem.seq, "entry_id": problem.entry_id, "reason": problem.reason},
            }
        )
    else:
        out = stdout()
        out.print(f"audit rows checked: {report.rows_checked}; chain head: {report.head_seq}")
        if problem is None:
            out.print("audit chain intact: yes", style="green")
        else:
            out.print(
                Text.assemble(
                    (f"audit chain broken at row {problem.seq}", "red"),
                    f" ({problem.entry_id})" if problem.entry_id else "",
                    f": {problem.reason}",
                )
            )
    if problem is not None:
        raise typer.Exit(code=1)


@keys_app.command("add")
def keys_add(
    key_id: Annotated[str, typer.Option("--key-id", help="Id of the new key, e.g. k2.")],
) -> None:
    """Add a new PII key to the key file and make it active (old keys stay for reading).

    Restart the serving processes, then run ``usefirst keys rotate``.

    Exit codes:
    0 added;
    2 refused (keys set in the environment, a key id in use or not allowed):
    nothing changes."""
    from usefirst.kit.settings import get_settings
    from usefirst.privacy.keys import KeyFileError, add_key_to_file

    settings = get_settings()
    try:
        add_key_to_file(settings, key_id=key_id)
    except KeyFileError as error:
        fail(str(error), code=2)
    stdout().print(
        f"key {key_id} added to {settings.keys_file} and made active; restart the servers and "
        "workers, then run `usefirst keys rotate`"
    )


@keys_app.command("rotate")
def keys_rotate(
    batch_size: Annotated[int, typer.Option(min=1, max=10_000)] = 500,
    as_json: JsonOption = False,
) -> None:
    """Re-encrypt every PII value not under the active key, in batches (resumable, online);
    progress goes to standard error.

    Exit codes:
    0 every value is under the active key;
    1 some are still under other keys (written meanwhile by a process that had
    not reloaded the keys): run it again."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from usefirst.models import metadata
    from usefirst.privacy.keys import count_by_key, rotate_all

    runtime = _runtime()
    cipher = runtime.cipher
    with runtime.work(read_only=True) as work:
        before = dict(
            sorted(
                count_by_key(
                    work.session, active_key_id=cipher.active_key_id, tables=metadata.sorted_tables
                ).items()
            )
        )
    to_rotate = sum(before.values()) - before.get(cipher.active_key_id, 0)
    out = stdout()
    if not as_json:
        out.print(f"active key: {cipher.active_key_id}; values by key: {before}")
    progress_console = stderr()
    with Progress(
        TextColumn("[bold]re-encrypting[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=progress_console,
        disable=not progress_console.is_terminal,
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
        after = dict(
            sorted(
                count_by_key(
                    work.session, active_key_id=cipher.active_key_id, tables=metadata.sorted_tables
                ).items()
            )
        )
    leftover = {key: count for key, count in after.items() if key != cipher.active_key_id}
    if as_json:
        print_json(
            {
                "active_key_id": cipher.active_key_id,
                "values_by_key_before": before,
                "rotated": result.rotated,
                "batches": result.batches,
                "values_by_key_after": after,
                "values_under_other_keys": leftover,
            }
        )
    else:
        out.print(f"rotated {result.rotated} value(s) in {result.batches} batch(es)")
        out.print(f"values by key now: {after}")
        if leftover:
            out.print(
                f"values still under other keys: {leftover} (written by a process that has not "
                "reloaded the keys yet?) — run `usefirst keys rotate` again",
                style="yellow",
            )
        else:
            out.print(
                Text.assemble(
                    (f"every PII value is under the active key {cipher.active_key_id}", "green"),
                    "; the older keys are no longer needed for reading and may be removed from "
                    "the key ring",
                )
            )
    if leftover:
        raise typer.Exit(code=1)
