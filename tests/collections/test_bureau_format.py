"""Metro 2 and JSONL bureau files, read back by an independent positional parser."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.collections.metro2_parser import (
    TRAILER_STATUS_CODES,
    Metro2ParseError,
    parse_metro2,
    split_records,
)
from usefirst.collections.bureau_format import (
    AccountStanding,
    BureauAccount,
    ReporterInfo,
    TermsFrequency,
    metro2_account_status,
    metro2_payment_history_code,
    metro2_payment_rating,
    transliterate_name,
    whole_units,
    write_metro2,
)
from usefirst.collections.bureau_jsonl import write_jsonl
from usefirst.identity.validation import national_id_check_character

PERIOD_END = date(2026, 3, 31)
ACTIVITY_ON = date(2026, 3, 31)
CREATED_ON = date(2026, 4, 1)
BIRTH_ON = date(1990, 1, 15)

REPORTER = ReporterInfo(
    identification_number="USEFIRST01",
    reporter_name="Usefirst Demo Lending",
    reporter_address="1 Demo Road, Pudong, Shanghai 200120, CN",
    reporter_telephone_digits="2112345678",
    equifax_program_identifier="EFX0000001",
    experian_program_identifier="EXP01",
    transunion_program_identifier="TU00000001",
    program_on=date(2026, 1, 1),
    program_revised_on=date(2026, 3, 1),
    software_version_number="0.1.0",
)

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def national_id_for(birth_on: date, sequence: str = "123") -> str:
    first_seventeen = f"110105{birth_on:%Y%m%d}{sequence}"
    return first_seventeen + national_id_check_character(first_seventeen)


NATIONAL_ID = national_id_for(BIRTH_ON)


def make_account(**overrides: Any) -> BureauAccount:
    """A current 3-instalment order of ¥1,200.99 with one instalment paid."""
    fields: dict[str, Any] = {
        "account_number": "ord_01M84ABCDEFGHJKMNPQRSTVW",
        "shopper_id": "shp_01M84ABCDEFGHJKMNPQRSTVW",
        "surname": "张",
        "given_name": "小明",
        "birth_on": BIRTH_ON,
        "national_id": NATIONAL_ID,
        "phone_e164": "+8613800138000",
        "opened_on": date(2026, 1, 10),
        "credit_limit_minor": 500_000,
        "highest_credit_minor": 120_099,
        "original_amount_minor": 120_099,
        "terms_duration": 3,
        "terms_frequency": "M",
        "scheduled_monthly_payment_minor": 40_033,
        "actual_payment_minor": 40_033,
        "current_balance_minor": 80_066,
        "amount_past_due_minor": 0,
        "days_past_due": 0,
        "status": "current",
        "date_of_first_delinquency": None,
        "date_closed": None,
        "date_last_payment": date(2026, 3, 10),
        "charge_off_amount_minor": 0,
        "is_disputed": False,
        "account_information_on": date(2026, 3, 31),
        "currency": "CNY",
        "payment_history_profile": "0",
    }
    fields.update(overrides)
    return BureauAccount(**fields)


def account_number(suffix: str) -> str:
    return "ord_01M84ABCDEFGHJKMNPQRS" + suffix


# The crafted accounts: (name, account, the base segment fields that differ from CURRENT_BASE).
CURRENT = make_account(account_number=account_number("CUR"))
LATE_35_DAYS = make_account(
    account_number=account_number("L35"),
    status="past_due",
    days_past_due=35,
    actual_payment_minor=0,
    current_balance_minor=120_099,
    amount_past_due_minor=40_033,
    date_of_first_delinquency=date(2026, 3, 12),
    date_last_payment=None,
)
LATE_200_DAYS = make_account(
    account_number=account_number("L200"),
    opened_on=date(2025, 6, 1),
    status="past_due",
    days_past_due=200,
    actual_payment_minor=0,
    current_balance_minor=120_099,
    amount_past_due_minor=120_099,
    date_of_first_delinquency=date(2025, 10, 12),
    date_last_payment=None,
    payment_history_profile="5432100",
)
PAID = make_account(
    account_number=account_number("PAID"),
    status="paid",
    actual_payment_minor=80_066,
    current_balance_minor=0,
    date_closed=date(2026, 3, 20),
    date_last_payment=date(2026, 3, 20),
    account_information_on=date(2026, 3, 20),
    payment_history_profile="00",
)
PAID_AFTER_45_DAYS_LATE = make_account(
    account_number=account_number("PL45"),
    status="paid",
    days_past_due=45,
    actual_payment_minor=80_066,
    current_balance_minor=0,
    date_of_first_delinquency=date(2026, 2, 9),
    date_closed=date(2026, 3, 25),
    date_last_payment=date(2026, 3, 25),
    account_information_on=date(2026, 3, 25),
    payment_history_profile="10",
)
CHARGED_OFF = make_account(
    account_number=account_number("CO"),
    opened_on=date(2025, 6, 1),
    status="charged_off",
    days_past_due=200,
    actual_payment_minor=0,
    current_balance_minor=120_099,
    amount_past_due_minor=120_099,
    charge_off_amount_minor=120_099,
    date_of_first_delinquency=date(2025, 10, 12),
    date_closed=date(2026, 3, 15),
    date_last_payment=None,
    payment_history_profile="543210",
)
CHARGED_OFF_THEN_PAID = make_account(
    account_number=account_number("COP"),
    opened_on=date(2025, 6, 1),
    status="charged_off",
    days_past_due=0,
    scheduled_monthly_payment_minor=0,
    actual_payment_minor=120_099,
    current_balance_minor=0,
    charge_off_amount_minor=120_099,
    date_of_first_delinquency=date(2025, 10, 12),
    date_closed=date(2026, 3, 25),
    date_last_payment=date(2026, 3, 25),
    account_information_on=date(2026, 3, 25),
    payment_history_profile="LLL543210",
)
DISPUTED = make_account(account_number=account_number("DSP"), is_disputed=True)

CURRENT_BASE: dict[str, Any] = {
    "record_descriptor_word": 426,
    "processing_indicator": 1,
    "time_stamp": datetime(2026, 3, 31, 0, 0, 0),
    "correction_indicator": 0,
    "identification_number": "USEFIRST01",
    "cycle_identifier": "",
    "consumer_account_number": "ORD01M84ABCDEFGHJKMNPQRSCUR",
    "portfolio_type": "I",
    "account_type": "01",
    "date_opened": date(2026, 1, 10),
    "credit_limit": 0,
    "highest_credit": 1200,
    "terms_duration": "003",
    "terms_frequency": "M",
    "scheduled_monthly_payment": 400,
    "actual_payment": 400,
    "account_status": "11",
    "payment_rating": "",
    "payment_history_profile": "0" + "B" * 23,
    "special_comment": "",
    "compliance_condition_code": "",
    "current_balance": 800,
    "amount_past_due": 0,
    "original_charge_off_amount": 0,
    "date_of_account_information": date(2026, 3, 31),
    "date_of_first_delinquency": None,
    "date_closed": None,
    "date_of_last_payment": date(2026, 3, 10),
    "interest_type_indicator": "F",
    "reserved": "",
    "surname": "ZHANG",
    "first_name": "XIAOMING",
    "middle_name": "",
    "generation_code": "",
    "social_security_number": 0,
    "date_of_birth": BIRTH_ON,
    "telephone_number": 0,
    "ecoa_code": "1",
    "consumer_information_indicator": "",
    "country_code": "CN",
    "first_line_of_address": "",
    "second_line_of_address": "",
    "city": "",
    "state": "",
    "postal_code": "",
    "address_indicator": "",
    "residence_code": "",
}

CRAFTED: list[tuple[str, BureauAccount, dict[str, Any]]] = [
    ("current", CURRENT, {}),
    (
        "35 days late",
        LATE_35_DAYS,
        {
            "consumer_account_number": "ORD01M84ABCDEFGHJKMNPQRSL35",
            "account_status": "71",
            "actual_payment": 0,
            "current_balance": 1200,
            "amount_past_due": 400,
            "date_of_first_delinquency": date(2026, 3, 12),
            "date_of_last_payment": None,
        },
    ),
    (
        "200 days late",
        LATE_200_DAYS,
        {
            "consumer_account_number": "ORD01M84ABCDEFGHJKMNPQRSL200",
            "date_opened": date(2025, 6, 1),
            "account_status": "84",
            "payment_history_profile": "5432100" + "B" * 17,
            "actual_payment": 0,
            "current_balance": 1200,
            "amount_past_due": 1200,
            "date_of_first_delinquency": date(2025, 10, 12),
            "date_of_last_payment": None,
        },
    ),
    (
        "paid",
        PAID,
        {
            "consumer_account_number": "ORD01M84ABCDEFGHJKMNPQRSPAID",
            "time_stamp": datetime(2026, 3, 20, 0, 0, 0),
            "account_status": "13",
            "payment_rating": "0",
            "payment_history_profile": "00" + "B" * 22,
            "scheduled_monthly_payment": 0,
            "actual_payment": 800,
            "current_balance": 0,
            "date_of_account_information": date(2026, 3, 20),
            "date_closed": date(2026, 3, 20),
            "date_of_last_payment": date(2026, 3, 20),
        },
    ),
    (
        "paid after 45 days late",
        PAID_AFTER_45_DAYS_LATE,
        {
            "consumer_account_number": "ORD01M84ABCDEFGHJKMNPQRSPL45",
            "time_stamp": datetime(2026, 3, 25, 0, 0, 0),
            "account_status": "13",
            "payment_rating": "1",
            "payment_history_profile": "10" + "B" * 22,
            "scheduled_monthly_payment": 0,
            "actual_payment": 800,
            "current_balance": 0,
            "date_of_account_information": date(2026, 3, 25),
            "date_of_first_delinquency": date(2026, 2, 9),
            "date_closed": date(2026, 3, 25),
            "date_of_last_payment": date(2026, 3, 25),
        },
    ),
    (
        "charged off",
        CHARGED_OFF,
        {
            "consumer_account_number": "ORD01M84ABCDEFGHJKMNPQRSCO",
            "date_opened": date(2025, 6, 1),
            "account_status": "97",
            "payment_history_profile": "543210" + "B" * 18,
            "actual_payment": 0,
            "current_balance": 1200,
            "amount_past_due": 1200,
            "original_charge_off_amount": 1200,
            "date_of_first_delinquency": date(2025, 10, 12),
            "date_closed": date(2026, 3, 15),
            "date_of_last_payment": None,
        },
    ),
    (
        "charged off then paid",
        CHARGED_OFF_THEN_PAID,
        {
            "consumer_account_number": "ORD01M84ABCDEFGHJKMNPQRSCOP",
            "time_stamp": datetime(2026, 3, 25, 0, 0, 0),
            "date_opened": date(2025, 6, 1),
            "account_status": "64",
            "payment_history_profile": "LLL543210" + "B" * 15,
            "scheduled_monthly_payment": 0,
            "actual_payment": 1200,
            "current_balance": 0,
            "original_charge_off_amount": 1200,
            "date_of_account_information": date(2026, 3, 25),
            "date_of_first_delinquency": date(2025, 10, 12),
            "date_closed": date(2026, 3, 25),
            "date_of_last_payment": date(2026, 3, 25),
        },
    ),
    (
        "disputed",
        DISPUTED,
        {
            "consumer_account_number": "ORD01M84ABCDEFGHJKMNPQRSDSP",
            "compliance_condition_code": "XB",
        },
    ),
]
CRAFTED_ACCOUNTS = [account for _, account, _ in CRAFTED]


def crafted_file() -> str:
    return write_metro2(
        reporter=REPORTER,
        accounts=CRAFTED_ACCOUNTS,
        period_end=PERIOD_END,
        activity_on=ACTIVITY_ON,
        created_on=CREATED_ON,
    )


# --- layout ---------------------------------------------------------------------------------


def test_every_record_is_426_characters_and_lf_terminated() -> None:
    text = crafted_file()
    records = split_records(text)
    assert len(records) == len(CRAFTED_ACCOUNTS) + 2
    assert all(len(record) == 426 for record in records)
    assert len(text) == 427 * len(records)
    assert text.isascii()
    assert "\r" not in text


def test_empty_file_has_header_and_trailer_only() -> None:
    parsed = parse_metro2(
        write_metro2(reporter=REPORTER, accounts=[], period_end=PERIOD_END, activity_on=ACTIVITY_ON)
    )
    assert parsed.bases == []
    assert parsed.header["date_created"] == ACTIVITY_ON
    assert parsed.trailer["total_base_records"] == 0
    assert parsed.trailer["block_count"] == 2


def test_parser_rejects_a_record_one_character_short() -> None:
    records = split_records(crafted_file())
    records[1] = records[1][:-1]
    with pytest.raises(Metro2ParseError):
        parse_metro2("\n".join(records) + "\n")


def test_header_fields() -> None:
    header = parse_metro2(crafted_file()).header
    assert header == {
        "record_descriptor_word": 426,
        "record_identifier": "HEADER",
        "cycle_identifier": "",
        "innovis_program_identifier": "",
        "equifax_program_identifier": "EFX0000001",
        "experian_program_identifier": "EXP01",
        "transunion_program_identifier": "TU00000001",
        "activity_date": ACTIVITY_ON,
        "date_created": CREATED_ON,
        "program_date": date(2026, 1, 1),
        "program_revision_date": date(2026, 3, 1),
        "reporter_name": "USEFIRST DEMO LENDING",
        "reporter_address": "1 DEMO ROAD, PUDONG, SHANGHAI 200120, CN",
        "reporter_telephone_number": 2112345678,
        "software_vendor_name": "USEFIRST",
        "software_version_number": "0.1.0",
        "prbc_program_identifier": "",
        "reserved": "",
    }


@pytest.mark.parametrize(
    ("account", "differences"),
    [(account, differences) for _, account, differences in CRAFTED],
    ids=[name for name, _, _ in CRAFTED],
)
def test_base_segment_fields_parse_back_exactly(
    account: BureauAccount, differences: dict[str, Any]
) -> None:
    parsed = parse_metro2(crafted_file())
    base = parsed.bases[CRAFTED_ACCOUNTS.index(account)]
    assert base == CURRENT_BASE | differences


def test_trailer_counts_and_totals() -> None:
    trailer = parse_metro2(crafted_file()).trailer
    counted = {"11": 2, "13": 2, "64": 1, "71": 1, "84": 1, "97": 1}
    expected: dict[str, Any] = {
        "record_descriptor_word": 426,
        "record_identifier": "TRAILER",
        "total_base_records": 8,
        "reserved_1": "",
        "total_status_code_df": 0,
        "total_j1_segments": 0,
        "total_j2_segments": 0,
        "block_count": 10,
        "total_ecoa_code_z": 0,
        "total_employment_segments": 0,
        "total_original_creditor_segments": 0,
        "total_purchased_sold_segments": 0,
        "total_mortgage_information_segments": 0,
        "total_specialized_payment_segments": 0,
        "total_change_segments": 0,
        "total_ssn_all_segments": 0,
        "total_ssn_base_segments": 0,
        "total_ssn_j1_segments": 0,
        "total_ssn_j2_segments": 0,
        "total_birth_dates_all_segments": 8,
        "total_birth_dates_base_segments": 8,
        "total_birth_dates_j1_segments": 0,
        "total_birth_dates_j2_segments": 0,
        "total_telephone_numbers_all_segments": 0,
        "reserved_2": "",
    }
    for code in TRAILER_STATUS_CODES:
        expected[f"total_status_code_{code.lower()}"] = counted.get(code, 0)
    assert trailer == expected


def test_north_american_phone_is_reported_and_counted_other_phones_are_zero_filled() -> None:
    american = make_account(account_number=account_number("US"), phone_e164="+12125550123")
    chinese = make_account(account_number=account_number("CN"))
    parsed = parse_metro2(
        write_metro2(
            reporter=REPORTER,
            accounts=[american, chinese],
            period_end=PERIOD_END,
            activity_on=ACTIVITY_ON,
        )
    )
    assert [base["telephone_number"] for base in parsed.bases] == [2125550123, 0]
    assert parsed.trailer["total_telephone_numbers_all_segments"] == 1


def test_the_resident_id_is_never_written_to_the_metro2_file() -> None:
    text = crafted_file()
    assert NATIONAL_ID not in text
    assert NATIONAL_ID[:17] not in text


# --- codes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days_past_due", "status_code", "history_code"),
    [
        (0, "11", "0"),
        (29, "11", "0"),
        (30, "71", "1"),
        (59, "71", "1"),
        (60, "78", "2"),
        (89, "78", "2"),
        (90, "80", "3"),
        (119, "80", "3"),
        (120, "82", "4"),
        (149, "82", "4"),
        (150, "83", "5"),
        (179, "83", "5"),
        (180, "84", "6"),
        (2000, "84", "6"),
    ],
)
def test_status_by_days_past_due(days_past_due: int, status_code: str, history_code: str) -> None:
    account = make_account(
        status="past_due",
        days_past_due=days_past_due,
        date_of_first_delinquency=date(2025, 1, 1),
    )
    assert metro2_account_status(account) == status_code
    assert metro2_payment_rating(account) == ""
    assert metro2_payment_history_code(account) == history_code


def test_paid_after_a_charge_off_is_64_whichever_way_the_caller_says_it() -> None:
    paid_with_charge_off = replace(CHARGED_OFF_THEN_PAID, status="paid")
    assert metro2_account_status(paid_with_charge_off) == "64"
    assert metro2_account_status(CHARGED_OFF_THEN_PAID) == "64"
    assert metro2_payment_rating(paid_with_charge_off) == ""
    assert metro2_payment_history_code(CHARGED_OFF) == "L"


@pytest.mark.parametrize(
    ("name", "is_surname", "reported"),
    [
        ("张", True, "ZHANG"),
        ("小明", False, "XIAOMING"),
        ("欧阳", True, "OUYANG"),
        ("吕", True, "LYU"),
        ("绿绿", False, "LYULYU"),
        ("单", True, "SHAN"),
        ("曾", True, "ZENG"),
        ("曾", False, "CENG"),
        ("阿依古丽·买买提", False, "AYIGULI-MAIMAITI"),
        ("Zoë", False, "ZOE"),
    ],
)
def test_names_are_written_in_passport_pinyin(name: str, is_surname: bool, reported: str) -> None:
    assert transliterate_name(name, is_surname=is_surname) == reported


def test_a_long_given_name_is_cut_to_the_field() -> None:
    account = make_account(given_name="丽" * 30)
    base = parse_metro2(
        write_metro2(
            reporter=REPORTER, accounts=[account], period_end=PERIOD_END, activity_on=ACTIVITY_ON
        )
    ).bases[0]
    assert base["first_name"] == "LILILILILILILILILILI"


# --- amounts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount_minor", "whole"),
    [
        (0, 0),
        (1, 0),
        (99, 0),
        (100, 1),
        (12_350, 123),
        (12_399, 123),
        (99_999_999_999, 999_999_999),
    ],
)
def test_whole_units_truncate_the_fen(amount_minor: int, whole: int) -> None:
    assert whole_units(amount_minor, "CNY") == whole


def test_amounts_in_the_file_are_truncated_not_rounded() -> None:
    account = make_account(
        status="past_due",
        days_past_due=31,
        original_amount_minor=100_099,
        current_balance_minor=50_050,
        amount_past_due_minor=99,
        scheduled_monthly_payment_minor=33_367,
        actual_payment_minor=199,
        date_of_first_delinquency=date(2026, 3, 30),
    )
    base = parse_metro2(
        write_metro2(
            reporter=REPORTER, accounts=[account], period_end=PERIOD_END, activity_on=ACTIVITY_ON
        )
    ).bases[0]
    assert (base["highest_credit"], base["current_balance"], base["amount_past_due"]) == (
        1000,
        500,
        0,
    )
    assert (base["scheduled_monthly_payment"], base["actual_payment"]) == (333, 1)


def test_an_amount_too_large_for_nine_digits_is_refused_not_cut() -> None:
    account = make_account(original_amount_minor=100_000_000_000, highest_credit_minor=0)
    with pytest.raises(ValueError, match="does not fit 9 digits"):
        write_metro2(
            reporter=REPORTER, accounts=[account], period_end=PERIOD_END, activity_on=ACTIVITY_ON
        )


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"status": "current", "days_past_due": 30}, "use past_due"),
        ({"status": "past_due", "days_past_due": 30}, "date_of_first_delinquency"),
        ({"status": "paid", "date_closed": date(2026, 3, 20)}, "no balance"),
        ({"status": "paid", "current_balance_minor": 0}, "date_closed"),
        ({"status": "charged_off", "days_past_due": 200}, "charge_off_amount_minor"),
        ({"national_id": NATIONAL_ID[:17] + "0"}, "check character"),
        ({"national_id": national_id_for(date(1991, 1, 15))}, "birth_on differs"),
        ({"terms_frequency": "P", "terms_duration": 3}, "single-payment"),
        ({"terms_frequency": "W"}, "terms_frequency"),
        ({"current_balance_minor": -1}, "negative"),
        ({"current_balance_minor": 1.5}, "int of minor units"),
        ({"currency": "USD"}, "unsupported currency"),
        ({"payment_history_profile": "0B0"}, "payment_history_profile"),
        ({"account_number": "ord_" + "X" * 30}, "1 to 30"),
        ({"surname": " "}, "required"),
        ({"phone_e164": "13800138000"}, "E.164"),
    ],
)
def test_inconsistent_accounts_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        make_account(**overrides)


def test_account_information_after_the_period_end_is_refused() -> None:
    with pytest.raises(ValueError, match="after the period end"):
        write_metro2(
            reporter=REPORTER,
            accounts=[make_account(account_information_on=date(2026, 4, 1))],
            period_end=PERIOD_END,
            activity_on=ACTIVITY_ON,
        )


def test_an_account_reported_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="reported twice"):
        write_metro2(
            reporter=REPORTER,
            accounts=[CURRENT, replace(CURRENT, is_disputed=True)],
            period_end=PERIOD_END,
            activity_on=ACTIVITY_ON,
        )


def test_reporter_identification_number_must_be_usable() -> None:
    with pytest.raises(ValueError, match="identification_number"):
        replace(REPORTER, identification_number="00000")
    with pytest.raises(ValueError, match="identification_number"):
        replace(REPORTER, identification_number="US_01")


# --- JSONL ----------------------------------------------------------------------------------


def test_jsonl_round_trip() -> None:
    text = write_jsonl(CRAFTED_ACCOUNTS, PERIOD_END)
    lines = text.splitlines()
    assert len(lines) == len(CRAFTED_ACCOUNTS)
    assert text.endswith("\n")
    for line, (_, account, differences) in zip(lines, CRAFTED, strict=True):
        record = json.loads(line)
        assert record["period_end"] == "2026-03-31"
        assert record["account_number"] == account.account_number
        assert (
            record["metro2_account_number"]
            == (CURRENT_BASE | differences)["consumer_account_number"]
        )
        assert record["shopper_id"] == account.shopper_id
        assert record["account_status_code"] == metro2_account_status(account)
        assert record["payment_rating"] == metro2_payment_rating(account)
        assert record["compliance_condition_code"] == ("XB" if account.is_disputed else "")
        assert record["days_past_due"] == account.days_past_due
        assert record["status"] == account.status
        assert record["currency"] == "CNY"
        for name, amount_minor in account.amounts_minor().items():
            assert record[name] == amount_minor
            assert record[name.removesuffix("_minor") + "_whole"] == amount_minor // 100
        for name in ("opened_on", "account_information_on"):
            assert date.fromisoformat(record[name]) == getattr(account, name)
        for name in ("date_of_first_delinquency", "date_closed", "date_last_payment"):
            value = getattr(account, name)
            assert record[name] == (None if value is None else value.isoformat())
        assert record["national_id_masked"] == "110***********" + NATIONAL_ID[-4:]
        assert record["name_masked"] == "张**"
        assert record["birth_year"] == 1990


def test_jsonl_holds_no_plaintext_identity() -> None:
    text = write_jsonl(CRAFTED_ACCOUNTS, PERIOD_END)
    assert NATIONAL_ID not in text
    assert NATIONAL_ID[6:14] not in text  # the birth date inside the ID
    assert "小明" not in text
    assert "13800138000" not in text
    assert BIRTH_ON.isoformat() not in text


# --- property -------------------------------------------------------------------------------

STANDINGS: list[AccountStanding] = ["current", "past_due", "paid", "charged_off"]
FREQUENCIES: list[TermsFrequency] = ["M", "P"]
SURNAMES = ["张", "王", "李", "欧阳", "吕", "单", "曾", "司马"]
GIVEN_CHARACTERS = "明华丽伟芳静强磊洋艳勇军杰娟涛超绿"


def oracle_status(account: BureauAccount) -> str:
    """The Metro 2 status, worked out again from the CRRG buckets."""
    if account.status == "charged_off":
        return "97" if account.current_balance_minor else "64"
    if account.status == "paid":
        return "64" if account.charge_off_amount_minor else "13"
    buckets = [(180, "84"), (150, "83"), (120, "82"), (90, "80"), (60, "78"), (30, "71")]
    return next((code for days, code in buckets if account.days_past_due >= days), "11")


@st.composite
def bureau_accounts(draw: st.DrawFn, *, account_number: str) -> BureauAccount:
    standing = draw(st.sampled_from(STANDINGS))
    birth_on = draw(st.dates(date(1940, 1, 1), date(2005, 12, 31)))
    opened_on = draw(st.dates(date(2020, 1, 1), PERIOD_END))
    information_on = draw(st.dates(opened_on, PERIOD_END))
    money = st.integers(0, 99_999_999_999)
    original_amount_minor = draw(money)
    frequency = draw(st.sampled_from(FREQUENCIES))
    maximum_days = {"current": 29, "past_due": 400, "paid": 200, "charged_off": 400}[standing]
    charge_off_amount_minor = 0
    balance_minor = draw(money)
    past_due_minor = draw(money)
    if standing == "charged_off":
        charge_off_amount_minor = draw(st.integers(1, 99_999_999_999))
        balance_minor = draw(st.integers(0, charge_off_amount_minor))
    if standing == "paid":
        charge_off_amount_minor = draw(st.sampled_from([0, draw(money)]))
        balance_minor = past_due_minor = 0
    phone = draw(
        st.one_of(
            st.from_regex(r"\+861[3-9][0-9]{9}", fullmatch=True),
            st.from_regex(r"\+1[2-9][0-9]{9}", fullmatch=True),
        )
    )
    return BureauAccount(
        account_number=account_number,
        shopper_id="shp_" + account_number[4:],
        surname=draw(st.sampled_from(SURNAMES)),
        given_name=draw(st.text(GIVEN_CHARACTERS, min_size=1, max_size=3)),
        birth_on=birth_on,
        national_id=national_id_for(birth_on, draw(st.from_regex(r"[0-9]{3}", fullmatch=True))),
        phone_e164=phone,
        opened_on=opened_on,
        credit_limit_minor=draw(money),
        highest_credit_minor=draw(money),
        original_amount_minor=original_amount_minor,
        terms_duration=1 if frequency == "P" else draw(st.integers(1, 36)),
        terms_frequency=frequency,
        scheduled_monthly_payment_minor=draw(money),
        actual_payment_minor=draw(money),
        current_balance_minor=balance_minor,
        amount_past_due_minor=past_due_minor,
        days_past_due=draw(st.integers(0, maximum_days)),
        status=standing,
        date_of_first_delinquency=draw(st.dates(opened_on, information_on)),
        date_closed=draw(st.dates(opened_on, information_on)),
        date_last_payment=draw(st.none() | st.dates(opened_on, information_on)),
        charge_off_amount_minor=charge_off_amount_minor,
        is_disputed=draw(st.booleans()),
        account_information_on=information_on,
        currency="CNY",
        payment_history_profile=draw(st.text("0123456DL", max_size=24)),
    )


@st.composite
def account_lists(draw: st.DrawFn) -> list[BureauAccount]:
    bodies = draw(st.lists(st.text(CROCKFORD, min_size=26, max_size=26), max_size=6, unique=True))
    return [draw(bureau_accounts(account_number=f"ord_{body}")) for body in bodies]


@settings(max_examples=150, deadline=None)
@given(accounts=account_lists())
def test_random_accounts_give_426_character_lines_that_parse_back(
    accounts: list[BureauAccount],
) -> None:
    text = write_metro2(
        reporter=REPORTER, accounts=accounts, period_end=PERIOD_END, activity_on=ACTIVITY_ON
    )
    assert all(len(record) == 426 for record in split_records(text))
    parsed = parse_metro2(text)
    assert len(parsed.bases) == len(accounts)
    for base, account in zip(parsed.bases, accounts, strict=True):
        status_code = oracle_status(account)
        is_paid_in_full = status_code in {"13", "64"}
        assert base["consumer_account_number"] == "ORD" + account.account_number[4:]
        assert base["account_status"] == status_code
        assert base["payment_rating"] == (
            str(min(account.days_past_due // 30, 6)) if status_code == "13" else ""
        )
        assert base["date_opened"] == account.opened_on
        assert base["date_of_account_information"] == account.account_information_on
        assert base["date_of_birth"] == account.birth_on
        reports_first_delinquency = status_code not in {"11", "13"} or (
            status_code == "13" and account.days_past_due >= 30
        )
        assert base["date_of_first_delinquency"] == (
            account.date_of_first_delinquency if reports_first_delinquency else None
        )
        assert base["date_closed"] == account.date_closed
        assert base["date_of_last_payment"] == account.date_last_payment
        assert base["highest_credit"] == account.original_amount_minor // 100
        assert base["current_balance"] == account.current_balance_minor // 100
        assert base["actual_payment"] == account.actual_payment_minor // 100
        assert base["scheduled_monthly_payment"] == (
            0 if is_paid_in_full else account.scheduled_monthly_payment_minor // 100
        )
        assert base["amount_past_due"] == (
            0 if status_code in {"11", "13", "64"} else account.amount_past_due_minor // 100
        )
        assert base["original_charge_off_amount"] == (
            account.charge_off_amount_minor // 100 if status_code in {"64", "97"} else 0
        )
        assert base["terms_duration"] == f"{account.terms_duration:03d}"
        assert base["terms_frequency"] == account.terms_frequency
        assert base["payment_history_profile"] == account.payment_history_profile.ljust(24, "B")
        assert base["compliance_condition_code"] == ("XB" if account.is_disputed else "")
        assert base["telephone_number"] == (
            int(account.phone_e164[2:]) if account.phone_e164.startswith("+1") else 0
        )
        assert isinstance(base["surname"], str) and base["surname"].isalpha()
        assert isinstance(base["first_name"], str) and base["first_name"].isalpha()
        assert base["social_security_number"] == 0
    trailer = parsed.trailer
    assert trailer["total_base_records"] == len(accounts)
    assert trailer["block_count"] == len(accounts) + 2
    status_totals = sum(
        int(str(trailer[f"total_status_code_{code.lower()}"])) for code in TRAILER_STATUS_CODES
    )
    assert status_totals == len(accounts)
    assert trailer["total_birth_dates_base_segments"] == len(accounts)
