"""The console's words in Chinese (default) and English, from gettext catalogs.

The catalogs are ``locale/<language>/LC_MESSAGES/console.po`` next to this module, read with
Babel and compiled in memory when the module is first imported, so a fresh clone needs no build
step and no ``.mo`` file can go stale. Message ids are symbolic (``risk_case``,
``order_status.overdue``): both languages are translations of the same id, so a missing entry in
either catalog is an error the tests catch (``tests/console/test_translations.py``), never an
English word leaking into the Chinese console.

Codes the domains store (statuses, reasons, channels, roles, buckets) are shown through
``label(family, code)``; the families and their codes are listed in ``CODE_FAMILIES`` from the
domains' own constants. A code without a catalog entry is shown as-is inside
``<span class="untranslated">`` so that a page test fails on it. Domain refusals carry a stable
``code``: ``refusal`` shows the domain's own English sentence in English and the catalog's
``error.<code>`` sentence in Chinese.

Money is always yuan with two decimals (``¥1,234.56``) and times are the operator's business
time zone in one format (``2026-12-07 14:05``), both formatted by Babel for the page's locale.
"""

from __future__ import annotations

import io
import re
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.core import Locale
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations
from markupsafe import Markup, escape

from usefirst.console.codes import CODE_FAMILIES
from usefirst.kit.clock import as_utc

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
LOCALES = {"zh": "zh_Hans_CN", "en": "en_GB"}
DOMAIN = "console"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
TIME_FORMAT = "yyyy-MM-dd HH:mm"
DATE_FORMAT = "yyyy-MM-dd"
MONEY_FORMAT = "#,##0.00"
__all__ = ["CODE_FAMILIES"]


