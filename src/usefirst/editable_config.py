"""The configuration documents operators edit without code: the risk rules and the dunning
ladder. Each is a TOML document checked by its own domain's parser (every problem with its line)
and saved as a new version in the database (``kit.config_versions``), where it replaces the file
from then on. The console's editors and ``usefirst config`` both go through here."""

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


def _check_rules(text: str) -> str:
    try:
        return parse_rule_set(text, source="rules").version
    except RuleFileError as error:
        raise ConfigInvalid(error.problems) from None


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


def publish(
    session: Session,
    *,
    kind: str,
    text: str,
    based_on: int,
    note: str | None,
    created_by: str,
    now: datetime,
) -> ConfigVersion:
    """Check ``text`` and save it as the next version (refused, saving nothing, if invalid)."""
    document = editable(kind)
    text = normalise(text)
    label = document.check(text)
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
