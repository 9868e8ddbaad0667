"""Validation and masking of identity data: PRC resident ID (GB 11643-1999), phone, name, email;
addresses normalised and hashed for exact-match look-ups."""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from functools import lru_cache
from zoneinfo import available_timezones

import phonenumbers

from usefirst.kit.crypto import FieldCipher
from usefirst.kit.errors import ValidationFailed

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARACTERS = "10X98765432"
MINIMUM_AGE_YEARS = 18
# The languages reminders are written in, as BCP 47 tags; the first is the default.
SHOPPER_LANGUAGES = ("zh-CN", "en")
DEFAULT_SHOPPER_LANGUAGE = SHOPPER_LANGUAGES[0]


class InvalidTimeZone(ValidationFailed):
    code = "invalid_time_zone"
    default_message = "time_zone must be an IANA time zone name, such as Asia/Shanghai."


class UnsupportedLanguage(ValidationFailed):
    code = "unsupported_language"
    default_message = f"language must be one of {', '.join(SHOPPER_LANGUAGES)}."


def national_id_check_character(first_seventeen: str) -> str:
    total = sum(
        int(digit) * weight for digit, weight in zip(first_seventeen, _WEIGHTS, strict=True)
    )
    return _CHECK_CHARACTERS[total % 11]


def birth_date_of(national_id: str) -> date:
    return date(int(national_id[6:10]), int(national_id[10:12]), int(national_id[12:14]))


def age_on(birth_on: date, on: date) -> int:
    years = on.year - birth_on.year
    if (on.month, on.day) < (birth_on.month, birth_on.day):
        years -= 1
    return years


def validate_national_id(raw: str, *, today: date, field: str = "national_id") -> str:
    """Return the normalised 18-character ID (upper-case X) or raise 422."""
    value = raw.strip().upper()
    # ASCII only: Unicode digits (e.g. full-width) would pass \d and int() yet hash differently,
    # letting one person enrol twice under the same number.
    if not re.fullmatch(r"[1-9]\d{16}[\dX]", value, flags=re.ASCII):
        raise ValidationFailed(
            "A resident ID number has 18 characters: 17 digits and a check digit (0-9 or X).",
            field=field,
        )
    if national_id_check_character(value[:17]) != value[17]:
        raise ValidationFailed("The resident ID number's check digit is wrong.", field=field)
    try:
        birth_on = birth_date_of(value)
    except ValueError:
        raise ValidationFailed(
            "The resident ID number holds an impossible birth date.", field=field
        ) from None
    if birth_on.year < 1900 or birth_on > today:
        raise ValidationFailed(
            "The resident ID number holds an impossible birth date.", field=field
        )
    if age_on(birth_on, today) < MINIMUM_AGE_YEARS:
        raise ValidationFailed(
            f"Shoppers must be at least {MINIMUM_AGE_YEARS} years old.", field=field
        )
    return value


def validate_phone(raw: str, *, field: str = "phone") -> str:
    """Return the number in E.164 or raise 422. The number must be written with its + prefix."""
    value = raw.strip()
    if not value.startswith("+"):
        raise ValidationFailed(
            "Give the phone number in E.164 form, e.g. +8613800138000.", field=field
        )
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValidationFailed("The phone number cannot be read.", field=field) from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationFailed("The phone number is not a valid number.", field=field)
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def validate_name(raw: str, *, field: str = "name") -> str:
    value = unicodedata.normalize("NFC", raw.strip())
    if not 1 <= len(value) <= 64:
        raise ValidationFailed("The name must have 1 to 64 characters.", field=field)
    if any(unicodedata.category(character).startswith("C") for character in value):
        raise ValidationFailed("The name contains control characters.", field=field)
    return value


def validate_email(raw: str, *, field: str = "email") -> str:
    value = raw.strip()
    if len(value) > 254 or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise ValidationFailed("The email address is not valid.", field=field)
    return value


def normalise_address(address: str) -> str:
    """Two spellings of one address hash alike: width and case folded, spaces and punctuation
    dropped (``北京市 朝阳区，建国路1号`` = ``北京市朝阳区建国路1号``)."""
    folded = unicodedata.normalize("NFKC", address).casefold()
    return "".join(
        character
        for character in folded
        if not unicodedata.category(character).startswith(("P", "Z", "C", "S"))
    )


def address_hash(cipher: FieldCipher, address: str) -> str:
    # risk's compute_checkout_features inlines this (it normalises once): keep the two alike.
    return cipher.blind_index(normalise_address(address), field="address")


@lru_cache(maxsize=1)
def _time_zone_names() -> frozenset[str]:
    # "localtime" and "Factory" are files of the system's zone directory, not places.
    return frozenset(available_timezones()) - {"localtime", "posixrules", "Factory"}


def validate_time_zone(raw: str, *, field: str = "time_zone") -> str:
    """An IANA time zone name known to zoneinfo (exact spelling), or 422 ``invalid_time_zone``.
    Checked against the list rather than by loading it: ``ZoneInfo`` also reads file paths."""
    value = raw.strip()
    if value not in _time_zone_names():
        raise InvalidTimeZone(field=field)
    return value


def validate_language(raw: str, *, field: str = "language") -> str:
    value = raw.strip()
    if value not in SHOPPER_LANGUAGES:
        raise UnsupportedLanguage(field=field)
    return value


def mask_national_id(value: str) -> str:
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_phone(e164: str) -> str:
    parsed = phonenumbers.parse(e164, None)
    national = str(parsed.national_number)
    return f"+{parsed.country_code} {national[:3]}{'*' * max(len(national) - 7, 0)}{national[-4:]}"


def mask_name(value: str) -> str:
    return value[0] + "*" * (len(value) - 1) if len(value) > 1 else "*"


def mask_email(value: str) -> str:
    local, _, domain = value.partition("@")
    return f"{local[0]}***@{domain}"
