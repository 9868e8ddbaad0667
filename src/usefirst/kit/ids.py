"""Prefixed, time-sortable ids: ``ord_01JD3...`` (48-bit millisecond time + 80 random bits)."""

from __future__ import annotations

import secrets

from usefirst.kit.clock import wall_time_ns

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

PREFIXES = {
    "shopper": "shp",
    "merchant": "mer",
    "order": "ord",
    "payment": "pay",
    "refund": "ref",
    "dispute": "dsp",
    "case": "cas",
    "event": "evt",
    "journal_entry": "je",
    "account": "acct",
    "api_key": "key",
    "operator": "op",
    "credit_change": "clc",
    "consent": "cns",
    "outbox": "obx",
    "allocation": "alc",
}


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(kind: str) -> str:
    prefix = PREFIXES[kind]
    millis = wall_time_ns() // 1_000_000
    return f"{prefix}_{_encode(millis, 10)}{_encode(secrets.randbits(80), 16)}"


def has_prefix(value: str, kind: str) -> bool:
    return value.startswith(PREFIXES[kind] + "_")
