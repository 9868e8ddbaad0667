"""Enrolment of shoppers (validated, PII encrypted, consent recorded) and API credentials."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from usefirst.identity import validation
from usefirst.identity.models import ApiKey, Consent, Operator, Shopper
from usefirst.identity.repository import IdentityRepository
from usefirst.kit.clock import system_now
from usefirst.kit.crypto import FieldCipher, hash_api_key, link_identifier_hash, new_api_secret
from usefirst.kit.db import Lookup
from usefirst.kit.errors import AuthenticationRequired, Conflict, NotFound, ValidationFailed
from usefirst.kit.ids import new_id

OPERATOR_ROLES = ("admin", "risk_analyst", "collector", "compliance", "support")
API_KEY_KINDS = ("platform", "merchant", "operator")
API_KEY_PREFIXES = {"platform": "uf_plat", "merchant": "uf_mer", "operator": "uf_op"}
# Operator tokens belong to people, who leave, change roles and paste tokens into scripts and
# shell histories; a month bounds how long a forgotten one stays useful while sparing a person
# who scripts daily work more than a monthly renewal. No token lives longer than 90 days.
OPERATOR_TOKEN_DEFAULT_LIFETIME = timedelta(days=30)
OPERATOR_TOKEN_MAX_LIFETIME = timedelta(days=90)
# How long the replaced key keeps working after a rotation unless told otherwise: a day is enough
# to deploy the new key everywhere, and at most 30 days is allowed.
DEFAULT_ROTATION_OVERLAP = timedelta(hours=24)
MAX_ROTATION_OVERLAP = timedelta(days=30)
# last_used_at is written when it is older than this, so authenticating stays a read.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiKeyRevoked(AuthenticationRequired):
    code = "api_key_revoked"
    default_message = "This API key was revoked."


class ApiKeyExpired(AuthenticationRequired):
    code = "api_key_expired"
    default_message = "This API key has expired."


class ApiKeyNotUsable(Conflict):
    code = "api_key_not_usable"
    default_message = "This API key is revoked or expired."


class ShopperErased(Conflict):
    code = "shopper_erased"
    default_message = "The shopper's personal data has been erased."


class ShopperExists(Conflict):
    code = "shopper_exists"
    default_message = "A shopper with this national ID is already enrolled."


@dataclass(frozen=True)
class ShopperDetails:
    """What an enrolment tells about the shopper (the enrolment flow's request extends it)."""

    external_id: str
    name: str
    national_id: str
    phone: str
    email: str | None
    privacy_policy_version: str
    credit_report_authorized: bool
    consent_source: str = "api"
    device_id: str | None = None
    ip: str | None = None
    # How reminders reach the shopper; None: the default language, the operator's time zone.
    language: str | None = None
    time_zone: str | None = None


@dataclass(frozen=True)
class RegisteredShopper:
    shopper: Shopper
    age_years: int  # read from the national ID, for the credit review


@dataclass(frozen=True)
class Principal:
    """Who is calling: the platform, one merchant, or one operator (with a role)."""

    kind: str  # platform | merchant | operator
    key_id: str
    merchant_id: str | None = None
    operator_id: str | None = None
    role: str | None = None
    # When the key was last seen to be used (minute resolution), to decide whether to record it.
    last_used_at: datetime | None = None

    @property
    def needs_last_used_update(self) -> bool:
        return needs_last_used_update(self.last_used_at, now=system_now())


def needs_last_used_update(last_used_at: datetime | None, *, now: datetime) -> bool:
    return last_used_at is None or now - last_used_at >= LAST_USED_RESOLUTION


def register_shopper(
    session: Session,
    *,
    details: ShopperDetails,
    cipher: FieldCipher,
    default_time_zone: str,
    today: date,
    now: datetime,
) -> RegisteredShopper:
    """Validate the shopper's details, claim their national ID and external id, and record the
    shopper (PII encrypted) with their consent. Their credit is reviewed by the enrolment flow."""
    name = validation.validate_name(details.name)
    national_id = validation.validate_national_id(details.national_id, today=today)
    phone = validation.validate_phone(details.phone)
    email = validation.validate_email(details.email) if details.email is not None else None
    language = (
        validation.validate_language(details.language)
        if details.language is not None
        else validation.DEFAULT_SHOPPER_LANGUAGE
    )
    time_zone = validation.validate_time_zone(
        details.time_zone if details.time_zone is not None else default_time_zone
    )
    external_id = details.external_id.strip()
    if not 1 <= len(external_id) <= 128:
        raise ValidationFailed("external_id must have 1 to 128 characters.", field="external_id")
    if not details.privacy_policy_version.strip():
        raise ValidationFailed(
            "The privacy policy version the shopper accepted is required.",
            field="consent.privacy_policy_version",
        )

    repository = IdentityRepository(session)
    shopper_id = new_id("shopper")
    national_id_hash = cipher.blind_index(national_id, field="national_id")
    if not repository.claim_national_id(national_id_hash, shopper_id):
        raise ShopperExists(field="national_id")
    if not repository.claim_external_id(external_id, shopper_id):
        raise ShopperExists(
            "A shopper with this external_id is already enrolled.", field="external_id"
        )

    shopper = Shopper(
        id=shopper_id,
        external_id=external_id,
        status="active",
        name_encrypted=cipher.encrypt(name, field="name"),
        national_id_encrypted=cipher.encrypt(national_id, field="national_id"),
        phone_encrypted=cipher.encrypt(phone, field="phone"),
        email_encrypted=cipher.encrypt(email, field="email") if email else None,
        name_masked=validation.mask_name(name),
        national_id_masked=validation.mask_national_id(national_id),
        phone_masked=validation.mask_phone(phone),
        email_masked=validation.mask_email(email) if email else None,
        phone_hash=cipher.blind_index(phone, field="phone"),
        enrolment_device_id=details.device_id,
        enrolment_ip=details.ip,
        enrolment_device_hash=link_identifier_hash(cipher, "device", details.device_id),
        enrolment_ip_hash=link_identifier_hash(cipher, "ip", details.ip),
        language=language,
        time_zone=time_zone,
        created_at=now,
    )
    repository.add(shopper)
    session.flush()
    repository.add(
        Consent(
            shopper_id=shopper_id,
            id=new_id("consent"),
            privacy_policy_version=details.privacy_policy_version.strip(),
            credit_report_authorized=details.credit_report_authorized,
            source=details.consent_source,
            recorded_at=now,
        )
    )
    return RegisteredShopper(
        shopper=shopper, age_years=validation.age_on(validation.birth_date_of(national_id), today)
    )


def reject_enrolment(shopper: Shopper) -> None:
    """The credit review turned the shopper down: they stay on file, rejected."""
    shopper.status = "rejected"


@dataclass(frozen=True)
class ShopperStanding:
    """What a checkout needs to know of the shopper."""

    id: str
    status: str


def shopper_standing(shopper_id: str) -> Lookup[ShopperStanding]:
    """The shopper's standing, read with other look-ups (404 when there is no such shopper)."""

    def read(row: dict[str, Any] | None) -> ShopperStanding:
        if row is None:
            raise NotFound("No such shopper.")
        return ShopperStanding(id=row["id"], status=row["status"])

    return Lookup(
        IdentityRepository.standing_statement(), read, parameters={"shopper_id": shopper_id}
    )


def get_shopper(session: Session, *, shopper_id: str) -> Shopper:
    shopper = IdentityRepository(session).get_shopper(shopper_id)
    if shopper is None:
        raise NotFound("No such shopper.")
    return shopper


# A Chinese mobile number as people type it, without the country code (139 1234 5678).
_DOMESTIC_MOBILE = 11
_PHONE_AS_TYPED = re.compile(r"\+?[0-9][0-9 ()-]{5,24}")


def shoppers_with_phone(session: Session, *, phone: str, cipher: FieldCipher) -> list[str]:
    """The shoppers enrolled with this phone number, found through its keyed hash (the number
    is never decrypted to search). A domestic mobile number may be typed without +86; text that
    is not a phone number matches nobody."""
    typed = phone.strip()
    if not _PHONE_AS_TYPED.fullmatch(typed):
        return []
    digits = "".join(character for character in typed if character.isdigit())
    if not typed.startswith("+"):
        if len(digits) != _DOMESTIC_MOBILE or not digits.startswith("1"):
            return []
        typed = f"+86{digits}"
    try:
        e164 = validation.validate_phone(typed)
    except ValidationFailed:
        return []
    return IdentityRepository(session).shopper_ids_by_phone_hash(
        cipher.blind_index(e164, field="phone")
    )


def change_contact_preferences(
    session: Session, *, shopper_id: str, language: str | None, time_zone: str | None
) -> Shopper:
    """Set the shopper's reminder language and/or time zone; both are checked before either is
    stored. Reminders already planned follow the new time zone when they are (re)checked at send
    time; the sweep plans later ones in it."""
    shopper = get_shopper(session, shopper_id=shopper_id)
    new_language = validation.validate_language(language) if language is not None else None
    new_time_zone = validation.validate_time_zone(time_zone) if time_zone is not None else None
    if new_language is not None:
        shopper.language = new_language
    if new_time_zone is not None:
        shopper.time_zone = new_time_zone
    session.flush()
    return shopper


def create_api_key(
    session: Session,
    *,
    kind: str,
    now: datetime,
    merchant_id: str | None = None,
    operator_id: str | None = None,
    label: str = "",
    expires_at: datetime | None = None,
    role: str | None = None,
) -> str:
    """Create a key and return its secret; only its hash is stored, so it is shown once."""
    _, secret = issue_api_key(
        session,
        kind=kind,
        now=now,
        merchant_id=merchant_id,
        operator_id=operator_id,
        label=label,
        expires_at=expires_at,
        role=role,
    )
    return secret


def issue_api_key(
    session: Session,
    *,
    kind: str,
    now: datetime,
    merchant_id: str | None = None,
    operator_id: str | None = None,
    label: str = "",
    expires_at: datetime | None = None,
    role: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its secret. Operator tokens expire (30 days unless an earlier expiry is
    given, never later than 90 days); platform and merchant keys only when given an expiry."""
    if kind not in API_KEY_KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(API_KEY_KINDS)}.", field="kind")
    if len(label) > 120:
        raise ValidationFailed("label must have at most 120 characters.", field="label")
    if expires_at is not None and expires_at <= now:
        raise ValidationFailed("expires_at must be in the future.", field="expires_at")
    if kind == "operator":
        latest = now + OPERATOR_TOKEN_MAX_LIFETIME
        if expires_at is None:
            expires_at = now + OPERATOR_TOKEN_DEFAULT_LIFETIME
        elif expires_at > latest:
            raise ValidationFailed(
                "An operator token lives at most 90 days.", field="expires_in_days"
            )
    if role is not None and role not in OPERATOR_ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(OPERATOR_ROLES)}.", field="role")
    secret = new_api_secret(API_KEY_PREFIXES[kind])
    key = ApiKey(
        id=new_id("api_key"),
        secret_hash=hash_api_key(secret),
        kind=kind,
        merchant_id=merchant_id,
        operator_id=operator_id,
        label=label,
        created_at=now,
        expires_at=expires_at,
        role=role,
    )
    IdentityRepository(session).add(key)
    session.flush()
    return key, secret


def authenticate(session: Session, *, secret: str, now: datetime | None = None) -> Principal | None:
    """The caller holding ``secret``; None when no key has it. A revoked or expired key, or an
    operator token bound to a role its operator no longer holds, is refused (401, its own code).

    Expiry is judged on wall time (``now`` defaults to it): a sandbox test clock that moves
    business time forward never expires an integrator's keys."""
    if now is None:
        now = system_now()
    repository = IdentityRepository(session)
    key = repository.api_key_by_hash(hash_api_key(secret))
    if key is None:
        return None
    if key.revoked_at is not None:
        raise ApiKeyRevoked()
    if key.expires_at is not None and key.expires_at <= now:
        raise ApiKeyExpired()
    role = None
    if key.kind == "operator":
        operator = repository.get_operator(key.operator_id) if key.operator_id else None
        if operator is None:
            raise ApiKeyRevoked("The operator of this token no longer exists.")
        role = operator.role
        if key.role is not None and key.role != operator.role:
            # Bound to another role: an admin's token narrowed to a smaller role keeps working;
            # anyone else's stops when their role changes.
            if operator.role != "admin":
                raise ApiKeyRevoked("This token's role is no longer its operator's.")
            role = key.role
    return Principal(
        kind=key.kind,
        key_id=key.id,
        merchant_id=key.merchant_id,
        operator_id=key.operator_id,
        role=role,
        last_used_at=key.last_used_at,
    )


def record_key_use(session: Session, *, key_id: str, now: datetime) -> None:
    """Remember that the key was used now (skipped when already recorded this minute)."""
    IdentityRepository(session).touch_api_key(
        key_id, now=now, unless_after=now - LAST_USED_RESOLUTION
    )


def get_api_key(session: Session, *, key_id: str) -> ApiKey:
    key = IdentityRepository(session).get_api_key(key_id)
    if key is None:
        raise NotFound("No such API key.")
    return key


def list_api_keys(
    session: Session,
    *,
    kind: str | None = None,
    merchant_id: str | None = None,
    operator_id: str | None = None,
    include_revoked: bool = True,
) -> list[ApiKey]:
    if kind is not None and kind not in API_KEY_KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(API_KEY_KINDS)}.", field="kind")
    return IdentityRepository(session).api_keys(
        kind=kind,
        merchant_id=merchant_id,
        operator_id=operator_id,
        include_revoked=include_revoked,
    )


def key_state(key: ApiKey, *, now: datetime) -> str:
    """active | expiring (rotated away, still valid) | expired | revoked."""
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    if key.replaced_by_key_id is not None:
        return "expiring"
    return "active"


def revoke_api_key(
    session: Session, *, key_id: str, reason: str, now: datetime
) -> tuple[ApiKey, bool]:
    """Revoke the key now (it is refused from its next use); the key, and whether this call
    revoked it. Revoking a revoked key changes nothing and keeps the first reason."""
    reason = reason.strip()
    if not reason or len(reason) > 500:
        raise ValidationFailed("A reason (1 to 500 characters) is required.", field="reason")
    key = IdentityRepository(session).get_api_key(key_id, for_update=True)
    if key is None:
        raise NotFound("No such API key.")
    if key.revoked_at is not None:
        return key, False
    key.revoked_at = now
    key.revoked_reason = reason
    session.flush()
    return key, True


def rotate_api_key(
    session: Session,
    *,
    key_id: str,
    now: datetime,
    overlap: timedelta = DEFAULT_ROTATION_OVERLAP,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, ApiKey, str]:
    """A new key for the same holder (kind, merchant, operator, role, label); the old one keeps
    working for ``overlap`` (0 to 30 days), then expires. Returns (old, new, new secret)."""
    if not timedelta(0) <= overlap <= MAX_ROTATION_OVERLAP:
        raise ValidationFailed("The overlap must be between 0 and 30 days.", field="overlap_hours")
    repository = IdentityRepository(session)
    old = repository.get_api_key(key_id, for_update=True)
    if old is None:
        raise NotFound("No such API key.")
    if key_state(old, now=now) in ("revoked", "expired"):
        raise ApiKeyNotUsable("A revoked or expired key cannot be rotated; issue a new one.")
    if old.kind == "operator":
        raise ApiKeyNotUsable(
            "Operator tokens are not rotated (a token must not prolong itself): issue a new one "
            "with a fresh code, then revoke this one."
        )
    if old.replaced_by_key_id is not None:
        raise ApiKeyNotUsable(
            "This key was rotated already; rotate its replacement instead.",
        )
    new, secret = issue_api_key(
        session,
        kind=old.kind,
        now=now,
        merchant_id=old.merchant_id,
        operator_id=old.operator_id,
        label=old.label,
        expires_at=expires_at,
        role=old.role,
    )
    ends = now + overlap
    old.expires_at = ends if old.expires_at is None else min(old.expires_at, ends)
    old.replaced_by_key_id = new.id
    session.flush()
    return old, new, secret


def api_key_view(key: ApiKey, *, now: datetime) -> dict[str, object]:
    """What anyone may see of a key: never its secret or hash."""
    return {
        "id": key.id,
        "kind": key.kind,
        "label": key.label,
        "merchant_id": key.merchant_id,
        "operator_id": key.operator_id,
        "role": key.role,
        "state": key_state(key, now=now),
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "last_used_at": key.last_used_at,
        "revoked_at": key.revoked_at,
        "revoked_reason": key.revoked_reason,
        "replaced_by_key_id": key.replaced_by_key_id,
    }


def get_operator(session: Session, *, operator_id: str) -> Operator:
    operator = IdentityRepository(session).get_operator(operator_id)
    if operator is None:
        raise NotFound("No such operator.")
    return operator


def operator_by_email(session: Session, *, email: str) -> Operator:
    operator = IdentityRepository(session).operator_by_email(email.strip().lower())
    if operator is None:
        raise NotFound("No operator with this email.")
    return operator


def check_operator_token_request(
    *, operator: Operator, role: str | None, lifetime: timedelta | None
) -> str:
    """The role a new token of ``operator`` would carry; 422 for a role or lifetime it may not
    have (checked before a second-factor code is spent on the request)."""
    bound_role = role or operator.role
    if bound_role != operator.role and operator.role != "admin":
        raise ValidationFailed("An operator's token carries the operator's own role.", field="role")
    if lifetime is not None and not timedelta(0) < lifetime <= OPERATOR_TOKEN_MAX_LIFETIME:
        raise ValidationFailed("An operator token lives 1 to 90 days.", field="expires_in_days")
    return bound_role


def issue_operator_token(
    session: Session,
    *,
    operator: Operator,
    now: datetime,
    role: str | None = None,
    lifetime: timedelta | None = None,
    label: str = "",
) -> tuple[ApiKey, str]:
    """A personal API token of ``operator``: bound to its role (an admin may bind a token to a
    narrower role), expiring after ``lifetime`` (default 30 days, at most 90)."""
    bound_role = check_operator_token_request(operator=operator, role=role, lifetime=lifetime)
    return issue_api_key(
        session,
        kind="operator",
        now=now,
        operator_id=operator.id,
        label=label or operator.email,
        expires_at=now + lifetime if lifetime is not None else None,
        role=bound_role,
    )


def create_operator(
    session: Session, *, email: str, role: str, now: datetime
) -> tuple[Operator, str]:
    if role not in OPERATOR_ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(OPERATOR_ROLES)}.", field="role")
    email = validation.validate_email(email).lower()
    repository = IdentityRepository(session)
    if repository.operator_by_email(email) is not None:
        raise Conflict("An operator with this email exists.", field="email")
    operator = Operator(id=new_id("operator"), email=email, role=role, created_at=now)
    repository.add(operator)
    session.flush()
    token = create_api_key(session, kind="operator", operator_id=operator.id, now=now, label=email)
    return operator, token


