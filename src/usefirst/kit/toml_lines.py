"""Where things are in a TOML document: ``tomllib`` gives no positions for a well-formed file,
but an operator editing a rule file or the dunning ladder needs the line of each problem."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_KEY = re.compile(r"\s*([A-Za-z0-9_\-]+)\s*=")


@dataclass
class TomlLines:
    entries: list[int] = field(default_factory=list)  # the line of each [[name]] header
    entry_keys: list[dict[str, int]] = field(default_factory=list)  # each entry's keys' lines
    top: dict[str, int] = field(default_factory=dict)  # top-level keys and other tables

    def entry(self, index: int) -> int | None:
        return self.entries[index] if index < len(self.entries) else None

    def key(self, index: int, name: str) -> int | None:
        """The line of ``name`` in entry ``index``, else the entry's header."""
        keys = self.entry_keys[index] if index < len(self.entry_keys) else {}
        return keys.get(name, self.entry(index))


def toml_lines(text: str, *, array_table: str) -> TomlLines:
    """Line numbers (from 1) of each ``[[array_table]]`` entry and its keys, and of the other
    top-level keys and tables."""
    lines = TomlLines()
    in_entry = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("[[") and stripped.endswith("]]"):
            in_entry = stripped[2:-2].strip() == array_table
            if in_entry:
                lines.entries.append(number)
                lines.entry_keys.append({})
            continue
        if stripped.startswith("["):
            in_entry = False
            lines.top.setdefault(stripped.strip("[] "), number)
            continue
        match = _KEY.match(line)
        if match:
            if in_entry:
                lines.entry_keys[-1].setdefault(match.group(1), number)
            else:
                lines.top.setdefault(match.group(1), number)
    return lines


def toml_error_line(error: Exception, text: str) -> int | None:
    """The line a ``tomllib`` error points at ("at line N", or "at end of document")."""
    message = str(error)
    match = re.search(r"at line (\d+)", message)
    if match:
        return int(match.group(1))
    if "end of document" in message:
        return max(len(text.splitlines()), 1)
    return None
