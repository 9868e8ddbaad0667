"""Operators change reminder wording with a file, validated before use."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from tests.conftest import make_settings
from usefirst.collections.service import template_catalog_of

VARIABLES = {
    "shopper_name": "张*",
    "merchant_name": "好物店",
    "order_reference": "ord_TEST",
    "amount_due_minor": 12_345,
    "due_on": date(2026, 12, 1),
    "how_to_pay": "在 App 还款",
    "bureau_reporting_days": 30,
}


def write(path: Path, text: str) -> Path:
    path.write_text(
        json.dumps({"reminder_upcoming": {"zh": {"sms": {"text": text}}}}, ensure_ascii=False),
        encoding="utf-8",
    )
    return path


def test_override_file_replaces_the_wording(tmp_path: Path) -> None:
    path = write(
        tmp_path / "templates.json",
        "{shopper_name}：{merchant_name}账单{amount_due}，{due_date}到期。{how_to_pay}。"
        "逾期{bureau_reporting_days}天报送征信。",
    )
    catalog = template_catalog_of(make_settings("sqlite:///unused.db", templates_file=path))
    rendered = catalog.render("reminder_upcoming", channel="sms", variables=VARIABLES)
    assert (
        rendered.text
        == "张*：好物店账单¥123.45，2026年12月1日到期。在 App 还款。逾期30天报送征信。"
    )
    # Other templates keep the built-in text.
    email = catalog.render("reminder_upcoming", channel="email", variables=VARIABLES)
    assert email.subject is not None and "¥123.45" in email.text


def test_a_bad_override_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "templates.json", "{shopper_name}您好，请尽快还款。")
    with pytest.raises(ValueError, match="reminder_upcoming"):
        template_catalog_of(make_settings("sqlite:///unused.db", templates_file=path))
