"""How every ``usefirst`` command writes, so that scripts and people can rely on it.

What a command reports goes to standard output, a check's findings included; errors and progress
go to standard error. On a terminal rich lays lines out to its width, in colour. Anywhere else (a
pipe, a file, a log, a test's captured output) every line is written whole and plain: rich at 80
columns would cut ``FILE:LINE: message`` in pieces that ``grep FILE:LINE`` no longer finds. An
error is one line: ``FILE:LINE: message`` for a problem in a file, ``--OPTION: message`` for a bad
option, otherwise the message alone. With ``--json`` a command prints one JSON document on
standard output instead, and ends with the same exit code.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, NoReturn, TextIO

import typer
from rich.console import Console

# Wider than any line a command writes: rich lays tables out within the console's width and would
# otherwise wrap or truncate their cells.
UNBOUNDED_WIDTH = 1_000_000

JsonOption = Annotated[
    bool,
    typer.Option(
        "--json", help="Print one JSON document on standard output instead (same exit codes)."
    ),
]


def console_for(stream: TextIO) -> Console:
    # Markup and emoji codes stay off: a path or a message with "[x]" or ":x:" in it prints as is.
    if stream.isatty():
        return Console(file=stream, markup=False, emoji=False)
    return Console(
        file=stream,
        markup=False,
        emoji=False,
        force_terminal=False,
        color_system=None,
        highlight=False,
        soft_wrap=True,
        width=UNBOUNDED_WIDTH,
    )


# Built when a command writes rather than at import: the streams are the ones in place then
# (a test runner swaps them for each command it runs).
def stdout() -> Console:
    return console_for(sys.stdout)


def stderr() -> Console:
    return console_for(sys.stderr)


def fail(message: str, *, code: int) -> NoReturn:
    """Report an error on standard error and end the command with exit ``code``."""
    stderr().print(message, style="red")
    raise typer.Exit(code)


def iso_date(value: str, *, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option}: use YYYY-MM-DD, not {value!r}", code=2)


def file_problem(file: Path | str, line: int | None, message: str) -> str:
    return f"{file}:{line}: {message}" if line is not None else f"{file}: {message}"


def report_file_problems(file: Path | str, problems: Iterable[tuple[int | None, str]]) -> None:
    errors = stderr()
    for line, message in problems:
        errors.print(file_problem(file, line, message), style="red")


def print_json(document: Mapping[str, object]) -> None:
    """The one JSON document of a ``--json`` run."""
    typer.echo(json_text(document))


def json_text(document: Mapping[str, object]) -> str:
    """Keys sorted, dates as ISO strings; money stays in integer minor units as the engine keeps
    it. NaN is refused: it is not JSON, and a reader's parser would fail on it."""
    return json.dumps(
        document,
        ensure_ascii=False,
        indent=2,
        sort_keys=True,
        allow_nan=False,
        default=_json_value,
    )


def _json_value(value: object) -> str:
    if isinstance(value, date):  # datetimes too
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
