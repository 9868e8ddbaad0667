"""Counting failures (wrong API keys, wrong passwords and codes) per client address, with PyPI
``limits`` rather than hand-written counters.

The counts live in a ``limits`` storage named by URI: ``memory://`` (the default) keeps them in
the process, so each API process counts on its own; ``redis://``, ``memcached://`` or
``mongodb://`` (with that storage's driver installed) share them between processes. ``limits``
has no PostgreSQL storage, so a deployment of several processes that wants one count either
points every process at one of those stores or accepts a limit per process.

Failures are counted in a moving window: with "5/15 minutes", the sixth failure inside any 15
minutes is refused, and the refusal lasts until the oldest of those failures is 15 minutes old.
Counting uses wall time (``limits`` reads it), like sign-in and TOTP: a sandbox test clock does
not move it.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter


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

    @classmethod
    def from_uri(cls, *, limit: str, storage_uri: str, namespace: str) -> FailureThrottle:
        return cls(limit=limit, storage=synchronous_storage(storage_uri), namespace=namespace)

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
        storage_uri: str,
        api_key_failures: str,
        sign_in_failures_per_address: str,
        sign_in_failures_per_account: str,
    ) -> None:
        storage = synchronous_storage(storage_uri)
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
