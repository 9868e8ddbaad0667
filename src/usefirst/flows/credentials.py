"""Credential lifecycle: issuing, rotating and revoking API keys and operator tokens, and
rotating merchants' webhook secrets and changing their URLs, each recorded in the audit chain.

identity owns the keys and merchants the webhook endpoints; privacy owns the tamper-evident
chain (``usefirst audit verify``). A credential event and its audit row are written in one
transaction, so an event that happened is an event that is recorded.

``revoke_key`` is the one place a key is revoked (the API, the console and the CLI all call it);
whatever else must forget a revoked key (a per-process authentication cache) hooks in there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from usefirst.identity import service as identity_service
from usefirst.identity.models import ApiKey, Operator
from usefirst.kit.crypto import FieldCipher
from usefirst.merchants import service as merchant_service
from usefirst.merchants.models import Merchant
from usefirst.privacy import audit

# The audit chain's purpose column is required: these say why the row exists.
_PURPOSES = {
    "credential.issued": "API credential issued",
    "credential.rotated": "API credential rotated",
    "credential.revoked": "API credential revoked",
    "webhook.secret_rotated": "webhook signing secret rotated",
    "webhook.url_changed": "webhook destination changed",
}


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    secret: str  # shown once


@dataclass(frozen=True)
class RotatedKey:
    old: ApiKey
    new: ApiKey
    secret: str  # of the new key, shown once


@dataclass(frozen=True)
class RevokedKey:
    """A revoked key: its hash is what an authentication cache keys entries by."""

    key: ApiKey
    secret_hash: str


def _record(
    session: Session,
    *,
    actor: str,
    action: str,
    reference_id: str,
    now: datetime,
    fields: tuple[str, ...] = (),
    purpose: str | None = None,
) -> None:
    audit.record_action(
        session,
        actor=actor,
        action=action,
        purpose=(purpose or _PURPOSES[action])[:500],
        now=now,
        fields=fields,
        reference_id=reference_id,
    )


def _key_fields(key: ApiKey) -> tuple[str, ...]:
    """Who the key belongs to, for the audit row (ids only, never the secret)."""
    holder = key.merchant_id or key.operator_id or "platform"
    return (f"kind:{key.kind}", f"holder:{holder}") + ((f"role:{key.role}",) if key.role else ())


def _issued(session: Session, *, key: ApiKey, secret: str, actor: str, now: datetime) -> IssuedKey:
    """The key just made, its issue recorded in the audit chain."""
    _record(
        session,
        actor=actor,
        action="credential.issued",
        reference_id=key.id,
        now=now,
        fields=_key_fields(key),
    )
    return IssuedKey(key=key, secret=secret)


def issue_platform_key(
    session: Session, *, actor: str, label: str, now: datetime, expires_at: datetime | None = None
) -> IssuedKey:
    key, secret = identity_service.issue_api_key(
        session, kind="platform", now=now, label=label, expires_at=expires_at
    )
    return _issued(session, key=key, secret=secret, actor=actor, now=now)


def issue_merchant_key(
    session: Session,
    *,
    merchant_id: str,
    actor: str,
    label: str,
    now: datetime,
    expires_at: datetime | None = None,
) -> IssuedKey:
    merchant_service.get_merchant(session, merchant_id=merchant_id)
    key, secret = identity_service.issue_api_key(
        session,
        kind="merchant",
        merchant_id=merchant_id,
        now=now,
        label=label,
        expires_at=expires_at,
    )
    return _issued(session, key=key, secret=secret, actor=actor, now=now)


def issue_operator_token(
    session: Session,
    *,
    operator: Operator,
    actor: str,
    now: datetime,
    role: str | None = None,
    lifetime: timedelta | None = None,
    label: str = "",
) -> IssuedKey:
    """An operator's personal token. The caller has checked the second factor (a fresh TOTP
    code, or access to the server for the command line) before calling."""
    key, secret = identity_service.issue_operator_token(
        session, operator=operator, now=now, role=role, lifetime=lifetime, label=label
    )
    return _issued(session, key=key, secret=secret, actor=actor, now=now)


def create_operator(
    session: Session, *, email: str, role: str, actor: str, now: datetime
) -> tuple[Operator, IssuedKey]:
    """A new operator and its first token (which follows the operator's role), recorded."""
    operator, secret = identity_service.create_operator(session, email=email, role=role, now=now)
    [key] = identity_service.list_api_keys(session, operator_id=operator.id)
    return operator, _issued(session, key=key, secret=secret, actor=actor, now=now)


def rotate_key(
    session: Session,
    *,
    key_id: str,
    actor: str,
    now: datetime,
    overlap: timedelta = identity_service.DEFAULT_ROTATION_OVERLAP,
) -> RotatedKey:
    old, new, secret = identity_service.rotate_api_key(
        session, key_id=key_id, now=now, overlap=overlap
    )
    _record(
        session,
        actor=actor,
        action="credential.rotated",
        reference_id=old.id,
        now=now,
        fields=(*_key_fields(old), f"replaced_by:{new.id}"),
    )
    return RotatedKey(old=old, new=new, secret=secret)


def revoke_key(
    session: Session, *, key_id: str, reason: str, actor: str, now: datetime
) -> RevokedKey:
    """Revoke a key from its next use: the only place keys are revoked. Revoking a revoked key
    changes nothing and records nothing."""
    key, is_new = identity_service.revoke_api_key(session, key_id=key_id, reason=reason, now=now)
    if is_new:
        _record(
            session,
            actor=actor,
            action="credential.revoked",
            reference_id=key.id,
            now=now,
            fields=_key_fields(key),
            purpose=f"API credential revoked: {reason.strip()}",
        )
    return RevokedKey(key=key, secret_hash=key.secret_hash)


def rotate_webhook_secret(
    session: Session,
    *,
    merchant_id: str,
    overlap: timedelta,
    actor: str,
    cipher: FieldCipher,
    now: datetime,
) -> tuple[Merchant, str]:
    """A new signing secret for the merchant's webhooks; the old one signs too until the overlap
    ends. Returns the merchant and the new secret (shown once)."""
    merchant, secret = merchant_service.rotate_webhook_secret(
        session, merchant_id=merchant_id, overlap=overlap, cipher=cipher, now=now
    )
    _record(
        session,
        actor=actor,
        action="webhook.secret_rotated",
        reference_id=merchant.id,
        now=now,
        fields=("webhook_secret",),
    )
    return merchant, secret


def change_webhook_url(
    session: Session,
    *,
    merchant_id: str,
    webhook_url: str | None,
    actor: str,
    allow_private_destinations: bool,
    now: datetime,
) -> Merchant:
    merchant = merchant_service.change_webhook_url(
        session,
        merchant_id=merchant_id,
        webhook_url=webhook_url,
        allow_private_destinations=allow_private_destinations,
    )
    _record(
        session,
        actor=actor,
        action="webhook.url_changed",
        reference_id=merchant.id,
        now=now,
        fields=("webhook_url",),
    )
    return merchant