def catalog_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(language: str) -> Translations:
    """The language's catalog, compiled from its ``.po`` file in memory."""
    with catalog_path(language).open("rb") as source:
        catalog = read_po(source, locale=LOCALES[language], domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def has_entry(msgid: str, language: str) -> bool:
    return msgid in translations(language)._catalog


def translate(key: str, language: str, **values: str) -> str:
    text = translations(_known(language)).gettext(key)
    return text.format(**values) if values else text


def translate_plural(key: str, count: int, language: str, **values: str) -> str:
    text = translations(_known(language)).ngettext(key, key, count)
    return text.format(count=f"{count:,}", **values)


def label(family: str, code: str | None, language: str) -> Markup:
    """What a person reads for a stored code; an unknown code is marked for the tests to find."""
    if not code:  # None, "" or a field the row does not have
        return Markup("")
    msgid = f"{family}.{code}"
    if has_entry(msgid, _known(language)):
        return escape(translate(msgid, language))
    return Markup('<span class="untranslated" data-family="{}">{}</span>').format(family, code)


def step_label(step: str | None, language: str) -> Markup:
    """A dunning-ladder step (``day_-3``, ``day_+7``, ``collector_call``) in words."""
    if not step:
        return Markup("")
    if step.startswith("day_"):
        try:
            offset = int(step.removeprefix("day_"))
        except ValueError:
            return label("step", step, language)
        if offset == 0:
            return escape(translate("step.due_day", language))
        key = "step.days_before" if offset < 0 else "step.days_after"
        return escape(translate_plural(key, abs(offset), language))
    return label("step", step, language)


def contact_reason(reason: str | None, language: str) -> Markup:
    """Why a contact was held back: a known code in words; a delivery failure with the
    gateway's own detail after it."""
    if not reason:
        return Markup("")
    code, _, detail = reason.partition(": ")
    if has_entry(f"contact_reason.{code}", _known(language)):
        words = translate(f"contact_reason.{code}", language)
        return escape(f"{words}: {detail}" if detail else words)
    return escape(reason)


def refusal(code: str, message: str, language: str) -> str:
    """A domain's refusal in the operator's language."""
    if language == "en":
        return message
    msgid = f"error.{code}"
    if has_entry(msgid, language):
        return translate(msgid, language)
    return translate("error.refused", language)


# Free text the engine writes for people (case reasons, risk actions, audit purposes) is English
# with values in it. The catalogs hold each sentence as a template under ``text:``, its values
# as {placeholders}; a value named {reason} is itself free text and is translated in turn.
FREE_TEXT_PREFIX = "text:"
FREE_TEXT_SEPARATOR = "; "
_PLACEHOLDER = re.compile(r"\\\{(\w+)\\\}")


@cache
def _free_text_patterns(language: str) -> list[tuple[re.Pattern[str], str]]:
    """(the English template as a pattern, the language's template), longest template first so
    that the most specific sentence wins."""
    catalog = translations(language)._catalog
    templates = sorted(
        (key for key in catalog if isinstance(key, str) and key.startswith(FREE_TEXT_PREFIX)),
        key=len,
        reverse=True,
    )
    return [
        (
            re.compile(_PLACEHOLDER.sub(r"(?P<\1>.+?)", re.escape(key[len(FREE_TEXT_PREFIX) :]))),
            str(catalog[key]),
        )
        for key in templates
    ]


def free_text(text: str | None, language: str) -> str:
    """The engine's English free text in the operator's language: the whole sentence if the
    catalog knows it, else each ``; ``-separated part; a part it does not know stays as written."""
    if not text:
        return ""
    language = _known(language)
    if language == "en":
        return text
    whole = _free_sentence(text, language)
    if whole is not None:
        return whole
    parts = text.split(FREE_TEXT_SEPARATOR)
    shown = [_free_sentence(part, language) or part for part in parts]
    joined = shown[0]
    for part in shown[1:]:
        # A Chinese sentence ends with its own full stop; otherwise the Chinese semicolon.
        joined += part if joined.endswith("。") else f"；{part}"
    return joined


def _free_sentence(sentence: str, language: str) -> str | None:
    for pattern, template in _free_text_patterns(language):
        match = pattern.fullmatch(sentence)
        if match is None:
            continue
        values = {
            name: _free_value(name, value, language) for name, value in match.groupdict().items()
        }
        return template.format(**values)
    return None


def _free_value(name: str, value: str, language: str) -> str:
    """A value in a free-text sentence: {reason} is free text itself, {codes} a list of the
    decision's reason codes and rule ids (each in words where the catalog has it: the shipped
    rules' own Chinese reasons are in it as ``rule_reason.<id>``)."""
    if name == "reason":
        return free_text(value, language)
    if name == "codes":
        words = []
        for code in (part.strip() for part in value.split(",")):
            known = next(
                (
                    msgid
                    for msgid in (f"decision_reason.{code}", f"rule_reason.{code}")
                    if has_entry(msgid, language)
                ),
                None,
            )
            words.append(translate(known, language).rstrip("。") if known else code)
        return "；".join(words)
    return value


def money(minor: int | None) -> str:
    """Integer minor units (fen) as yuan: ``¥1,234.56`` in every language."""
    if minor is None:
        return ""
    sign = "-" if minor < 0 else ""
    return (
        f"{sign}¥{format_decimal(Decimal(abs(minor)) / 100, format=MONEY_FORMAT, locale='en_GB')}"
    )


def local_time(moment: datetime | None, time_zone: str, language: str = DEFAULT_LANGUAGE) -> str:
    """A UTC instant as the operator's business time zone shows it."""
    if moment is None:
        return ""
    return format_datetime(
        as_utc(moment), TIME_FORMAT, tzinfo=ZoneInfo(time_zone), locale=LOCALES[_known(language)]
    )


def local_date(day: date | str | None, language: str = DEFAULT_LANGUAGE) -> str:
    if day is None or day == "":
        return ""
    if isinstance(day, str):
        day = date.fromisoformat(day)
    return format_date(day, DATE_FORMAT, locale=LOCALES[_known(language)])


def locale_of(language: str) -> Locale:
    return Locale.parse(LOCALES[_known(language)])


def pick_language(requested: str | None, accept_language: str | None) -> str:
    if requested in LANGUAGES:
        return requested
    if accept_language and accept_language.lower().startswith("en"):
        return "en"
    return DEFAULT_LANGUAGE


def _known(language: str) -> str:
    return language if language in LANGUAGES else DEFAULT_LANGUAGE
