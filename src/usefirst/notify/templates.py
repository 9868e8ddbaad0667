"""Reminder messages for each step of the dunning ladder, in Chinese (default) and English.

The texts are data, in ``templates.toml`` beside this module, read and validated on import (a bad
file stops the start with the file and the message named); this module holds what each message
must carry, the rules every text is held to, and the rendering.

A template set maps ``template id → language → channel → {"text"}`` (email adds ``"subject"``).
Placeholders are ``{name}`` fields; a literal brace is written twice (``{{``). Operators may
override any part of the set from a file; :func:`validate_template_set` holds overrides to the same
rules as the built-in texts: the same placeholders (so the amount, due date, how to pay and the
consequences are never dropped), no wording our contact policy forbids, and SMS that fit in
:data:`SMS_MAX_CHARACTERS` even with the longest values a message can carry.

The wording is polite and factual: what is owed, by when, how to pay, and what happens if it stays
unpaid (late fees per the agreement, credit-bureau reporting after a stated number of days). It
never threatens, shames, or mentions anyone but the shopper.
"""

from __future__ import annotations

import re
import string
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from usefirst.kit.money import SUPPORTED_CURRENCIES

DEFAULT_TEMPLATES_FILE = Path(__file__).with_name("templates.toml")

CHANNELS = ("push", "sms", "email")
LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"

SMS_MAX_CHARACTERS = 300

# Wording the contact policy rules out: collections speak only to the shopper, about the debt.
# Matched case-insensitively as substrings, in templates and in operator overrides alike.
FORBIDDEN_PHRASES = (
    "家人",
    "家属",
    "亲属",
    "亲友",
    "朋友",
    "通讯录",
    "联系人",
    "单位",
    "同事",
    "领导",
    "老板",
    "起诉你",
    "坐牢",
    "拘留",
    "公安",
    "警察",
    "曝光",
    "老赖",
    "family",
    "families",
    "relatives",
    "friend",
    "contacts",
    "employer",
    "colleague",
    "workplace",
    "jail",
    "prison",
    "arrest",
    "police",
    "shame",
)

CURRENCY_SYMBOLS = {"CNY": "¥"}

_ENGLISH_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

# Longest value each free-text variable may have in an SMS. Names are shortened to fit (with
# "…"); an order reference or payment instruction that is longer is refused, because cutting
# either would make the message wrong rather than just shorter.
SMS_SHOPPER_NAME_MAX_CHARACTERS = 12
SMS_MERCHANT_NAME_MAX_CHARACTERS = 20
ORDER_REFERENCE_MAX_CHARACTERS = 32
HOW_TO_PAY_MAX_CHARACTERS = 60
DAYS_MAX = 9_999
AMOUNT_DUE_MINOR_MAX = 99_999_999_999  # ¥999,999,999.99: far above any credit limit


@dataclass(frozen=True)
class RenderedMessage:
    subject: str | None
    text: str


# --- What each message says ------------------------------------------------------------------


def _placeholders(*particular: str) -> frozenset[str]:
    return frozenset(
        ("shopper_name", "merchant_name", "amount_due", "due_date", "how_to_pay", *particular)
    )


_TERMS_PLACEHOLDERS = frozenset(
    ("shopper_name", "merchant_name", "principal", "fees", "total_cost", "apr")
)


def _same_everywhere(*particular: str) -> dict[str, frozenset[str]]:
    """A notice about the shopper's account, not an order: the same placeholders on each
    channel."""
    return {channel: frozenset(("shopper_name", *particular)) for channel in CHANNELS}


