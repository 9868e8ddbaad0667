"""A shopper's privacy requests: the export of everything held about them, and erasure of their
personal data where no legal duty to keep it remains; and the audit of who read a bureau file.

Both requests work from a data map rather than a hand-kept list: every domain's repository gives
its tables keyed by ``shopper_id`` (found from its models, so a table a domain adds later is
exported, and its ``*_encrypted`` columns erased, without changes here) and names the plain
columns that identify a person. Data that needs shaping (identity, the ledger, bureau files, the
audit log) has an exporter in ``EXPORTERS``; a table an exporter claims is not dumped again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from usefirst.collections import bureau as collections_bureau
from usefirst.collections.models import BureauFile
from usefirst.collections.repository import CollectionsRepository
from usefirst.credit import service as credit_service
from usefirst.credit.repository import CreditRepository
from usefirst.disputes.repository import DisputeRepository
from usefirst.identity import service as identity_service
from usefirst.identity.models import Shopper
from usefirst.identity.repository import IdentityRepository
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.ids import new_id
from usefirst.kit.personal_data import (
    ShopperRecords,
    encrypted_columns,
    in_schema_order,
    table_of,
)
from usefirst.ledger import service as ledger_service
from usefirst.ledger.accounts import shopper_unapplied_credit
from usefirst.ledger.repository import LedgerRepository
from usefirst.notify.repository import EventRepository
from usefirst.orders import service as order_service
from usefirst.orders.repository import OrderRepository
from usefirst.privacy import service as privacy_service
from usefirst.privacy.repository import PrivacyRepository
from usefirst.privacy.service import (
    ERASED,
    CreditBalanceHeld,
    DebtOutstanding,
    ErasureResult,
    ShopperAlreadyErased,
)
from usefirst.rails.repository import RailRepository
from usefirst.repayment import service as repayment_service
from usefirst.repayment.repository import RepaymentRepository
from usefirst.risk.repository import RiskRepository

# --- the data map ------------------------------------------------------------------------------


def shopper_records(session: Session) -> list[tuple[Table, ShopperRecords]]:
    """Every table keyed by shopper, in schema order, with the domain records it belongs to."""
    every_domains = [
        IdentityRepository(session).shopper_records(),
        CreditRepository(session).shopper_records(),
        OrderRepository(session).shopper_records(),
        RepaymentRepository(session).shopper_records(),
        LedgerRepository(session).shopper_records(),
        CollectionsRepository(session).shopper_records(),
        DisputeRepository(session).shopper_records(),
        RiskRepository(session).shopper_records(),
        EventRepository(session).shopper_records(),
        PrivacyRepository(session).shopper_records(),
        RailRepository(session).shopper_records(),
    ]
    owner = {table: records for records in every_domains for table in records.tables}
    return [(table, owner[table]) for table in in_schema_order(owner)]


# --- export ------------------------------------------------------------------------------------


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


def export_shopper(
    session: Session, *, shopper_id: str, cipher: FieldCipher, actor: str, now: datetime
) -> dict[str, Any]:
    """Everything held about the shopper, decrypted. Recorded in the audit chain."""
    shopper = identity_service.get_shopper(session, shopper_id=shopper_id)
    export_id = privacy_service.record_export_access(
        session, shopper_id=shopper_id, actor=actor, now=now
    )
    claimed = {table for exporter in EXPORTERS for table in exporter.tables}
    sections: dict[str, Any] = {}
    for table, records in shopper_records(session):
        if table.name in claimed:
            continue
        encrypted = encrypted_columns(table)
        sections[table.name] = [
            privacy_service.decrypted(row, cipher=cipher, encrypted=encrypted)
            for row in records.rows(table, shopper_id=shopper_id)
        ]
    context = ExportContext(shopper=shopper, cipher=cipher)
    for exporter in EXPORTERS:
        sections[exporter.section] = exporter.collect(session, context)
    privacy_service.record_export(
        session, shopper_id=shopper_id, export_id=export_id, sections=sections, actor=actor, now=now
    )
    return {
        "shopper_id": shopper_id,
        "export_id": export_id,
        "generated_at": now,
        "sections": dict(sorted(sections.items())),
    }


def _identity_section(session: Session, context: ExportContext) -> dict[str, Any]:
    shopper, cipher = context.shopper, context.cipher
    table = table_of(Shopper)
    row = {column.name: getattr(shopper, column.name) for column in table.c}
    return privacy_service.decrypted(row, cipher=cipher, encrypted=encrypted_columns(table))


def _ledger_section(session: Session, context: ExportContext) -> list[dict[str, Any]]:
    return LedgerRepository(session).postings_of_owner(context.shopper.id)


def _bureau_section(session: Session, context: ExportContext) -> list[dict[str, Any]]:
    return bureau_lines_about(session, shopper_id=context.shopper.id, cipher=context.cipher)


def _audit_section(session: Session, context: ExportContext) -> list[dict[str, object]]:
    return privacy_service.audit_entries_about(session, shopper_id=context.shopper.id)


EXPORTERS: tuple[DomainExporter, ...] = (
    DomainExporter(
        section="identity",
        tables=("shoppers", "shopper_national_id_lookup", "shopper_external_id_lookup"),
        collect=_identity_section,
    ),
    DomainExporter(
        section="ledger", tables=("ledger_accounts", "ledger_postings"), collect=_ledger_section
    ),
    DomainExporter(section="bureau_records", tables=("bureau_files",), collect=_bureau_section),
    DomainExporter(section="audit_entries", tables=("audit_log",), collect=_audit_section),
)


# --- erasure -----------------------------------------------------------------------------------


def erase_shopper(
    session: Session, *, shopper_id: str, cipher: FieldCipher, actor: str, now: datetime
) -> ErasureResult:
    """Erase the shopper's personal data where no legal duty to keep it remains.

    Refused (and nothing changes) while any debt or order is open. Afterwards no plaintext or
    decryptable PII of the shopper is left: encrypted columns are set to NULL or a tombstone (not
    a ciphertext, so no key decrypts it), masks and device data are cleared, and the national-ID
    and external-id look-ups are released so the person may enrol again as a new shopper. The
    ledger and the financial records it explains are kept (listed in ``retained``)."""
    shopper = _lock_shopper_for_erasure(session, shopper_id=shopper_id)
    _refuse_while_owed(session, shopper=shopper)
    result = ErasureResult(
        erasure_id=new_id("privacy_request"), shopper_id=shopper_id, erased_at=now
    )
    _erase_identity(session, shopper=shopper, result=result)
    _erase_records(session, result=result)
    privacy_service.forget_idempotent_responses(session, result=result)
    credit_service.close_for_erasure(session, shopper_id=shopper_id, now=now)
    _list_retained(session, result=result, cipher=cipher)
    privacy_service.record_erasure(session, result=result, actor=actor, now=now)
    return result


def _lock_shopper_for_erasure(session: Session, *, shopper_id: str) -> Shopper:
    shopper = identity_service.get_shopper(session, shopper_id=shopper_id)
    # The shopper's money movements all take this lock: none can run while erasure decides, and
    # a concurrent erasure waits, then sees this one's result.
    credit_service.lock_credit_line(session, shopper_id=shopper_id)
    session.refresh(shopper)
    if shopper.status == ERASED:
        raise ShopperAlreadyErased()
    return shopper


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


def _erase_identity(session: Session, *, shopper: Shopper, result: ErasureResult) -> None:
    identity = IdentityRepository(session)
    identity.erase_personal_data(shopper, status=ERASED, tombstone=result.tombstone)
    result.erased["shoppers"] = 1
    result.erased["look-ups"] = identity.release_lookups(shopper.id)


def _erase_records(session: Session, *, result: ErasureResult) -> None:
    """Every domain's encrypted columns, and the plain ones that identify a person."""
    for table, records in shopper_records(session):
        result.count_erased(
            table.name,
            records.erase(table, shopper_id=result.shopper_id, tombstone=result.tombstone),
        )


