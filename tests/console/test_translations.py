"""The console's gettext catalogs: every message id the code and templates use, and every code
the console labels, has a non-empty entry in both the Chinese and the English catalog."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from usefirst.console import i18n
from usefirst.console.codes import CODE_FAMILIES

CONSOLE = Path(i18n.__file__).resolve().parent
KEYWORDS = {"t": None, "tn": None, "translate": None, "translate_plural": None}


def used_message_ids() -> set[str]:
    with (CONSOLE / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    found: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(CONSOLE), method_map, options_map, keywords=KEYWORDS
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def catalog_entries(language: str) -> dict[str, tuple[str, ...]]:
    with i18n.catalog_path(language).open("rb") as source:
        catalog = read_po(source, locale=i18n.LOCALES[language])
    entries: dict[str, tuple[str, ...]] = {}
    for message in catalog:
        if not message.id:
            continue
        key = message.id if isinstance(message.id, str) else message.id[0]
        entries[key] = (
            (message.string,) if isinstance(message.string, str) else tuple(message.string)
        )
    return entries


def test_extraction_finds_the_console_words() -> None:
    used = used_message_ids()
    # Spot checks that extraction reads both Python and templates (and plural calls).
    assert {"bad_promise", "risk_review", "complaints_overdue", "cmp_audit_log"} <= used
    assert len(used) > 150


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_every_used_message_has_a_translation(language: str) -> None:
    entries = catalog_entries(language)
    missing = sorted(key for key in used_message_ids() if key not in entries)
    empty = sorted(key for key, texts in entries.items() if not all(text for text in texts))
    assert missing == []
    assert empty == []


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_every_code_has_a_label(language: str) -> None:
    entries = catalog_entries(language)
    missing = sorted(
        f"{family}.{code}"
        for family, codes in CODE_FAMILIES.items()
        for code in codes
        if f"{family}.{code}" not in entries
    )
    assert missing == []


def test_both_catalogs_hold_the_same_ids() -> None:
    assert set(catalog_entries("zh")) == set(catalog_entries("en"))


def test_labels_plurals_money_and_times() -> None:
    assert i18n.label("order_status", "charged_off", "zh") == "已核销"
    assert i18n.label("order_status", "charged_off", "en") == "charged off"
    assert i18n.label("complaint_category", "collection_conduct", "zh") == "催收行为"
    unknown = i18n.label("order_status", "<new>", "zh")
    assert unknown == ('<span class="untranslated" data-family="order_status">&lt;new&gt;</span>')
    assert i18n.translate_plural("complaints_overdue", 2, "zh") == "其中超期 2 件"
    assert i18n.translate_plural("complaints_overdue", 1_000, "en") == "1,000 past their deadline"
    assert i18n.money(123_456_789) == "¥1,234,567.89"
    assert i18n.money(5) == "¥0.05"
    assert i18n.money(-120) == "-¥1.20"
    from datetime import UTC, date, datetime

    moment = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)
    assert i18n.local_time(moment, "Asia/Shanghai", "zh") == "2026-12-07 07:30"
    assert i18n.local_time(moment, "Asia/Shanghai", "en") == "2026-12-07 07:30"
    assert i18n.local_date(date(2026, 1, 2), "en") == "2026-01-02"


def test_refusals_read_in_the_operators_language() -> None:
    assert i18n.refusal("case_already_resolved", "Case is resolved.", "en") == "Case is resolved."
    assert i18n.refusal("case_already_resolved", "Case is resolved.", "zh") == "该案件已处理完毕。"
    assert i18n.refusal("no_such_code", "Whatever.", "zh") == "操作被拒绝，未做任何更改。"
