"""Data export and erasure for one shopper.

Both work from a data map rather than a hand-kept list: every table distributed by ``shopper_id``
is found from the schema, so a table another domain adds later is exported, and its ``*_encrypted``
columns erased, without changes here. Domains whose data needs shaping (identity, the ledger,
bureau files, the audit log) plug in an exporter in ``EXPORTERS``; a table an exporter claims is
not dumped again.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from usefirst.collections import bureau as collections_bureau
from usefirst.collections import bureau_format
from usefirst.collections.models import BureauFile
from usefirst.credit import service as credit_service
from usefirst.identity import service as identity_service
from usefirst.identity.models import Shopper
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.errors import Conflict
from usefirst.kit.ids import new_id
from usefirst.ledger import service as ledger_service
from usefirst.ledger.accounts import shopper_unapplied_credit
from usefirst.orders import service as order_service
from usefirst.privacy import audit
from usefirst.privacy.models import PrivacyRequest
from usefirst.privacy.repository import (
    ENCRYPTED_SUFFIX,
    PrivacyRepository,
    encrypted_columns,
    shopper_tables,
)
from usefirst.repayment import service as repayment_service

ERASED = "erased"
IDENTITY_FIELDS = ["name", "national_id", "phone", "email"]


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


@dataclass(frozen=True)
class ExportContext:
    shopper: Shopper
    cipher: FieldCipher


@dataclass(frozen=True)
class DomainExporter:
    """A section of the export, and the tables it accounts for (not dumped again)."""

    section: str
    tables: tuple[str, ...]
    collect: Callable[[Session, ExportContext], Any]


# "module:attribute" of DomainExporter objects; other domains add theirs here.
EXPORTERS: list[str] = [
    "usefirst.privacy.service:IDENTITY_EXPORTER",
    "usefirst.privacy.service:LEDGER_EXPORTER",
    "usefirst.privacy.service:BUREAU_EXPORTER",
    "usefirst.privacy.service:AUDIT_EXPORTER",
]

# Plain (unencrypted) columns that identify a person or their device, erased with the PII.
# A column that cannot be NULL gets a tombstone unique to the shopper, so erased shoppers never
# look linked to one another through a shared value (risk link signals compare these).
PLAINTEXT_PII_COLUMNS: dict[str, tuple[str, ...]] = {
    "orders": ("device_id", "ip"),
    "contact_attempts": ("destination_masked", "note", "provider_reference"),
    "risk_link_observations": ("value_hash",),
    "disputes": ("description", "resolution_note"),
    "dispute_evidence": ("filename",),
    "late_fee_waivers": ("reason",),
}

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


def _load(reference: str) -> DomainExporter:
    module_name, _, attribute = reference.partition(":")
    exporter: DomainExporter = getattr(importlib.import_module(module_name), attribute)
    return exporter


def _decrypted(row: dict[str, Any], *, cipher: FieldCipher, encrypted: list[str]) -> dict[str, Any]:
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


def export_shopper(
    session: Session, *, shopper_id: str, cipher: FieldCipher, actor: str, now: datetime
) -> dict[str, Any]:
    """Everything held about the shopper, decrypted. Recorded in the audit chain."""
    shopper = identity_service.get_shopper(session, shopper_id=shopper_id)
    context = ExportContext(shopper=shopper, cipher=cipher)
    repository = PrivacyRepository(session)
    request_id = new_id("privacy_request")
    audit.record_access(
        session,
        actor=actor,
        action="shopper.export",
        subject_shopper_id=shopper_id,
        fields=[*IDENTITY_FIELDS, "shipping_address", "all_records"],
        purpose="data export requested under the shopper's right of access",
        now=now,
        reference_id=request_id,
    )
    exporters = [_load(reference) for reference in EXPORTERS]
    claimed = {table for exporter in exporters for table in exporter.tables}
    sections: dict[str, Any] = {}
    for table in shopper_tables():
        if table.name in claimed:
            continue
        encrypted = encrypted_columns(table)
        sections[table.name] = [
            _decrypted(row, cipher=cipher, encrypted=encrypted)
            for row in repository.rows_of(table, shopper_id=shopper_id)
        ]
    for exporter in exporters:
        sections[exporter.section] = exporter.collect(session, context)
    repository.add(
        PrivacyRequest(
            shopper_id=shopper_id,
            id=request_id,
            kind="export",
            requested_by=actor,
            summary={"sections": sorted(sections)},
            completed_at=now,
        )
    )
    session.flush()
    return {
        "shopper_id": shopper_id,
        "export_id": request_id,
        "generated_at": now,
        "sections": dict(sorted(sections.items())),
    }


def _identity_section(session: Session, context: ExportContext) -> dict[str, Any]:
    shopper, cipher = context.shopper, context.cipher
    row = {column.name: getattr(shopper, column.name) for column in Shopper.__table__.c}
    return _decrypted(row, cipher=cipher, encrypted=encrypted_columns(Shopper.__table__))  # type: ignore[arg-type]


def _ledger_section(session: Session, context: ExportContext) -> list[dict[str, Any]]:
    return PrivacyRepository(session).ledger_lines_of(owner_id=context.shopper.id)


def _bureau_section(session: Session, context: ExportContext) -> list[dict[str, Any]]:
    return bureau_lines_about(session, shopper_id=context.shopper.id, cipher=context.cipher)


BUREAU_FILE_FIELDS = ["name", "birth_date", "phone"]


def shoppers_in_bureau_file(
    session: Session, *, bureau_file: BureauFile, cipher: FieldCipher
) -> set[str]:
    """Whose data a stored bureau file holds (JSON lines name the shopper; Metro 2 lines carry
    the order id as the account number)."""
    content = collections_bureau.bureau_file_text(bureau_file, cipher)
    if bureau_file.format == "jsonl":
        lines = [line for line in content.splitlines() if line.strip()]
        return {str(json.loads(line)["shopper_id"]) for line in lines}
    # Base segments start with a digit after the record length (header and trailer with a word);
    # the consumer account number is field 7, positions 43-72.
    account_numbers = {line[42:72].strip() for line in content.splitlines() if line[4:5].isdigit()}
    return PrivacyRepository(session).shopper_ids_of_orders(
        [f"ord_{number[3:]}" for number in account_numbers if number.startswith("ORD")]
    )


def record_bureau_file_read(
    session: Session,
    *,
    bureau_file: BureauFile,
    cipher: FieldCipher,
    actor: str,
    purpose: str,
    now: datetime,
) -> int:
    return audit.record_accesses(
        session,
        actor=actor,
        action="bureau_file.read",
        subject_shopper_ids=shoppers_in_bureau_file(
            session, bureau_file=bureau_file, cipher=cipher
        ),
        fields=BUREAU_FILE_FIELDS,
        purpose=purpose,
        now=now,
        reference_id=bureau_file.id,
    )


def bureau_lines_about(
    session: Session, *, shopper_id: str, cipher: FieldCipher
) -> list[dict[str, Any]]:
    """The lines of each credit-bureau file that report this shopper's accounts."""
    account_numbers = {
        bureau_format.metro2_account_number(order.id)
        for order in order_service.orders_of_shopper(session, shopper_id=shopper_id)
    }
    found = []
    for bureau_file in PrivacyRepository(session).bureau_files():
        lines = []
        for line in collections_bureau.bureau_file_text(bureau_file, cipher).splitlines():
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


