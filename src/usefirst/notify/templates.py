"""Reminder messages for each step of the dunning ladder, in Chinese (default) and English.

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
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from usefirst.kit.money import SUPPORTED_CURRENCIES

TEMPLATE_IDS = (
    "reminder_upcoming",
    "reminder_due_today",
    "overdue_notice",
    "final_notice_bureau",
    "bureau_reported",
    "legal_referral_notice",
)
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


# --- Built-in texts -------------------------------------------------------------------------

_ZH_EMAIL_FOOTER = (
    "如您已还款，请忽略本通知。如有疑问，请联系客服。\n此邮件由系统自动发送，请勿直接回复。"
)
_EN_EMAIL_FOOTER = (
    "If you have already paid, please ignore this message. If you have any questions, please "
    "contact customer service.\nThis message was sent automatically; please do not reply to it."
)

DEFAULT_TEMPLATES: dict[str, dict[str, dict[str, dict[str, str]]]] = {
    "reminder_upcoming": {
        "zh": {
            "push": {
                "text": "{shopper_name}您好，您在{merchant_name}的订单{order_reference}"
                "应还{amount_due}，还款日为{due_date}。还款方式：{how_to_pay}。"
            },
            "sms": {
                "text": "{shopper_name}您好，您在{merchant_name}的先用后付账单{amount_due}"
                "将于{due_date}到期。还款方式：{how_to_pay}。逾期将按协议收取逾期费用，"
                "逾期满{bureau_reporting_days}天将报送征信。"
            },
            "email": {
                "subject": "还款提醒：{amount_due}将于{due_date}到期",
                "text": "{shopper_name}您好：\n\n"
                "您在{merchant_name}的订单（订单号 {order_reference}）使用了先用后付，"
                "应还金额为{amount_due}，还款日为{due_date}。\n\n"
                "还款方式：{how_to_pay}\n\n"
                "请在还款日前完成还款。如逾期未还，将按您签署的协议收取逾期费用；"
                "逾期满{bureau_reporting_days}天仍未还清的，将依您的授权向征信机构报送逾期记录。"
                "\n\n" + _ZH_EMAIL_FOOTER + "\n",
            },
        },
        "en": {
            "push": {
                "text": "Hi {shopper_name}, {amount_due} for your {merchant_name} order "
                "{order_reference} is due on {due_date}. How to pay: {how_to_pay}"
            },
            "sms": {
                "text": "Hi {shopper_name}, your {merchant_name} pay-later bill of {amount_due} "
                "is due on {due_date}. Pay: {how_to_pay}. Late payment incurs fees per your "
                "agreement; at {bureau_reporting_days} days overdue it is reported to the "
                "credit bureau."
            },
            "email": {
                "subject": "Payment reminder: {amount_due} due on {due_date}",
                "text": "Dear {shopper_name},\n\n"
                "Your pay-later purchase from {merchant_name} (order {order_reference}) has "
                "{amount_due} due on {due_date}.\n\n"
                "How to pay: {how_to_pay}\n\n"
                "Please pay by the due date. Late payment incurs late fees as set out in your "
                "agreement, and a balance still unpaid {bureau_reporting_days} days after the due "
                "date is reported to the credit bureau under the authorisation you gave us."
                "\n\n" + _EN_EMAIL_FOOTER + "\n",
            },
        },
    },
    "reminder_due_today": {
        "zh": {
            "push": {
                "text": "{shopper_name}您好，您在{merchant_name}的订单{order_reference}"
                "应还{amount_due}，今天（{due_date}）是还款日。还款方式：{how_to_pay}。"
            },
            "sms": {
                "text": "{shopper_name}您好，您在{merchant_name}的先用后付账单{amount_due}"
                "今天（{due_date}）到期。还款方式：{how_to_pay}。逾期将按协议收取逾期费用，"
                "逾期满{bureau_reporting_days}天将报送征信。如已还款请忽略。"
            },
            "email": {
                "subject": "今日到期：{amount_due}（还款日{due_date}）",
                "text": "{shopper_name}您好：\n\n"
                "您在{merchant_name}的订单（订单号 {order_reference}）应还{amount_due}，"
                "今天（{due_date}）是还款日。\n\n"
                "还款方式：{how_to_pay}\n\n"
                "请在今天内完成还款。如逾期未还，将按您签署的协议收取逾期费用；"
                "逾期满{bureau_reporting_days}天仍未还清的，将依您的授权向征信机构报送逾期记录。"
                "\n\n" + _ZH_EMAIL_FOOTER + "\n",
            },
        },
        "en": {
            "push": {
                "text": "Hi {shopper_name}, {amount_due} for your {merchant_name} order "
                "{order_reference} is due today ({due_date}). How to pay: {how_to_pay}"
            },
            "sms": {
                "text": "Hi {shopper_name}, your {merchant_name} pay-later bill of {amount_due} "
                "is due today ({due_date}). Pay: {how_to_pay}. Late payment incurs fees per your "
                "agreement; at {bureau_reporting_days} days overdue it is reported to the "
                "credit bureau."
            },
            "email": {
                "subject": "Due today: {amount_due} (due date {due_date})",
                "text": "Dear {shopper_name},\n\n"
                "Your pay-later purchase from {merchant_name} (order {order_reference}) has "
                "{amount_due} due today, {due_date}.\n\n"
                "How to pay: {how_to_pay}\n\n"
                "Please pay today. Late payment incurs late fees as set out in your agreement, "
                "and a balance still unpaid {bureau_reporting_days} days after the due date is "
                "reported to the credit bureau under the authorisation you gave us."
                "\n\n" + _EN_EMAIL_FOOTER + "\n",
            },
        },
    },
    "overdue_notice": {
        "zh": {
            "push": {
                "text": "{shopper_name}您好，您在{merchant_name}的订单{order_reference}"
                "应还{amount_due}（还款日{due_date}）已逾期{days_past_due}天，请尽快还款。"
                "还款方式：{how_to_pay}。"
            },
            "sms": {
                "text": "{shopper_name}您好，您在{merchant_name}的先用后付账单{amount_due}"
                "（还款日{due_date}）已逾期{days_past_due}天。逾期费用按协议计收；"
                "逾期满{bureau_reporting_days}天将报送征信。还款方式：{how_to_pay}。如已还款请忽略。"
            },
            "email": {
                "subject": "逾期提醒：{amount_due}已逾期{days_past_due}天",
                "text": "{shopper_name}您好：\n\n"
                "您在{merchant_name}的订单（订单号 {order_reference}）应还{amount_due}，"
                "还款日为{due_date}，目前已逾期{days_past_due}天。\n\n"
                "还款方式：{how_to_pay}\n\n"
                "逾期期间将按您签署的协议收取逾期费用；逾期满{bureau_reporting_days}天仍未还清的，"
                "将依您的授权向征信机构报送逾期记录。如您暂时无法全额还款，可联系客服了解还款安排。"
                "\n\n" + _ZH_EMAIL_FOOTER + "\n",
            },
        },
        "en": {
            "push": {
                "text": "Hi {shopper_name}, {amount_due} for your {merchant_name} order "
                "{order_reference} (due {due_date}) is {days_past_due} days overdue. "
                "Please pay soon. How to pay: {how_to_pay}"
            },
            "sms": {
                "text": "Hi {shopper_name}, your {merchant_name} bill of {amount_due} (due "
                "{due_date}) is {days_past_due} days overdue. Late fees apply per your agreement; "
                "at {bureau_reporting_days} days overdue it is reported to the credit bureau. "
                "Pay: {how_to_pay}"
            },
            "email": {
                "subject": "Overdue: {amount_due} is {days_past_due} days past due",
                "text": "Dear {shopper_name},\n\n"
                "Your pay-later purchase from {merchant_name} (order {order_reference}) had "
                "{amount_due} due on {due_date}; it is now {days_past_due} days overdue.\n\n"
                "How to pay: {how_to_pay}\n\n"
                "Late fees apply while the balance is overdue, as set out in your agreement, and "
                "a balance still unpaid {bureau_reporting_days} days after the due date is "
                "reported to the credit bureau under the authorisation you gave us. If you cannot "
                "pay in full right now, please contact customer service about a repayment "
                "arrangement.\n\n" + _EN_EMAIL_FOOTER + "\n",
            },
        },
    },
    "final_notice_bureau": {
        "zh": {
            "push": {
                "text": "{shopper_name}您好，您在{merchant_name}的订单{order_reference}"
                "应还{amount_due}（还款日{due_date}）已逾期{days_past_due}天。"
                "逾期满{bureau_reporting_days}天仍未还清的，将报送征信。还款方式：{how_to_pay}。"
            },
            "sms": {
                "text": "{shopper_name}您好，您在{merchant_name}的先用后付账单{amount_due}"
                "（还款日{due_date}）已逾期{days_past_due}天。如逾期满{bureau_reporting_days}天"
                "仍未还清，我们将依您的授权向征信机构报送逾期记录。还款方式：{how_to_pay}。"
            },
            "email": {
                "subject": "征信报送前通知：{amount_due}已逾期{days_past_due}天",
                "text": "{shopper_name}您好：\n\n"
                "您在{merchant_name}的订单（订单号 {order_reference}）应还{amount_due}，"
                "还款日为{due_date}，目前已逾期{days_past_due}天。\n\n"
                "如逾期满{bureau_reporting_days}天仍未还清，我们将依您的授权向征信机构报送逾期记录，"
                "这可能影响您今后申请贷款或信用卡。在此之前还清，则不会报送。\n\n"
                "还款方式：{how_to_pay}\n\n"
                "逾期费用按您签署的协议计收。如您暂时无法全额还款，可联系客服了解还款安排。"
                "\n\n" + _ZH_EMAIL_FOOTER + "\n",
            },
        },
        "en": {
            "push": {
                "text": "Hi {shopper_name}, {amount_due} for your {merchant_name} order "
                "{order_reference} (due {due_date}) is {days_past_due} days overdue. At "
                "{bureau_reporting_days} days overdue it is reported to the credit bureau. "
                "How to pay: {how_to_pay}"
            },
            "sms": {
                "text": "Hi {shopper_name}, your {merchant_name} bill of {amount_due} (due "
                "{due_date}) is {days_past_due} days overdue. If unpaid at "
                "{bureau_reporting_days} days overdue, we will report it to the credit bureau as "
                "you authorised. Pay: {how_to_pay}"
            },
            "email": {
                "subject": "Before credit bureau reporting: {amount_due} is {days_past_due} days "
                "overdue",
                "text": "Dear {shopper_name},\n\n"
                "Your pay-later purchase from {merchant_name} (order {order_reference}) had "
                "{amount_due} due on {due_date}; it is now {days_past_due} days overdue.\n\n"
                "If the balance is still unpaid {bureau_reporting_days} days after the due date, "
                "we will report the late payment to the credit bureau under the authorisation you "
                "gave us. This may affect future applications for loans or credit cards. Nothing "
                "is reported if you pay in full before then.\n\n"
                "How to pay: {how_to_pay}\n\n"
                "Late fees apply as set out in your agreement. If you cannot pay in full right "
                "now, please contact customer service about a repayment arrangement."
                "\n\n" + _EN_EMAIL_FOOTER + "\n",
            },
        },
    },
    "bureau_reported": {
        "zh": {
            "push": {
                "text": "{shopper_name}您好，您在{merchant_name}的订单{order_reference}"
                "应还{amount_due}（还款日{due_date}）已逾期{days_past_due}天，"
                "逾期记录已报送征信。还款方式：{how_to_pay}。"
            },
            "sms": {
                "text": "{shopper_name}您好，您在{merchant_name}的先用后付账单{amount_due}"
                "（还款日{due_date}）已逾期{days_past_due}天，已依您的授权向征信机构报送逾期记录。"
                "还清后我们将按规定更新报送信息。还款方式：{how_to_pay}。"
            },
            "email": {
                "subject": "逾期记录已报送征信：{amount_due}（还款日{due_date}）",
                "text": "{shopper_name}您好：\n\n"
                "您在{merchant_name}的订单（订单号 {order_reference}）应还{amount_due}，"
                "还款日为{due_date}，目前已逾期{days_past_due}天。我们已依您的授权，"
                "向征信机构报送了这笔逾期记录。\n\n"
                "您还清后，我们将按规定向征信机构更新报送信息。\n\n"
                "还款方式：{how_to_pay}\n\n"
                "如您对报送信息有异议，可联系客服提出异议申请，我们将依法核查并答复。"
                "\n\n" + _ZH_EMAIL_FOOTER + "\n",
            },
        },
        "en": {
            "push": {
                "text": "Hi {shopper_name}, {amount_due} for your {merchant_name} order "
                "{order_reference} (due {due_date}) is {days_past_due} days overdue and has been "
                "reported to the credit bureau. How to pay: {how_to_pay}"
            },
            "sms": {
                "text": "Hi {shopper_name}, your {merchant_name} bill of {amount_due} (due "
                "{due_date}) is {days_past_due} days overdue and, as you authorised, was reported "
                "to the credit bureau. We update the report once paid. Pay: {how_to_pay}"
            },
            "email": {
                "subject": "Reported to the credit bureau: {amount_due} (due {due_date})",
                "text": "Dear {shopper_name},\n\n"
                "Your pay-later purchase from {merchant_name} (order {order_reference}) had "
                "{amount_due} due on {due_date}; it is now {days_past_due} days overdue. Under the "
                "authorisation you gave us, we have reported this late payment to the credit "
                "bureau.\n\n"
                "Once you have paid in full, we will update the report with the credit bureau as "
                "the rules require.\n\n"
                "How to pay: {how_to_pay}\n\n"
                "If you believe the reported information is wrong, please contact customer "
                "service to raise an objection; we will check it and reply as the law requires."
                "\n\n" + _EN_EMAIL_FOOTER + "\n",
            },
        },
    },
    "legal_referral_notice": {
        "zh": {
            "push": {
                "text": "{shopper_name}您好，您在{merchant_name}的订单{order_reference}"
                "应还{amount_due}（还款日{due_date}）已逾期{days_past_due}天。"
                "如仍未还款，我们可能依法通过法律途径追偿。还款方式：{how_to_pay}。"
            },
            "sms": {
                "text": "{shopper_name}您好，您在{merchant_name}的先用后付账单{amount_due}"
                "（还款日{due_date}）已逾期{days_past_due}天。如仍未还款，我们可能依法通过诉讼"
                "或仲裁等法律途径追偿。还款方式：{how_to_pay}。如有疑问请联系客服。"
            },
            "email": {
                "subject": "转交法律程序前通知：{amount_due}已逾期{days_past_due}天",
                "text": "{shopper_name}您好：\n\n"
                "您在{merchant_name}的订单（订单号 {order_reference}）应还{amount_due}，"
                "还款日为{due_date}，目前已逾期{days_past_due}天。\n\n"
                "如仍未还款，我们可能依法将这笔欠款转交法律程序处理，通过诉讼或仲裁等途径追偿。"
                "在此之前，您可以随时还款，或联系客服协商还款安排。\n\n"
                "还款方式：{how_to_pay}"
                "\n\n" + _ZH_EMAIL_FOOTER + "\n",
            },
        },
        "en": {
            "push": {
                "text": "Hi {shopper_name}, {amount_due} for your {merchant_name} order "
                "{order_reference} (due {due_date}) is {days_past_due} days overdue. If it stays "
                "unpaid, we may recover it through legal proceedings. How to pay: {how_to_pay}"
            },
            "sms": {
                "text": "Hi {shopper_name}, your {merchant_name} bill of {amount_due} (due "
                "{due_date}) is {days_past_due} days overdue. If it stays unpaid, we may recover "
                "it through legal proceedings. Pay: {how_to_pay}"
            },
            "email": {
                "subject": "Before legal referral: {amount_due} is {days_past_due} days overdue",
                "text": "Dear {shopper_name},\n\n"
                "Your pay-later purchase from {merchant_name} (order {order_reference}) had "
                "{amount_due} due on {due_date}; it is now {days_past_due} days overdue.\n\n"
                "If it stays unpaid, we may refer the debt for legal proceedings, such as a court "
                "claim or arbitration, to recover it. Until then you can pay at any time, or "
                "contact customer service to agree a repayment arrangement.\n\n"
                "How to pay: {how_to_pay}"
                "\n\n" + _EN_EMAIL_FOOTER + "\n",
            },
        },
    },
}


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
    elif name == "due_on":
        if not isinstance(value, date) or isinstance(value, datetime):
            raise ValueError(f"variable 'due_on' must be a date, not {value!r}")
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
    if "amount_due_minor" in variables:
        amount_due_minor = variables["amount_due_minor"]
        currency = variables.get("currency", _OPTIONAL_VARIABLES["currency"])
        assert isinstance(amount_due_minor, int) and isinstance(currency, str)
        values["amount_due"] = format_amount(amount_due_minor, currency)
    if "due_on" in variables:
        due_on = variables["due_on"]
        assert isinstance(due_on, date)
        values["due_date"] = format_date(due_on, language=language)
    for name in ("days_past_due", "bureau_reporting_days"):
        if name in variables:
            values[name] = str(variables[name])
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
    "due_on": date(2000, 9, 30),  # "30 September 2000": the longest English date
    "days_past_due": DAYS_MAX,
    "bureau_reporting_days": DAYS_MAX,
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


def _default_placeholders(template_id: str, channel: str) -> set[str]:
    parts = DEFAULT_TEMPLATES[template_id][DEFAULT_LANGUAGE][channel]
    names: set[str] = set()
    for text in parts.values():
        names |= _placeholders_of(text)
    return names


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


def _check_message(template_id: str, language: str, channel: str, parts: Any) -> None:
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
    expected = _default_placeholders(template_id, channel)
    if used != expected:
        missing, extra = sorted(expected - used), sorted(used - expected)
        details = []
        if missing:
            details.append(f"missing {', '.join('{' + name + '}' for name in missing)}")
        if extra:
            details.append(f"not expected {', '.join('{' + name + '}' for name in extra)}")
        raise _TemplateProblem(
            f"must use the same placeholders as the built-in text ({'; '.join(details)})"
        )
    if channel == "sms":
        values = _placeholder_values(_LONGEST_VARIABLES, language=language, channel=channel)
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
                    _check_message(template_id, language, channel, parts)
                except _TemplateProblem as problem:
                    raise ValueError(
                        f"template {template_id!r} ({language}, {channel}): {problem}"
                    ) from None


# --- Rendering ------------------------------------------------------------------------------


def _required_variables(template_id: str) -> frozenset[str]:
    """Caller's variables a template needs, whatever channel and language are chosen.

    Overrides must keep the built-in placeholders, so this does not change with them.
    """
    names: set[str] = set()
    for channel in CHANNELS:
        names |= _default_placeholders(template_id, channel)
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


def _check_defaults() -> None:
    for template_id in TEMPLATE_IDS:
        for language in LANGUAGES:
            for channel in CHANNELS:
                parts = DEFAULT_TEMPLATES[template_id][language][channel]
                names: set[str] = set()
                for text in parts.values():
                    names |= _placeholders_of(text)
                if names != _default_placeholders(template_id, channel):
                    raise AssertionError(
                        f"built-in template {template_id} ({language}, {channel}) uses other "
                        f"placeholders than its {DEFAULT_LANGUAGE} text"
                    )
                for essential in ("amount_due", "due_date", "how_to_pay"):
                    if "{" + essential + "}" not in parts["text"]:
                        raise AssertionError(
                            f"built-in template {template_id} ({language}, {channel}) "
                            f"lacks {{{essential}}}"
                        )
    validate_template_set(DEFAULT_TEMPLATES)


_check_defaults()
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
