"""All SQL of identity: shoppers, lookups, consents, operators and API keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    CompoundSelect,
    Select,
    Table,
    bindparam,
    delete,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from usefirst.identity import models
from usefirst.identity.models import (
    ENROLMENT_UNHASHED_SQL,
    ApiKey,
    Consent,
    ConsoleAccount,
    ConsoleSession,
    ExternalIdLookup,
    NationalIdLookup,
    Operator,
    Shopper,
)
from usefirst.kit.db import AnySelect, in_list
from usefirst.kit.personal_data import ShopperRecords, tables_of

SHOPPERS = cast(Table, Shopper.__table__)


class IdentityRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def claim_national_id(self, national_id_hash: str, shopper_id: str) -> bool:
        """Insert the lookup row; False when another shopper holds the ID (even concurrently)."""
        return self._claim(
            NationalIdLookup(national_id_hash=national_id_hash, shopper_id=shopper_id)
        )

    def claim_external_id(self, external_id: str, shopper_id: str) -> bool:
        return self._claim(ExternalIdLookup(external_id=external_id, shopper_id=shopper_id))

    def _claim(self, row: NationalIdLookup | ExternalIdLookup) -> bool:
        try:
            with self.session.begin_nested():
                self.session.add(row)
                self.session.flush()
        except IntegrityError:
            return False
        return True

    def add(self, row: Shopper | Consent | Operator | ApiKey) -> None:
        self.session.add(row)

    def get_shopper(self, shopper_id: str) -> Shopper | None:
        return self.session.get(Shopper, shopper_id)

    @staticmethod
    @cache
    def standing_statement() -> AnySelect:
        """The shopper's id and status (read with other look-ups, see ``kit.db.Lookup``), for
        the shopper id given as ``shopper_id``; built once."""
        return select(Shopper.id, Shopper.status).where(Shopper.id == bindparam("shopper_id"))

    def consents(self, shopper_id: str) -> list[Consent]:
        return list(
            self.session.scalars(
                select(Consent).where(Consent.shopper_id == shopper_id).order_by(Consent.id)
            )
        )

    def api_key_by_hash(self, secret_hash: str) -> ApiKey | None:
        """The key with this hash, revoked or not (the caller refuses a revoked one by name)."""
        return self.session.scalars(
            select(ApiKey).where(ApiKey.secret_hash == secret_hash)
        ).one_or_none()

    def get_api_key(self, key_id: str, *, for_update: bool = False) -> ApiKey | None:
        statement = select(ApiKey).where(ApiKey.id == key_id)
        if for_update:
            statement = statement.with_for_update()
        return self.session.scalars(statement).one_or_none()

    def api_keys(
        self,
        *,
        kind: str | None,
        merchant_id: str | None,
        operator_id: str | None,
        include_revoked: bool,
    ) -> list[ApiKey]:
        statement = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
        if kind is not None:
            statement = statement.where(ApiKey.kind == kind)
        if merchant_id is not None:
            statement = statement.where(ApiKey.merchant_id == merchant_id)
        if operator_id is not None:
            statement = statement.where(ApiKey.operator_id == operator_id)
        if not include_revoked:
            statement = statement.where(ApiKey.revoked_at.is_(None))
        return list(self.session.scalars(statement))

    def touch_api_key(self, key_id: str, *, now: datetime, unless_after: datetime) -> None:
        self.session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < unless_after),
            )
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )

    def get_operator(self, operator_id: str) -> Operator | None:
        return self.session.get(Operator, operator_id)

    def operator_by_email(self, email: str) -> Operator | None:
        return self.session.scalars(select(Operator).where(Operator.email == email)).one_or_none()

    def shopper_ids_by_phone_hash(self, phone_hash: str) -> list[str]:
        return list(
            self.session.scalars(
                select(Shopper.id).where(Shopper.phone_hash == phone_hash).order_by(Shopper.id)
            )
        )

    def operator_emails(self, operator_ids: set[str]) -> dict[str, str]:
        rows = self.session.execute(
            select(Operator.id, Operator.email).where(Operator.id.in_(sorted(operator_ids)))
        )
        return {operator_id: email for operator_id, email in rows}

    # --- reads for risk's link graph -----------------------------------------------------------

    def enrolment_identifiers(
        self, shopper_ids: Select[Any] | CompoundSelect[Any] | Sequence[str]
    ) -> list[tuple[str, str, str | None, str | None]]:
        """(shopper id, phone hash, enrolment device hash, enrolment IP hash) of the shoppers
        ``shopper_ids`` (a subquery of shopper ids, a union of such, or a list) selects."""
        wanted = (
            Shopper.id.in_(shopper_ids)
            if isinstance(shopper_ids, Select | CompoundSelect)
            else in_list(self.session, Shopper.id, list(shopper_ids))
        )
        rows = self.session.execute(
            select(
                Shopper.id,
                Shopper.phone_hash,
                Shopper.enrolment_device_hash,
                Shopper.enrolment_ip_hash,
            ).where(wanted)
        ).all()
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    def enrolled_between(self, start: datetime, end: datetime | None) -> list[str]:
        """The shoppers enrolled at or after ``start`` (and before ``end``): through
        ``ix_shoppers_created_at``."""
        statement = select(Shopper.id).where(Shopper.created_at >= start)
        if end is not None:
            statement = statement.where(Shopper.created_at < end)
        return list(self.session.scalars(statement))

    def enrolled_since(self, since: datetime) -> Select[Any]:
        """The shoppers enrolled since ``since`` (a subquery of their ids)."""
        return select(Shopper.id).where(Shopper.created_at >= since)

    def enrolled_among(self, shopper_ids: Sequence[str], *, since: datetime) -> set[str]:
        """Those of the shoppers enrolled since ``since``."""
        return set(
            self.session.scalars(
                select(Shopper.id).where(
                    in_list(self.session, Shopper.id, list(shopper_ids)),
                    Shopper.created_at >= since,
                )
            )
        )

    def enrolment_holders(self, kind: str, hashes: Sequence[str]) -> list[tuple[str, str]]:
        """(shopper id, hash) of the shoppers enrolled with one of ``hashes`` as their phone,
        device or IP (``kind``)."""
        column = {
            "phone": Shopper.phone_hash,
            "device": Shopper.enrolment_device_hash,
            "ip": Shopper.enrolment_ip_hash,
        }[kind]
        rows = self.session.execute(
            select(Shopper.id, column).where(in_list(self.session, column, hashes))
        ).all()
        return [(row[0], str(row[1])) for row in rows]

    def unhashed_enrolments(self, *, limit: int) -> list[tuple[str, str | None, str | None]]:
        """(shopper id, enrolment device id, enrolment IP) of shoppers whose enrolment device or IP
        has no link hash yet (rows made before migration 0037), through a partial index."""
        rows = self.session.execute(
            select(Shopper.id, Shopper.enrolment_device_id, Shopper.enrolment_ip)
            .where(text(ENROLMENT_UNHASHED_SQL))
            .order_by(Shopper.id)
            .limit(limit)
        ).all()
        return [(row[0], row[1], row[2]) for row in rows]

    def set_enrolment_hashes(self, rows: Sequence[tuple[str, str | None, str | None]]) -> None:
        """(shopper id, device hash, IP hash) for each shopper: one executemany."""
        if rows:
            self.session.execute(
                update(SHOPPERS)
                .where(SHOPPERS.c.id == bindparam("shopper_id"))
                .values(
                    enrolment_device_hash=bindparam("device_hash"),
                    enrolment_ip_hash=bindparam("ip_hash"),
                ),
                [
                    {"shopper_id": shopper_id, "device_hash": device, "ip_hash": ip}
                    for shopper_id, device, ip in rows
                ],
            )

    # A shopper's personal data, for the privacy flow's export and erasure.

    def shopper_records(self) -> ShopperRecords:
        return ShopperRecords.of(self.session, tables_of(models))

    def erase_personal_data(self, shopper: Shopper, *, status: str, tombstone: str) -> None:
        """Overwrite the shopper's PII with ``status`` (not a ciphertext, so no key decrypts it)
        and clear its masks and enrolment device; the row stays as a tombstone."""
        shopper.status = status
        shopper.external_id = tombstone
        shopper.name_encrypted = status
        shopper.national_id_encrypted = status
        shopper.phone_encrypted = status
        shopper.email_encrypted = None
        shopper.name_masked = status
        shopper.national_id_masked = status
        shopper.phone_masked = status
        shopper.email_masked = None
        # Unique per shopper: erased shoppers must not look linked to each other by a shared value.
        shopper.phone_hash = tombstone
        shopper.enrolment_device_id = None
        shopper.enrolment_ip = None
        shopper.enrolment_device_hash = None
        shopper.enrolment_ip_hash = None
        self.session.flush()

    def release_lookups(self, shopper_id: str) -> int:
        """Free the shopper's national ID and external id, so the person may enrol again."""
        removed = 0
        for model in (NationalIdLookup, ExternalIdLookup):
            result = self.session.execute(
                delete(model)
                .where(model.shopper_id == shopper_id)
                .execution_options(synchronize_session=False)
            )
            removed += int(getattr(result, "rowcount", 0) or 0)
        return removed

    # Console sign-in: people's accounts and their browser sessions.

    def add_console_row(self, row: ConsoleAccount | ConsoleSession) -> None:
        self.session.add(row)

    def console_account(self, account_id: str) -> ConsoleAccount | None:
        return self.session.get(ConsoleAccount, account_id)

    def console_account_by_email(self, email: str) -> ConsoleAccount | None:
        return self.session.scalars(
            select(ConsoleAccount).where(ConsoleAccount.email == email)
        ).one_or_none()

    def console_account_of_operator(self, operator_id: str) -> ConsoleAccount | None:
        return self.session.scalars(
            select(ConsoleAccount).where(ConsoleAccount.operator_id == operator_id)
        ).first()

    def console_session(self, token_hash: str) -> ConsoleSession | None:
        return self.session.get(ConsoleSession, token_hash)
