"""Operator-edited configuration documents (the risk rules, the dunning ladder, and which fraud
model is promoted), versioned in the database so that a change made in the console or the CLI
reaches every process: the API servers, the worker and the sweep.

A document is saved as a new version with the next number after it was validated by its
domain's parser; nothing is ever edited in place (PostgreSQL refuses it with a trigger). The
highest number is in force; until the first version is saved, the domain's file is (its path in
settings, or the default shipped with the package).

Reading what is in force is on the checkout's hot path, so each process keeps the parsed document
and asks the database for the newest number at most every ``max_age_seconds``. A save in this
process takes effect here as soon as it commits.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from usefirst.kit.clock import monotonic_ns
from usefirst.kit.errors import Conflict, ValidationFailed
from usefirst.kit.ids import new_id
from usefirst.kit.models import ConfigVersion

KINDS = ("risk_rules", "dunning_ladder", "fraud_model")
MAX_CONTENT_CHARS = 200_000
MAX_NOTE_CHARS = 500

T = TypeVar("T")


class ConfigVersionStale(Conflict):
    code = "config_version_stale"
    default_message = "Someone saved a newer version since this one was opened."


class ConfigUnchanged(Conflict):
    code = "config_unchanged"
    default_message = "This is the version already in force: nothing to save."


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValidationFailed(f"unknown configuration kind {kind!r}", field="kind")


def digest(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def newest(session: Session, *, kind: str) -> ConfigVersion | None:
    _check_kind(kind)
    return session.scalars(
        select(ConfigVersion)
        .where(ConfigVersion.kind == kind)
        .order_by(ConfigVersion.number.desc())
        .limit(1)
    ).first()


def newest_number(session: Session, *, kind: str) -> int:
    """0 while no version has been saved."""
    number = session.scalar(
        select(func.max(ConfigVersion.number)).where(ConfigVersion.kind == kind)
    )
    return int(number or 0)


def history(session: Session, *, kind: str, limit: int = 20) -> list[ConfigVersion]:
    _check_kind(kind)
    return list(
        session.scalars(
            select(ConfigVersion)
            .where(ConfigVersion.kind == kind)
            .order_by(ConfigVersion.number.desc())
            .limit(limit)
        )
    )


def get_version(session: Session, *, kind: str, number: int) -> ConfigVersion | None:
    _check_kind(kind)
    return session.scalars(
        select(ConfigVersion).where(ConfigVersion.kind == kind, ConfigVersion.number == number)
    ).first()


def labelled(session: Session, *, kind: str, label: str) -> list[ConfigVersion]:
    """The saved versions of ``kind`` with this label, oldest first."""
    return list(
        session.scalars(
            select(ConfigVersion)
            .where(ConfigVersion.kind == kind, ConfigVersion.label == label)
            .order_by(ConfigVersion.number)
        )
    )


def publish(
    session: Session,
    *,
    kind: str,
    content: str,
    label: str,
    based_on: int,
    note: str | None,
    created_by: str,
    now: datetime,
) -> ConfigVersion:
    """Save ``content`` (already validated by its domain) as the next version. ``based_on`` is
    the number the editor started from (0 for the file): if someone saved meanwhile, the save is
    refused rather than silently overwriting their change."""
    _check_kind(kind)
    if len(content) > MAX_CONTENT_CHARS:
        raise ValidationFailed(
            f"the document is longer than {MAX_CONTENT_CHARS:,} characters", field="content"
        )
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise ValidationFailed(f"the note is longer than {MAX_NOTE_CHARS} characters", field="note")
    current = newest(session, kind=kind)
    current_number = current.number if current is not None else 0
    if based_on != current_number:
        raise ConfigVersionStale(
            f"Version {current_number} was saved after this edit started from version "
            f"{based_on}; open the editor again to see it."
        )
    sha256 = digest(content)
    if current is not None and current.sha256 == sha256:
        raise ConfigUnchanged()
    version = ConfigVersion(
        id=new_id("config_version"),
        kind=kind,
        number=current_number + 1,
        content=content,
        sha256=sha256,
        label=label[:120],
        note=note,
        created_by=created_by,
        created_at=now,
    )
    session.add(version)
    try:
        # Two saves racing from the same base: the unique (kind, number) lets one through.
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise ConfigVersionStale() from None
    _forget_after_commit(session, kind)
    return version


# --- what is in force, cached per process --------------------------------------------------


@dataclass
class _Cached:
    checked_ns: int
    number: int
    value: Any


# Keyed by the connection pool, which the engine and its read-only variant share: one entry per
# database a process talks to, gone with the engine.
_cache: weakref.WeakKeyDictionary[Any, dict[str, _Cached]] = weakref.WeakKeyDictionary()


def _cache_of(session: Session) -> dict[str, _Cached]:
    bind = session.get_bind()
    pool = bind.engine.pool
    entries = _cache.get(pool)
    if entries is None:
        entries = _cache[pool] = {}
    return entries


def _forget_after_commit(session: Session, kind: str) -> None:
    entries = _cache_of(session)

    def forget(_: Session) -> None:
        entries.pop(kind, None)

    event.listen(session, "after_commit", forget, once=True)


def in_force(
    session: Session,
    *,
    kind: str,
    parse: Callable[[ConfigVersion], T],
    fallback: Callable[[], T],
    max_age_seconds: float,
) -> T:
    """The parsed document in force: the newest saved version, else ``fallback()`` (the file,
    which keeps its own cache by modification time and is therefore asked every time)."""
    entries = _cache_of(session)
    cached = entries.get(kind)
    now_ns = monotonic_ns()
    if cached is None or now_ns - cached.checked_ns > max_age_seconds * 1e9:
        number = newest_number(session, kind=kind)
        if cached is not None and cached.number == number:
            cached.checked_ns = now_ns
        elif number == 0:
            cached = _Cached(checked_ns=now_ns, number=0, value=None)
        else:
            version = get_version(session, kind=kind, number=number)
            assert version is not None
            cached = _Cached(checked_ns=now_ns, number=number, value=parse(version))
        entries[kind] = cached
    if cached.number == 0:
        return fallback()
    value: T = cached.value
    return value
