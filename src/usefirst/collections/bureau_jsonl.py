"""The masked JSON Lines credit-bureau file: one JSON object per account and line, with the Metro 2
codes (``bureau_format``) beside the raw facts. Pure code, like ``bureau_format``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date

from usefirst.collections.bureau_format import (
    ACCOUNT_TYPE_UNSECURED,
    PORTFOLIO_TYPE_INSTALLMENT,
    BureauAccount,
    metro2_account_number,
    metro2_account_status,
    metro2_compliance_condition_code,
    metro2_payment_history_code,
    metro2_payment_rating,
    whole_units,
)
from usefirst.identity.validation import mask_name, mask_national_id, mask_phone


def write_jsonl(accounts: Sequence[BureauAccount], period_end: date) -> str:
    """One JSON object per account and line, with the Metro 2 codes beside the raw facts.

    Personal data is masked: the resident ID as ``110***********1234``, the name to its first
    character, the phone to its ends, the birth date to its year. Amounts appear in minor units
    and in the whole units the Metro 2 file reports.
    """
    lines = []
    for account in accounts:
        record: dict[str, object] = {
            "period_end": period_end.isoformat(),
            "account_number": account.account_number,
            "metro2_account_number": metro2_account_number(account.account_number),
            "shopper_id": account.shopper_id,
            "name_masked": mask_name(account.surname + account.given_name),
            "national_id_masked": mask_national_id(account.national_id),
            "phone_masked": mask_phone(account.phone_e164),
            "birth_year": account.birth_on.year,
            "currency": account.currency,
            "status": account.status,
            "days_past_due": account.days_past_due,
            "account_status_code": metro2_account_status(account),
            "payment_rating": metro2_payment_rating(account),
            "payment_history_code": metro2_payment_history_code(account),
            "compliance_condition_code": metro2_compliance_condition_code(account),
            "is_disputed": account.is_disputed,
            "portfolio_type": PORTFOLIO_TYPE_INSTALLMENT,
            "account_type": ACCOUNT_TYPE_UNSECURED,
            "terms_duration": account.terms_duration,
            "terms_frequency": account.terms_frequency,
            "payment_history_profile": account.payment_history_profile,
            "special_comment_code": account.special_comment_code,
            "opened_on": account.opened_on.isoformat(),
            "account_information_on": account.account_information_on.isoformat(),
            "date_of_first_delinquency": _iso_or_none(account.date_of_first_delinquency),
            "date_closed": _iso_or_none(account.date_closed),
            "date_last_payment": _iso_or_none(account.date_last_payment),
        }
        for name, amount_minor in account.amounts_minor().items():
            record[name] = amount_minor
            record[name.removesuffix("_minor") + "_whole"] = whole_units(
                amount_minor, account.currency
            )
        lines.append(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
    return "".join(lines)


def _iso_or_none(value: date | None) -> str | None:
    return None if value is None else value.isoformat()
