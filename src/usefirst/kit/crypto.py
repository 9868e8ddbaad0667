"""Field-level encryption of PII (AES-256-GCM with key ids) and keyed blind indexes (HMAC-SHA256).

Ciphertext format: ``v1:<key_id>:<base64url(nonce || ciphertext+tag)>``. The field name is bound as
associated data, so a value moved to another column fails to decrypt instead of leaking.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = "v1"


class KeyNotFound(Exception):
    pass


class FieldCipher:
    def __init__(self, *, keys: dict[str, bytes], active_key_id: str, blind_index_key: bytes):
        if active_key_id not in keys:
            raise KeyNotFound(f"active key {active_key_id!r} is not in the keyring")
        for key_id, key in keys.items():
            if len(key) != 32:
                raise ValueError(f"encryption key {key_id!r} must be 32 bytes")
            if ":" in key_id:
                raise ValueError("key ids must not contain ':'")
        if len(blind_index_key) < 32:
            raise ValueError("the blind index key must be at least 32 bytes")
        self._keys = dict(keys)
        self.active_key_id = active_key_id
        self._blind_index_key = blind_index_key

    def encrypt(self, plaintext: str, *, field: str) -> str:
        nonce = os.urandom(12)
        sealed = AESGCM(self._keys[self.active_key_id]).encrypt(
            nonce, plaintext.encode("utf-8"), field.encode("utf-8")
        )
        token = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{_VERSION}:{self.active_key_id}:{token}"

    def decrypt(self, ciphertext: str, *, field: str) -> str:
        version, key_id, token = ciphertext.split(":", 2)
        if version != _VERSION:
            raise ValueError(f"unknown ciphertext version {version!r}")
        key = self._keys.get(key_id)
        if key is None:
            raise KeyNotFound(f"key {key_id!r} is not in the keyring")
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
        return AESGCM(key).decrypt(raw[:12], raw[12:], field.encode("utf-8")).decode("utf-8")

    @staticmethod
    def is_ciphertext(value: str) -> bool:
        return value.startswith(f"{_VERSION}:")

    def key_id_of(self, ciphertext: str) -> str:
        return ciphertext.split(":", 2)[1]

    def blind_index(self, value: str, *, field: str) -> str:
        message = f"{field}\x00{value}".encode()
        # hmac.digest: the same HMAC-SHA256 in one call to OpenSSL (hmac.new builds an object
        # in Python; a checkout takes five of these).
        return hmac.digest(self._blind_index_key, message, "sha256").hex()


def link_hash(cipher: FieldCipher, kind: str, value: str) -> str:
    """The keyed hash the link graph names an identifier by (device, IP, ...), of the value
    trimmed and case-folded."""
    return cipher.blind_index(value.strip().casefold(), field=f"link_{kind}")


def link_identifier_hash(cipher: FieldCipher, kind: str, value: str | None) -> str | None:
    """``link_hash`` as stored with a shopper's enrolment: "" for a blank value (nothing to link),
    None for none."""
    if value is None:
        return None
    return link_hash(cipher, kind, value) if value.strip() else ""


def new_key() -> bytes:
    return secrets.token_bytes(32)


def hash_api_key(secret: str) -> str:
    """API keys carry 256 random bits, so a fast hash is safe (no dictionary to attack)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_api_secret(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"