# The placeholders of each message, the same in every language: who owes what, by when and how to
# pay, and what the step must say besides. A push or an email names the order; an SMS leaves the
# order reference out to stay short. They also decide which variables a caller must give.
_MESSAGE_PLACEHOLDERS: dict[str, dict[str, frozenset[str]]] = {
    "reminder_upcoming": {
        "push": _placeholders("order_reference"),
        "sms": _placeholders("bureau_reporting_days"),
        "email": _placeholders("order_reference", "bureau_reporting_days"),
    },
    "reminder_due_today": {
        "push": _placeholders("order_reference"),
        "sms": _placeholders("bureau_reporting_days"),
        "email": _placeholders("order_reference", "bureau_reporting_days"),
    },
    "overdue_notice": {
        "push": _placeholders("order_reference", "days_past_due"),
        "sms": _placeholders("days_past_due", "bureau_reporting_days"),
        "email": _placeholders("order_reference", "days_past_due", "bureau_reporting_days"),
    },
    "final_notice_bureau": {
        "push": _placeholders("order_reference", "days_past_due", "bureau_reporting_days"),
        "sms": _placeholders("days_past_due", "bureau_reporting_days"),
        "email": _placeholders("order_reference", "days_past_due", "bureau_reporting_days"),
    },
    "bureau_reported": {
        "push": _placeholders("order_reference", "days_past_due"),
        "sms": _placeholders("days_past_due"),
        "email": _placeholders("order_reference", "days_past_due"),
    },
    "legal_referral_notice": {
        "push": _placeholders("order_reference", "days_past_due"),
        "sms": _placeholders("days_past_due"),
        "email": _placeholders("order_reference", "days_past_due"),
    },
    # Hardship relief: the plan agreed (its monthly payment and first date) and a plan payment
    # missed (the payment and its date).
    "hardship_plan_agreed": {
        "push": _placeholders("order_reference"),
        "sms": _placeholders(),
        "email": _placeholders("order_reference"),
    },
    "hardship_plan_missed": {
        "push": _placeholders("order_reference"),
        "sms": _placeholders(),
        "email": _placeholders("order_reference"),
    },
    # Notices about money that moved (issue 18), their facts fixed when it happened: an auto-debit
    # that failed (the instalment, its date, when it is tried again; or that no try is left), a
    # due date moved (the instalment and its new date).
    "charge_failed": {
        "push": _placeholders("order_reference", "next_try_date"),
        "sms": _placeholders("next_try_date"),
        "email": _placeholders("order_reference", "next_try_date"),
    },
    "charge_failed_final": {
        "push": _placeholders("order_reference"),
        "sms": _placeholders(),
        "email": _placeholders("order_reference"),
    },
    "due_date_extended": {
        "push": _placeholders("order_reference"),
        "sms": _placeholders(),
        "email": _placeholders("order_reference"),
    },
    # Dunning for a shopper with an active mandate: the reminder before or on the due date, and
    # the overdue notice, also say when the instalment will be charged.
    "reminder_autodebit": {
        "push": _placeholders("order_reference", "next_try_date"),
        "sms": _placeholders("next_try_date", "bureau_reporting_days"),
        "email": _placeholders("order_reference", "next_try_date", "bureau_reporting_days"),
    },
    "overdue_notice_autodebit": {
        "push": _placeholders("order_reference", "days_past_due", "next_try_date"),
        "sms": _placeholders("days_past_due", "next_try_date", "bureau_reporting_days"),
        "email": _placeholders(
            "order_reference", "days_past_due", "next_try_date", "bureau_reporting_days"
        ),
    },
    # Hardship decisions besides a plan: a settlement for less offered (the amount, the day it
    # must be paid by) and a refusal (what is due next, and when).
    "hardship_settlement_offered": {
        "push": _placeholders("order_reference"),
        "sms": _placeholders(),
        "email": _placeholders("order_reference"),
    },
    "hardship_declined": {
        "push": _placeholders("order_reference"),
        "sms": _placeholders(),
        "email": _placeholders("order_reference"),
    },
    # A receipt: what the payment paid and what the order still owes (which may be nothing).
    "payment_received": {
        "push": frozenset(
            ("shopper_name", "merchant_name", "order_reference", "amount_paid", "amount_left")
        ),
        "sms": frozenset(("shopper_name", "merchant_name", "amount_paid", "amount_left")),
        "email": frozenset(
            ("shopper_name", "merchant_name", "order_reference", "amount_paid", "amount_left")
        ),
    },
    # The agreement at checkout (issue 18): what was borrowed, the fees, the total cost and the
    # annualised rate; push and e-mail also give the schedule instalment by instalment (an SMS
    # is too short for six of them).
    "order_terms": {
        "push": _TERMS_PLACEHOLDERS | {"order_reference", "schedule"},
        "sms": _TERMS_PLACEHOLDERS,
        "email": _TERMS_PLACEHOLDERS | {"order_reference", "schedule"},
    },
    # The credit limit changed (issue 18): raised or lowered (the old and the new limit), frozen
    # or available again (the limit), each with the reason in words.
    "credit_limit_raised": _same_everywhere("old_limit", "new_limit", "reason"),
    "credit_limit_lowered": _same_everywhere("old_limit", "new_limit", "reason"),
    "credit_frozen": _same_everywhere("new_limit", "reason"),
    "credit_unfrozen": _same_everywhere("new_limit", "reason"),
}
TEMPLATE_IDS = tuple(_MESSAGE_PLACEHOLDERS)
# Every message's text (not just an email's subject) must state these; a receipt states what was
# paid and what is left instead, the agreement its total cost and rate, a limit notice the limit
# and why.
_ESSENTIAL_PLACEHOLDERS = ("amount_due", "due_date", "how_to_pay")
_RECEIPT_ESSENTIAL_PLACEHOLDERS = ("amount_paid", "amount_left")
_ESSENTIALS_OF = {
    "payment_received": _RECEIPT_ESSENTIAL_PLACEHOLDERS,
    "order_terms": ("total_cost", "apr"),
    "credit_limit_raised": ("old_limit", "new_limit", "reason"),
    "credit_limit_lowered": ("old_limit", "new_limit", "reason"),
    "credit_frozen": ("new_limit", "reason"),
    "credit_unfrozen": ("new_limit", "reason"),
}
# Messages that ask for no payment (nothing due, no date, no how to pay).
NOTICES_ASKING_NOTHING = tuple(_ESSENTIALS_OF)


