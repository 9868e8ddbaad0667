"""The journal: accounts, entries and their postings. Append-only (triggers reject change)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from usefirst.kit.db import Base, UTCDateTime
from usefirst.kit.models import subject_shard_key_column


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"

    # e.g. "shopper_receivable:shp_01...:CNY" or "platform_cash::CNY"
    code: Mapped[str] = mapped_column(String(120), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    owner_id: Mapped[str | None] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JournalEntry(Base):
    __tablename__ = "journal_entries"
    __table_args__ = (
        # The id first: ids grow with time, so a night's entries (and the guards' and the
        # postings' foreign key's look-ups of them) land at the right edge of the key instead of
        # on a page of every shopper (migration 0060).
        PrimaryKeyConstraint("id", "shard_key"),
        # A shopper's entries: an entry with a shopper has it as its shard_key, hence no index on
        # shopper_id (migration 0045).
        Index("ix_journal_entries_shard_key", "shard_key"),
        Index("ix_journal_entries_order_id", "order_id"),
    )

    # The entry's shopper, or for a merchant-only entry its merchant: the entry and its postings
    # are stored together on that shard (usefirst.distribution).
    shard_key: Mapped[str] = subject_shard_key_column()
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    shopper_id: Mapped[str | None] = mapped_column(String(40))
    merchant_id: Mapped[str | None] = mapped_column(String(40))
    order_id: Mapped[str | None] = mapped_column(String(40))
    reference_id: Mapped[str | None] = mapped_column(String(40))
    posting_count: Mapped[int] = mapped_column(Integer)
    memo: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LedgerPosting(Base):
    """One leg of an entry: positive amounts are debits, negative amounts are credits."""

    __tablename__ = "ledger_postings"
    __table_args__ = (
        # The entry first, for the journal's reason (migration 0060); the shard key stays in the
        # key, as a distributed table's must.
        PrimaryKeyConstraint("entry_id", "seq", "shard_key"),
        CheckConstraint("amount_minor <> 0", name="non_zero"),
        Index("ix_ledger_postings_account_code", "account_code"),
        # Postings are inserted before their entry (see ledger.repository), hence the deferral.
        ForeignKeyConstraint(
            ["shard_key", "entry_id"],
            ["journal_entries.shard_key", "journal_entries.id"],
            deferrable=True,
            initially="DEFERRED",
        ),
    )

    shard_key: Mapped[str] = mapped_column(String(40), primary_key=True)  # the entry's
    entry_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Not a foreign key: the account is checked once per INSERT statement, and accounts are
    # append-only (migration 0015; the daily sweep posts ~166,000 postings at a time).
    account_code: Mapped[str] = mapped_column(String(120))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)


class LedgerOpenItem(Base):
    """A posting to an account kept item by item (a merchant payable: ``OPEN_ITEM_KINDS`` in
    ``ledger.accounts``) that nothing has cleared yet. Written with the posting, in the same
    transaction; deleted when the payout that settles its entry writes the entry's settlement
    line (``LedgerRepository.clear_open_items``). So the entries still to settle are read from
    here, not found by an anti-join over every payable posting ever written. A copy of the
    posting and of what settlement reads of its entry, kept by the account's owner (on the
    merchant's shard on a cluster); the journal itself stays append-only."""

    __tablename__ = "ledger_open_items"

    owner_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_code: Mapped[str] = mapped_column(String(120), primary_key=True)
    entry_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_kind: Mapped[str] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    entry_kind: Mapped[str] = mapped_column(String(40))
    order_id: Mapped[str | None] = mapped_column(String(40))
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # the posting's (debit-positive)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
