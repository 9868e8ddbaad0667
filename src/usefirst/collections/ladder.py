"""The dunning ladder, read from a TOML file and validated before use."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_LADDER_FILE = Path(__file__).with_name("ladder.toml")
CHANNELS = ("push", "sms", "email")
ACTIONS = ("call_queue", "bureau_report", "legal_referral", "charge_off")


class LadderError(ValueError):
    pass


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


class LadderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    step: tuple[StepConfig, ...]

    @model_validator(mode="after")
    def ordered_and_unique(self) -> LadderConfig:
        days = [step.day for step in self.step]
        if days != sorted(days) or len(set(days)) != len(days):
            raise ValueError("steps must be in increasing order of day, one step per day")
        actions = [step.action for step in self.step if step.action]
        if len(set(actions)) != len(actions):
            raise ValueError("each action may appear once")
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
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise LadderError(f"{source}: not valid TOML: {error}") from None
    try:
        config = LadderConfig.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise LadderError(f"{source}: {where}: {first['msg']}") from None
    return Ladder(steps=config.step)


def load_ladder(path: Path | None = None) -> Ladder:
    path = path or DEFAULT_LADDER_FILE
    return parse_ladder(path.read_text(encoding="utf-8"), source=str(path))
