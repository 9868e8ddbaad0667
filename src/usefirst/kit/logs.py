"""Structured logs (structlog): JSON lines in production, readable lines in a terminal, every line
carrying the request id of the HTTP request or job it belongs to.

A request id is bound for one HTTP request (accepted from a sane ``X-Request-Id`` or made here)
and for one job (a sweep, one outbox delivery); the outbox stores it with each message so the
worker's delivery, and the webhook it sends, carry the id of the request that caused them.

No line may hold personal data. Code logs ids, codes and counts, never names, national IDs,
phones, emails or addresses; ``redact_personal_data`` is the backstop for text that comes from
elsewhere (an exception message, a third-party library), masking what looks like a national ID,
a phone number or an email address.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, Literal, TextIO

import structlog

REQUEST_ID_HEADER = "X-Request-Id"
LogFormat = Literal["auto", "json", "console"]

# Ids from proxies and clients are uuids, ULIDs or similar tokens; anything else (too long, spaces,
# quotes, control characters) is replaced, so a client cannot forge log lines or headers with it.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,127}")

_NATIONAL_ID = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
_PHONE = re.compile(r"(?<![0-9A-Za-z])(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?![0-9A-Za-z])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
REDACTED = "[redacted]"

# Libraries whose INFO lines carry URLs, SQL parameters or raw request lines.
_QUIET_LOGGERS = ("httpx", "httpcore", "sqlalchemy", "uvicorn.access", "multipart")
_HANDLER_NAME = "usefirst"


def new_request_id() -> str:
    return uuid.uuid4().hex


def sane_request_id(value: str | None) -> str | None:
    """``value`` when it is a plausible request id, else None (the caller makes a new one)."""
    if value is not None and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return None


def current_request_id() -> str | None:
    value = structlog.contextvars.get_contextvars().get("request_id")
    return value if isinstance(value, str) else None


@contextmanager
def request_scope(request_id: str | None = None) -> Iterator[str]:
    """Bind ``request_id`` (a new one when None) to every log line until the block ends."""
    bound = request_id or new_request_id()
    tokens = structlog.contextvars.bind_contextvars(request_id=bound)
    try:
        yield bound
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


@contextmanager
def job_scope() -> Iterator[str]:
    """A job's request id: the enclosing request's when there is one (a sandbox clock advance runs
    sweeps inside its HTTP request), else a new one."""
    existing = current_request_id()
    if existing is not None:
        yield existing
        return
    with request_scope() as request_id:
        yield request_id


def redact_text(text: str) -> str:
    text = _EMAIL.sub(REDACTED, text)
    text = _NATIONAL_ID.sub(REDACTED, text)
    return _PHONE.sub(REDACTED, text)


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: _redact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(item) for item in value]
    return value


# Values the engine itself fills in with ids, codes and numbers: no need to scan them.
_ENGINE_KEYS = frozenset(
    {"timestamp", "level", "logger", "request_id", "method", "route", "status", "duration_ms"}
)


def redact_personal_data(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in event_dict.items():
        if key not in _ENGINE_KEYS and not key.startswith("_") and not isinstance(value, int):
            event_dict[key] = _redact(value)
    return event_dict


class _StandardErrorHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each line (a test runner or a
    supervisor may swap it after logging was configured)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)


# Until a process calls configure_logging (serve, worker), structlog hands plain key=value lines
# to the standard library, which shows warnings and errors on stderr as it always did.
structlog.configure(
    processors=[
        structlog.stdlib.filter_by_level,  # a line below the level costs one check, no rendering
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        redact_personal_data,
        structlog.processors.KeyValueRenderer(key_order=["event"]),
    ],
    logger_factory=structlog.stdlib.LoggerFactory(),
    wrapper_class=structlog.stdlib.BoundLogger,
    cache_logger_on_first_use=False,
)


def configure_logging(
    *, log_format: LogFormat = "auto", level: str = "INFO", stream: TextIO | None = None
) -> None:
    """Route structlog and the standard library's loggers (uvicorn, alembic, …) through one
    handler: JSON when ``log_format`` is json (or auto and the stream is not a terminal)."""
    as_json = log_format == "json" or (log_format == "auto" and not (stream or sys.stderr).isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=(stream or sys.stderr).isatty())
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_personal_data,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream) if stream is not None else _StandardErrorHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
