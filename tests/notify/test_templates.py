"""Reminder templates: every message renders, carries what the shopper needs, and stays polite."""

from __future__ import annotations

import copy
from datetime import date, datetime
from typing import Any

import pytest

from usefirst.notify.templates import (
    CHANNELS,
    DEFAULT_TEMPLATES,
    LANGUAGES,
    SMS_MAX_CHARACTERS,
    TEMPLATE_IDS,
    RenderedMessage,
    TemplateCatalog,
    format_amount,
    render,
    template_language_of,
    validate_template_set,
)

# Wording that threatens, shames, or reaches beyond the shopper. Kept here, apart from the module's
# own list, so that a shortened module list cannot make this test pass.
FORBIDDEN_WORDS = (
    "家人",
    "朋友",
    "亲友",
    "通讯录",
    "单位",
    "同事",
    "领导",
    "起诉你",
    "坐牢",
    "公安",
    "老赖",
    "曝光",
    "family",
    "friend",
    "employer",
    "colleague",
    "jail",
    "prison",
    "police",
    "arrest",
    "criminal",
    "shame",
)

VARIABLES: dict[str, object] = {
    "shopper_name": "张*",
    "merchant_name": "小米之家",
    "order_reference": "ord_01JD3ABCDEF",
    "amount_due_minor": 123_456,
    "due_on": date(2025, 3, 15),
    "days_past_due": 12,
    "bureau_reporting_days": 30,
    "how_to_pay": "打开App“我的-先用后付”，或访问 https://pay.example.cn",
    # The money notices' own facts (a receipt, a failed charge's next try).
    "amount_paid_minor": 50_000,
    "amount_left_minor": 73_456,
    "next_try_on": date(2025, 3, 18),
    # The agreement at checkout (three monthly instalments) and a limit changed.
    "principal_minor": 30_000,
    "fees_minor": 450,
    "total_cost_minor": 30_450,
    "apr_bps": 898,
    "schedule": [
        {"amount_minor": 10_150, "months_after_delivery": 1},
        {"amount_minor": 10_150, "months_after_delivery": 2},
        {"amount_minor": 10_150, "months_after_delivery": 3},
    ],
    "old_limit_minor": 100_000,
    "new_limit_minor": 120_000,
    "reason_code": "on_time_repayment",
}

# The longest values the templates accept, to show that SMS still fits.
LONGEST_VARIABLES: dict[str, object] = {
    "shopper_name": "欧阳" + "*" * 40,
    "merchant_name": "Very Long Merchant Name Trading Company Limited of Shenzhen",
    "order_reference": "R" * 32,
    "amount_due_minor": 99_999_999_999,
    "due_on": date(2025, 9, 30),
    "days_past_due": 9_999,
    "bureau_reporting_days": 9_999,
    "how_to_pay": "W" * 60,
    "amount_paid_minor": 99_999_999_999,
    "amount_left_minor": 99_999_999_999,
    "next_try_on": date(2025, 9, 30),
    "principal_minor": 99_999_999_999,
    "fees_minor": 99_999_999_999,
    "total_cost_minor": 99_999_999_999,
    "apr_bps": 1_000_000,
    "schedule": [{"amount_minor": 99_999_999_999, "months_after_delivery": 12}] * 12,
    "old_limit_minor": 99_999_999_999,
    "new_limit_minor": 99_999_999_999,
    "reason_code": "frozen_overdue",
}

DUE_DATE_TEXT = {"zh": "2025年3月15日", "en": "15 March 2025"}

EVERY_MESSAGE = [
    (template_id, channel, language)
    for template_id in TEMPLATE_IDS
    for channel in CHANNELS
    for language in LANGUAGES
]


# A receipt, an agreement and a limit notice ask for nothing: they state what was paid and what
# is left, the cost, or the limit, not a due amount, a date or how to pay (checked by
# test_a_receipt_states_what_was_paid_and_what_is_left and the tests after it).
NOTICES_ASKING_NOTHING = (
    "payment_received",
    "order_terms",
    "credit_limit_raised",
    "credit_limit_lowered",
    "credit_frozen",
    "credit_unfrozen",
)
ASKING_MESSAGES = [message for message in EVERY_MESSAGE if message[0] not in NOTICES_ASKING_NOTHING]