# --- Variables ------------------------------------------------------------------------------

# Each placeholder and the caller's variable it is made from.
_PLACEHOLDER_SOURCES = {
    "shopper_name": "shopper_name",
    "merchant_name": "merchant_name",
    "order_reference": "order_reference",
    "amount_due": "amount_due_minor",
    "due_date": "due_on",
    "days_past_due": "days_past_due",
    "bureau_reporting_days": "bureau_reporting_days",
    "how_to_pay": "how_to_pay",
    "amount_paid": "amount_paid_minor",
    "amount_left": "amount_left_minor",
    "next_try_date": "next_try_on",
    "principal": "principal_minor",
    "fees": "fees_minor",
    "total_cost": "total_cost_minor",
    "apr": "apr_bps",
    "schedule": "schedule",
    "old_limit": "old_limit_minor",
    "new_limit": "new_limit_minor",
    "reason": "reason_code",
}
_TEXT_VARIABLES = ("shopper_name", "merchant_name", "order_reference", "how_to_pay")
_OPTIONAL_VARIABLES = {"currency": "CNY"}
_ONE_DAYS = re.compile(r"(?<![\d,.])1 days\b")
KNOWN_VARIABLES = frozenset(_PLACEHOLDER_SOURCES.values()) | frozenset(_OPTIONAL_VARIABLES)


def format_amount(amount_minor: int, currency: str) -> str:
    """``123456, "CNY"`` → ``"¥1,234.56"``."""
    symbol = CURRENCY_SYMBOLS.get(currency)
    if symbol is None or currency not in SUPPORTED_CURRENCIES:
        raise ValueError(f"no display format for currency {currency!r}")
    digits = SUPPORTED_CURRENCIES[currency]
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**digits)
    return f"{sign}{symbol}{whole:,}.{fraction:0{digits}d}"


def format_date(on: date, *, language: str) -> str:
    if language == "zh":
        return f"{on.year}年{on.month}月{on.day}日"
    return f"{on.day} {_ENGLISH_MONTHS[on.month - 1]} {on.year}"


def template_language_of(language_tag: str) -> str:
    """The template language for a shopper's BCP 47 tag ("zh-CN" → "zh", "en-GB" → "en");
    the default language when there are no templates in it."""
    primary = language_tag.split("-", 1)[0].lower()
    return primary if primary in LANGUAGES else DEFAULT_LANGUAGE


def _shorten(value: str, *, max_characters: int) -> str:
    if len(value) <= max_characters:
        return value
    return value[: max_characters - 1] + "…"


def _is_int_between(value: object, lowest: int, highest: int) -> bool:
    # bool is an int subclass, and True as an amount is always a caller's mistake.
    return isinstance(value, int) and not isinstance(value, bool) and lowest <= value <= highest


