"""Enrolment of shoppers (validated, PII encrypted, consent recorded) and API credentials."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from usefirst.identity import validation
from usefirst.identity.models import ApiKey, Consent, Operator, Shopper
from usefirst.identity.repository import IdentityRepository
from usefirst.kit.crypto import FieldCipher, hash_api_key, new_api_secret
from usefirst.kit.errors import Conflict, NotFound, ValidationFailed
from usefirst.kit.ids import new_id

OPERATOR_ROLES = ("admin", "risk_analyst", "collector", "compliance", "support")


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


def get_shopper(session: Session, *, shopper_id: str) -> Shopper:
    shopper = IdentityRepository(session).get_shopper(shopper_id)
    if shopper is None:
        raise NotFound("No such shopper.")
    return shopper


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
) -> str:
    """Create a key and return its secret; only its hash is stored, so it is shown once."""
    prefixes = {"platform": "uf_plat", "merchant": "uf_mer", "operator": "uf_op"}
    secret = new_api_secret(prefixes[kind])
    IdentityRepository(session).add(
        ApiKey(
            id=new_id("api_key"),
            secret_hash=hash_api_key(secret),
            kind=kind,
            merchant_id=merchant_id,
            operator_id=operator_id,
            label=label,
            created_at=now,
        )
    )
    return secret


def authenticate(session: Session, *, secret: str) -> Principal | None:
    repository = IdentityRepository(session)
    key = repository.api_key_by_hash(hash_api_key(secret))
    if key is None:
        return None
    role = None
    if key.kind == "operator" and key.operator_id is not None:
        operator = repository.get_operator(key.operator_id)
        if operator is None:
            return None
        role = operator.role
    return Principal(
        kind=key.kind,
        key_id=key.id,
        merchant_id=key.merchant_id,
        operator_id=key.operator_id,
        role=role,
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
