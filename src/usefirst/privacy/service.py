"""privacy's own part of a shopper's data export and erasure: the audit trail and record of each
request, why erasure keeps what it keeps, and which lines of a credit-bureau file are about whom.

The requests themselves span every domain that holds data about a shopper: they are the flow
``usefirst.flows.privacy_requests``, which reads and erases through each domain's repository.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from usefirst.collections import bureau_format
from usefirst.collections.models import BureauFile
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.errors import Conflict
from usefirst.kit.ids import new_id
from usefirst.kit.personal_data import ENCRYPTED_SUFFIX
from usefirst.orders.repository import OrderRepository
from usefirst.privacy import audit
from usefirst.privacy.models import PrivacyRequest
from usefirst.privacy.repository import PrivacyRepository

ERASED = "erased"
IDENTITY_FIELDS = ["name", "national_id", "phone", "email"]
BUREAU_FILE_FIELDS = ["name", "birth_date", "phone"]


class DebtOutstanding(Conflict):
    code = "debt_outstanding"
    default_message = (
        "The shopper still owes money or has an order in progress; personal data needed to "
        "collect it cannot be erased until it is settled."
    )


class CreditBalanceHeld(Conflict):
    code = "credit_balance_held"
    default_message = (
        "The platform holds an overpayment of the shopper's; refund it before erasure."
    )


class ShopperAlreadyErased(Conflict):
    code = "shopper_erased"
    default_message = "The shopper's personal data has already been erased."


# What erasure keeps, and the duty that requires it. Records hold ids, amounts and dates only
# once the personal data in them is erased.
RETENTION_REASONS: dict[str, str] = {
    "shoppers": (
        "A tombstone row (status erased, no personal data) keeps the pseudonymous shopper id that "
        "the retained financial records refer to."
    ),
    "consents": (
        "Evidence of the privacy-policy acceptance and credit-report authorisation the credit "
        "records were made under (PBOC credit reporting rules require the authorisation)."
    ),
    "credit_lines": "Credit-reporting history: kept for the retention period of credit records.",
    "credit_line_changes": (
        "Credit-reporting history: kept for the retention period of credit records."
    ),
    "orders": (
        "Transaction records of a credit agreement: anti-money-laundering rules require them to "
        "be kept for 5 years after the relationship ends; shipping address, device and IP erased."
    ),
    "instalments": "Repayment history of a credit agreement (credit records, AML retention).",
    "payments": "Transaction records (AML retention: 5 years).",
    "allocations": "How each payment was applied (AML retention, accounting records).",
    "refunds": "Transaction records (AML retention: 5 years).",
    "late_fee_waivers": (
        "Record of the late fees forgiven on a credit agreement (accounting records); the "
        "operator's reason is erased."
    ),
    "contact_attempts": (
        "Record of collection conduct, kept to answer complaints and regulators; the contact "
        "destination and collector notes are erased."
    ),
    "legal_cases": "Court referrals: kept while a claim or its limitation period runs.",
    "complaints": (
        "Complaint-handling record required by financial consumer protection rules; the "
        "complaint text is erased."
    ),
    "complaint_responses": "Complaint-handling record; the response text is erased.",
    "privacy_requests": "Proof that the export or erasure was carried out.",
    "events": "Webhook events already delivered to the marketplace (ids and amounts only).",
    "risk_decisions": (
        "Credit and fraud decision records (reasons, scores, rule hits): credit-decision records "
        "are kept with the credit agreement; they hold no personal data."
    ),
    "risk_link_observations": (
        "Which kinds of link signal were seen on each order; the keyed hashes are erased."
    ),
    "risk_signal_events": (
        "Which orders the checkout's online risk signals counted (amounts and outcomes); the keyed "
        "hashes of the device, IP block and address are erased."
    ),
    "risk_order_facts": (
        "What each order counts for in the checkout's risk features (amounts and states, kept "
        "with the transaction records); the device is erased."
    ),
    "disputes": (
        "Decided disputes that moved money: kept with the transaction records; free text erased."
    ),
    "dispute_evidence": (
        "Evidence files of decided disputes, kept with the decision they support for the "
        "limitation period (their original file names are erased)."
    ),
    "journal_entries": (
        "The double-entry ledger is append-only accounting records (kept 30 years under PRC "
        "accounting archive rules); it holds ids and amounts, no personal data."
    ),
}
DEFAULT_RETENTION_REASON = "Financial or regulatory record of this shopper; holds no personal data."


def decrypted(row: dict[str, Any], *, cipher: FieldCipher, encrypted: list[str]) -> dict[str, Any]:
    """A row as exported: its encrypted columns in clear, named without the suffix (a tombstone
    left by erasure reads as None)."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if name in encrypted:
            plain_name = name.removesuffix(ENCRYPTED_SUFFIX)
            out[plain_name] = (
                cipher.decrypt(value, field=plain_name)
                if isinstance(value, str) and value.startswith("v1:")
                else None
            )
        else:
            out[name] = value
    return out