def _audit_section(session: Session, context: ExportContext) -> list[dict[str, object]]:
    return [
        audit.entry_view(entry)
        for entry in audit.entries_about(session, shopper_id=context.shopper.id)
    ]


IDENTITY_EXPORTER = DomainExporter(
    section="identity",
    tables=("shoppers", "shopper_national_id_lookup", "shopper_external_id_lookup"),
    collect=_identity_section,
)
LEDGER_EXPORTER = DomainExporter(
    section="ledger",
    tables=("ledger_accounts", "ledger_postings"),
    collect=_ledger_section,
)
BUREAU_EXPORTER = DomainExporter(
    section="bureau_records", tables=("bureau_files",), collect=_bureau_section
)
AUDIT_EXPORTER = DomainExporter(
    section="audit_entries", tables=("audit_log",), collect=_audit_section
)


# --- erasure -----------------------------------------------------------------------------------


@dataclass
class ErasureResult:
    erasure_id: str
    shopper_id: str
    erased_at: datetime
    erased: dict[str, int] = field(default_factory=dict)
    retained: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.erasure_id,
            "shopper_id": self.shopper_id,
            "status": "erased",
            "erased_at": self.erased_at,
            "erased": dict(sorted(self.erased.items())),
            "retained": self.retained,
        }


def _refuse_while_owed(session: Session, *, shopper: Shopper) -> None:
    open_statuses = {"repaid", "declined", "cancelled", "refunded"}
    owing = []
    for order in order_service.orders_of_shopper(session, shopper_id=shopper.id):
        remaining = sum(
            row.remaining_minor
            for row in repayment_service.instalments_of(
                session, shopper_id=shopper.id, order_id=order.id
            )
        )
        if order.status not in open_statuses or remaining > 0:
            owing.append(f"{order.id} ({order.status}, {remaining} {order.currency} minor unpaid)")
    if owing:
        raise DebtOutstanding(
            "Erasure refused: the shopper has open orders or unpaid balances: "
            + "; ".join(owing)
            + ". Personal data needed to service or collect a debt is kept until it is settled."
        )
    line = credit_service.get_credit_line(session, shopper_id=shopper.id)
    if line.used_minor:
        raise DebtOutstanding(
            f"Erasure refused: {line.used_minor} {line.currency} minor units of credit are in use."
        )
    held = ledger_service.balance_of(session, shopper_unapplied_credit(shopper.id), line.currency)
    if held:
        raise CreditBalanceHeld(
            f"Erasure refused: the platform holds {abs(held)} {line.currency} minor units the "
            "shopper overpaid; refund them first."
        )


