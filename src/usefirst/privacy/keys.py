"""PII key rotation: re-encrypt every encrypted column under the active key, online.

Procedure: add a new key and make it active while keeping the old ones (``usefirst keys add``, or
``USEFIRST_ENCRYPTION_KEYS``/``USEFIRST_ACTIVE_KEY_ID``); restart the processes so new writes use
it; run ``usefirst keys rotate``. Rotation works in small batches, each in its own transaction, so
the engine keeps serving (readers hold every key, so old and new ciphertexts both decrypt). A
batch updates a value only if it is still the one read (``WHERE column = old``), so a concurrent
write is never overwritten. Stopping at any point is safe: rerunning picks up what is left, since
what remains is exactly the values not under the active key. When it reports none left, the old
keys can be removed from the key ring.

Columns are found from the schema the caller passes (every table: ``usefirst.models``): every
column named ``*_encrypted``, whose field name (bound as associated data) is the column name
without the suffix. Tombstones left by erasure are not
ciphertexts and are skipped, except in the columns of ``TEXT_BEFORE_ENCRYPTION``: those were
plain text before they were encrypted (no erasure writes them), and rotation encrypts what text
is left in them.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Table, and_, func, select, update
from sqlalchemy.orm import Session

from usefirst.kit.clock import Clock
from usefirst.kit.crypto import FieldCipher, new_key
from usefirst.kit.db import Database
from usefirst.kit.personal_data import ENCRYPTED_SUFFIX, encrypted_columns
from usefirst.kit.settings import Settings, load_field_cipher
from usefirst.privacy import audit

CIPHERTEXT_PREFIX = "v1:"

# (table, column) of encrypted columns that held plain text before a migration renamed them
# (a migration has no keys): a value there that is not a ciphertext is that text.
TEXT_BEFORE_ENCRYPTION = {("bureau_files", "content_encrypted")}  # migration 0016


class KeyFileError(Exception):
    pass


@dataclass(frozen=True)
class EncryptedColumn:
    table: Table
    column: str

    @property
    def field(self) -> str:
        return self.column.removesuffix(ENCRYPTED_SUFFIX)

    @property
    def label(self) -> str:
        return f"{self.table.name}.{self.column}"

    @property
    def may_hold_text(self) -> bool:
        return (self.table.name, self.column) in TEXT_BEFORE_ENCRYPTION


def encrypted_targets(tables: Sequence[Table]) -> list[EncryptedColumn]:
    return [
        EncryptedColumn(table=table, column=column)
        for table in tables
        for column in encrypted_columns(table)
    ]


def _under_other_key(target: EncryptedColumn, active_key_id: str) -> object:
    """Values to re-encrypt: ciphertexts under another key, and text where text may be left."""
    column = target.table.c[target.column]
    not_active = ~column.startswith(f"{CIPHERTEXT_PREFIX}{active_key_id}:", autoescape=True)
    if target.may_hold_text:
        return and_(column.is_not(None), not_active)
    return and_(column.startswith(CIPHERTEXT_PREFIX, autoescape=True), not_active)


def count_by_key(
    session: Session, *, active_key_id: str, tables: Sequence[Table]
) -> dict[str, int]:
    """How many ciphertexts are under the active key and under any other key."""
    active = other = 0
    for target in encrypted_targets(tables):
        column = target.table.c[target.column]
        active += int(
            session.scalar(
                select(func.count())
                .select_from(target.table)
                .where(column.startswith(f"{CIPHERTEXT_PREFIX}{active_key_id}:", autoescape=True))
            )
            or 0
        )
        other += int(
            session.scalar(
                select(func.count())
                .select_from(target.table)
                .where(_under_other_key(target, active_key_id))  # type: ignore[arg-type]
            )
            or 0
        )
    counts = {active_key_id: active}
    if other:
        counts["older keys"] = other
    return counts


@dataclass
class RotationResult:
    rotated: int = 0
    batches: int = 0


def rotate_column_batch(
    session: Session, *, target: EncryptedColumn, cipher: FieldCipher, batch_size: int
) -> tuple[int, int]:
    """Re-encrypt up to ``batch_size`` values of one column; returns (seen, rotated)."""
    table, column = target.table, target.table.c[target.column]
    keys = list(table.primary_key.columns)
    rows = session.execute(
        select(*keys, column)
        .where(_under_other_key(target, cipher.active_key_id))  # type: ignore[arg-type]
        .order_by(*keys)
        .limit(batch_size)
    ).all()
    rotated = 0
    for row in rows:
        old_value: str = row[-1]
        if target.may_hold_text and not cipher.is_ciphertext(old_value):
            plaintext = old_value
        else:
            plaintext = cipher.decrypt(old_value, field=target.field)
        new_value = cipher.encrypt(plaintext, field=target.field)
        result = session.execute(
            update(table)
            .where(*[key == row[index] for index, key in enumerate(keys)], column == old_value)
            .values({target.column: new_value})
            .execution_options(synchronize_session=False)
        )
        rotated += int(getattr(result, "rowcount", 0) or 0)
    return len(rows), rotated


def rotate_all(
    database: Database,
    *,
    cipher: FieldCipher,
    clock: Clock,
    tables: Sequence[Table],
    batch_size: int = 500,
    on_batch: Callable[[str, int], None] | None = None,
) -> RotationResult:
    result = RotationResult()
    for target in encrypted_targets(tables):
        while True:
            with database.transaction() as session:
                seen, rotated = rotate_column_batch(
                    session, target=target, cipher=cipher, batch_size=batch_size
                )
            if not seen:
                break
            result.rotated += rotated
            result.batches += 1
            if on_batch is not None:
                on_batch(target.label, rotated)
    with database.transaction() as session:
        audit.record_action(
            session,
            actor="system:keys-rotate",
            action="keys.rotate",
            purpose=(
                f"re-encrypted {result.rotated} PII value(s) under key {cipher.active_key_id} "
                f"in {result.batches} batch(es)"
            ),
            now=clock.now(session),
        )
    return result


def add_key_to_file(settings: Settings, *, key_id: str) -> None:
    """Add a fresh key to the key file and make it active; the old keys stay for reading."""
    if settings.encryption_keys:
        raise KeyFileError(
            "Keys come from USEFIRST_ENCRYPTION_KEYS: add the new key there (id:base64key) and "
            "set USEFIRST_ACTIVE_KEY_ID to it, keeping the old keys until rotation is done."
        )
    if not key_id or ":" in key_id or "," in key_id or len(key_id) > 32:
        raise KeyFileError("A key id has 1 to 32 characters and no ':' or ','.")
    load_field_cipher(settings)  # creates the file with a first key if there is none yet
    path: Path = settings.keys_file
    material = json.loads(path.read_text())
    if key_id in material["keys"]:
        raise KeyFileError(f"Key {key_id!r} already exists in {path}.")
    material["keys"][key_id] = base64.urlsafe_b64encode(new_key()).decode("ascii")
    material["active_key_id"] = key_id
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(material, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    # Atomic: a process reading the file sees the old or the new key ring, never half of one.
    os.replace(temporary, path)
