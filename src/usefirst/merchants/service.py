"""Merchant onboarding and look-up."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from usefirst.identity.validation import address_hash, normalise_address, validate_phone
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.db import Lookup
from usefirst.kit.errors import NotFound, ValidationFailed
from usefirst.kit.ids import new_id
from usefirst.merchants.models import Merchant
from usefirst.merchants.repository import MerchantRepository
from usefirst.merchants.webhooks import (
    PREVIOUS_SECRET_FIELD,
    SECRET_FIELD,
    check_webhook_url,
    new_webhook_secret,
    webhook_secret_of,
)

# The previous webhook secret signs too for this long after a rotation unless told otherwise.
DEFAULT_WEBHOOK_SECRET_OVERLAP = timedelta(hours=24)
MAX_WEBHOOK_SECRET_OVERLAP = timedelta(days=30)

DEFAULT_SETTLEMENT_DAYS = 1
DEFAULT_FEE_RATE_BPS = 60


@dataclass(frozen=True)
class RegisteredMerchant:
    merchant: Merchant
    webhook_secret: str  # shown once, at onboarding


def register_merchant(
    session: Session,
    *,
    name: str,
    category: str,
    webhook_url: str | None,
    settlement_days: int | None,
    fee_rate_bps: int | None,
    cipher: FieldCipher,
    now: datetime,
    phone: str | None = None,
    address: str | None = None,
    allow_private_destinations: bool = False,
) -> RegisteredMerchant:
    """Check and store a new merchant with a fresh webhook secret (its API key is identity's)."""
    if not name.strip():
        raise ValidationFailed("name must not be empty.", field="name")
    if not category.strip():
        raise ValidationFailed("category must not be empty.", field="category")
    if webhook_url is not None:
        check_webhook_url(webhook_url, allow_private_destinations=allow_private_destinations)
    # The merchant's own phone and address, kept so risk can tell when an order goes to the
    # merchant itself (encrypted, with keyed hashes matching shoppers' phones and addresses).
    phone = validate_phone(phone) if phone is not None else None
    if address is not None and not normalise_address(address):
        raise ValidationFailed("address must not be empty.", field="address")
    webhook_secret = new_webhook_secret()
    merchant = Merchant(
        id=new_id("merchant"),
        name=name.strip(),
        category=category.strip().lower(),
        status="active",
        webhook_url=webhook_url,
        webhook_secret_encrypted=cipher.encrypt(webhook_secret, field=SECRET_FIELD),
        settlement_days=DEFAULT_SETTLEMENT_DAYS if settlement_days is None else settlement_days,
        fee_rate_bps=DEFAULT_FEE_RATE_BPS if fee_rate_bps is None else fee_rate_bps,
        created_at=now,
        phone_encrypted=cipher.encrypt(phone, field="merchant_phone") if phone else None,
        phone_hash=cipher.blind_index(phone, field="phone") if phone else None,
        address_encrypted=cipher.encrypt(address.strip(), field="merchant_address")
        if address
        else None,
        address_hash=address_hash(cipher, address) if address else None,
    )
    MerchantRepository(session).add(merchant)
    session.flush()
    return RegisteredMerchant(merchant=merchant, webhook_secret=webhook_secret)


@dataclass(frozen=True)
class MerchantStanding:
    """What a checkout needs to know of the merchant."""

    id: str
    status: str
    webhook_url: str | None


def merchant_standing(merchant_id: str) -> Lookup[MerchantStanding]:
    """The merchant's standing, read with other look-ups (404 when there is no such merchant)."""

    def read(row: dict[str, Any] | None) -> MerchantStanding:
        if row is None:
            raise NotFound("No such merchant.")
        return MerchantStanding(id=row["id"], status=row["status"], webhook_url=row["webhook_url"])

    return Lookup(
        MerchantRepository.standing_statement(), read, parameters={"merchant_id": merchant_id}
    )


def merchant_by_id(merchant_id: str) -> Lookup[Merchant]:
    """``get_merchant`` as a look-up to send with others: a merchant not known to any session,
    or 404."""

    def read(row: dict[str, Any] | None) -> Merchant:
        if row is None:
            raise NotFound("No such merchant.")
        return Merchant(**row)

    return Lookup(MerchantRepository.by_id_statement(merchant_id), read)


def get_merchant(session: Session, *, merchant_id: str) -> Merchant:
    merchant = MerchantRepository(session).get(merchant_id)
    if merchant is None:
        raise NotFound("No such merchant.")
    return merchant


def lock_merchant(session: Session, *, merchant_id: str) -> Merchant:
    """The merchant, locked: its payouts, clawbacks and standing changes take turns."""
    merchant = MerchantRepository(session).get(merchant_id, for_update=True)
    if merchant is None:
        raise NotFound("No such merchant.")
    return merchant


def lock_merchants(session: Session, *, merchant_ids: list[str]) -> list[Merchant]:
    """The merchants, locked in id order (as :func:`lock_merchant` locks one); 404 if one is
    missing."""
    merchants = MerchantRepository(session).lock_many(sorted(set(merchant_ids)))
    if len(merchants) != len(set(merchant_ids)):
        raise NotFound("No such merchant.")
    return merchants


def merchants_by_id(session: Session, *, merchant_ids: Iterable[str]) -> dict[str, Merchant]:
    """Many merchants at once (one query per thousand), by id; 404 if one is missing."""
    wanted = sorted(set(merchant_ids))
    found = {merchant.id: merchant for merchant in MerchantRepository(session).many(wanted)}
    if len(found) != len(wanted):
        raise NotFound("No such merchant.")
    return found


def change_webhook_url(
    session: Session,
    *,
    merchant_id: str,
    webhook_url: str | None,
    allow_private_destinations: bool,
) -> Merchant:
    """Point the merchant's webhooks elsewhere (None stops them). Events already queued go to
    the new URL, which is read at delivery."""
    if webhook_url is not None:
        check_webhook_url(webhook_url, allow_private_destinations=allow_private_destinations)
    merchant = lock_merchant(session, merchant_id=merchant_id)
    merchant.webhook_url = webhook_url
    session.flush()
    return merchant


def rotate_webhook_secret(
    session: Session,
    *,
    merchant_id: str,
    overlap: timedelta,
    cipher: FieldCipher,
    now: datetime,
) -> tuple[Merchant, str]:
    """A new signing secret; the current one keeps signing beside it for ``overlap`` (0 to 30
    days). A rotation during an overlap ends the older overlap: at most two secrets sign."""
    if not timedelta(0) <= overlap <= MAX_WEBHOOK_SECRET_OVERLAP:
        raise ValidationFailed("The overlap must be between 0 and 30 days.", field="overlap_hours")
    merchant = lock_merchant(session, merchant_id=merchant_id)
    secret = new_webhook_secret()
    merchant.previous_webhook_secret_encrypted = cipher.encrypt(
        webhook_secret_of(merchant, cipher=cipher), field=PREVIOUS_SECRET_FIELD
    )
    merchant.previous_webhook_secret_expires_at = now + overlap
    merchant.webhook_secret_encrypted = cipher.encrypt(secret, field=SECRET_FIELD)
    session.flush()
    return merchant, secret