def erase_shopper(
    session: Session, *, shopper_id: str, cipher: FieldCipher, actor: str, now: datetime
) -> ErasureResult:
    """Erase the shopper's personal data where no legal duty to keep it remains.

    Refused (and nothing changes) while any debt or order is open. Afterwards no plaintext or
    decryptable PII of the shopper is left: encrypted columns are set to NULL or a tombstone (not
    a ciphertext, so no key decrypts it), masks and device data are cleared, and the national-ID
    and external-id look-ups are released so the person may enrol again as a new shopper. The
    ledger and the financial records it explains are kept (listed in ``retained``)."""
    shopper = identity_service.get_shopper(session, shopper_id=shopper_id)
    # The shopper's money movements all take this lock: none can run while erasure decides, and
    # a concurrent erasure waits, then sees this one's result.
    credit_service.lock_credit_line(session, shopper_id=shopper_id)
    session.refresh(shopper)
    if shopper.status == ERASED:
        raise ShopperAlreadyErased()
    _refuse_while_owed(session, shopper=shopper)

    repository = PrivacyRepository(session)
    result = ErasureResult(
        erasure_id=new_id("privacy_request"), shopper_id=shopper_id, erased_at=now
    )
    tombstone = f"{ERASED}:{shopper_id}"
    shopper.status = ERASED
    shopper.external_id = tombstone
    shopper.name_encrypted = ERASED
    shopper.national_id_encrypted = ERASED
    shopper.phone_encrypted = ERASED
    shopper.email_encrypted = None
    shopper.name_masked = ERASED
    shopper.national_id_masked = ERASED
    shopper.phone_masked = ERASED
    shopper.email_masked = None
    # Unique per shopper: erased shoppers must not look linked to each other by a shared value.
    shopper.phone_hash = tombstone
    shopper.enrolment_device_id = None
    shopper.enrolment_ip = None
    session.flush()
    result.erased["shoppers"] = 1
    result.erased["look-ups"] = repository.release_lookups(shopper_id=shopper_id)

    for table in shopper_tables():
        if table.name == "shoppers":
            continue
        columns = encrypted_columns(table) + list(PLAINTEXT_PII_COLUMNS.get(table.name, ()))
        if columns:
            changed = repository.erase_columns(
                table, shopper_id=shopper_id, columns=columns, tombstone=tombstone
            )
            if changed:
                result.erased[table.name] = changed
    forgotten = repository.forget_idempotent_responses(shopper_id=shopper_id)
    if forgotten:
        result.erased["idempotency_records"] = forgotten
    credit_service.close_for_erasure(session, shopper_id=shopper_id, now=now)

    for table in shopper_tables():
        count = repository.count_rows_of(table, shopper_id=shopper_id)
        if count:
            result.retained.append(
                {
                    "record": table.name,
                    "count": count,
                    "reason": RETENTION_REASONS.get(table.name, DEFAULT_RETENTION_REASON),
                }
            )
    ledger_lines = len(repository.ledger_lines_of(owner_id=shopper_id))
    if ledger_lines:
        result.retained.append(
            {
                "record": "ledger_postings",
                "count": ledger_lines,
                "reason": RETENTION_REASONS["journal_entries"],
            }
        )
    bureau_files = bureau_lines_about(session, shopper_id=shopper_id, cipher=cipher)
    if bureau_files:
        result.retained.append(
            {
                "record": "bureau_files",
                "count": len(bureau_files),
                "ids": [item["file_id"] for item in bureau_files],
                "reason": (
                    "Credit-bureau files as submitted (PBOC credit reporting regulation: records "
                    "kept 5 years, and the furnisher must be able to answer objections); the "
                    "Metro 2 copy holds the romanised name and birth date."
                ),
            }
        )
    audit_rows = len(audit.entries_about(session, shopper_id=shopper_id))
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
    repository.add(
        PrivacyRequest(
            shopper_id=shopper_id,
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
        subject_shopper_id=shopper_id,
        fields=[*IDENTITY_FIELDS, "shipping_address", "device_id", "ip"],
        purpose="erasure requested by the shopper; personal data with no retention duty erased",
        now=now,
        reference_id=result.erasure_id,
    )
    session.flush()
    return result
