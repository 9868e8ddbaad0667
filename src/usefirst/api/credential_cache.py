"""API-key authentication remembered per process for a few seconds.

Every API call authenticates its bearer key; reading the key (and an operator's role) from the
database on each call cost a transaction of its own. A process remembers what a secret
authenticated as for ``ttl_seconds`` and then asks the database again. Only successful look-ups
are remembered: an unknown or revoked secret is looked up every time, so a new key works at once.

Revoking or rotating a key must call :func:`forget_credential` with the key's id (or
:func:`forget_all_credentials`) so that this process stops accepting it at once; other worker
processes stop within ``ttl_seconds``. The secret itself is never kept: entries are keyed by its
SHA-256 digest.
"""

from __future__ import annotations

import hashlib
import threading
import time
import weakref
from collections.abc import Callable

from usefirst.identity.service import Principal

DEFAULT_TTL_SECONDS = 5.0
MAX_ENTRIES = 10_000

_caches: weakref.WeakSet[CredentialCache] = weakref.WeakSet()
_caches_lock = threading.Lock()


class CredentialCache:
    """Secret digest → principal, each entry trusted for ``ttl_seconds`` after its look-up."""

    def __init__(
        self,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        max_entries: int = MAX_ENTRIES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._monotonic = monotonic
        self._entries: dict[bytes, tuple[float, Principal]] = {}
        self._lock = threading.Lock()
        with _caches_lock:
            _caches.add(self)

    @staticmethod
    def _digest(secret: str) -> bytes:
        return hashlib.sha256(secret.encode()).digest()

    def get(self, secret: str) -> Principal | None:
        """The principal remembered for this secret, or None when unknown or expired."""
        digest = self._digest(secret)
        entry = self._entries.get(digest)
        if entry is None:
            return None
        expires_at, principal = entry
        if self._monotonic() >= expires_at:
            with self._lock:
                self._entries.pop(digest, None)
            return None
        return principal

    def remember(self, secret: str, principal: Principal) -> None:
        if self.ttl_seconds <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._drop_expired_or_oldest()
            self._entries[self._digest(secret)] = (
                self._monotonic() + self.ttl_seconds,
                principal,
            )

    def forget(self, key_id: str) -> None:
        with self._lock:
            for digest in [d for d, (_, p) in self._entries.items() if p.key_id == key_id]:
                del self._entries[digest]

    def forget_secret_hash(self, secret_hash: str) -> None:
        """Forget the key whose secret hashes to ``secret_hash`` (kit.crypto.hash_api_key: the
        hex SHA-256 this cache keys its entries by), as Runtime.forget_credential tells it."""
        with self._lock:
            self._entries.pop(bytes.fromhex(secret_hash), None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _drop_expired_or_oldest(self) -> None:
        now = self._monotonic()
        expired = [digest for digest, (expires_at, _) in self._entries.items() if expires_at <= now]
        for digest in expired:
            del self._entries[digest]
        if len(self._entries) >= self.max_entries:
            # dicts keep insertion order: the first entry is the oldest look-up
            del self._entries[next(iter(self._entries))]


def forget_credential(key_id: str) -> None:
    """Stop trusting a key in this process at once (call it when the key is revoked)."""
    with _caches_lock:
        caches = list(_caches)
    for cache in caches:
        cache.forget(key_id)


def forget_all_credentials() -> None:
    """Stop trusting every remembered key in this process (e.g. after a bulk revocation)."""
    with _caches_lock:
        caches = list(_caches)
    for cache in caches:
        cache.clear()
