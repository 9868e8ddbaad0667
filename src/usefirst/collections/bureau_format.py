"""Credit-bureau reporting files: Metro 2® (426-character records); the masked JSON Lines beside
it are written by ``bureau_jsonl`` from the same accounts and codes.

Pure code: the caller loads the accounts (decrypting names and IDs) and stores the result.

Where the layout comes from
---------------------------
Metro 2® is the CDIA's format, described in its Credit Reporting Resource Guide (CRRG). The
positions below are the CRRG's "426 character format" (unpacked, fixed-length). They were taken
from, and cross-checked between, two public implementations:

* ``cfpb/Metro2`` ``django/parse_m2/fields.py``: the CFPB's Metro 2 parser, whose field table
  states "the start and end positions for each field match those in the CRRG";
* ``moov-io/metro2`` ``pkg/lib/specifications.go`` (field offsets and lengths) and the CRRG
  field descriptions quoted in ``pkg/lib/base_segment.go``, ``header_record.go`` and
  ``trailer_record.go`` (payment rating, date of first delinquency, SSN, amounts, trailer counts);
  code lists (account types, compliance condition codes) from the CFPB tool's lookups.

Decisions, and why
------------------
* One base segment per order, the order id as Consumer Account Number. The CRRG forbids embedded
  special characters there, so ``ord_01M84…`` is written ``ORD01M84…`` (the id's only
  non-alphanumeric is the prefix underscore, so the mapping is reversible).
* Portfolio Type ``I`` (installment) and Account Type ``01`` (Unsecured): each order is a
  closed-end loan with a fixed number of payments and no collateral. ``06`` (Installment Sales
  Contract) would say the seller is the creditor, but here the platform, not the merchant, lends.
  Per the CRRG for installment portfolios, Credit Limit is zero-filled and Highest Credit carries
  the original loan amount; the shopper's credit line and highest balance go to the JSONL only.
* Money: Metro 2 takes whole currency units ("whole dollars") in 9-digit zero-filled fields. We
  truncate the minor units (floor, amounts are never negative), because the CRRG reports whole
  dollars with cents dropped; rounding up would report a debt larger than the one owed. An
  amount too large for its field raises rather than being cut.
* Names: Metro 2 is ASCII and allows letters, spaces and hyphens. Chinese names are written in
  Hanyu Pinyin as on PRC passports: syllables joined without spaces (欧阳 → OUYANG, 小明 →
  XIAOMING), ü as YU (吕 → LYU), a fixed table for surnames whose reading as a surname differs
  from the common one (单 → SHAN, 曾 → ZENG, 区 → OU …), the middle dot of minority names as a
  hyphen. Transliteration uses ``pypinyin``.
* Identity: the SSN field takes only U.S. SSNs; the CRRG says to zero-fill it when there is none,
  and then requires the date of birth, which we always report. The PRC resident ID has no field
  in Metro 2 (no J/K/L/N segment carries a foreign identifier), so it is not written: putting it
  in a reserved or address field would be non-conforming and would leak it to anyone parsing the
  file by the standard. A bureau that matches on the resident ID needs its own format.
* Telephone: the field is a North American number (area code + 7 digits). A +1 number is written;
  any other (a Chinese mobile has 11 digits) is zero-filled rather than cut into a wrong number.
* Address: we hold none in the bureau feed, so the address fields are blank-filled.
* Compliance Condition Code ``XB`` when the account is disputed: "account information disputed by
  the consumer directly to the data furnisher under the FCRA; investigation in progress" is the
  closest code to our dispute flag. Once the dispute closes, the file of the period it closed in
  carries ``XH`` ("account previously in dispute; investigation completed, reported by data
  furnisher"), as the CRRG asks; the caller says so (``is_dispute_resolved``), and the file after
  that carries no code.
* Payment Rating is filled only for the Account Status codes the CRRG names (05, 13, 65, 88, 89,
  94, 95) and blank otherwise, as the CRRG requires.
* Date of First Delinquency follows the CRRG hierarchy: reported for delinquent and charged-off
  statuses (and for 13 with a late rating), zero-filled for current accounts even if the account
  was once late.
* Dates are MMDDYYYY, zero-filled when absent. Nothing reads the clock: the base Time Stamp is
  the Date of Account Information at 00:00:00, and the header's Date Created defaults to the
  activity date.
* Line terminator: every record, the last included, is followed by one ``\\n`` (LF). Metro 2
  records are delimited by their fixed length, so a reader that slices 426 characters is
  unaffected once it skips the LF; public Metro 2 files (e.g. the CFPB's samples) are LF-separated
  text, and LF keeps the file usable with line tools. ``len(file) == 427 × records``.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Literal, get_args

from pypinyin import Style, lazy_pinyin

from usefirst.identity.validation import (
    birth_date_of,
    national_id_check_character,
)
from usefirst.kit.money import SUPPORTED_CURRENCIES

RECORD_LENGTH = 426
LINE_TERMINATOR = "\n"

PORTFOLIO_TYPE_INSTALLMENT = "I"
ACCOUNT_TYPE_UNSECURED = "01"
ECOA_CODE_INDIVIDUAL = "1"
COUNTRY_CODE_CHINA = "CN"
COMPLIANCE_CODE_DISPUTED_UNDER_FCRA = "XB"
COMPLIANCE_CODE_DISPUTE_RESOLVED = "XH"
INTEREST_TYPE_FIXED = "F"
PROCESSING_INDICATOR = 1
PAYMENT_HISTORY_MONTHS = 24

AccountStanding = Literal["current", "past_due", "paid", "charged_off"]
TermsFrequency = Literal["M", "P"]

ACCOUNT_STANDINGS: frozenset[str] = frozenset(get_args(AccountStanding))
TERMS_FREQUENCIES: frozenset[str] = frozenset(get_args(TermsFrequency))

# The CRRG: Payment Rating "must be reported" with these statuses and "blank filled for all other
# Account Status Codes".
STATUSES_WITH_PAYMENT_RATING = frozenset({"05", "13", "65", "88", "89", "94", "95"})
# CRRG hierarchy rule 1 for the Date of First Delinquency.
STATUSES_WITH_FIRST_DELINQUENCY = frozenset(
    {"61", "62", "63", "64", "65", "71", "78", "80", "82", "83", "84", "88", "89"}
    | {"93", "94", "95", "96", "97"}
)
PAID_IN_FULL_STATUSES = frozenset({"13", "64"})
# Status codes counted in the trailer, in trailer order (DF sits apart, before the J1 count).
TRAILER_STATUS_CODES = (
    "DA", "05", "11", "13", "61", "62", "63", "64", "65", "71", "78", "80",
    "82", "83", "84", "88", "89", "93", "94", "95", "96", "97",
)  # fmt: skip

_PAYMENT_HISTORY_PATTERN = re.compile(r"[0-6DEGHJKL]*B*")
_NATIONAL_ID_PATTERN = re.compile(r"[1-9]\d{16}[\dX]", flags=re.ASCII)
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]+")
_NAME_SEPARATORS = "·•・‧.．"

# Surnames whose reading as a family name differs from the character's most common reading.
_SURNAME_PINYIN: Mapping[str, str] = {
    "单": "shan",
    "曾": "zeng",
    "区": "ou",
    "仇": "qiu",
    "解": "xie",
    "查": "zha",
    "朴": "piao",
    "覃": "qin",
    "秘": "bi",
    "盖": "ge",
    "乐": "yue",
    "种": "chong",
    "翟": "zhai",
    "召": "shao",
    "缪": "miao",
    "员": "yun",
    "繁": "po",
    "句": "gou",
    "柏": "bai",
    "薄": "bo",
    "宓": "mi",
    "尉迟": "yuchi",
    "万俟": "moqi",
}


@dataclass(frozen=True)
class BureauAccount:
    """One order's facts for one reporting period, as the bureau file needs them.

    ``status`` is the account's standing: ``current`` and ``past_due`` are open accounts whose
    Metro 2 status derives from ``days_past_due`` (1–29 days late is still "current" in Metro 2,
    so ``current`` with 30 or more days is contradictory and refused); ``paid`` is paid in full;
    ``charged_off`` is written off, with ``current_balance_minor`` what is still unpaid (zero
    once recovered in full). ``payment_history_profile`` is the previous 24 months' codes, most
    recent first; it is padded with ``B`` (no history).
    """

    account_number: str
    shopper_id: str
    surname: str
    given_name: str
    birth_on: date
    national_id: str
    phone_e164: str
    opened_on: date
    credit_limit_minor: int
    highest_credit_minor: int
    original_amount_minor: int
    terms_duration: int
    terms_frequency: TermsFrequency
    scheduled_monthly_payment_minor: int
    actual_payment_minor: int
    current_balance_minor: int
    amount_past_due_minor: int
    days_past_due: int
    status: AccountStanding
    date_of_first_delinquency: date | None
    date_closed: date | None
    date_last_payment: date | None
    charge_off_amount_minor: int
    is_disputed: bool
    account_information_on: date
    currency: str
    payment_history_profile: str = ""
    special_comment_code: str = ""
    # A dispute closed within this period (reported once with XH); never with is_disputed.
    is_dispute_resolved: bool = False

    def __post_init__(self) -> None:
        self._check_amounts()
        self._check_identity()
        self._check_terms()
        self._check_standing()

    def _check_amounts(self) -> None:
        if self.currency not in SUPPORTED_CURRENCIES:
            raise ValueError(f"unsupported currency {self.currency!r}")
        for name, value in self.amounts_minor().items():
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int of minor units")
            if value < 0:
                raise ValueError(f"{name} must not be negative (report a credit balance as 0)")

    def _check_identity(self) -> None:
        if not _NATIONAL_ID_PATTERN.fullmatch(self.national_id):
            raise ValueError("national_id must be an 18-character PRC resident ID")
        if national_id_check_character(self.national_id[:17]) != self.national_id[17]:
            raise ValueError("national_id has a wrong check character")
        if birth_date_of(self.national_id) != self.birth_on:
            raise ValueError("birth_on differs from the birth date in national_id")
        if not re.fullmatch(r"\+[1-9]\d{6,14}", self.phone_e164, flags=re.ASCII):
            raise ValueError("phone_e164 must be an E.164 number")
        if not self.surname.strip() or not self.given_name.strip():
            raise ValueError("surname and given_name are required")
        metro2_account_number(self.account_number)  # raises when it cannot be reported

    def _check_terms(self) -> None:
        if self.terms_frequency not in TERMS_FREQUENCIES:
            raise ValueError(f"terms_frequency must be one of {sorted(TERMS_FREQUENCIES)}")
        if not 1 <= self.terms_duration <= 999:
            raise ValueError("terms_duration must be 1 to 999 payments")
        if self.terms_frequency == "P" and self.terms_duration != 1:
            raise ValueError("a single-payment (P) account has terms_duration 1")
        if self.opened_on > self.account_information_on:
            raise ValueError("opened_on is after account_information_on")
        if len(self.payment_history_profile) > PAYMENT_HISTORY_MONTHS or not (
            _PAYMENT_HISTORY_PATTERN.fullmatch(self.payment_history_profile)
        ):
            raise ValueError("payment_history_profile: up to 24 codes 0-6 D E G H J K L, B last")
        if self.is_disputed and self.is_dispute_resolved:
            raise ValueError("an account is either disputed or its dispute was resolved")
        if not re.fullmatch(r"[A-Z0-9]{0,2}", self.special_comment_code):
            raise ValueError("special_comment_code is a Metro 2 code of up to 2 characters")

    def _check_standing(self) -> None:
        if self.status not in ACCOUNT_STANDINGS:
            raise ValueError(f"status must be one of {sorted(ACCOUNT_STANDINGS)}")
        if self.days_past_due < 0:
            raise ValueError("days_past_due must not be negative")
        if self.status == "current" and self.days_past_due >= 30:
            raise ValueError("a current account is less than 30 days past due; use past_due")
        if self.status == "paid" and (self.current_balance_minor or self.amount_past_due_minor):
            raise ValueError("a paid account has no balance and nothing past due")
        if self.status == "charged_off" and self.charge_off_amount_minor == 0:
            raise ValueError("a charged-off account needs charge_off_amount_minor")
        status_code = metro2_account_status(self)
        if status_code in PAID_IN_FULL_STATUSES and self.date_closed is None:
            raise ValueError("an account paid in full needs date_closed (the date paid)")
        needs_first_delinquency = status_code in STATUSES_WITH_FIRST_DELINQUENCY or (
            status_code == "13" and self.days_past_due >= 30
        )
        if needs_first_delinquency and self.date_of_first_delinquency is None:
            raise ValueError(f"status {status_code} needs date_of_first_delinquency (FCRA)")

    def amounts_minor(self) -> dict[str, int]:
        return {
            "credit_limit_minor": self.credit_limit_minor,
            "highest_credit_minor": self.highest_credit_minor,
            "original_amount_minor": self.original_amount_minor,
            "scheduled_monthly_payment_minor": self.scheduled_monthly_payment_minor,
            "actual_payment_minor": self.actual_payment_minor,
            "current_balance_minor": self.current_balance_minor,
            "amount_past_due_minor": self.amount_past_due_minor,
            "charge_off_amount_minor": self.charge_off_amount_minor,
        }


@dataclass(frozen=True)
class ReporterInfo:
    """The data furnisher, as the header and each base segment name it.

    ``identification_number`` is the furnisher id the bureaus assigned (base segment field 5):
    at least 5 characters, letters and digits only, stable from month to month.
    """

    identification_number: str
    reporter_name: str
    reporter_address: str
    reporter_telephone_digits: str = ""
    innovis_program_identifier: str = ""
    equifax_program_identifier: str = ""
    experian_program_identifier: str = ""
    transunion_program_identifier: str = ""
    cycle_identifier: str = ""
    program_on: date | None = None
    program_revised_on: date | None = None
    software_vendor_name: str = "USEFIRST"
    software_version_number: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9]{5,20}", self.identification_number) or re.fullmatch(
            r"0+|9+", self.identification_number
        ):
            raise ValueError("identification_number: 5-20 letters or digits, not all 0 or 9")
        if not self.reporter_name.strip() or not self.reporter_address.strip():
            raise ValueError("reporter_name and reporter_address are required")
        if not re.fullmatch(r"(\d{10})?", self.reporter_telephone_digits, flags=re.ASCII):
            raise ValueError("reporter_telephone_digits: area code + 7 digits, or empty")


def whole_units(amount_minor: int, currency: str) -> int:
    """Whole currency units for a Metro 2 money field: minor units truncated (see module doc)."""
    if amount_minor < 0:
        raise ValueError("Metro 2 amounts are never negative")
    minor_units_per_whole: int = 10 ** SUPPORTED_CURRENCIES[currency]
    return amount_minor // minor_units_per_whole


def metro2_account_status(account: BureauAccount) -> str:
    """The Metro 2 Account Status code (CRRG Exhibit 4) for the account as of its info date."""
    if account.status == "charged_off":
        return "64" if account.current_balance_minor == 0 else "97"
    if account.status == "paid":
        return "64" if account.charge_off_amount_minor > 0 else "13"
    return _status_for_days_past_due(account.days_past_due)


def _status_for_days_past_due(days_past_due: int) -> str:
    if days_past_due < 30:
        return "11"
    if days_past_due < 60:
        return "71"
    if days_past_due < 90:
        return "78"
    if days_past_due < 120:
        return "80"
    if days_past_due < 150:
        return "82"
    if days_past_due < 180:
        return "83"
    return "84"


def _rating_for_days_past_due(days_past_due: int) -> str:
    return str(min(max(days_past_due, 0) // 30, 6))


def metro2_payment_rating(account: BureauAccount) -> str:
    """The Payment Rating field: ``""`` (blank) unless the status code calls for one.

    Our statuses need it only for 13 (paid): how late the account was during the period before
    it was paid, 0 (0–29 days) to 6 (180+). Charged-off accounts report 97 or 64, for which the
    CRRG requires a blank rating; the charge-off shows as ``L`` in the payment history instead
    (see :func:`metro2_payment_history_code`).
    """
    if metro2_account_status(account) not in STATUSES_WITH_PAYMENT_RATING:
        return ""
    return _rating_for_days_past_due(account.days_past_due)


def payment_history_code_for_days(days_past_due: int) -> str:
    """The payment history code of an open account ``days_past_due`` late: 0 (0–29 days),
    1 (30–59) … 5 (150–179), 6 (180 or more)."""
    if days_past_due < 0:
        raise ValueError("days_past_due must not be negative")
    return _rating_for_days_past_due(days_past_due)


def metro2_payment_history_code(account: BureauAccount) -> str:
    """This period's code for next period's Payment History Profile: 0–6 by lateness, L if
    charged off. The caller prepends it to the stored profile when it reports the next month."""
    if metro2_account_status(account) in {"97", "64"}:
        return "L"
    return _rating_for_days_past_due(account.days_past_due)


def metro2_compliance_condition_code(account: BureauAccount) -> str:
    if account.is_disputed:
        return COMPLIANCE_CODE_DISPUTED_UNDER_FCRA
    return COMPLIANCE_CODE_DISPUTE_RESOLVED if account.is_dispute_resolved else ""


def metro2_account_number(account_number: str) -> str:
    """The order id without special characters, upper-case: ``ord_01M8…`` → ``ORD01M8…``."""
    reported = re.sub(r"[^A-Za-z0-9]", "", account_number).upper()
    if not 1 <= len(reported) <= 30:
        raise ValueError("account_number must have 1 to 30 letters or digits")
    return reported


def transliterate_name(name: str, *, is_surname: bool = False) -> str:
    """A Chinese (or Latin) name in upper-case ASCII pinyin, as on a PRC passport."""
    normalized = unicodedata.normalize("NFC", name.strip())
    if is_surname and normalized in _SURNAME_PINYIN:
        return _SURNAME_PINYIN[normalized].upper()
    pieces: list[str] = []
    position = 0
    for han_run in _HAN_RUN.finditer(normalized):
        pieces.append(_latin_name_part(normalized[position : han_run.start()]))
        syllables = lazy_pinyin(han_run.group(), style=Style.NORMAL, errors="ignore")
        # Style.NORMAL spells ü as "v"; passports spell it "yu" (吕 → LYU).
        pieces.append("".join(syllable.replace("v", "yu") for syllable in syllables))
        position = han_run.end()
    pieces.append(_latin_name_part(normalized[position:]))
    reported = re.sub(r" *- *", "-", re.sub(r" +", " ", "".join(pieces).upper()))
    reported = re.sub(r"-+", "-", reported).strip(" -")
    if not reported:
        raise ValueError(f"name {name!r} has nothing that can be written in ASCII")
    return reported


def _fit_name(reported_name: str, length: int) -> str:
    # A name is a matching aid, not an identifier: cut to the field rather than refuse the file.
    return reported_name[:length].rstrip(" -")


def _latin_name_part(text: str) -> str:
    for separator in _NAME_SEPARATORS:
        text = text.replace(separator, "-")
    decomposed = unicodedata.normalize("NFKD", text)
    # The CRRG allows no special characters in names other than the hyphen.
    return "".join(
        character
        for character in decomposed
        if character.isascii() and (character.isalpha() or character in " -")
    )


def _nanp_telephone_number(phone_e164: str) -> int:
    """Area code + 7 digits for a +1 number; 0 (zero-filled) for any other country."""
    if re.fullmatch(r"\+1\d{10}", phone_e164, flags=re.ASCII):
        return int(phone_e164[2:])
    return 0


# --- record layouts (CRRG positions, 1-based as in the guide) ---------------------------------

FieldKind = Literal["numeric", "text", "date", "timestamp"]


@dataclass(frozen=True)
class Metro2Field:
    name: str
    start: int
    length: int
    kind: FieldKind


def _layout(*fields: tuple[str, int, int, FieldKind]) -> tuple[Metro2Field, ...]:
    layout = tuple(Metro2Field(*field) for field in fields)
    expected_start = 1
    for field in layout:
        if field.start != expected_start:
            raise RuntimeError(f"Metro 2 layout gap or overlap at {field.name}")
        expected_start += field.length
    if expected_start != RECORD_LENGTH + 1:
        raise RuntimeError("Metro 2 layout does not add up to 426 characters")
    return layout


HEADER_LAYOUT = _layout(
    ("record_descriptor_word", 1, 4, "numeric"),
    ("record_identifier", 5, 6, "text"),
    ("cycle_identifier", 11, 2, "text"),
    ("innovis_program_identifier", 13, 10, "text"),
    ("equifax_program_identifier", 23, 10, "text"),
    ("experian_program_identifier", 33, 5, "text"),
    ("transunion_program_identifier", 38, 10, "text"),
    ("activity_date", 48, 8, "date"),
    ("date_created", 56, 8, "date"),
    ("program_date", 64, 8, "date"),
    ("program_revision_date", 72, 8, "date"),
    ("reporter_name", 80, 40, "text"),
    ("reporter_address", 120, 96, "text"),
    ("reporter_telephone_number", 216, 10, "numeric"),
    ("software_vendor_name", 226, 40, "text"),
    ("software_version_number", 266, 5, "text"),
    ("prbc_program_identifier", 271, 10, "text"),
    ("reserved", 281, 146, "text"),
)

BASE_LAYOUT = _layout(
    ("record_descriptor_word", 1, 4, "numeric"),
    ("processing_indicator", 5, 1, "numeric"),
    ("time_stamp", 6, 14, "timestamp"),
    ("correction_indicator", 20, 1, "numeric"),
    ("identification_number", 21, 20, "text"),
    ("cycle_identifier", 41, 2, "text"),
    ("consumer_account_number", 43, 30, "text"),
    ("portfolio_type", 73, 1, "text"),
    ("account_type", 74, 2, "text"),
    ("date_opened", 76, 8, "date"),
    ("credit_limit", 84, 9, "numeric"),
    ("highest_credit", 93, 9, "numeric"),
    ("terms_duration", 102, 3, "text"),
    ("terms_frequency", 105, 1, "text"),
    ("scheduled_monthly_payment", 106, 9, "numeric"),
    ("actual_payment", 115, 9, "numeric"),
    ("account_status", 124, 2, "text"),
    ("payment_rating", 126, 1, "text"),
    ("payment_history_profile", 127, 24, "text"),
    ("special_comment", 151, 2, "text"),
    ("compliance_condition_code", 153, 2, "text"),
    ("current_balance", 155, 9, "numeric"),
    ("amount_past_due", 164, 9, "numeric"),
    ("original_charge_off_amount", 173, 9, "numeric"),
    ("date_of_account_information", 182, 8, "date"),
    ("date_of_first_delinquency", 190, 8, "date"),
    ("date_closed", 198, 8, "date"),
    ("date_of_last_payment", 206, 8, "date"),
    ("interest_type_indicator", 214, 1, "text"),
    ("reserved", 215, 17, "text"),
    ("surname", 232, 25, "text"),
    ("first_name", 257, 20, "text"),
    ("middle_name", 277, 20, "text"),
    ("generation_code", 297, 1, "text"),
    ("social_security_number", 298, 9, "numeric"),
    ("date_of_birth", 307, 8, "date"),
    ("telephone_number", 315, 10, "numeric"),
    ("ecoa_code", 325, 1, "text"),
    ("consumer_information_indicator", 326, 2, "text"),
    ("country_code", 328, 2, "text"),
    ("first_line_of_address", 330, 32, "text"),
    ("second_line_of_address", 362, 32, "text"),
    ("city", 394, 20, "text"),
    ("state", 414, 2, "text"),
    ("postal_code", 416, 9, "text"),
    ("address_indicator", 425, 1, "text"),
    ("residence_code", 426, 1, "text"),
)


def _trailer_status_fields() -> list[tuple[str, int, int, FieldKind]]:
    return [
        (f"total_status_code_{code.lower()}", 66 + 9 * index, 9, "numeric")
        for index, code in enumerate(TRAILER_STATUS_CODES)
    ]


TRAILER_LAYOUT = _layout(
    ("record_descriptor_word", 1, 4, "numeric"),
    ("record_identifier", 5, 7, "text"),
    ("total_base_records", 12, 9, "numeric"),
    ("reserved_1", 21, 9, "text"),
    ("total_status_code_df", 30, 9, "numeric"),
    ("total_j1_segments", 39, 9, "numeric"),
    ("total_j2_segments", 48, 9, "numeric"),
    ("block_count", 57, 9, "numeric"),
    *_trailer_status_fields(),  # DA at 66 … 97 at 255
    ("total_ecoa_code_z", 264, 9, "numeric"),
    ("total_employment_segments", 273, 9, "numeric"),
    ("total_original_creditor_segments", 282, 9, "numeric"),
    ("total_purchased_sold_segments", 291, 9, "numeric"),
    ("total_mortgage_information_segments", 300, 9, "numeric"),
    ("total_specialized_payment_segments", 309, 9, "numeric"),
    ("total_change_segments", 318, 9, "numeric"),
    ("total_ssn_all_segments", 327, 9, "numeric"),
    ("total_ssn_base_segments", 336, 9, "numeric"),
    ("total_ssn_j1_segments", 345, 9, "numeric"),
    ("total_ssn_j2_segments", 354, 9, "numeric"),
    ("total_birth_dates_all_segments", 363, 9, "numeric"),
    ("total_birth_dates_base_segments", 372, 9, "numeric"),
    ("total_birth_dates_j1_segments", 381, 9, "numeric"),
    ("total_birth_dates_j2_segments", 390, 9, "numeric"),
    ("total_telephone_numbers_all_segments", 399, 9, "numeric"),
    ("reserved_2", 408, 19, "text"),
)

FieldValue = str | int | date | datetime | None


def render_record(layout: Sequence[Metro2Field], values: Mapping[str, FieldValue]) -> str:
    """One fixed-length record. Fields not given are blank (text) or zero (numbers, dates)."""
    unknown = set(values) - {field.name for field in layout}
    if unknown:
        raise ValueError(f"no such Metro 2 fields: {sorted(unknown)}")
    record = "".join(_format_field(field, values.get(field.name)) for field in layout)
    if len(record) != RECORD_LENGTH:
        raise RuntimeError(f"Metro 2 record has {len(record)} characters, not {RECORD_LENGTH}")
    return record


def _format_field(field: Metro2Field, value: FieldValue) -> str:
    if field.kind == "numeric":
        number = 0 if value is None else value
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise ValueError(f"{field.name} must be a non-negative int, not {value!r}")
        digits = str(number)
        if len(digits) > field.length:
            raise ValueError(f"{field.name} {number} does not fit {field.length} digits")
        return digits.rjust(field.length, "0")
    if field.kind in ("date", "timestamp"):
        if value is None:
            return "0" * field.length
        if field.kind == "timestamp" and isinstance(value, datetime):
            return value.strftime("%m%d%Y%H%M%S")
        if field.kind == "date" and isinstance(value, date) and not isinstance(value, datetime):
            return value.strftime("%m%d%Y")
        raise ValueError(f"{field.name} must be a {field.kind}, not {value!r}")
    text = "" if value is None else value
    if not isinstance(text, str):
        raise ValueError(f"{field.name} must be text, not {value!r}")
    text = text.upper()
    if not text.isascii() or not text.isprintable():
        raise ValueError(f"{field.name} must be printable ASCII: {text!r}")
    if len(text) > field.length:
        raise ValueError(f"{field.name} {text!r} is longer than {field.length}")
    return text.ljust(field.length, " ")


# --- Metro 2 file ----------------------------------------------------------------------------


def metro2_base_values(reporter: ReporterInfo, account: BureauAccount) -> dict[str, FieldValue]:
    """The base segment's field values for one account, before fixed-length formatting."""
    status_code = metro2_account_status(account)
    payment_rating = metro2_payment_rating(account)
    is_paid_in_full = status_code in PAID_IN_FULL_STATUSES
    reports_first_delinquency = status_code in STATUSES_WITH_FIRST_DELINQUENCY or (
        payment_rating not in ("", "0")
    )

    def whole(amount_minor: int) -> int:
        return whole_units(amount_minor, account.currency)

    return {
        "record_descriptor_word": RECORD_LENGTH,
        "processing_indicator": PROCESSING_INDICATOR,
        "time_stamp": datetime.combine(account.account_information_on, time()),
        "correction_indicator": 0,
        "identification_number": reporter.identification_number,
        "cycle_identifier": reporter.cycle_identifier,
        "consumer_account_number": metro2_account_number(account.account_number),
        "portfolio_type": PORTFOLIO_TYPE_INSTALLMENT,
        "account_type": ACCOUNT_TYPE_UNSECURED,
        "date_opened": account.opened_on,
        # CRRG: installment accounts zero-fill the credit limit and report the original amount.
        "credit_limit": 0,
        "highest_credit": whole(account.original_amount_minor),
        "terms_duration": f"{account.terms_duration:03d}",
        "terms_frequency": account.terms_frequency,
        # CRRG: zero when paid in full; nothing past due on a current or paid account.
        "scheduled_monthly_payment": (
            0 if is_paid_in_full else whole(account.scheduled_monthly_payment_minor)
        ),
        "actual_payment": whole(account.actual_payment_minor),
        "account_status": status_code,
        "payment_rating": payment_rating,
        "payment_history_profile": account.payment_history_profile.ljust(
            PAYMENT_HISTORY_MONTHS, "B"
        ),
        "special_comment": account.special_comment_code,
        "compliance_condition_code": metro2_compliance_condition_code(account),
        "current_balance": whole(account.current_balance_minor),
        "amount_past_due": (
            0 if status_code in {"11", "13", "64"} else whole(account.amount_past_due_minor)
        ),
        "original_charge_off_amount": (
            whole(account.charge_off_amount_minor) if status_code in {"64", "97"} else 0
        ),
        "date_of_account_information": account.account_information_on,
        "date_of_first_delinquency": (
            account.date_of_first_delinquency if reports_first_delinquency else None
        ),
        "date_closed": account.date_closed,
        "date_of_last_payment": account.date_last_payment,
        "interest_type_indicator": INTEREST_TYPE_FIXED,
        "surname": _fit_name(transliterate_name(account.surname, is_surname=True), 25),
        "first_name": _fit_name(transliterate_name(account.given_name), 20),
        "social_security_number": 0,
        "date_of_birth": account.birth_on,
        "telephone_number": _nanp_telephone_number(account.phone_e164),
        "ecoa_code": ECOA_CODE_INDIVIDUAL,
        "country_code": COUNTRY_CODE_CHINA,
    }