# --- export ------------------------------------------------------------------------------------


def record_export_access(session: Session, *, shopper_id: str, actor: str, now: datetime) -> str:
    """Record in the audit chain, before anything is read, that the shopper's data is exported;
    returns the export's id."""
    export_id = new_id("privacy_request")
    audit.record_access(
        session,
        actor=actor,
        action="shopper.export",
        subject_shopper_id=shopper_id,
        fields=[*IDENTITY_FIELDS, "shipping_address", "all_records"],
        purpose="data export requested under the shopper's right of access",
        now=now,
        reference_id=export_id,
    )
    return export_id


def record_export(
    session: Session,
    *,
    shopper_id: str,
    export_id: str,
    sections: Iterable[str],
    actor: str,
    now: datetime,
) -> None:
    PrivacyRepository(session).add(
        PrivacyRequest(
            shopper_id=shopper_id,
            id=export_id,
            kind="export",
            requested_by=actor,
            summary={"sections": sorted(sections)},
            completed_at=now,
        )
    )
    session.flush()


def audit_entries_about(session: Session, *, shopper_id: str) -> list[dict[str, object]]:
    return [
        audit.entry_view(entry) for entry in audit.entries_about(session, shopper_id=shopper_id)
    ]


# --- erasure -----------------------------------------------------------------------------------


@dataclass
class ErasureResult:
    erasure_id: str
    shopper_id: str
    erased_at: datetime
    erased: dict[str, int] = field(default_factory=dict)
    retained: list[dict[str, Any]] = field(default_factory=list)

    @property
    def tombstone(self) -> str:
        """What replaces the shopper's identifiers that cannot be NULL: unique to the shopper, so
        erased shoppers never look linked to one another through a shared value."""
        return f"{ERASED}:{self.shopper_id}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.erasure_id,
            "shopper_id": self.shopper_id,
            "status": "erased",
            "erased_at": self.erased_at,
            "erased": dict(sorted(self.erased.items())),
            "retained": self.retained,
        }

    def count_erased(self, record: str, count: int) -> None:
        if count:
            self.erased[record] = count

    def keep(self, record: str, count: int) -> None:
        """List ``count`` rows of ``record`` as retained, with the duty that keeps them."""
        if count:
            self.retained.append(
                {
                    "record": record,
                    "count": count,
                    "reason": RETENTION_REASONS.get(record, DEFAULT_RETENTION_REASON),
                }
            )

    def keep_bureau_files(self, file_ids: Sequence[str]) -> None:
        if file_ids:
            self.retained.append(
                {
                    "record": "bureau_files",
                    "count": len(file_ids),
                    "ids": list(file_ids),
                    "reason": (
                        "Credit-bureau files as submitted (PBOC credit reporting regulation: "
                        "records kept 5 years, and the furnisher must be able to answer "
                        "objections); the Metro 2 copy holds the romanised name and birth date."
                    ),
                }
            )


