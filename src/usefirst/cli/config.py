"""``usefirst config``: the risk rules and the dunning ladder as versions in the database, the
same documents the console edits."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from usefirst.cli.output import (
    JsonOption,
    fail,
    print_json,
    report_file_problems,
    stderr,
    stdout,
)

if TYPE_CHECKING:
    from usefirst.runtime import Runtime

config_app = typer.Typer(
    help="Risk rules and dunning ladder: show, check and publish versions.", no_args_is_help=True
)
KIND_HELP = "risk_rules or dunning_ladder"


def _runtime() -> Runtime:
    from usefirst.kit.settings import get_settings
    from usefirst.runtime import Runtime

    return Runtime(get_settings())


def _kind(kind: str) -> str:
    from usefirst.flows.config_publishing import EDITABLE

    if kind not in EDITABLE:
        fail(f"unknown kind {kind!r}; use {KIND_HELP}", code=2)
    return kind


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        fail(f"cannot read {file}: {error}", code=2)


@config_app.command("show")
def show(kind: Annotated[str, typer.Argument(help=KIND_HELP)], as_json: JsonOption = False) -> None:
    """Print the document in force (to edit it and publish it back); where it comes from goes to
    standard error.

    Exit codes:
    0 shown;
    2 an unknown kind."""
    from usefirst.flows.config_publishing import in_force

    runtime = _runtime()
    with runtime.work(read_only=True) as work:
        document = in_force(work.session, kind=_kind(kind), settings=runtime.settings)
    if as_json:
        print_json(
            {
                "kind": document.kind,
                "version": document.number,
                "source": document.source,
                "content": document.content,
            }
        )
        return
    stderr().print(f"in force: {document.source}")
    typer.echo(document.content, nl=False)


@config_app.command("history")
def history(
    kind: Annotated[str, typer.Argument(help=KIND_HELP)], as_json: JsonOption = False
) -> None:
    """List the saved versions, newest first (the newest 100).

    Exit codes:
    0 listed;
    2 an unknown kind."""
    from usefirst.kit import config_versions

    runtime = _runtime()
    with runtime.work(read_only=True) as work:
        versions = [
            {
                "version": row.number,
                "summary": row.label,
                "saved_by": row.created_by,
                "saved_at": row.created_at,
                "note": row.note,
            }
            for row in config_versions.history(work.session, kind=_kind(kind), limit=100)
        ]
    if as_json:
        print_json({"kind": kind, "versions": versions})
        return
    table = Table(title=f"{kind} versions")
    for column in ("version", "summary", "saved by", "saved at (UTC)", "note"):
        table.add_column(column)
    for version in versions:
        table.add_row(
            str(version["version"]),
            str(version["summary"]),
            str(version["saved_by"]),
            f"{version['saved_at']:%Y-%m-%d %H:%M}",
            str(version["note"] or ""),
        )
    out = stdout()
    out.print(table)
    if not versions:
        out.print("no version saved yet: the file is in force")


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
    """Check a document and save it as the next version, in force everywhere from now on.

    Exit codes:
    0 saved;
    1 refused (a version was saved after the one it is based on, a note too
    long);
    2 an unknown kind, an unreadable file or a document with problems (each on
    standard error as FILE:LINE: message).
    Nothing is saved unless 0."""
    from usefirst.flows import config_publishing
    from usefirst.kit import config_versions
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
                now=work.now,
            )
            number, label = version.number, version.label
    except config_publishing.ConfigInvalid as invalid:
        report_file_problems(file, invalid.problems)
        fail("rejected: nothing was saved", code=2)
    except UsefirstError as refused:
        fail(refused.message, code=1)
    stdout().print(f"saved {kind} version {number} ({label})", style="green")