@dataclass(frozen=True)
class ContactDetails:
    """The shopper's own verified channels: the only ones collections may ever use."""

    shopper_id: str
    external_id: str
    display_name: str  # masked: messages never need the full name
    phone_e164: str
    phone_masked: str
    email: str | None
    email_masked: str | None


@dataclass(frozen=True)
class LegalIdentity:
    """Decrypted identity for a credit-bureau file or a court filing."""

    shopper_id: str
    name: str
    national_id: str
    national_id_masked: str
    phone_e164: str
    phone_masked: str
    enrolled_at: datetime


def operator_emails(session: Session, *, operator_ids: set[str]) -> dict[str, str]:
    """Operator id -> email, for showing who did something (unknown ids are left out)."""
    if not operator_ids:
        return {}
    return IdentityRepository(session).operator_emails(operator_ids)


def is_erased(shopper: Shopper) -> bool:
    return shopper.status == "erased"


def _identified_shopper(session: Session, *, shopper_id: str) -> Shopper:
    """The shopper, whose PII can still be decrypted (refused once it was erased)."""
    shopper = get_shopper(session, shopper_id=shopper_id)
    if is_erased(shopper):
        raise ShopperErased()
    return shopper


def contact_details(session: Session, *, shopper_id: str, cipher: FieldCipher) -> ContactDetails:
    shopper = _identified_shopper(session, shopper_id=shopper_id)
    return ContactDetails(
        shopper_id=shopper.id,
        external_id=shopper.external_id,
        display_name=shopper.name_masked,
        phone_e164=cipher.decrypt(shopper.phone_encrypted, field="phone"),
        phone_masked=shopper.phone_masked,
        email=cipher.decrypt(shopper.email_encrypted, field="email")
        if shopper.email_encrypted
        else None,
        email_masked=shopper.email_masked,
    )


