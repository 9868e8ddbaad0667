"""All SQL of merchants: onboarding, settlement, holds and standing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache

from sqlalchemy import bindparam, insert, select, tuple_
from sqlalchemy.orm import Session

from usefirst.kit.db import AnySelect, on_citus, shard_batches
from usefirst.ledger.repository import LedgerRepository
from usefirst.merchants.models import (
    Merchant,
    MerchantAppeal,
    MerchantFine,
    Settlement,
    SettlementHold,
    SettlementLine,
    StandingChange,
)

# Bound lists stay well below the drivers' parameter limits.
CHUNK = 1000


@dataclass(frozen=True)
class PayablePosting:
    """One posting to a merchant payable; ``owed_minor`` > 0 when it raises what is owed."""

    entry_id: str
    entry_kind: str
    order_id: str | None
    owed_minor: int
    created_at: datetime
    settlement_id: str | None


class MerchantRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, merchant: Merchant) -> None:
        self.session.add(merchant)

    def get(self, merchant_id: str, *, for_update: bool = False) -> Merchant | None:
        if not for_update:
            return self.session.get(Merchant, merchant_id)
        return self.session.scalars(
            select(Merchant).where(Merchant.id == merchant_id).with_for_update()
        ).one_or_none()

    @staticmethod
    def by_id_statement(merchant_id: str) -> AnySelect:
        """``get`` as a statement to send with other look-ups: every column of the merchant."""
        return select(*Merchant.__table__.columns).where(Merchant.id == merchant_id)

    @staticmethod
    @cache
    def standing_statement() -> AnySelect:
        """The merchant's id, status and webhook URL (read with other look-ups), for the
        merchant id given as ``merchant_id``; built once."""
        return select(Merchant.id, Merchant.status, Merchant.webhook_url).where(
            Merchant.id == bindparam("merchant_id")
        )

    def lock_many(self, merchant_ids: Sequence[str]) -> list[Merchant]:
        """The merchants of those ids, locked (one query per thousand; on a Citus cluster per
        shard and thousand, as ``shard_batches`` orders them), returned in id order."""
        found: list[Merchant] = []
        for batch in shard_batches(self.session.connection(), "merchants", merchant_ids):
            found.extend(
                self.session.scalars(
                    select(Merchant)
                    .where(Merchant.id.in_(batch))
                    .order_by(Merchant.id)
                    .with_for_update()
                    .execution_options(populate_existing=True)
                )
            )
        return sorted(found, key=lambda merchant: merchant.id)

    def many(self, merchant_ids: Sequence[str]) -> list[Merchant]:
        """The merchants of those ids (one query per chunk), as they are in the database now."""
        found: list[Merchant] = []
        for start in range(0, len(merchant_ids), CHUNK):
            found.extend(
                self.session.scalars(
                    select(Merchant)
                    .where(Merchant.id.in_(merchant_ids[start : start + CHUNK]))
                    .execution_options(populate_existing=True)
                )
            )
        return found

    # --- reads for risk's link graph -----------------------------------------------------------

    def contact_hashes(self) -> list[tuple[str, str | None, str | None]]:
        """(merchant id, phone hash, address hash) of the merchants with either."""
        rows = self.session.execute(
            select(Merchant.id, Merchant.phone_hash, Merchant.address_hash).where(
                (Merchant.phone_hash.is_not(None)) | (Merchant.address_hash.is_not(None))
            )
        ).all()
        return [(row[0], row[1], row[2]) for row in rows]


class SettlementRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # Holds

    def active_holds(self, merchant_id: str, order_id: str | None = None) -> list[SettlementHold]:
        statement = select(SettlementHold).where(
            SettlementHold.merchant_id == merchant_id, SettlementHold.released_at.is_(None)
        )
        if order_id is not None:
            statement = statement.where(SettlementHold.order_id == order_id)
        return list(self.session.scalars(statement.order_by(SettlementHold.id)))

    def held_order_ids(self, merchant_id: str) -> set[str]:
        return {
            row
            for row in self.session.scalars(
                select(SettlementHold.order_id)
                .where(
                    SettlementHold.merchant_id == merchant_id,
                    SettlementHold.released_at.is_(None),
                )
                .distinct()
            )
        }

    def add(self, row: SettlementHold | Settlement | SettlementLine) -> None:
        self.session.add(row)

    def add_lines(self, rows: Iterable[dict[str, object]]) -> None:
        """Record settled entries. (Their open items on the merchant payable are the ledger's:
        the settlement run clears them through ``ledger.service.clear_open_items``.)"""
        # An executemany: SQLAlchemy sends it as multi-row INSERTs of up to 1,000 rows. (One
        # hand-made VALUES list of 2,000 rows was far slower to compile and bind.)
        values = list(rows)
        if values:
            self.session.execute(insert(SettlementLine), values)

    # A merchant's payable, read through the ledger's repository, with what settled each entry.

    def payable_postings(
        self,
        *,
        merchant_id: str,
        account_code: str,
        created_before: datetime | None = None,
        order_id: str | None = None,
        pending_only: bool,
    ) -> list[PayablePosting]:
        settled = select(SettlementLine.entry_id).where(SettlementLine.merchant_id == merchant_id)
        on_cluster = pending_only and on_citus(self.session.connection())
        postings = LedgerRepository(self.session).account_postings(
            account_code,
            created_before=created_before,
            order_id=order_id,
            excluding_entries=settled if pending_only and not on_cluster else None,
        )
        if on_cluster:
            # Citus does not plan the correlated NOT EXISTS (settlement lines are sharded by
            # merchant, postings by their entry's subject): the merchant's settled entries are
            # read from its shard and left out here.
            done = set(self.session.scalars(settled))
            postings = [posting for posting in postings if posting.entry_id not in done]
        settlement_of = {} if pending_only else self._settlements_of_entries(merchant_id, order_id)
        return [
            PayablePosting(
                entry_id=posting.entry_id,
                entry_kind=posting.entry_kind,
                order_id=posting.order_id,
                owed_minor=-posting.amount_minor,
                created_at=posting.created_at,
                settlement_id=settlement_of.get(posting.entry_id),
            )
            for posting in postings
        ]

    def _settlements_of_entries(self, merchant_id: str, order_id: str | None) -> dict[str, str]:
        statement = select(SettlementLine.entry_id, SettlementLine.settlement_id).where(
            SettlementLine.merchant_id == merchant_id
        )
        if order_id is not None:
            statement = statement.where(SettlementLine.order_id == order_id)
        return {
            entry_id: settlement_id for entry_id, settlement_id in self.session.execute(statement)
        }

    def pending_payable_postings_many(
        self, merchant_ids: Sequence[str], *, created_before: datetime
    ) -> dict[tuple[str, str], list[PayablePosting]]:
        """:meth:`payable_postings` (pending only) of many merchants in one query per thousand,
        by (merchant, currency): the ledger's open items of their payables, which hold exactly
        the postings no settlement line has settled (the settlement run clears them with
        its lines)."""
        postings = LedgerRepository(self.session).open_items_of_owners(
            "merchant_payable", merchant_ids, created_before=created_before
        )
        return {
            key: [
                PayablePosting(
                    entry_id=posting.entry_id,
                    entry_kind=posting.entry_kind,
                    order_id=posting.order_id,
                    owed_minor=-posting.amount_minor,
                    created_at=posting.created_at,
                    settlement_id=None,
                )
                for posting in rows
            ]
            for key, rows in postings.items()
        }

    def payable_currencies_many(self, merchant_ids: Sequence[str]) -> dict[str, list[str]]:
        return LedgerRepository(self.session).account_currencies_of_owners(
            "merchant_payable", merchant_ids
        )

    def held_order_ids_many(self, merchant_ids: Sequence[str]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for start in range(0, len(merchant_ids), 1000):
            for merchant_id, order_id in self.session.execute(
                select(SettlementHold.merchant_id, SettlementHold.order_id).where(
                    SettlementHold.merchant_id.in_(merchant_ids[start : start + 1000]),
                    SettlementHold.released_at.is_(None),
                )
            ):
                found.setdefault(merchant_id, set()).add(order_id)
        return found

    def sold_order_ids_settled_many(
        self, order_ids_by_merchant: dict[str, set[str]]
    ) -> dict[str, set[str]]:
        """:meth:`sold_order_ids_settled` of many merchants: one query per 5,000 orders."""
        pairs = sorted(
            (merchant_id, order_id)
            for merchant_id, order_ids in order_ids_by_merchant.items()
            for order_id in order_ids
        )
        found: dict[str, set[str]] = {}
        for start in range(0, len(pairs), 5000):
            for merchant_id, order_id in self.session.execute(
                select(SettlementLine.merchant_id, SettlementLine.order_id).where(
                    SettlementLine.component == "sale",
                    tuple_(SettlementLine.merchant_id, SettlementLine.order_id).in_(
                        pairs[start : start + 5000]
                    ),
                )
            ):
                if order_id is not None:
                    found.setdefault(merchant_id, set()).add(order_id)
        return found

    def settled_on_many(
        self, merchant_ids: Sequence[str], settled_on: date
    ) -> set[tuple[str, str]]:
        """(merchant, currency) of the payouts made for ``settled_on``."""
        found: set[tuple[str, str]] = set()
        for start in range(0, len(merchant_ids), 1000):
            found.update(
                (row[0], row[1])
                for row in self.session.execute(
                    select(Settlement.merchant_id, Settlement.currency).where(
                        Settlement.merchant_id.in_(merchant_ids[start : start + 1000]),
                        Settlement.settled_on == settled_on,
                    )
                )
            )
        return found

    def reserves_due_many(self, merchant_ids: Sequence[str], *, due_on: date) -> list[Settlement]:
        """:meth:`reserves_due` of many merchants, by merchant (locked a thousand merchants at a
        time; on a Citus cluster per shard and thousand, as ``shard_batches`` orders them)."""
        found: list[Settlement] = []
        for batch in shard_batches(self.session.connection(), "settlements", merchant_ids):
            found.extend(
                self.session.scalars(
                    select(Settlement)
                    .where(
                        Settlement.merchant_id.in_(batch),
                        Settlement.reserve_minor > 0,
                        Settlement.reserve_released_at.is_(None),
                        Settlement.reserve_release_on <= due_on,
                    )
                    .order_by(Settlement.merchant_id, Settlement.settled_on, Settlement.id)
                    .with_for_update()
                )
            )
        return sorted(found, key=lambda row: (row.merchant_id, row.settled_on, row.id))

    def payable_currencies(self, merchant_id: str) -> list[str]:
        return LedgerRepository(self.session).account_currencies("merchant_payable", merchant_id)

    def merchants_with_payable(self) -> list[str]:
        return LedgerRepository(self.session).account_owners("merchant_payable")

    def sold_order_ids_settled(self, merchant_id: str, order_ids: Iterable[str]) -> set[str]:
        wanted = sorted(set(order_ids))
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            found.update(
                self.session.scalars(
                    select(SettlementLine.order_id).where(
                        SettlementLine.merchant_id == merchant_id,
                        SettlementLine.component == "sale",
                        SettlementLine.order_id.in_(wanted[start : start + 500]),
                    )
                )
            )
        return {order_id for order_id in found if order_id is not None}

    # Settlements

    def settlement_on(self, merchant_id: str, currency: str, settled_on: date) -> Settlement | None:
        return self.session.scalars(
            select(Settlement).where(
                Settlement.merchant_id == merchant_id,
                Settlement.currency == currency,
                Settlement.settled_on == settled_on,
            )
        ).one_or_none()

    def get_settlement(self, merchant_id: str, settlement_id: str) -> Settlement | None:
        return self.session.get(Settlement, (merchant_id, settlement_id))

    def settlements_page(
        self, merchant_id: str, *, limit: int, starting_after: str | None
    ) -> list[Settlement]:
        statement = select(Settlement).where(Settlement.merchant_id == merchant_id)
        if starting_after is not None:
            statement = statement.where(Settlement.id < starting_after)
        return list(self.session.scalars(statement.order_by(Settlement.id.desc()).limit(limit)))

    def settlements_of(self, merchant_id: str, currency: str) -> list[Settlement]:
        return list(
            self.session.scalars(
                select(Settlement)
                .where(Settlement.merchant_id == merchant_id, Settlement.currency == currency)
                .order_by(Settlement.settled_on, Settlement.id)
            )
        )

    def lines_of(self, merchant_id: str, settlement_id: str) -> list[SettlementLine]:
        return list(
            self.session.scalars(
                select(SettlementLine)
                .where(
                    SettlementLine.merchant_id == merchant_id,
                    SettlementLine.settlement_id == settlement_id,
                )
                .order_by(SettlementLine.entry_id)
            )
        )

    def reserves_due(self, merchant_id: str, *, due_on: date) -> list[Settlement]:
        return list(
            self.session.scalars(
                select(Settlement)
                .where(
                    Settlement.merchant_id == merchant_id,
                    Settlement.reserve_minor > 0,
                    Settlement.reserve_released_at.is_(None),
                    Settlement.reserve_release_on <= due_on,
                )
                .order_by(Settlement.settled_on, Settlement.id)
                .with_for_update()
            )
        )

    def merchants_with_reserve_due(self, *, due_on: date) -> list[str]:
        return list(
            self.session.scalars(
                select(Settlement.merchant_id)
                .where(
                    Settlement.reserve_minor > 0,
                    Settlement.reserve_released_at.is_(None),
                    Settlement.reserve_release_on <= due_on,
                )
                .distinct()
            )
        )


class StandingRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: StandingChange | MerchantFine | MerchantAppeal) -> None:
        self.session.add(row)

    def changes_of(self, merchant_id: str) -> list[StandingChange]:
        return list(
            self.session.scalars(
                select(StandingChange)
                .where(StandingChange.merchant_id == merchant_id)
                .order_by(StandingChange.id)
            )
        )

    def get_change(self, merchant_id: str, change_id: str) -> StandingChange | None:
        return self.session.get(StandingChange, (merchant_id, change_id))

    def fines_of(self, merchant_id: str) -> list[MerchantFine]:
        return list(
            self.session.scalars(
                select(MerchantFine)
                .where(MerchantFine.merchant_id == merchant_id)
                .order_by(MerchantFine.id)
            )
        )

    def get_fine(
        self, merchant_id: str, fine_id: str, *, for_update: bool = False
    ) -> MerchantFine | None:
        statement = select(MerchantFine).where(
            MerchantFine.merchant_id == merchant_id, MerchantFine.id == fine_id
        )
        if for_update:
            statement = statement.with_for_update()
        return self.session.scalars(statement).one_or_none()

    def appeals_of(self, merchant_id: str) -> list[MerchantAppeal]:
        return list(
            self.session.scalars(
                select(MerchantAppeal)
                .where(MerchantAppeal.merchant_id == merchant_id)
                .order_by(MerchantAppeal.id)
            )
        )

    def get_appeal(
        self, merchant_id: str, appeal_id: str, *, for_update: bool = False
    ) -> MerchantAppeal | None:
        statement = select(MerchantAppeal).where(
            MerchantAppeal.merchant_id == merchant_id, MerchantAppeal.id == appeal_id
        )
        if for_update:
            statement = statement.with_for_update()
        return self.session.scalars(statement).one_or_none()

    def open_appeal_for(self, merchant_id: str, subject_id: str) -> MerchantAppeal | None:
        return self.session.scalars(
            select(MerchantAppeal).where(
                MerchantAppeal.merchant_id == merchant_id,
                MerchantAppeal.subject_id == subject_id,
                MerchantAppeal.status == "open",
            )
        ).one_or_none()
