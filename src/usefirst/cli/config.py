"""``usefirst config``: the risk rules and the dunning ladder as versions in the database, the
same documents the console edits."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from usefirst.runtime import Runtime

config_app = typer.Typer(
    help="Risk rules and dunning ladder: show, check and publish versions.", no_args_is_help=True
)
console = Console()
errors = Console(stderr=True, soft_wrap=True)  # a "file:line: reason" stays on one line
KIND_HELP = "risk_rules or dunning_ladder"


def _runtime() -> Runtime:
    from usefirst.kit.settings import get_settings
    from usefirst.runtime import Runtime

    return Runtime(get_settings())


def _kind(kind: str) -> str:
    from usefirst.flows.config_publishing import EDITABLE

    if kind not in EDITABLE:
        errors.print(f"[red]unknown kind {kind!r}; use {KIND_HELP}[/red]", highlight=False)
        raise typer.Exit(code=2)
    return kind


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        errors.print(f"[red]cannot read {file}: {error}[/red]", highlight=False)
        raise typer.Exit(code=2) from None


def _print_problems(file: Path, problems: list[tuple[int | None, str]]) -> None:
    for line, message in problems:
        where = f"{file}:{line}" if line is not None else str(file)
        errors.print(f"[red]{where}: {message}[/red]", highlight=False)


@config_app.command("show")
def show(kind: Annotated[str, typer.Argument(help=KIND_HELP)]) -> None:
    """Print the document in force (to edit it and publish it back); where it comes from goes to
    standard error."""
    from usefirst.flows.config_publishing import in_force

    runtime = _runtime()
    with runtime.work(read_only=True) as work:
        document = in_force(work.session, kind=_kind(kind), settings=runtime.settings)
    errors.print(f"in force: {document.source}", highlight=False)
    typer.echo(document.content, nl=False)


@config_app.command("history")
def history(kind: Annotated[str, typer.Argument(help=KIND_HELP)]) -> None:
    """List the saved versions, newest first."""
    from usefirst.kit import config_versions

    runtime = _runtime()
    table = Table(title=f"{kind} versions")
    for column in ("version", "summary", "saved by", "saved at (UTC)", "note"):
        table.add_column(column)
    with runtime.work(read_only=True) as work:
        rows = config_versions.history(work.session, kind=_kind(kind), limit=100)
        for row in rows:
            table.add_row(
                str(row.number),
                row.label,
                row.created_by,
                f"{row.created_at:%Y-%m-%d %H:%M}",
                row.note or "",
            )
    console.print(table)
    if not rows:
        console.print("no version saved yet: the file is in force")


@config_app.command("publish")
def publish(
    kind: Annotated[str, typer.Argument(help=KIND_HELP)],
    file: Annotated[Path, typer.Argument(help="The TOML document to publish.")],
    note: Annotated[str, typer.Option(help="Why it changed (kept with the version).")] = "",
    based_on: Annotated[
        int | None,
        typer.Option(
            help="Refuse if the newest version is no longer this one (0: none saved yet).",
        ),
    ] = None,
) -> None:
    """Check a document and save it as the next version, in force everywhere from now on (exit 2,
    saving nothing, if it has problems)."""
    from usefirst.flows import config_publishing
    from usefirst.kit import config_versions
    from usefirst.kit.clock import system_now
    from usefirst.kit.errors import UsefirstError

    kind = _kind(kind)
    text = _read(file)
    runtime = _runtime()
    try:
        with runtime.work() as work:
            base = (
                config_versions.newest_number(work.session, kind=kind)
                if based_on is None
                else based_on
            )
            version = config_publishing.publish(
                work.session,
                kind=kind,
                text=text,
                based_on=base,
                note=note,
                created_by="cli",
                settings=runtime.settings,
                now=system_now(),
            )
            number, label = version.number, version.label
    except config_publishing.ConfigInvalid as invalid:
        _print_problems(file, invalid.problems)
        errors.print("[red]rejected: nothing was saved[/red]")
        raise typer.Exit(code=2) from None
    except UsefirstError as refused:
        errors.print(f"[red]{refused.message}[/red]", highlight=False)
        raise typer.Exit(code=1) from None
    console.print(f"[green]saved {kind} version {number}[/green] ({label})", highlight=False)