def _list_retained(session: Session, *, result: ErasureResult, cipher: FieldCipher) -> None:
    shopper_id = result.shopper_id
    for table, records in shopper_records(session):
        result.keep(table.name, records.count(table, shopper_id=shopper_id))
    privacy_service.keep_ledger_postings(
        result, postings=len(LedgerRepository(session).postings_of_owner(shopper_id))
    )
    bureau_files = bureau_lines_about(session, shopper_id=shopper_id, cipher=cipher)
    result.keep_bureau_files([item["file_id"] for item in bureau_files])
    privacy_service.keep_audit_log(session, result=result)


# --- credit-bureau files -----------------------------------------------------------------------


def _bureau_files_with_content(
    session: Session, *, cipher: FieldCipher
) -> Iterator[tuple[BureauFile, str]]:
    for bureau_file in collections_bureau.list_bureau_files(session):
        yield bureau_file, collections_bureau.bureau_file_text(bureau_file, cipher)


def bureau_lines_about(
    session: Session, *, shopper_id: str, cipher: FieldCipher
) -> list[dict[str, Any]]:
    """The lines of each credit-bureau file that report this shopper's accounts."""
    return privacy_service.bureau_lines_about(
        shopper_id=shopper_id,
        order_ids=[
            order.id for order in order_service.orders_of_shopper(session, shopper_id=shopper_id)
        ],
        files=_bureau_files_with_content(session, cipher=cipher),
    )


def read_bureau_file(
    session: Session,
    *,
    bureau_file: BureauFile,
    cipher: FieldCipher,
    actor: str,
    purpose: str,
    now: datetime,
) -> str:
    """A stored bureau file's text, its reading recorded in the audit chain as a read of the data
    of every shopper it holds (decrypted once for both)."""
    content = collections_bureau.bureau_file_text(bureau_file, cipher)
    privacy_service.record_bureau_file_read(
        session,
        bureau_file=bureau_file,
        content=content,
        actor=actor,
        purpose=purpose,
        now=now,
    )
    return content