@pytest.mark.parametrize(("template_id", "channel", "language"), ASKING_MESSAGES)
def test_every_message_renders_with_what_the_shopper_needs(
    template_id: str, channel: str, language: str
) -> None:
    message = render(template_id, channel=channel, language=language, variables=VARIABLES)

    assert "¥1,234.56" in message.text
    assert DUE_DATE_TEXT[language] in message.text
    assert str(VARIABLES["how_to_pay"]) in message.text
    assert "{" not in message.text and "}" not in message.text
    if channel == "email":
        assert message.subject is not None
        assert "¥1,234.56" in message.subject
        assert "\n" not in message.subject
        assert "ord_01JD3ABCDEF" in message.text
    else:
        assert message.subject is None
    if channel == "sms":
        assert len(message.text) <= SMS_MAX_CHARACTERS


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("language", LANGUAGES)
def test_a_receipt_states_what_was_paid_and_what_is_left(channel: str, language: str) -> None:
    message = render("payment_received", channel=channel, language=language, variables=VARIABLES)

    assert "¥500.00" in message.text
    assert "¥734.56" in message.text
    assert "{" not in message.text and "}" not in message.text
    if channel == "email":
        assert message.subject is not None
        assert "¥500.00" in message.subject
        assert "ord_01JD3ABCDEF" in message.text
    else:
        assert message.subject is None
    if channel == "sms":
        assert len(message.text) <= SMS_MAX_CHARACTERS


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_agreement_states_principal_fees_total_cost_and_rate(
    channel: str, language: str
) -> None:
    message = render("order_terms", channel=channel, language=language, variables=VARIABLES)

    for stated in ("¥300.00", "¥4.50", "¥304.50", "8.98%"):
        assert stated in message.text
    schedule = {
        "zh": "第1期¥101.50（收货后1个月）；第2期¥101.50（收货后2个月）；第3期¥101.50（收货后3个月）",
        "en": "¥101.50 1 month after delivery; ¥101.50 2 months after delivery; "
        "¥101.50 3 months after delivery",
    }[language]
    # Push and e-mail list each instalment; an SMS is too short for six and says where to look.
    assert (schedule in message.text) == (channel != "sms")
    if channel == "email":
        assert message.subject is not None
        assert "¥304.50" in message.subject and "8.98%" in message.subject
        assert "ord_01JD3ABCDEF" in message.text


def test_pay_after_delivery_terms_state_the_days_to_pay() -> None:
    terms = {
        **VARIABLES,
        "fees_minor": 0,
        "total_cost_minor": 30_000,
        "apr_bps": 0,
        "schedule": [{"amount_minor": 30_000, "days_after_delivery": 7}],
    }
    zh = render("order_terms", channel="push", language="zh", variables=terms)
    en = render("order_terms", channel="push", language="en", variables=terms)
    assert zh.text == (
        "张*您好，您在小米之家的先用后付订单ord_01JD3ABCDEF已批准：本金¥300.00，费用¥0.00，"
        "应还总额¥300.00，年化利率0.00%。还款计划：¥300.00，收货后7天内还清。"
    )
    assert en.text == (
        "Hi 张*, your pay-later order ord_01JD3ABCDEF at 小米之家 is approved: ¥300.00 plus "
        "¥0.00 in fees, ¥300.00 in all, annual rate 0.00%. Schedule: ¥300.00 within 7 days of "
        "delivery."
    )


@pytest.mark.parametrize(
    ("template_id", "stated"),
    [
        ("credit_limit_raised", ("¥1,000.00", "¥1,200.00")),
        ("credit_limit_lowered", ("¥1,000.00", "¥1,200.00")),
        ("credit_frozen", ("¥1,200.00",)),
        ("credit_unfrozen", ("¥1,200.00",)),
    ],
)
@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("language", LANGUAGES)
def test_a_limit_notice_states_the_limit_and_the_reason_in_words(
    template_id: str, stated: tuple[str, ...], channel: str, language: str
) -> None:
    message = render(template_id, channel=channel, language=language, variables=VARIABLES)

    for amount in stated:
        assert amount in message.text
    reason = {"zh": "您按时还清了订单", "en": "you repaid an order on time"}[language]
    assert reason in message.text
    assert "{" not in message.text and "}" not in message.text
    assert (message.subject is not None) == (channel == "email")


