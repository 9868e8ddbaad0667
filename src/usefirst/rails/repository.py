"""All SQL of the payment rails domain."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from usefirst.kit.personal_data import ShopperRecords, tables_of
from usefirst.rails import models
from usefirst.rails.models import (
    PaymentMandate,
    RailCallback,
    RailCharge,
    ReconciliationBreak,
)


class RailRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: PaymentMandate | RailCharge | RailCallback | ReconciliationBreak) -> None:
        self.session.add(row)

    def mandates_of(self, shopper_id: str) -> list[PaymentMandate]:
        return list(
            self.session.scalars(
                select(PaymentMandate)
                .where(PaymentMandate.shopper_id == shopper_id)
                .order_by(PaymentMandate.created_at, PaymentMandate.id)
            )
        )

    def mandate(
        self, shopper_id: str, mandate_id: str, *, for_update: bool = False
    ) -> PaymentMandate | None:
        query = select(PaymentMandate).where(
            PaymentMandate.shopper_id == shopper_id, PaymentMandate.id == mandate_id
        )
        if for_update:
            query = query.with_for_update()
        return self.session.scalars(query).first()

    def active_mandates(self, provider: str) -> list[PaymentMandate]:
        return list(
            self.session.scalars(
                select(PaymentMandate)
                .where(PaymentMandate.provider == provider, PaymentMandate.status == "active")
                .order_by(PaymentMandate.shopper_id, PaymentMandate.created_at)
            )
        )

    def charges_of_shoppers(self, shopper_ids: list[str]) -> list[RailCharge]:
        if not shopper_ids:
            return []
        return list(
            self.session.scalars(
                select(RailCharge)
                .where(RailCharge.shopper_id.in_(shopper_ids))
                .order_by(RailCharge.order_id, RailCharge.seq, RailCharge.attempt)
            )
        )

    def charges_of_order(self, shopper_id: str, order_id: str) -> list[RailCharge]:
        return list(
            self.session.scalars(
                select(RailCharge)
                .where(RailCharge.shopper_id == shopper_id, RailCharge.order_id == order_id)
                .order_by(RailCharge.seq, RailCharge.attempt)
            )
        )

    def charge(
        self, shopper_id: str, charge_id: str, *, for_update: bool = False
    ) -> RailCharge | None:
        query = select(RailCharge).where(
            RailCharge.shopper_id == shopper_id, RailCharge.id == charge_id
        )
        if for_update:
            query = query.with_for_update()
        return self.session.scalars(query).first()

    def charge_by_reference(self, provider: str, reference: str) -> RailCharge | None:
        """Our charge id as the provider echoes it (a lookup by the charge's own id; on a
        sharded database this is the one cross-shard read, keyed by a unique value)."""
        return self.session.scalars(
            select(RailCharge).where(RailCharge.provider == provider, RailCharge.id == reference)
        ).first()

    def charges_by_provider_ids(self, provider: str, provider_ids: list[str]) -> list[RailCharge]:
        if not provider_ids:
            return []
        return list(
            self.session.scalars(
                select(RailCharge).where(
                    RailCharge.provider == provider,
                    RailCharge.provider_charge_id.in_(provider_ids),
                )
            )
        )

    def submitted_charges(self, provider: str, *, charged_before: date) -> list[RailCharge]:
        return list(
            self.session.scalars(
                select(RailCharge)
                .where(
                    RailCharge.provider == provider,
                    RailCharge.status == "submitted",
                    RailCharge.charge_on < charged_before,
                )
                .order_by(RailCharge.shopper_id, RailCharge.id)
            )
        )

    def charges_on(self, provider: str, on: date) -> list[RailCharge]:
        return list(
            self.session.scalars(
                select(RailCharge)
                .where(RailCharge.provider == provider, RailCharge.charge_on == on)
                .order_by(RailCharge.shopper_id, RailCharge.id)
            )
        )

    def has_accepted_event(self, provider: str, event_id: str) -> bool:
        return (
            self.session.scalar(
                select(RailCallback.id)
                .where(
                    RailCallback.provider == provider,
                    RailCallback.event_id == event_id,
                    RailCallback.outcome != "rejected",
                )
                .limit(1)
            )
            is not None
        )

    def callbacks_of_charges(self, shopper_id: str, charge_ids: list[str]) -> list[RailCallback]:
        if not charge_ids:
            return []
        return list(
            self.session.scalars(
                select(RailCallback)
                .where(
                    RailCallback.shopper_id == shopper_id, RailCallback.charge_id.in_(charge_ids)
                )
                .order_by(RailCallback.received_at, RailCallback.id)
            )
        )

    def callbacks(self, provider: str, *, limit: int) -> list[RailCallback]:
        return list(
            self.session.scalars(
                select(RailCallback)
                .where(RailCallback.provider == provider)
                .order_by(RailCallback.received_at.desc(), RailCallback.id.desc())
                .limit(limit)
            )
        )

    def shopper_records(self) -> ShopperRecords:
        """rails' rows about shoppers, for the privacy flow's export and erasure."""
        return ShopperRecords.of(self.session, tables_of(models))

    def find_break(
        self, provider: str, statement_on: date, kind: str, line_key: str
    ) -> ReconciliationBreak | None:
        return self.session.scalars(
            select(ReconciliationBreak).where(
                ReconciliationBreak.provider == provider,
                ReconciliationBreak.statement_on == statement_on,
                ReconciliationBreak.kind == kind,
                ReconciliationBreak.line_key == line_key,
            )
        ).first()

    def breaks(self, *, provider: str | None, include_resolved: bool) -> list[ReconciliationBreak]:
        query = select(ReconciliationBreak).order_by(
            ReconciliationBreak.statement_on, ReconciliationBreak.id
        )
        if provider is not None:
            query = query.where(ReconciliationBreak.provider == provider)
        if not include_resolved:
            query = query.where(ReconciliationBreak.resolved_at.is_(None))
        return list(self.session.scalars(query))

    def break_by_id(self, break_id: str) -> ReconciliationBreak | None:
        return self.session.get(ReconciliationBreak, break_id)
