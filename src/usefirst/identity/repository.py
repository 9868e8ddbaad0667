"""All SQL of identity: shoppers, lookups, consents, operators and API keys."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from usefirst.identity.models import (
    ApiKey,
    Consent,
    ExternalIdLookup,
    NationalIdLookup,
    Operator,
    Shopper,
)


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

    def consents(self, shopper_id: str) -> list[Consent]:
        return list(
            self.session.scalars(
                select(Consent).where(Consent.shopper_id == shopper_id).order_by(Consent.id)
            )
        )

    def api_key_by_hash(self, secret_hash: str) -> ApiKey | None:
        return self.session.scalars(
            select(ApiKey).where(ApiKey.secret_hash == secret_hash, ApiKey.revoked_at.is_(None))
        ).one_or_none()

    def get_operator(self, operator_id: str) -> Operator | None:
        return self.session.get(Operator, operator_id)

    def operator_by_email(self, email: str) -> Operator | None:
        return self.session.scalars(select(Operator).where(Operator.email == email)).one_or_none()

    def operator_emails(self, operator_ids: set[str]) -> dict[str, str]:
        rows = self.session.execute(
            select(Operator.id, Operator.email).where(Operator.id.in_(sorted(operator_ids)))
        )
        return {operator_id: email for operator_id, email in rows}

    # --- reads for risk's link graph -----------------------------------------------------------

    def enrolment_identifiers(
        self, shopper_ids: Select[Any]
    ) -> list[tuple[str, str, str | None, str | None]]:
        """(shopper id, phone hash, enrolment device id, enrolment IP) of the shoppers
        ``shopper_ids`` (a subquery of shopper ids) selects."""
        rows = self.session.execute(
            select(
                Shopper.id, Shopper.phone_hash, Shopper.enrolment_device_id, Shopper.enrolment_ip
            ).where(Shopper.id.in_(shopper_ids.scalar_subquery()))
        ).all()
        return [(row[0], row[1], row[2], row[3]) for row in rows]