def forget_idempotent_responses(session: Session, *, result: ErasureResult) -> None:
    result.count_erased(
        "idempotency_records",
        PrivacyRepository(session).forget_idempotent_responses(shopper_id=result.shopper_id),
    )


def keep_ledger_postings(result: ErasureResult, *, postings: int) -> None:
    if postings:
        result.retained.append(
            {
                "record": "ledger_postings",
                "count": postings,
                "reason": RETENTION_REASONS["journal_entries"],
            }
        )


def keep_audit_log(session: Session, *, result: ErasureResult) -> None:
    audit_rows = len(audit.entries_about(session, shopper_id=result.shopper_id))
    result.retained.append(
        {
            "record": "audit_log",
            "count": audit_rows + 1,
            "reason": (
                "The append-only PII access log (who read this shopper's data and this erasure); "
                "it holds the pseudonymous id only."
            ),
        }
    )


def record_erasure(session: Session, *, result: ErasureResult, actor: str, now: datetime) -> None:
    """Keep proof of the erasure: the request with what was erased and kept, and the audit entry."""
    PrivacyRepository(session).add(
        PrivacyRequest(
            shopper_id=result.shopper_id,
            id=result.erasure_id,
            kind="erasure",
            requested_by=actor,
            summary={"erased": result.erased, "retained": result.retained},
            completed_at=now,
        )
    )
    audit.record_action(
        session,
        actor=actor,
        action="shopper.erasure",
        subject_shopper_id=result.shopper_id,
        fields=[*IDENTITY_FIELDS, "shipping_address", "device_id", "ip"],
        purpose="erasure requested by the shopper; personal data with no retention duty erased",
        now=now,
        reference_id=result.erasure_id,
    )
    session.flush()


# --- credit-bureau files -----------------------------------------------------------------------


def shoppers_in_bureau_file(session: Session, *, bureau_file: BureauFile, content: str) -> set[str]:
    """Whose data a stored bureau file holds (JSON lines name the shopper; Metro 2 lines carry
    the order id as the account number)."""
    if bureau_file.format == "jsonl":
        lines = [line for line in content.splitlines() if line.strip()]
        return {str(json.loads(line)["shopper_id"]) for line in lines}
    # Base segments start with a digit after the record length (header and trailer with a word);
    # the consumer account number is field 7, positions 43-72.
    account_numbers = {line[42:72].strip() for line in content.splitlines() if line[4:5].isdigit()}
    return OrderRepository(session).shopper_ids_of_orders(
        [f"ord_{number[3:]}" for number in account_numbers if number.startswith("ORD")]
    )


def record_bureau_file_read(
    session: Session,
    *,
    bureau_file: BureauFile,
    content: str,
    actor: str,
    purpose: str,
    now: datetime,
) -> int:
    return audit.record_accesses(
        session,
        actor=actor,
        action="bureau_file.read",
        subject_shopper_ids=shoppers_in_bureau_file(
            session, bureau_file=bureau_file, content=content
        ),
        fields=BUREAU_FILE_FIELDS,
        purpose=purpose,
        now=now,
        reference_id=bureau_file.id,
    )


def bureau_lines_about(
    *, shopper_id: str, order_ids: Iterable[str], files: Iterable[tuple[BureauFile, str]]
) -> list[dict[str, Any]]:
    """The lines of each credit-bureau file (with its content) that report this shopper's
    accounts (its orders)."""
    account_numbers = {bureau_format.metro2_account_number(order_id) for order_id in order_ids}
    found = []
    for bureau_file, content in files:
        lines = []
        for line in content.splitlines():
            if bureau_file.format == "jsonl":
                if json.loads(line).get("shopper_id") == shopper_id:
                    lines.append(line)
            elif any(number in line for number in account_numbers):
                lines.append(line)
        if lines:
            found.append(
                {
                    "file_id": bureau_file.id,
                    "period": bureau_file.period,
                    "format": bureau_file.format,
                    "created_at": bureau_file.created_at,
                    "lines": lines,
                }
            )
    return found