def _check_variable(name: str, value: object) -> None:
    if name in _TEXT_VARIABLES:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"variable {name!r} must be non-empty text")
        if any(unicodedata.category(character) == "Cc" for character in value):
            raise ValueError(f"variable {name!r} must be on one line, without control characters")
    elif name == "amount_due_minor":
        if not _is_int_between(value, 1, AMOUNT_DUE_MINOR_MAX):
            raise ValueError(
                "variable 'amount_due_minor' must be a positive int of minor units "
                f"up to {AMOUNT_DUE_MINOR_MAX}, not {value!r}"
            )
    elif name in ("amount_paid_minor", "amount_left_minor"):
        lowest = 1 if name == "amount_paid_minor" else 0
        if not _is_int_between(value, lowest, AMOUNT_DUE_MINOR_MAX):
            raise ValueError(
                f"variable {name!r} must be an int of minor units from {lowest} "
                f"to {AMOUNT_DUE_MINOR_MAX}, not {value!r}"
            )
    elif name in _AMOUNT_FLOORS:
        lowest = _AMOUNT_FLOORS[name]
        if not _is_int_between(value, lowest, AMOUNT_DUE_MINOR_MAX):
            raise ValueError(
                f"variable {name!r} must be an int of minor units from {lowest} "
                f"to {AMOUNT_DUE_MINOR_MAX}, not {value!r}"
            )
    elif name == "apr_bps":
        if not _is_int_between(value, 0, APR_BPS_MAX):
            raise ValueError(f"variable 'apr_bps' must be an int from 0 to {APR_BPS_MAX}")
    elif name == "reason_code":
        if not isinstance(value, str) or not value.isidentifier():
            raise ValueError(f"variable 'reason_code' must be a code, not {value!r}")
    elif name == "schedule":
        _check_schedule(value)
    elif name in ("due_on", "next_try_on"):
        if not isinstance(value, date) or isinstance(value, datetime):
            raise ValueError(f"variable {name!r} must be a date, not {value!r}")
    elif name in ("days_past_due", "bureau_reporting_days"):
        lowest = 0 if name == "days_past_due" else 1
        if not _is_int_between(value, lowest, DAYS_MAX):
            raise ValueError(
                f"variable {name!r} must be an int from {lowest} to {DAYS_MAX}, not {value!r}"
            )
    elif name == "currency" and (not isinstance(value, str) or value not in CURRENCY_SYMBOLS):
        raise ValueError(f"variable 'currency' must be one of {sorted(CURRENCY_SYMBOLS)}")
    if name == "order_reference" and len(str(value)) > ORDER_REFERENCE_MAX_CHARACTERS:
        raise ValueError(
            f"variable 'order_reference' is longer than {ORDER_REFERENCE_MAX_CHARACTERS} characters"
        )
    if name == "how_to_pay" and len(str(value)) > HOW_TO_PAY_MAX_CHARACTERS:
        raise ValueError(
            f"variable 'how_to_pay' is longer than {HOW_TO_PAY_MAX_CHARACTERS} characters; "
            "keep it short enough for an SMS (a link or an app path)"
        )


# The lowest value of each amount a notice may state (a limit may be nothing, a cost may not).
_AMOUNT_FLOORS = {
    "principal_minor": 1,
    "fees_minor": 0,
    "total_cost_minor": 1,
    "old_limit_minor": 0,
    "new_limit_minor": 0,
}
APR_BPS_MAX = 1_000_000  # 10,000.00 %: far above any cap
SCHEDULE_MAX_INSTALMENTS = 12


def _check_schedule(value: object) -> None:
    """An agreement's schedule: 1 to 12 instalments, each an amount and when it falls due after
    delivery (``months_after_delivery``, or ``days_after_delivery`` for pay after delivery)."""
    if not isinstance(value, list) or not 1 <= len(value) <= SCHEDULE_MAX_INSTALMENTS:
        raise ValueError(
            f"variable 'schedule' must list 1 to {SCHEDULE_MAX_INSTALMENTS} instalments"
        )
    for item in value:
        if not isinstance(item, Mapping) or len(item) != 2 or "amount_minor" not in item:
            raise ValueError(
                "each instalment of 'schedule' has an amount_minor and months_after_delivery "
                "or days_after_delivery"
            )
        if not _is_int_between(item["amount_minor"], 1, AMOUNT_DUE_MINOR_MAX):
            raise ValueError("an instalment's amount_minor in 'schedule' must be positive")
        if "months_after_delivery" in item:
            if not _is_int_between(item["months_after_delivery"], 1, SCHEDULE_MAX_INSTALMENTS):
                raise ValueError("months_after_delivery in 'schedule' must be from 1 to 12")
        elif not _is_int_between(item.get("days_after_delivery"), 0, DAYS_MAX):
            raise ValueError(f"days_after_delivery in 'schedule' must be from 0 to {DAYS_MAX}")