def test_a_reason_code_without_words_is_said_as_a_review_of_the_account() -> None:
    variables = {**VARIABLES, "reason_code": "operator_set_by_hand"}
    en = render("credit_frozen", channel="sms", language="en", variables=variables)
    assert en.text == (
        "Hi 张*, your pay-later limit (¥1,200.00) is on hold: it cannot be used for new orders "
        "for now. Why: a review of your account."
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("apr_bps", -1),
        ("apr_bps", 1.5),
        ("schedule", []),
        ("schedule", [{"amount_minor": 0, "months_after_delivery": 1}]),
        ("schedule", [{"amount_minor": 100, "weeks_after_delivery": 1}]),
        ("reason_code", "not a code"),
        ("new_limit_minor", -1),
        ("principal_minor", 0),
    ],
)
def test_bad_agreement_and_limit_values_are_refused(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=name.split("_")[0]):
        render(
            "order_terms"
            if name in ("apr_bps", "schedule", "principal_minor")
            else "credit_frozen",
            channel="push",
            language="en",
            variables={**VARIABLES, name: value},
        )


@pytest.mark.parametrize(("template_id", "channel", "language"), EVERY_MESSAGE)
def test_no_message_threatens_shames_or_mentions_third_parties(
    template_id: str, channel: str, language: str
) -> None:
    message = render(template_id, channel=channel, language=language, variables=VARIABLES)

    whole = f"{message.subject or ''}\n{message.text}".casefold()
    present = [word for word in FORBIDDEN_WORDS if word.casefold() in whole]
    assert present == []


@pytest.mark.parametrize("template_id", TEMPLATE_IDS)
@pytest.mark.parametrize("language", LANGUAGES)
def test_sms_fits_even_with_the_longest_values(template_id: str, language: str) -> None:
    message = render(template_id, channel="sms", language=language, variables=LONGEST_VARIABLES)

    assert len(message.text) <= SMS_MAX_CHARACTERS
    assert "¥999,999,999.99" in message.text


@pytest.mark.parametrize("language", LANGUAGES)
def test_notices_before_bureau_reporting_state_the_consequences(language: str) -> None:
    for template_id in ("reminder_upcoming", "reminder_due_today", "overdue_notice"):
        for channel in ("sms", "email"):
            text = render(template_id, channel=channel, language=language, variables=VARIABLES).text
            if language == "zh":
                assert "逾期费用" in text
                assert "逾期满30天" in text
                assert "征信" in text
            else:
                assert "fee" in text
                assert "30 days" in text
                assert "credit bureau" in text


def test_overdue_notices_state_days_past_due() -> None:
    for template_id in (
        "overdue_notice",
        "final_notice_bureau",
        "bureau_reported",
        "legal_referral_notice",
    ):
        for channel in CHANNELS:
            zh = render(template_id, channel=channel, language="zh", variables=VARIABLES)
            en = render(template_id, channel=channel, language="en", variables=VARIABLES)
            assert "已逾期12天" in zh.text
            assert "12 days overdue" in en.text


def test_chinese_is_the_default_language() -> None:
    message = render("reminder_due_today", channel="sms", variables=VARIABLES)

    assert message == RenderedMessage(
        subject=None,
        text="张*您好，您在小米之家的先用后付账单¥1,234.56今天（2025年3月15日）到期。"
        "还款方式：打开App“我的-先用后付”，或访问 https://pay.example.cn。"
        "逾期将按协议收取逾期费用，逾期满30天将报送征信。如已还款请忽略。",
    )


def test_english_email_renders_exactly() -> None:
    message = render(
        "reminder_upcoming",
        channel="email",
        language="en",
        variables={**VARIABLES, "shopper_name": "J*** S***", "merchant_name": "Acme"},
    )

    assert message.subject == "Payment reminder: ¥1,234.56 due on 15 March 2025"
    assert message.text.startswith(
        "Dear J*** S***,\n\n"
        "Your pay-later purchase from Acme (order ord_01JD3ABCDEF) has ¥1,234.56 due on "
        "15 March 2025.\n\n"
    )


def test_english_says_one_day_not_one_days() -> None:
    one = render(
        "overdue_notice",
        channel="email",
        language="en",
        variables={**VARIABLES, "days_past_due": 1},
    )
    many = render(
        "overdue_notice", channel="sms", language="en", variables={**VARIABLES, "days_past_due": 21}
    )

    assert one.subject == "Overdue: ¥1,234.56 is 1 day past due"
    assert "it is now 1 day overdue" in one.text
    assert "1 days" not in one.text
    assert "is 21 days overdue" in many.text


def test_sms_shortens_long_names_but_email_keeps_them() -> None:
    long_merchant = "Very Long Merchant Name Trading Company Limited"
    variables = {**VARIABLES, "merchant_name": long_merchant}

    sms = render("reminder_upcoming", channel="sms", language="en", variables=variables)
    email = render("reminder_upcoming", channel="email", language="en", variables=variables)

    assert "Very Long Merchant …" in sms.text
    assert long_merchant not in sms.text
    assert long_merchant in email.text


