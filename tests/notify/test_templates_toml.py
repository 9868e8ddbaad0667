"""The built-in reminder texts are data (notify/templates.toml), checked when they are read: a bad
file is refused with the file and the message named."""

from __future__ import annotations

from pathlib import Path

import pytest

from usefirst.notify.templates import (
    CHANNELS,
    DEFAULT_TEMPLATES,
    DEFAULT_TEMPLATES_FILE,
    LANGUAGES,
    TEMPLATE_IDS,
    load_template_file,
)

SHIPPED = DEFAULT_TEMPLATES_FILE.read_text(encoding="utf-8")


def edited(table: str, old: str, new: str) -> str:
    """The shipped file with the first ``old`` after the header ``[table]`` replaced by ``new``."""
    header = f"[{table}]\n"
    start = SHIPPED.index(header) + len(header)
    at = SHIPPED.index(old, start)
    return SHIPPED[:at] + new + SHIPPED[at + len(old) :]


def refused(tmp_path: Path, text: str) -> str:
    path = tmp_path / "templates.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as raised:
        load_template_file(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


def test_the_shipped_file_holds_every_message_in_every_language_and_channel() -> None:
    templates = load_template_file(DEFAULT_TEMPLATES_FILE)

    assert templates == DEFAULT_TEMPLATES
    assert [
        (template_id, language, channel)
        for template_id, languages in templates.items()
        for language, channels in languages.items()
        for channel in channels
    ] == [
        (template_id, language, channel)
        for template_id in TEMPLATE_IDS
        for language in LANGUAGES
        for channel in CHANNELS
    ]


def test_every_email_ends_with_the_footer_of_its_language() -> None:
    for languages in DEFAULT_TEMPLATES.values():
        assert languages["zh"]["email"]["text"].endswith(
            "\n\n如您已还款，请忽略本通知。如有疑问，请联系客服。\n"
            "此邮件由系统自动发送，请勿直接回复。\n"
        )
        assert languages["en"]["email"]["text"].endswith(
            "\n\nIf you have already paid, please ignore this message. If you have any "
            "questions, please contact customer service.\n"
            "This message was sent automatically; please do not reply to it.\n"
        )


def test_a_missing_placeholder_is_reported_with_the_message(tmp_path: Path) -> None:
    problem = refused(tmp_path, edited("overdue_notice.zh.sms", "{amount_due}", "欠款"))

    assert problem == (
        "template 'overdue_notice' (zh, sms): must use the same placeholders as the list in "
        "templates.py (missing {amount_due})"
    )


def test_an_unknown_channel_is_reported_with_the_message(tmp_path: Path) -> None:
    problem = refused(tmp_path, SHIPPED + '\n[overdue_notice.zh.wechat]\ntext = "x"\n')

    assert problem == (
        "template 'overdue_notice' (zh): unknown channel 'wechat'; known: ['push', 'sms', 'email']"
    )


def test_a_message_left_out_is_reported(tmp_path: Path) -> None:
    start = SHIPPED.index("[bureau_reported.en.sms]")
    end = SHIPPED.index("[bureau_reported.en.email]")

    problem = refused(tmp_path, SHIPPED[:start] + SHIPPED[end:])

    assert (
        problem
        == "template 'bureau_reported' (en, sms): missing; the file needs every message in every language"
    )


def test_the_text_itself_must_say_how_to_pay(tmp_path: Path) -> None:
    text = edited("overdue_notice.en.email", "How to pay: {how_to_pay}", "How to pay: see below")
    text = text.replace(
        'subject = "Overdue: {amount_due} is {days_past_due} days past due"',
        'subject = "Overdue: {amount_due} is {days_past_due} days past due; pay: {how_to_pay}"',
    )

    assert refused(tmp_path, text) == (
        "template 'overdue_notice' (en, email): the text lacks {how_to_pay}"
    )


def test_forbidden_wording_in_a_footer_is_refused(tmp_path: Path) -> None:
    problem = refused(tmp_path, edited("email_footer", "请联系客服", "请联系您的家人"))

    assert problem == "email_footer.zh: contains '家人', which the contact policy forbids"


def test_a_footer_takes_no_placeholders(tmp_path: Path) -> None:
    problem = refused(tmp_path, edited("email_footer", "please ignore", "{shopper_name}, ignore"))

    assert problem == "email_footer.en: must not have placeholders"


def test_a_file_that_is_not_toml_is_refused_with_its_line(tmp_path: Path) -> None:
    problem = refused(tmp_path, SHIPPED + "\n[overdue_notice.zh.sms\n")

    assert problem.startswith("not valid TOML: ")
    assert f"line {SHIPPED.count(chr(10)) + 2}" in problem