def write_metro2(
    *,
    reporter: ReporterInfo,
    accounts: Sequence[BureauAccount],
    period_end: date,
    activity_on: date,
    created_on: date | None = None,
) -> str:
    """A Metro 2 file: header, one base segment per account, trailer; each line 426 + LF.

    ``activity_on`` is the header's Activity Date (the most recent account update in the file);
    ``created_on`` its Date Created, by default the activity date.
    """
    _check_file_accounts(accounts, period_end)
    created_on = activity_on if created_on is None else created_on
    if created_on < activity_on:
        raise ValueError("the file cannot be created before its activity date")
    header = render_record(
        HEADER_LAYOUT,
        {
            "record_descriptor_word": RECORD_LENGTH,
            "record_identifier": "HEADER",
            "cycle_identifier": reporter.cycle_identifier,
            "innovis_program_identifier": reporter.innovis_program_identifier,
            "equifax_program_identifier": reporter.equifax_program_identifier,
            "experian_program_identifier": reporter.experian_program_identifier,
            "transunion_program_identifier": reporter.transunion_program_identifier,
            "activity_date": activity_on,
            "date_created": created_on,
            "program_date": reporter.program_on,
            "program_revision_date": reporter.program_revised_on,
            "reporter_name": reporter.reporter_name,
            "reporter_address": reporter.reporter_address,
            "reporter_telephone_number": int(reporter.reporter_telephone_digits or 0),
            "software_vendor_name": reporter.software_vendor_name,
            "software_version_number": reporter.software_version_number,
        },
    )
    base_values = [metro2_base_values(reporter, account) for account in accounts]
    bases = [render_record(BASE_LAYOUT, values) for values in base_values]
    trailer = render_record(TRAILER_LAYOUT, _trailer_values(base_values))
    return "".join(record + LINE_TERMINATOR for record in [header, *bases, trailer])