def test_reminders_before_the_due_date_do_not_need_days_past_due() -> None:
    variables = {key: value for key, value in VARIABLES.items() if key != "days_past_due"}

    message = render("reminder_upcoming", channel="push", language="zh", variables=variables)

    assert "¥1,234.56" in message.text


@pytest.mark.parametrize(
    ("amount_minor", "expected"),
    [
        (123_456, "¥1,234.56"),
        (5, "¥0.05"),
        (100, "¥1.00"),
        (100_000_000, "¥1,000,000.00"),
        (-2_550, "-¥25.50"),
    ],
)
def test_amounts_are_shown_with_symbol_and_thousands(amount_minor: int, expected: str) -> None:
    assert format_amount(amount_minor, "CNY") == expected


def test_amount_in_another_currency_is_refused() -> None:
    with pytest.raises(ValueError, match="currency"):
        format_amount(100, "USD")
    with pytest.raises(ValueError, match="currency"):
        render(
            "reminder_upcoming",
            channel="sms",
            language="zh",
            variables={**VARIABLES, "currency": "USD"},
        )


# --- Errors when rendering -------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["amount_due_minor", "due_on", "how_to_pay", "days_past_due"])
def test_missing_variable_is_named(missing: str) -> None:
    variables = {key: value for key, value in VARIABLES.items() if key != missing}

    with pytest.raises(ValueError, match=f"needs the variables \\['{missing}'\\]"):
        render("overdue_notice", channel="email", language="zh", variables=variables)


def test_unknown_variable_is_named() -> None:
    with pytest.raises(ValueError, match="unknown variables \\['amount'\\]"):
        render(
            "reminder_upcoming", channel="sms", language="zh", variables={**VARIABLES, "amount": 1}
        )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"template_id": "reminder_weekly"}, "unknown template 'reminder_weekly'"),
        ({"channel": "wechat"}, "unknown channel 'wechat'"),
        ({"language": "fr"}, "unknown language 'fr'"),
    ],
)
def test_unknown_template_channel_or_language(arguments: dict[str, str], message: str) -> None:
    call: dict[str, Any] = {"template_id": "reminder_upcoming", "channel": "sms", "language": "zh"}
    call.update(arguments)
    template_id = call.pop("template_id")

    with pytest.raises(ValueError, match=message):
        render(template_id, variables=VARIABLES, **call)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("amount_due_minor", 12.5),
        ("amount_due_minor", True),
        ("amount_due_minor", 0),
        ("amount_due_minor", -100),
        ("amount_due_minor", "123456"),
        ("due_on", "2025-03-15"),
        ("due_on", datetime(2025, 3, 15, 8, 0)),
        ("days_past_due", -1),
        ("days_past_due", 10_000),
        ("bureau_reporting_days", 0),
        ("shopper_name", ""),
        ("shopper_name", "张三\r\nBcc: x@example.cn"),
        ("merchant_name", None),
        ("order_reference", "R" * 33),
        ("how_to_pay", "W" * 61),
    ],
)
def test_bad_variable_values_are_refused(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=name):
        render(
            "overdue_notice", channel="email", language="zh", variables={**VARIABLES, name: value}
        )


# --- Operator overrides -----------------------------------------------------------------------


def overrides_for(
    text: str,
    *,
    template_id: str = "overdue_notice",
    language: str = "zh",
    channel: str = "sms",
) -> dict[str, Any]:
    return {template_id: {language: {channel: {"text": text}}}}


OVERDUE_ZH_SMS = DEFAULT_TEMPLATES["overdue_notice"]["zh"]["sms"]["text"]


def test_the_built_in_set_is_valid() -> None:
    validate_template_set(DEFAULT_TEMPLATES)


