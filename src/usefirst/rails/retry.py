"""The auto-debit retry schedule: when a due instalment is charged and when a declined charge is
tried again, read from a TOML file (``retry.toml`` beside this module by default, in the form of
the dunning ladder's file) and validated before use, every problem with its line."""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass
from datetime import date, time, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from usefirst.kit.toml_lines import toml_error_line, toml_lines

DEFAULT_RETRY_FILE = Path(__file__).with_name("retry.toml")


class RetryScheduleError(ValueError):
    """A schedule that cannot be used; ``problems`` are ``(line, message)`` pairs."""

    def __init__(self, source: str, problems: list[tuple[int | None, str]]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(
            "\n".join(
                f"{source}:{line}: {message}" if line is not None else f"{source}: {message}"
                for line, message in problems
            )
        )


class _RetryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    charge_at: time = time(10, 0)
    retry_days: tuple[int, ...] = (1, 3, 7)
    max_attempts: int = Field(default=4, ge=1, le=10)

    @field_validator("retry_days")
    @classmethod
    def increasing(cls, days: tuple[int, ...]) -> tuple[int, ...]:
        if any(day < 1 or day > 60 for day in days):
            raise ValueError("each retry day must be between 1 and 60 days after the due date")
        if any(later <= earlier for earlier, later in itertools.pairwise(days)):
            raise ValueError("retry days must be strictly increasing")
        return days


@dataclass(frozen=True)
class RetrySchedule:
    charge_at: time
    retry_days: tuple[int, ...]
    max_attempts: int

    def next_attempt_on(self, *, due_on: date, failed_attempt: int, today: date) -> date | None:
        """When attempt ``failed_attempt + 1`` is made after attempt ``failed_attempt`` failed on
        ``today``, or None when no attempt is left. A retry day already past (a late first
        charge) is skipped: the next try is never before tomorrow."""
        if failed_attempt >= self.max_attempts:
            return None
        for day in self.retry_days[failed_attempt - 1 :]:
            candidate = due_on + timedelta(days=day)
            if candidate > today:
                return candidate
        return None


def _in_quiet_hours(moment: time, quiet_start: time, quiet_end: time) -> bool:
    if quiet_start > quiet_end:  # the quiet hours span midnight
        return moment >= quiet_start or moment < quiet_end
    return quiet_start <= moment < quiet_end


def parse_retry_schedule(
    text: str, *, quiet_start: time, quiet_end: time, source: str = "retry schedule"
) -> RetrySchedule:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RetryScheduleError(
            source, [(toml_error_line(error, text), f"not valid TOML: {error}")]
        ) from None
    positions = toml_lines(text, array_table="retry")
    try:
        config = _RetryConfig.model_validate(raw)
    except ValidationError as error:
        problems: list[tuple[int | None, str]] = []
        for detail in error.errors():
            key = next((str(part) for part in detail["loc"] if isinstance(part, str)), "")
            message = str(detail["msg"]).removeprefix("Value error, ")
            problems.append((positions.top.get(key), f"{key}: {message}" if key else message))
        raise RetryScheduleError(source, problems) from None
    problems = []
    if config.max_attempts > len(config.retry_days) + 1:
        problems.append(
            (
                positions.top.get("max_attempts"),
                f"max_attempts: {config.max_attempts} attempts need "
                f"{config.max_attempts - 1} retry days, the file has {len(config.retry_days)}",
            )
        )
    if _in_quiet_hours(config.charge_at, quiet_start, quiet_end):
        problems.append(
            (
                positions.top.get("charge_at"),
                f"charge_at: {config.charge_at:%H:%M} falls in the quiet hours "
                f"({quiet_start:%H:%M}–{quiet_end:%H:%M})",
            )
        )
    if problems:
        raise RetryScheduleError(source, problems)
    return RetrySchedule(
        charge_at=config.charge_at,
        retry_days=config.retry_days,
        max_attempts=config.max_attempts,
    )


def load_retry_schedule(path: Path | None, *, quiet_start: time, quiet_end: time) -> RetrySchedule:
    path = path or DEFAULT_RETRY_FILE
    return parse_retry_schedule(
        path.read_text(encoding="utf-8"),
        quiet_start=quiet_start,
        quiet_end=quiet_end,
        source=str(path),
    )