def format_rate(basis_points: int) -> str:
    """``1234`` → ``"12.34%"`` (exact: no float)."""
    whole, fraction = divmod(basis_points, 100)
    return f"{whole:,}.{fraction:02d}%"


def _schedule_text(schedule: list[Mapping[str, int]], *, currency: str, language: str) -> str:
    parts = []
    for seq, item in enumerate(schedule, 1):
        amount = format_amount(item["amount_minor"], currency)
        if "days_after_delivery" in item:
            days = item["days_after_delivery"]
            parts.append(
                f"{amount}，收货后{days}天内还清"
                if language == "zh"
                else f"{amount} within {days} days of delivery"
            )
            continue
        months = item["months_after_delivery"]
        if language == "zh":
            parts.append(f"第{seq}期{amount}（收货后{months}个月）")
        else:
            parts.append(f"{amount} {months} month{'' if months == 1 else 's'} after delivery")
    return ("；" if language == "zh" else "; ").join(parts)


def _placeholder_values(
    variables: Mapping[str, object], *, language: str, channel: str
) -> dict[str, str]:
    """Display strings for every placeholder whose source variable was given."""
    values: dict[str, str] = {}
    if "shopper_name" in variables:
        values["shopper_name"] = str(variables["shopper_name"]).strip()
    if "merchant_name" in variables:
        values["merchant_name"] = str(variables["merchant_name"]).strip()
    if "order_reference" in variables:
        values["order_reference"] = str(variables["order_reference"]).strip()
    if "how_to_pay" in variables:
        values["how_to_pay"] = str(variables["how_to_pay"]).strip()
    currency = variables.get("currency", _OPTIONAL_VARIABLES["currency"])
    assert isinstance(currency, str)
    for placeholder, source in (
        ("amount_due", "amount_due_minor"),
        ("amount_paid", "amount_paid_minor"),
        ("amount_left", "amount_left_minor"),
        ("principal", "principal_minor"),
        ("fees", "fees_minor"),
        ("total_cost", "total_cost_minor"),
        ("old_limit", "old_limit_minor"),
        ("new_limit", "new_limit_minor"),
    ):
        if source in variables:
            amount_minor = variables[source]
            assert isinstance(amount_minor, int)
            values[placeholder] = format_amount(amount_minor, currency)
    for placeholder, source in (("due_date", "due_on"), ("next_try_date", "next_try_on")):
        if source in variables:
            on = variables[source]
            assert isinstance(on, date)
            values[placeholder] = format_date(on, language=language)
    for name in ("days_past_due", "bureau_reporting_days"):
        if name in variables:
            values[name] = str(variables[name])
    if "apr_bps" in variables:
        apr_bps = variables["apr_bps"]
        assert isinstance(apr_bps, int)
        values["apr"] = format_rate(apr_bps)
    if "schedule" in variables:
        schedule = variables["schedule"]
        assert isinstance(schedule, list)
        values["schedule"] = _schedule_text(schedule, currency=currency, language=language)
    if "reason_code" in variables:
        code = str(variables["reason_code"])
        reasons = CREDIT_REASONS[language]
        values["reason"] = reasons.get(code, reasons[OTHER_REASON])
    if channel == "sms":
        if "shopper_name" in values:
            values["shopper_name"] = _shorten(
                values["shopper_name"], max_characters=SMS_SHOPPER_NAME_MAX_CHARACTERS
            )
        if "merchant_name" in values:
            values["merchant_name"] = _shorten(
                values["merchant_name"], max_characters=SMS_MERCHANT_NAME_MAX_CHARACTERS
            )
    return values


# The longest display value each placeholder can take once checked (and, for SMS, shortened):
# an SMS that fits with these fits with any accepted variables.
_LONGEST_VARIABLES: dict[str, object] = {
    "shopper_name": "名" * SMS_SHOPPER_NAME_MAX_CHARACTERS,
    "merchant_name": "商" * SMS_MERCHANT_NAME_MAX_CHARACTERS,
    "order_reference": "R" * ORDER_REFERENCE_MAX_CHARACTERS,
    "how_to_pay": "付" * HOW_TO_PAY_MAX_CHARACTERS,
    "amount_due_minor": AMOUNT_DUE_MINOR_MAX,
    "amount_paid_minor": AMOUNT_DUE_MINOR_MAX,
    "amount_left_minor": AMOUNT_DUE_MINOR_MAX,
    "due_on": date(2000, 9, 30),  # "30 September 2000": the longest English date
    "next_try_on": date(2000, 9, 30),
    "days_past_due": DAYS_MAX,
    "bureau_reporting_days": DAYS_MAX,
    "principal_minor": AMOUNT_DUE_MINOR_MAX,
    "fees_minor": AMOUNT_DUE_MINOR_MAX,
    "total_cost_minor": AMOUNT_DUE_MINOR_MAX,
    "apr_bps": APR_BPS_MAX,
    "old_limit_minor": AMOUNT_DUE_MINOR_MAX,
    "new_limit_minor": AMOUNT_DUE_MINOR_MAX,
    # The longest reason is checked separately (every SMS with every reason: see
    # _longest_reason_code, set once the reasons are read).
    "reason_code": "other",
    "schedule": [{"amount_minor": AMOUNT_DUE_MINOR_MAX, "months_after_delivery": 12}]
    * SCHEDULE_MAX_INSTALMENTS,
}