def test_a_good_override_is_used_and_braces_can_be_escaped() -> None:
    text = "{{提醒}}" + OVERDUE_ZH_SMS
    catalog = TemplateCatalog(overrides=overrides_for(text))

    overridden = catalog.render("overdue_notice", channel="sms", language="zh", variables=VARIABLES)
    untouched = catalog.render("overdue_notice", channel="sms", language="en", variables=VARIABLES)

    assert overridden.text.startswith("{提醒}张*您好")
    assert untouched == render("overdue_notice", channel="sms", language="en", variables=VARIABLES)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"reminder_weekly": {}}, "template 'reminder_weekly': unknown id"),
        ({"overdue_notice": {"fr": {}}}, "template 'overdue_notice': unknown language 'fr'"),
        (
            {"overdue_notice": {"zh": {"wechat": {"text": "x"}}}},
            "template 'overdue_notice' (zh): unknown channel 'wechat'",
        ),
        (
            overrides_for(OVERDUE_ZH_SMS.replace("{amount_due}", "")),
            "template 'overdue_notice' (zh, sms): must use the same placeholders as the built-in "
            "text (missing {amount_due})",
        ),
        (
            overrides_for(OVERDUE_ZH_SMS + "{order_reference}"),
            "(zh, sms): must use the same placeholders as the built-in text "
            "(not expected {order_reference})",
        ),
        (overrides_for(OVERDUE_ZH_SMS + "{debt}"), "(zh, sms): text: unknown placeholder {debt}"),
        (
            overrides_for(OVERDUE_ZH_SMS + "{amount_due.__class__}"),
            "unknown placeholder {amount_due.__class__}",
        ),
        (overrides_for(OVERDUE_ZH_SMS + "{0}"), "unknown placeholder {0}"),
        (
            overrides_for(OVERDUE_ZH_SMS + "{amount_due:>40}"),
            "placeholder {amount_due} must not carry a format",
        ),
        (overrides_for(OVERDUE_ZH_SMS + "{amount_due!r}"), "must not carry a format or '!'"),
        (overrides_for(OVERDUE_ZH_SMS + "{"), "malformed placeholder"),
        (
            overrides_for(OVERDUE_ZH_SMS + "请转告您的家人。"),
            "(zh, sms): text: contains '家人', which the contact policy forbids",
        ),
        (
            overrides_for(
                DEFAULT_TEMPLATES["overdue_notice"]["en"]["sms"]["text"]
                + " We will call your Employer.",
                language="en",
            ),
            "(en, sms): text: contains 'employer'",
        ),
        (
            overrides_for(OVERDUE_ZH_SMS + "。" * 200),
            "(zh, sms): text can reach",
        ),
        (
            overrides_for(
                DEFAULT_TEMPLATES["overdue_notice"]["zh"]["email"]["text"], channel="email"
            ),
            "(zh, email): needs exactly the fields ['subject', 'text']",
        ),
        (
            {
                "overdue_notice": {
                    "zh": {
                        "email": {
                            **DEFAULT_TEMPLATES["overdue_notice"]["zh"]["email"],
                            "subject": "逾期提醒\n{amount_due}",
                        }
                    }
                }
            },
            "(zh, email): the subject must be one line",
        ),
        (overrides_for("   "), "'text' must be non-empty text"),
        ({"overdue_notice": {"zh": {"sms": {"text": 42}}}}, "'text' must be non-empty text"),
        ({"overdue_notice": {"zh": {"sms": "text"}}}, "must be a mapping of fields to text"),
        ({"overdue_notice": ["zh"]}, "template 'overdue_notice': must map languages"),
    ],
)
def test_bad_overrides_are_reported_with_id_and_problem(
    overrides: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValueError) as raised:
        validate_template_set(overrides)

    assert problem in str(raised.value)
    with pytest.raises(ValueError):
        TemplateCatalog(overrides=overrides)


def test_the_first_bad_template_is_reported() -> None:
    overrides = {
        "reminder_upcoming": {"en": {"sms": {"text": "Please pay {amount_due}."}}},
        "overdue_notice": {"zh": {"sms": {"text": "{debt}"}}},
    }

    with pytest.raises(ValueError, match=r"^template 'reminder_upcoming' \(en, sms\): "):
        validate_template_set(overrides)


def test_validation_does_not_change_the_overrides() -> None:
    overrides = overrides_for("{{提醒}}" + OVERDUE_ZH_SMS)
    before = copy.deepcopy(overrides)

    validate_template_set(overrides)
    TemplateCatalog(overrides=overrides)

    assert overrides == before


def test_not_a_mapping_is_refused() -> None:
    with pytest.raises(ValueError, match="maps template ids"):
        validate_template_set(["overdue_notice"])  # type: ignore[arg-type]


def test_a_shoppers_language_tag_picks_the_template_language() -> None:
    assert [
        template_language_of(tag) for tag in ("zh-CN", "zh", "en", "en-GB", "EN", "fr", "ja-JP")
    ] == ["zh", "zh", "en", "en", "en", "zh", "zh"]
