"""Identity validation (GB 11643-1999 resident IDs, E.164 phones, names) and masking."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from usefirst.identity.validation import (
    MINIMUM_AGE_YEARS,
    age_on,
    mask_email,
    mask_name,
    mask_national_id,
    mask_phone,
    national_id_check_character,
    validate_email,
    validate_name,
    validate_national_id,
    validate_phone,
)
from usefirst.kit.errors import ValidationFailed

TODAY = date(2026, 3, 15)

FORMAT_MESSAGE = "17 digits and a check digit"
CHECK_DIGIT_MESSAGE = "check digit is wrong"
IMPOSSIBLE_DATE_MESSAGE = "impossible birth date"
UNDER_AGE_MESSAGE = "at least 18 years old"


def check_character(first_seventeen: str) -> str:
    """GB 11643-1999 ISO 7064 MOD 11-2, written out independently of the implementation."""
    total = sum(
        int(digit) * (2 ** (17 - index) % 11) for index, digit in enumerate(first_seventeen)
    )
    return "10X98765432"[total % 11]


def make_id(birth_on: date, *, region: str = "110105", sequence: str = "123") -> str:
    first_seventeen = f"{region}{birth_on:%Y%m%d}{sequence}"
    return first_seventeen + check_character(first_seventeen)


def rejects(raw: str, message: str, *, today: date = TODAY) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_national_id(raw, today=today)
    assert message in caught.value.message
    assert caught.value.field == "national_id"
    assert caught.value.status_code == 422


# National IDs


@pytest.mark.parametrize(
    "national_id",
    [
        "11010519491231002X",  # the standard's own example, check character X
        "110105194912310029"[:17] + check_character("11010519491231002"),
        "440308199901010012"[:17] + check_character("44030819990101001"),
    ],
)
def test_valid_national_ids(national_id: str) -> None:
    assert validate_national_id(national_id, today=TODAY) == national_id


def test_known_check_characters() -> None:
    assert national_id_check_character("11010519491231002") == "X"
    assert national_id_check_character("44052418800101001") == "4"
    assert check_character("44052418800101001") == "4"


def test_national_id_is_normalised() -> None:
    assert validate_national_id(" 11010519491231002x\n", today=TODAY) == "11010519491231002X"


@pytest.mark.parametrize("wrong", ["0", "1", "2", "9"])
def test_wrong_check_digit(wrong: str) -> None:
    rejects("11010519491231002" + wrong, CHECK_DIGIT_MESSAGE)


@pytest.mark.parametrize(
    "birth",
    ["19990230", "20010229", "19991301", "19990001", "19990100", "19990431", "18991231"],
)
def test_impossible_birth_dates(birth: str) -> None:
    first_seventeen = f"110105{birth}123"
    rejects(first_seventeen + check_character(first_seventeen), IMPOSSIBLE_DATE_MESSAGE)


def test_leap_day_birth_date_is_possible() -> None:
    national_id = make_id(date(2000, 2, 29))
    assert validate_national_id(national_id, today=TODAY) == national_id


def test_future_birth_date() -> None:
    rejects(make_id(date(2026, 3, 16)), IMPOSSIBLE_DATE_MESSAGE)
    rejects(make_id(date(2030, 1, 1)), IMPOSSIBLE_DATE_MESSAGE)
    # Born today is possible, only too young.
    rejects(make_id(TODAY), UNDER_AGE_MESSAGE)


def test_eighteenth_birthday_is_the_first_day_allowed() -> None:
    assert MINIMUM_AGE_YEARS == 18
    national_id = make_id(date(2008, 3, 15))
    rejects(national_id, UNDER_AGE_MESSAGE, today=date(2026, 3, 14))
    assert validate_national_id(national_id, today=date(2026, 3, 15)) == national_id


def test_leap_day_birthday_comes_of_age_on_the_first_of_march() -> None:
    national_id = make_id(date(2008, 2, 29))
    rejects(national_id, UNDER_AGE_MESSAGE, today=date(2026, 2, 28))
    assert validate_national_id(national_id, today=date(2026, 3, 1)) == national_id


@pytest.mark.parametrize(
    ("birth_on", "on", "expected"),
    [
        (date(2000, 6, 15), date(2018, 6, 14), 17),
        (date(2000, 6, 15), date(2018, 6, 15), 18),
        (date(2000, 6, 15), date(2018, 12, 31), 18),
        (date(2000, 2, 29), date(2018, 2, 28), 17),
        (date(2000, 2, 29), date(2018, 3, 1), 18),
    ],
)
def test_age_on(birth_on: date, on: date, expected: int) -> None:
    assert age_on(birth_on, on) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "11010519491231002",  # 17 characters
        "11010519491231002X1",  # 19 characters
        "01010519491231002X",  # leading zero: no such region
        "1101051949123100X2",  # X only allowed last
        "11010519491231002Y",
        "1101051949-231002X",
        "110105 19491231002X",
        "11010519491231002X".replace("1", "１"),  # full-width digits
        "1" + "１０１０５１９４９１２３１００２" + "X",  # full-width after an ASCII first digit
        "１１０１０５１９４９１２３１００２Ｘ",
        "1" + "\u0661" * 16 + "X",  # Arabic-Indic digits
    ],
)
def test_malformed_national_ids(raw: str) -> None:
    rejects(raw, FORMAT_MESSAGE)


def test_custom_field_name() -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_national_id("123", today=TODAY, field="applicant.national_id")
    assert caught.value.field == "applicant.national_id"


@given(
    birth_on=st.dates(min_value=date(1900, 1, 1), max_value=date(2008, 3, 15)),
    region=st.integers(min_value=100_000, max_value=999_999),
    sequence=st.integers(min_value=0, max_value=999),
)
def test_computed_check_character_validates_and_any_other_fails(
    birth_on: date, region: int, sequence: int
) -> None:
    first_seventeen = f"{region}{birth_on:%Y%m%d}{sequence:03d}"
    right = check_character(first_seventeen)
    assert national_id_check_character(first_seventeen) == right
    assert validate_national_id(first_seventeen + right, today=TODAY) == first_seventeen + right
    for other in "0123456789X":
        if other != right:
            rejects(first_seventeen + other, CHECK_DIGIT_MESSAGE)


# Phones


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+8613800138000", "+8613800138000"),
        ("+86 138 0013 8000", "+8613800138000"),
        (" +86-138-0013-8000 ", "+8613800138000"),
        ("+8619912345678", "+8619912345678"),
    ],
)
def test_valid_phones(raw: str, expected: str) -> None:
    assert validate_phone(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("8613800138000", "E.164"),
        ("13800138000", "E.164"),
        ("", "E.164"),
        ("+", "cannot be read"),
        ("+abc", "cannot be read"),
        ("+8612345678901", "not a valid number"),  # no CN mobile range starts 12
        ("+86138001380001", "not a valid number"),  # one digit too many
        ("+861380013800", "not a valid number"),  # one digit too few
    ],
)
def test_invalid_phones(raw: str, message: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_phone(raw, field="contact.phone")
    assert message in caught.value.message
    assert caught.value.field == "contact.phone"


# Names and emails


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("张三", "张三"),
        ("  欧阳娜娜 ", "欧阳娜娜"),
        ("José", "José"),
        ("Jose\u0301", "Jos\u00e9"),  # NFC
        ("阿", "阿"),
        ("名" * 64, "名" * 64),
    ],
)
def test_valid_names(raw: str, expected: str) -> None:
    assert validate_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "1 to 64 characters"),
        ("   ", "1 to 64 characters"),
        ("名" * 65, "1 to 64 characters"),
        ("张\x00三", "control characters"),
        ("张\n三", "control characters"),
        ("张\u200b三", "control characters"),  # zero-width space (format character)
        ("张\u202e三", "control characters"),  # right-to-left override
    ],
)
def test_invalid_names(raw: str, message: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_name(raw)
    assert message in caught.value.message
    assert caught.value.field == "name"


def test_email() -> None:
    assert validate_email(" a@example.com ") == "a@example.com"
    for bad in ["a@example", "@example.com", "a b@example.com", "a@@example.com", ""]:
        with pytest.raises(ValidationFailed):
            validate_email(bad)
    with pytest.raises(ValidationFailed):
        validate_email("a" * 250 + "@x.cn")


# Masking


def test_mask_national_id() -> None:
    assert mask_national_id("11010519491231002X") == "110***********002X"
    assert mask_national_id("440308199901010012") == "440***********0012"


def test_mask_phone() -> None:
    assert mask_phone("+8613800138000") == "+86 138****8000"
    assert mask_phone("+8619912345678") == "+86 199****5678"


def test_mask_name_and_email() -> None:
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"
    assert mask_name("阿") == "*"
    assert mask_email("alice@example.com") == "a***@example.com"
