"""The dunning ladder, read from a TOML file (or a version saved in the console) and validated
before use."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from usefirst.kit.toml_lines import toml_error_line, toml_lines
from usefirst.notify.templates import TEMPLATE_IDS

DEFAULT_LADDER_FILE = Path(__file__).with_name("ladder.toml")
# Versions saved in the console live in config_versions under this kind.
LADDER_CONFIG_KIND = "dunning_ladder"
CHANNELS = ("push", "sms", "email")


class LadderError(ValueError):
    """A ladder that cannot be used; ``problems`` are ``(line, message)`` pairs."""

    def __init__(self, source: str, problems: list[tuple[int | None, str]]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(
            "\n".join(
                f"{source}:{line}: {message}" if line is not None else f"{source}: {message}"
                for line, message in problems
            )
        )


class StepConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    day: int = Field(ge=-30, le=3650)
    channels: tuple[Literal["push", "sms", "email"], ...] = ()
    template: str | None = None
    action: Literal["call_queue", "bureau_report", "legal_referral", "charge_off"] | None = None
    send_at: time = time(10, 0)

    @model_validator(mode="after")
    def one_kind(self) -> StepConfig:
        if self.action is None and not (self.channels and self.template):
            raise ValueError("a step needs either an action, or channels and a template")
        if self.action is not None and (self.channels or self.template):
            raise ValueError("a step with an action takes no channels or template")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("a channel is listed twice")
        return self


@dataclass(frozen=True)
class Ladder:
    steps: tuple[StepConfig, ...]

    def reminder_steps(self) -> list[StepConfig]:
        return [step for step in self.steps if step.action is None]

    def action_day(self, action: str) -> int | None:
        for step in self.steps:
            if step.action == action:
                return step.day
        return None


def parse_ladder(text: str, *, source: str = "ladder") -> Ladder:
    """Parse and validate a ladder; every problem is reported with its line."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        line = toml_error_line(error, text)
        raise LadderError(source, [(line, f"not valid TOML: {error}")]) from None
    positions = toml_lines(text, array_table="step")
    problems: list[tuple[int | None, str]] = []
    for key in raw:
        if key != "step":
            problems.append((positions.top.get(key), f"unknown top-level key {key!r}"))
    entries = raw.get("step", [])
    if not isinstance(entries, list) or not entries:
        problems.append((positions.top.get("step"), "the ladder needs at least one [[step]]"))
        entries = []
    steps: list[tuple[int, StepConfig]] = []
    for index, entry in enumerate(entries):
        label = f"step #{index + 1}"
        try:
            step = StepConfig.model_validate(entry)
        except ValidationError as error:
            for detail in error.errors():
                key = next((str(part) for part in detail["loc"] if isinstance(part, str)), "")
                line = positions.key(index, key) if key else positions.entry(index)
                where = f" {key}:" if key else ""
                message = str(detail["msg"]).removeprefix("Value error, ")
                problems.append((line, f"{label}:{where} {message}"))
            continue
        if step.template is not None and step.template not in TEMPLATE_IDS:
            problems.append(
                (
                    positions.key(index, "template"),
                    f"{label}: unknown template {step.template!r}; "
                    f"known: {', '.join(TEMPLATE_IDS)}",
                )
            )
        steps.append((index, step))
    seen_days: dict[int, int] = {}
    seen_actions: dict[str, int] = {}
    previous_day: int | None = None
    for index, step in steps:
        label = f"step #{index + 1}"
        line = positions.key(index, "day")
        if step.day in seen_days:
            problems.append(
                (line, f"{label}: day {step.day} already has step #{seen_days[step.day] + 1}")
            )
        elif previous_day is not None and step.day < previous_day:
            problems.append(
                (line, f"{label}: day {step.day} comes after day {previous_day}: keep the steps "
                 "in increasing order of day")
            )  # fmt: skip
        seen_days.setdefault(step.day, index)
        previous_day = step.day if previous_day is None else max(previous_day, step.day)
        if step.action is not None:
            if step.action in seen_actions:
                problems.append(
                    (
                        positions.key(index, "action"),
                        f"{label}: action {step.action!r} is already at step "
                        f"#{seen_actions[step.action] + 1}; each action may appear once",
                    )
                )
            seen_actions.setdefault(step.action, index)
    if problems:
        raise LadderError(source, problems)
    return Ladder(steps=tuple(step for _, step in steps))


def load_ladder(path: Path | None = None) -> Ladder:
    path = path or DEFAULT_LADDER_FILE
    return parse_ladder(path.read_text(encoding="utf-8"), source=str(path))
