"""Publishing the configuration documents operators edit without code: the risk rules and the
dunning ladder. Each is a TOML document checked by its own domain's parser (risk's rules,
collections' ladder; every problem with its line) and saved as a new version in the database
(``kit.config_versions``), where it replaces the file from then on. The console's editors and
``usefirst config`` both go through here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from usefirst.collections.ladder import (
    DEFAULT_LADDER_FILE,
    LADDER_CONFIG_KIND,
    LadderError,
    parse_ladder,
)
from usefirst.kit import config_versions
from usefirst.kit.errors import ValidationFailed
from usefirst.kit.models import ConfigVersion
from usefirst.kit.settings import Settings
from usefirst.kit.toml_lines import toml_lines
from usefirst.risk.rules import (
    DEFAULT_RULES_FILE,
    RULES_CONFIG_KIND,
    RuleFileError,
    parse_rule_set,
)

Problems = list[tuple[int | None, str]]


class ConfigInvalid(ValidationFailed):
    code = "config_invalid"
    default_message = "The document is not valid; nothing was saved."

    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        super().__init__(
            "; ".join(
                f"line {line}: {message}" if line is not None else message
                for line, message in problems
            )
        )


@dataclass(frozen=True)
class Editable:
    kind: str
    # Parses the text and returns its label (the rule file's own version string), or raises
    # ConfigInvalid.
    check: Callable[[str], str]
    file_of: Callable[[Settings], Path]
    # For a document whose label is the version it names itself (recorded with every decision
    # made under it): the line of that name. Such a version may stand for one content only.
    version_line: Callable[[str], int | None] | None = None


def _check_rules(text: str) -> str:
    try:
        return parse_rule_set(text, source="rules").version
    except RuleFileError as error:
        raise ConfigInvalid(error.problems) from None


def _rules_version_line(text: str) -> int | None:
    return toml_lines(text, array_table="rules").top.get("version")


def _check_ladder(text: str) -> str:
    try:
        ladder = parse_ladder(text, source="ladder")
    except LadderError as error:
        raise ConfigInvalid(error.problems) from None
    return f"{len(ladder.steps)} steps, day {ladder.steps[0].day} to {ladder.steps[-1].day}"


EDITABLE: dict[str, Editable] = {
    RULES_CONFIG_KIND: Editable(
        kind=RULES_CONFIG_KIND,
        check=_check_rules,
        file_of=lambda settings: settings.risk_rules_file or DEFAULT_RULES_FILE,
        version_line=_rules_version_line,
    ),
    LADDER_CONFIG_KIND: Editable(
        kind=LADDER_CONFIG_KIND,
        check=_check_ladder,
        file_of=lambda settings: settings.dunning_ladder_file or DEFAULT_LADDER_FILE,
    ),
}


def editable(kind: str) -> Editable:
    try:
        return EDITABLE[kind]
    except KeyError:
        raise ValidationFailed(
            f"unknown configuration {kind!r}; known: {', '.join(EDITABLE)}", field="kind"
        ) from None


@dataclass(frozen=True)
class InForce:
    kind: str
    content: str
    number: int  # 0: no version saved, the file is in force
    source: str  # "version 3" or the file's path
    version: ConfigVersion | None


def in_force(session: Session, *, kind: str, settings: Settings) -> InForce:
    """The document in force now, as text (uncached: for editors, not for the hot path)."""
    document = editable(kind)
    version = config_versions.newest(session, kind=kind)
    if version is not None:
        return InForce(
            kind=kind,
            content=version.content,
            number=version.number,
            source=f"version {version.number}",
            version=version,
        )
    path = document.file_of(settings)
    return InForce(
        kind=kind,
        content=path.read_text(encoding="utf-8"),
        number=0,
        source=str(path),
        version=None,
    )


def normalise(text: str) -> str:
    """Line endings as a browser's form sends them (CRLF) or a file has them, stored as LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def check(session: Session, *, kind: str, text: str, settings: Settings) -> str:
    """Parse ``text`` (normalised) and return its label, or raise ConfigInvalid. A document
    that names its own version must not reuse the version of another content: not of a saved
    version, nor of the file (in force until the first save), since decisions record only the
    version's name."""
    document = editable(kind)
    label = document.check(text)
    if document.version_line is None:
        return label
    taken_by = [
        f"saved version {row.number}"
        for row in config_versions.labelled(session, kind=kind, label=label)
        if row.content != text
    ]
    path = document.file_of(settings)
    try:
        file_text = normalise(path.read_text(encoding="utf-8"))
        file_label: str | None = document.check(file_text)
    except (OSError, UnicodeDecodeError, ConfigInvalid):
        file_label = None  # a file that cannot be used never recorded its version
    if file_label == label and file_text != text:
        taken_by.insert(0, f"the file {path}")
    if taken_by:
        raise ConfigInvalid(
            [
                (
                    document.version_line(text),
                    f"version {label!r} already names other content ({', '.join(taken_by)}); "
                    "a changed document needs a new version",
                )
            ]
        )
    return label


def publish(
    session: Session,
    *,
    kind: str,
    text: str,
    based_on: int,
    note: str | None,
    created_by: str,
    settings: Settings,
    now: datetime,
) -> ConfigVersion:
    """Check ``text`` and save it as the next version (refused, saving nothing, if invalid)."""
    text = normalise(text)
    label = check(session, kind=kind, text=text, settings=settings)
    return config_versions.publish(
        session,
        kind=kind,
        content=text,
        label=label,
        based_on=based_on,
        note=note,
        created_by=created_by,
        now=now,
    )
