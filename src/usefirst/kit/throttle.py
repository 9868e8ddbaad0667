"""Counting failures (wrong API keys, wrong passwords and codes) per client address, with PyPI
``limits`` rather than hand-written counters.

The counts live in a ``limits`` storage. ``database`` (the default) counts in the engine's own
PostgreSQL (the ``auth_throttle_hits`` table, through ``DatabaseThrottleStorage`` below: ``limits``
has memory, redis, memcached and mongodb storages, none for PostgreSQL), so every API process on
that database shares one count; on SQLite, the one-process embedded database, it counts in memory.
A ``limits`` storage URI instead (``memory://``, ``redis://``, ``memcached://`` with that
storage's driver installed) names that storage.

Failures are counted in a moving window: with "5/15 minutes", the sixth failure inside any 15
minutes is refused, and the refusal lasts until the oldest of those failures is 15 minutes old.
Counting uses wall time, like sign-in and TOTP (``limits`` reads the process's, the database
storage the database server's, one clock for all processes): a sandbox test clock does not move
it.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, MovingWindowSupport, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

# The setting that counts in the engine's own database (PostgreSQL), or in memory on SQLite.
DATABASE_STORAGE = "database"

# The database server's wall clock, in epoch seconds as limits counts.
_NOW = "extract(epoch FROM clock_timestamp())::float8"
# Failures on one key take turns (count, then insert), in every process: a transaction lock.
_LOCK_KEY = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")
_ACQUIRE = text(
    f"""
    WITH clock AS (SELECT {_NOW} AS now),
    pruned AS (
        DELETE FROM auth_throttle_hits WHERE expires_at <= (SELECT now FROM clock)
    ),
    in_window AS (
        SELECT count(*) AS hits FROM auth_throttle_hits, clock
        WHERE throttle_key = :key AND hit_at > clock.now - :expiry
    ),
    added AS (
        INSERT INTO auth_throttle_hits (throttle_key, hit_at, expires_at)
        SELECT :key, clock.now, clock.now + :expiry
        FROM clock, in_window, generate_series(1, :amount)
        WHERE in_window.hits + :amount <= :limit
        RETURNING 1
    )
    SELECT count(*) FROM added
    """
)
_MOVING_WINDOW = text(
    f"""
    WITH clock AS (SELECT {_NOW} AS now)
    SELECT coalesce(min(hit_at), clock.now), count(hit_at)
    FROM clock LEFT JOIN auth_throttle_hits
        ON throttle_key = :key AND hit_at > clock.now - :expiry
    GROUP BY clock.now
    """
)
# The fixed-window counter (limits' other strategies): the key's live rows, all expiring with
# the first of them.
_INCREMENT = text(
    f"""
    WITH clock AS (SELECT {_NOW} AS now),
    window_end AS (
        SELECT min(expires_at) AS at FROM auth_throttle_hits, clock
        WHERE throttle_key = :key AND expires_at > clock.now
    )
    INSERT INTO auth_throttle_hits (throttle_key, hit_at, expires_at)
    SELECT :key, clock.now, coalesce(window_end.at, clock.now + :expiry)
    FROM clock, window_end, generate_series(1, :amount)
    """
)
_COUNT = text(
    f"SELECT count(*) FROM auth_throttle_hits WHERE throttle_key = :key AND expires_at > {_NOW}"
)
_EXPIRY = text(
    f"""
    SELECT coalesce(min(expires_at), {_NOW}) FROM auth_throttle_hits
    WHERE throttle_key = :key AND expires_at > {_NOW}
    """
)
_CLEAR = text("DELETE FROM auth_throttle_hits WHERE throttle_key = :key")
_RESET = text("DELETE FROM auth_throttle_hits")


class DatabaseThrottleStorage(Storage, MovingWindowSupport):
    """A ``limits`` storage in a PostgreSQL table, for every process on that database.

    Each call is a short transaction of its own on ``engine``, outside any request's unit of
    work, so a failure is counted whether or not the request's work commits. Only failures are
    written; a request with a key the process has already authenticated reads nothing here
    (api.deps)."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("DatabaseThrottleStorage counts in PostgreSQL only")
        self.engine = engine
        super().__init__(None, wrap_exceptions=False)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return SQLAlchemyError

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        with self.engine.begin() as connection:
            connection.execute(_LOCK_KEY, {"key": key})
            added = connection.execute(
                _ACQUIRE, {"key": key, "limit": limit, "expiry": expiry, "amount": amount}
            ).scalar_one()
        return int(added) == amount

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        with self.engine.connect() as connection:
            start, hits = connection.execute(_MOVING_WINDOW, {"key": key, "expiry": expiry}).one()
        return float(start), int(hits)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        with self.engine.begin() as connection:
            connection.execute(_LOCK_KEY, {"key": key})
            connection.execute(_INCREMENT, {"key": key, "expiry": expiry, "amount": amount})
            return int(connection.execute(_COUNT, {"key": key}).scalar_one())

    def get(self, key: str) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(_COUNT, {"key": key}).scalar_one())

    def get_expiry(self, key: str) -> float:
        with self.engine.connect() as connection:
            return float(connection.execute(_EXPIRY, {"key": key}).scalar_one())

    def check(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with self.engine.begin() as connection:
            return connection.execute(_RESET).rowcount

    def clear(self, key: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(_CLEAR, {"key": key})


def throttle_storage(setting: str, engine: Engine) -> Storage:
    """The storage ``setting`` names: ``database`` is the engine's own PostgreSQL (memory on
    SQLite); anything else a ``limits`` storage URI."""
    if setting == DATABASE_STORAGE:
        if engine.dialect.name == "postgresql":
            return DatabaseThrottleStorage(engine)
        return MemoryStorage()
    return synchronous_storage(setting)


def synchronous_storage(uri: str) -> Storage:
    """The ``limits`` storage ``uri`` names (only synchronous ones: the server counts in its
    worker threads)."""
    storage = storage_from_string(uri)
    if not isinstance(storage, Storage):
        raise ValueError(f"{uri!r} names an asynchronous limits storage; use a synchronous one")
    return storage


class FailureThrottle:
    """Failures per key (a client address, or an email at an address), refused past a limit."""

    def __init__(self, *, limit: str, storage: Storage, namespace: str) -> None:
        self.item: RateLimitItem = parse(limit)
        self.namespace = namespace
        self._limiter = MovingWindowRateLimiter(storage)

    def retry_after_seconds(self, *identifiers: str) -> int | None:
        """None while more failures are allowed; else the whole seconds until one is again."""
        if self._limiter.test(self.item, self.namespace, *identifiers):
            return None
        return self._seconds_until_reset(*identifiers)

    def record_failure(self, *identifiers: str) -> int | None:
        """Count one failure; returns retry_after_seconds() as it stands after it."""
        self._limiter.hit(self.item, self.namespace, *identifiers)
        return self.retry_after_seconds(*identifiers)

    def reset_at(self, *identifiers: str) -> float:
        """The wall time (epoch seconds) at which the oldest counted failure leaves the window."""
        return float(self._limiter.get_window_stats(self.item, self.namespace, *identifiers)[0])

    def clear(self, *identifiers: str) -> None:
        self._limiter.clear(self.item, self.namespace, *identifiers)

    def _seconds_until_reset(self, *identifiers: str) -> int:
        return max(1, math.ceil(self.reset_at(*identifiers) - time.time()))


class AuthThrottles:
    """The throttles of one running engine, sharing one storage."""

    def __init__(
        self,
        *,
        storage: Storage,
        api_key_failures: str,
        sign_in_failures_per_address: str,
        sign_in_failures_per_account: str,
    ) -> None:
        # Wrong, revoked or expired API keys from one client address.
        self.api_keys = FailureThrottle(
            limit=api_key_failures, storage=storage, namespace="api-key"
        )
        # Wrong passwords and codes from one address, whatever the email.
        self.sign_in_address = FailureThrottle(
            limit=sign_in_failures_per_address, storage=storage, namespace="sign-in"
        )
        # Wrong passwords and codes for one email from one address: the console's lockout.
        self.sign_in_account = FailureThrottle(
            limit=sign_in_failures_per_account, storage=storage, namespace="sign-in-email"
        )
