"""An independent reader of Metro 2® 426-character files, for tests.

It shares no code with the writer: positions are copied here from the CRRG layout as published
in the CFPB's parser (``cfpb/Metro2`` ``django/parse_m2/fields.py``), 1-based and inclusive, so a
field the writer puts one column off fails to parse back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

RECORD_LENGTH = 426

Kind = Literal["N", "A", "D", "T"]  # numeric, alphanumeric, date MMDDYYYY, time stamp
Value = int | str | date | datetime | None

HEADER_FIELDS: dict[str, tuple[int, int, Kind]] = {
    "record_descriptor_word": (1, 4, "N"),
    "record_identifier": (5, 10, "A"),
    "cycle_identifier": (11, 12, "A"),
    "innovis_program_identifier": (13, 22, "A"),
    "equifax_program_identifier": (23, 32, "A"),
    "experian_program_identifier": (33, 37, "A"),
    "transunion_program_identifier": (38, 47, "A"),
    "activity_date": (48, 55, "D"),
    "date_created": (56, 63, "D"),
    "program_date": (64, 71, "D"),
    "program_revision_date": (72, 79, "D"),
    "reporter_name": (80, 119, "A"),
    "reporter_address": (120, 215, "A"),
    "reporter_telephone_number": (216, 225, "N"),
    "software_vendor_name": (226, 265, "A"),
    "software_version_number": (266, 270, "A"),
    "prbc_program_identifier": (271, 280, "A"),
    "reserved": (281, 426, "A"),
}

BASE_FIELDS: dict[str, tuple[int, int, Kind]] = {
    "record_descriptor_word": (1, 4, "N"),
    "processing_indicator": (5, 5, "N"),
    "time_stamp": (6, 19, "T"),
    "correction_indicator": (20, 20, "N"),
    "identification_number": (21, 40, "A"),
    "cycle_identifier": (41, 42, "A"),
    "consumer_account_number": (43, 72, "A"),
    "portfolio_type": (73, 73, "A"),
    "account_type": (74, 75, "A"),
    "date_opened": (76, 83, "D"),
    "credit_limit": (84, 92, "N"),
    "highest_credit": (93, 101, "N"),
    "terms_duration": (102, 104, "A"),
    "terms_frequency": (105, 105, "A"),
    "scheduled_monthly_payment": (106, 114, "N"),
    "actual_payment": (115, 123, "N"),
    "account_status": (124, 125, "A"),
    "payment_rating": (126, 126, "A"),
    "payment_history_profile": (127, 150, "A"),
    "special_comment": (151, 152, "A"),
    "compliance_condition_code": (153, 154, "A"),
    "current_balance": (155, 163, "N"),
    "amount_past_due": (164, 172, "N"),
    "original_charge_off_amount": (173, 181, "N"),
    "date_of_account_information": (182, 189, "D"),
    "date_of_first_delinquency": (190, 197, "D"),
    "date_closed": (198, 205, "D"),
    "date_of_last_payment": (206, 213, "D"),
    "interest_type_indicator": (214, 214, "A"),
    "reserved": (215, 231, "A"),
    "surname": (232, 256, "A"),
    "first_name": (257, 276, "A"),
    "middle_name": (277, 296, "A"),
    "generation_code": (297, 297, "A"),
    "social_security_number": (298, 306, "N"),
    "date_of_birth": (307, 314, "D"),
    "telephone_number": (315, 324, "N"),
    "ecoa_code": (325, 325, "A"),
    "consumer_information_indicator": (326, 327, "A"),
    "country_code": (328, 329, "A"),
    "first_line_of_address": (330, 361, "A"),
    "second_line_of_address": (362, 393, "A"),
    "city": (394, 413, "A"),
    "state": (414, 415, "A"),
    "postal_code": (416, 424, "A"),
    "address_indicator": (425, 425, "A"),
    "residence_code": (426, 426, "A"),
}

TRAILER_STATUS_CODES = [
    "DA", "05", "11", "13", "61", "62", "63", "64", "65", "71", "78", "80",
    "82", "83", "84", "88", "89", "93", "94", "95", "96", "97",
]  # fmt: skip

TRAILER_FIELDS: dict[str, tuple[int, int, Kind]] = {
    "record_descriptor_word": (1, 4, "N"),
    "record_identifier": (5, 11, "A"),
    "total_base_records": (12, 20, "N"),
    "reserved_1": (21, 29, "A"),
    "total_status_code_df": (30, 38, "N"),
    "total_j1_segments": (39, 47, "N"),
    "total_j2_segments": (48, 56, "N"),
    "block_count": (57, 65, "N"),
    "total_status_code_da": (66, 74, "N"),
    "total_status_code_05": (75, 83, "N"),
    "total_status_code_11": (84, 92, "N"),
    "total_status_code_13": (93, 101, "N"),
    "total_status_code_61": (102, 110, "N"),
    "total_status_code_62": (111, 119, "N"),
    "total_status_code_63": (120, 128, "N"),
    "total_status_code_64": (129, 137, "N"),
    "total_status_code_65": (138, 146, "N"),
    "total_status_code_71": (147, 155, "N"),
    "total_status_code_78": (156, 164, "N"),
    "total_status_code_80": (165, 173, "N"),
    "total_status_code_82": (174, 182, "N"),
    "total_status_code_83": (183, 191, "N"),
    "total_status_code_84": (192, 200, "N"),
    "total_status_code_88": (201, 209, "N"),
    "total_status_code_89": (210, 218, "N"),
    "total_status_code_93": (219, 227, "N"),
    "total_status_code_94": (228, 236, "N"),
    "total_status_code_95": (237, 245, "N"),
    "total_status_code_96": (246, 254, "N"),
    "total_status_code_97": (255, 263, "N"),
    "total_ecoa_code_z": (264, 272, "N"),
    "total_employment_segments": (273, 281, "N"),
    "total_original_creditor_segments": (282, 290, "N"),
    "total_purchased_sold_segments": (291, 299, "N"),
    "total_mortgage_information_segments": (300, 308, "N"),
    "total_specialized_payment_segments": (309, 317, "N"),
    "total_change_segments": (318, 326, "N"),
    "total_ssn_all_segments": (327, 335, "N"),
    "total_ssn_base_segments": (336, 344, "N"),
    "total_ssn_j1_segments": (345, 353, "N"),
    "total_ssn_j2_segments": (354, 362, "N"),
    "total_birth_dates_all_segments": (363, 371, "N"),
    "total_birth_dates_base_segments": (372, 380, "N"),
    "total_birth_dates_j1_segments": (381, 389, "N"),
    "total_birth_dates_j2_segments": (390, 398, "N"),
    "total_telephone_numbers_all_segments": (399, 407, "N"),
    "reserved_2": (408, 426, "A"),
}


class Metro2ParseError(ValueError):
    pass


@dataclass
class Metro2File:
    header: dict[str, Value]
    bases: list[dict[str, Value]] = field(default_factory=list)
    trailer: dict[str, Value] = field(default_factory=dict)


def parse_value(raw: str, kind: Kind, name: str) -> Value:
    if kind == "N":
        if not (raw.isascii() and raw.isdigit()):
            raise Metro2ParseError(f"{name}: numeric field holds {raw!r}")
        return int(raw)
    if kind == "A":
        if raw != raw.lstrip(" ") and raw.strip(" "):
            raise Metro2ParseError(f"{name}: text is not left-justified: {raw!r}")
        return raw.rstrip(" ")
    if kind == "D":
        if raw == "0" * 8:
            return None
        return datetime.strptime(raw, "%m%d%Y").date()
    return datetime.strptime(raw, "%m%d%Y%H%M%S")


def parse_record(record: str, fields: dict[str, tuple[int, int, Kind]]) -> dict[str, Value]:
    if len(record) != RECORD_LENGTH:
        raise Metro2ParseError(f"record has {len(record)} characters, not {RECORD_LENGTH}")
    return {
        name: parse_value(record[start - 1 : end], kind, name)
        for name, (start, end, kind) in fields.items()
    }


def split_records(text: str) -> list[str]:
    if not text.endswith("\n"):
        raise Metro2ParseError("the last record is not terminated by LF")
    records = text[:-1].split("\n")
    for number, record in enumerate(records, start=1):
        if len(record) != RECORD_LENGTH or "\r" in record:
            raise Metro2ParseError(f"record {number} has {len(record)} characters")
    return records


def parse_metro2(text: str) -> Metro2File:
    records = split_records(text)
    if len(records) < 2:
        raise Metro2ParseError("a file has at least a header and a trailer")
    header = parse_record(records[0], HEADER_FIELDS)
    trailer = parse_record(records[-1], TRAILER_FIELDS)
    if header["record_identifier"] != "HEADER" or trailer["record_identifier"] != "TRAILER":
        raise Metro2ParseError("header or trailer identifier missing")
    bases = [parse_record(record, BASE_FIELDS) for record in records[1:-1]]
    return Metro2File(header=header, bases=bases, trailer=trailer)