# --- Validation -----------------------------------------------------------------------------


class _TemplateProblem(Exception):
    pass


def _placeholders_of(text: str) -> set[str]:
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as error:
        raise _TemplateProblem(
            f"malformed placeholder ({error}); write a literal brace twice"
        ) from None
    names: set[str] = set()
    for _literal, field_name, format_spec, conversion in parsed:
        if field_name is None:
            continue
        if not field_name.isidentifier() or field_name not in _PLACEHOLDER_SOURCES:
            raise _TemplateProblem(
                f"unknown placeholder {{{field_name}}}; known: {sorted(_PLACEHOLDER_SOURCES)}"
            )
        if format_spec or conversion:
            raise _TemplateProblem(f"placeholder {{{field_name}}} must not carry a format or '!'")
        names.add(field_name)
    return names


def _forbidden_phrase_in(text: str) -> str | None:
    folded = text.casefold()
    for phrase in FORBIDDEN_PHRASES:
        if phrase.casefold() in folded:
            return phrase
    return None


def _check_part_names(parts: Mapping[str, Any], *, channel: str) -> None:
    expected = {"subject", "text"} if channel == "email" else {"text"}
    if set(parts) != expected:
        raise _TemplateProblem(
            f"needs exactly the fields {sorted(expected)}, not {sorted(map(str, parts))}"
        )
    for part_name, text in parts.items():
        if not isinstance(text, str) or not text.strip():
            raise _TemplateProblem(f"{part_name!r} must be non-empty text")
    subject = parts.get("subject")
    if isinstance(subject, str) and ("\n" in subject or "\r" in subject):
        raise _TemplateProblem("the subject must be one line")


def _check_message(
    template_id: str, language: str, channel: str, parts: Any, *, placeholders_named_by: str
) -> None:
    if not isinstance(parts, Mapping):
        raise _TemplateProblem("must be a mapping of fields to text")
    _check_part_names(parts, channel=channel)
    used: set[str] = set()
    for part_name, text in parts.items():
        try:
            used |= _placeholders_of(text)
        except _TemplateProblem as problem:
            raise _TemplateProblem(f"{part_name}: {problem}") from None
        phrase = _forbidden_phrase_in(text)
        if phrase is not None:
            raise _TemplateProblem(
                f"{part_name}: contains {phrase!r}, which the contact policy forbids"
            )
    expected = _MESSAGE_PLACEHOLDERS[template_id][channel]
    if used != expected:
        missing, extra = sorted(expected - used), sorted(used - expected)
        details = []
        if missing:
            details.append(f"missing {', '.join('{' + name + '}' for name in missing)}")
        if extra:
            details.append(f"not expected {', '.join('{' + name + '}' for name in extra)}")
        raise _TemplateProblem(
            f"must use the same placeholders as {placeholders_named_by} ({'; '.join(details)})"
        )
    if channel == "sms":
        values = _placeholder_values(_LONGEST_VARIABLES, language=language, channel=channel)
        values["reason"] = max(CREDIT_REASONS[language].values(), key=len)
        longest = len(parts["text"].format_map(values))
        if longest > SMS_MAX_CHARACTERS:
            raise _TemplateProblem(
                f"text can reach {longest} characters with the longest variables; "
                f"an SMS may have at most {SMS_MAX_CHARACTERS}"
            )