def legal_identity(session: Session, *, shopper_id: str, cipher: FieldCipher) -> LegalIdentity:
    shopper = _identified_shopper(session, shopper_id=shopper_id)
    return LegalIdentity(
        shopper_id=shopper.id,
        name=cipher.decrypt(shopper.name_encrypted, field="name"),
        national_id=cipher.decrypt(shopper.national_id_encrypted, field="national_id"),
        national_id_masked=shopper.national_id_masked,
        phone_e164=cipher.decrypt(shopper.phone_encrypted, field="phone"),
        phone_masked=shopper.phone_masked,
        enrolled_at=shopper.created_at,
    )


def latest_consent(session: Session, *, shopper_id: str) -> Consent | None:
    consents = IdentityRepository(session).consents(shopper_id)
    return consents[-1] if consents else None


def unmasked_identity(
    session: Session, *, shopper_id: str, cipher: FieldCipher
) -> dict[str, str | None]:
    """The shopper's PII in clear, for an operator entitled to it (the caller audits the read)."""
    shopper = _identified_shopper(session, shopper_id=shopper_id)
    return {
        "name": cipher.decrypt(shopper.name_encrypted, field="name"),
        "national_id": cipher.decrypt(shopper.national_id_encrypted, field="national_id"),
        "phone": cipher.decrypt(shopper.phone_encrypted, field="phone"),
        "email": cipher.decrypt(shopper.email_encrypted, field="email")
        if shopper.email_encrypted
        else None,
    }