def _check_file_accounts(accounts: Sequence[BureauAccount], period_end: date) -> None:
    if len({account.currency for account in accounts}) > 1:
        raise ValueError("one Metro 2 file reports amounts in one currency")
    reported_numbers = [metro2_account_number(account.account_number) for account in accounts]
    if len(set(reported_numbers)) != len(reported_numbers):
        raise ValueError("an account is reported twice in one file")
    for account in accounts:
        if account.account_information_on > period_end:
            raise ValueError(
                f"{account.account_number}: account information is dated after the period end"
            )


def _trailer_values(base_values: Sequence[Mapping[str, FieldValue]]) -> dict[str, FieldValue]:
    status_counts = Counter(values["account_status"] for values in base_values)
    birth_dates = sum(1 for values in base_values if values["date_of_birth"] is not None)
    telephones = sum(1 for values in base_values if values["telephone_number"] != 0)
    social_security_numbers = sum(
        1 for values in base_values if values["social_security_number"] != 0
    )
    trailer: dict[str, FieldValue] = {
        "record_descriptor_word": RECORD_LENGTH,
        "record_identifier": "TRAILER",
        "total_base_records": len(base_values),
        "total_status_code_df": status_counts["DF"],
        # Every fixed-length record is its own block: header + bases + trailer.
        "block_count": len(base_values) + 2,
        "total_ssn_all_segments": social_security_numbers,
        "total_ssn_base_segments": social_security_numbers,
        "total_birth_dates_all_segments": birth_dates,
        "total_birth_dates_base_segments": birth_dates,
        "total_telephone_numbers_all_segments": telephones,
    }
    for code in TRAILER_STATUS_CODES:
        trailer[f"total_status_code_{code.lower()}"] = status_counts[code]
    return trailer