def validate_template_set(templates: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the first bad template (id, language, channel) and its problem.

    ``templates`` has the shape of :data:`DEFAULT_TEMPLATES` but may hold any part of it, as
    operator overrides do.
    """
    _validate_template_set(templates, placeholders_named_by="the built-in text")


def _validate_template_set(templates: Mapping[str, Any], *, placeholders_named_by: str) -> None:
    if not isinstance(templates, Mapping):
        raise ValueError("a template set maps template ids to languages")
    for template_id, languages in templates.items():
        if template_id not in TEMPLATE_IDS:
            raise ValueError(f"template {template_id!r}: unknown id; known: {list(TEMPLATE_IDS)}")
        if not isinstance(languages, Mapping):
            raise ValueError(f"template {template_id!r}: must map languages to channels")
        for language, channels in languages.items():
            if language not in LANGUAGES:
                raise ValueError(
                    f"template {template_id!r}: unknown language {language!r}; "
                    f"known: {list(LANGUAGES)}"
                )
            if not isinstance(channels, Mapping):
                raise ValueError(
                    f"template {template_id!r} ({language}): must map channels to fields"
                )
            for channel, parts in channels.items():
                if channel not in CHANNELS:
                    raise ValueError(
                        f"template {template_id!r} ({language}): unknown channel {channel!r}; "
                        f"known: {list(CHANNELS)}"
                    )
                try:
                    _check_message(
                        template_id,
                        language,
                        channel,
                        parts,
                        placeholders_named_by=placeholders_named_by,
                    )
                except _TemplateProblem as problem:
                    raise ValueError(
                        f"template {template_id!r} ({language}, {channel}): {problem}"
                    ) from None


# --- The built-in texts -----------------------------------------------------------------------


def load_template_file(path: Path) -> dict[str, dict[str, dict[str, dict[str, str]]]]:
    """Every message in every language and channel, from a TOML file shaped like
    ``templates.toml``: a ``[template_id.language.channel]`` table per message and an
    ``[email_footer]`` per language, which ends every email's text.

    Raises ``ValueError`` naming the file, then the message (id, language, channel) and its problem.
    """
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML: {error}") from None
    try:
        return _complete_template_set(raw)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def _load_credit_reasons(path: Path) -> dict[str, dict[str, str]]:
    """Why a credit limit changed, in words, by reason code and language: the ``[credit_reasons]``
    table of ``templates.toml`` (``other`` for a code it does not name)."""
    raw = tomllib.loads(path.read_text(encoding="utf-8")).get("credit_reasons")
    if not isinstance(raw, dict) or set(raw) != set(LANGUAGES):
        raise ValueError(f"{path}: [credit_reasons] needs a table for each of {list(LANGUAGES)}")
    codes = set(raw[DEFAULT_LANGUAGE])
    for language, reasons in raw.items():
        if not isinstance(reasons, dict) or set(reasons) != codes or OTHER_REASON not in codes:
            raise ValueError(
                f"{path}: credit_reasons.{language} must name the same codes in every language, "
                f"'{OTHER_REASON}' among them"
            )
        for code, text in reasons.items():
            if not isinstance(text, str) or not text.strip() or "{" in text or "}" in text:
                raise ValueError(f"{path}: credit_reasons.{language}.{code} must be plain text")
            phrase = _forbidden_phrase_in(text)
            if phrase is not None:
                raise ValueError(
                    f"{path}: credit_reasons.{language}.{code} contains {phrase!r}, which the "
                    "contact policy forbids"
                )
    return raw


def _complete_template_set(raw: dict[str, Any]) -> dict[str, dict[str, dict[str, dict[str, str]]]]:
    footers = raw.pop("email_footer", None)
    raw.pop("credit_reasons", None)  # read by _load_credit_reasons
    _validate_template_set(raw, placeholders_named_by="the list in templates.py")
    if not isinstance(footers, dict) or set(footers) != set(LANGUAGES):
        raise ValueError(f"[email_footer] needs a footer for each language of {list(LANGUAGES)}")
    for language, footer in footers.items():
        try:
            if not isinstance(footer, str) or not footer.strip():
                raise _TemplateProblem("must be non-empty text")
            if _placeholders_of(footer):
                raise _TemplateProblem("must not have placeholders")
            phrase = _forbidden_phrase_in(footer)
            if phrase is not None:
                raise _TemplateProblem(f"contains {phrase!r}, which the contact policy forbids")
        except _TemplateProblem as problem:
            raise ValueError(f"email_footer.{language}: {problem}") from None
    templates: dict[str, dict[str, dict[str, dict[str, str]]]] = {}
    for template_id in TEMPLATE_IDS:
        for language in LANGUAGES:
            for channel in CHANNELS:
                where = f"template {template_id!r} ({language}, {channel})"
                parts = raw.get(template_id, {}).get(language, {}).get(channel)
                if parts is None:
                    raise ValueError(
                        f"{where}: missing; the file needs every message in every language"
                    )
                for essential in _ESSENTIALS_OF.get(template_id, _ESSENTIAL_PLACEHOLDERS):
                    if "{" + essential + "}" not in parts["text"]:
                        raise ValueError(f"{where}: the text lacks {{{essential}}}")
                message = dict(parts)
                if channel == "email":
                    message["text"] += "\n\n" + footers[language] + "\n"
                templates.setdefault(template_id, {}).setdefault(language, {})[channel] = message
    return templates


# --- Rendering ------------------------------------------------------------------------------


def _required_variables(template_id: str) -> frozenset[str]:
    """Caller's variables a template needs, whatever channel and language are chosen.

    Overrides must keep the built-in placeholders, so this does not change with them.
    """
    names: set[str] = set()
    for channel in CHANNELS:
        names |= _MESSAGE_PLACEHOLDERS[template_id][channel]
    return frozenset(_PLACEHOLDER_SOURCES[name] for name in names)


def _singular_days(text: str) -> str:
    # Keeps one placeholder per number in every language: Chinese has no plural, English does.
    return _ONE_DAYS.sub("1 day", text)


class TemplateCatalog:
    """The built-in templates, with any operator overrides laid over them."""

    def __init__(self, *, overrides: Mapping[str, Any] | None = None) -> None:
        self._templates: dict[str, dict[str, dict[str, dict[str, str]]]] = {
            template_id: {
                language: {channel: dict(parts) for channel, parts in channels.items()}
                for language, channels in languages.items()
            }
            for template_id, languages in DEFAULT_TEMPLATES.items()
        }
        if overrides:
            validate_template_set(overrides)
            for template_id, languages in overrides.items():
                for language, channels in languages.items():
                    for channel, parts in channels.items():
                        self._templates[template_id][language][channel] = dict(parts)

    def render(
        self,
        template_id: str,
        *,
        channel: str,
        language: str = DEFAULT_LANGUAGE,
        variables: Mapping[str, object],
    ) -> RenderedMessage:
        if template_id not in self._templates:
            raise ValueError(f"unknown template {template_id!r}; known: {list(TEMPLATE_IDS)}")
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}; known: {list(CHANNELS)}")
        if language not in LANGUAGES:
            raise ValueError(f"unknown language {language!r}; known: {list(LANGUAGES)}")
        unknown = sorted(set(variables) - KNOWN_VARIABLES)
        if unknown:
            raise ValueError(f"unknown variables {unknown}; known: {sorted(KNOWN_VARIABLES)}")
        missing = sorted(_required_variables(template_id) - set(variables))
        if missing:
            raise ValueError(f"template {template_id!r} needs the variables {missing}")
        for name, value in variables.items():
            _check_variable(name, value)
        languages = self._templates[template_id]
        if channel not in languages.get(language, {}):
            language = DEFAULT_LANGUAGE  # a template missing in a language is sent in the default
        values = _placeholder_values(variables, language=language, channel=channel)
        parts = languages[language][channel]
        subject = parts["subject"].format_map(values) if "subject" in parts else None
        text = parts["text"].format_map(values)
        if language == "en":
            subject = _singular_days(subject) if subject is not None else None
            text = _singular_days(text)
        # Validation bounds SMS length in advance; this guards the bound itself.
        if channel == "sms" and len(text) > SMS_MAX_CHARACTERS:
            raise ValueError(
                f"template {template_id!r} ({language}, sms) rendered {len(text)} characters; "
                f"the limit is {SMS_MAX_CHARACTERS}"
            )
        return RenderedMessage(subject=subject, text=text)


OTHER_REASON = "other"
CREDIT_REASONS = _load_credit_reasons(DEFAULT_TEMPLATES_FILE)
DEFAULT_TEMPLATES = load_template_file(DEFAULT_TEMPLATES_FILE)
DEFAULT_CATALOG = TemplateCatalog()


def render(
    template_id: str,
    *,
    channel: str,
    language: str = DEFAULT_LANGUAGE,
    variables: Mapping[str, object],
) -> RenderedMessage:
    """Render a built-in template; use :class:`TemplateCatalog` to render with overrides."""
    return DEFAULT_CATALOG.render(
        template_id, channel=channel, language=language, variables=variables
    )
