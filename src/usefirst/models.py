"""Every table, imported in one place so Alembic and tests see the whole schema."""

from usefirst.collections.models import BureauFile, ContactAttempt, LegalCase
from usefirst.credit.models import CreditLine, CreditLineChange
from usefirst.identity.models import (
    ApiKey,
    Consent,
    ExternalIdLookup,
    NationalIdLookup,
    Operator,
    Shopper,
)
from usefirst.kit.db import Base
from usefirst.kit.models import Event, IdempotencyRecord, OutboxMessage, SandboxClock, SweepRun
from usefirst.ledger.models import JournalEntry, LedgerAccount, LedgerPosting
from usefirst.merchants.models import Merchant
from usefirst.orders.models import Order, Refund
from usefirst.repayment.models import Allocation, Instalment, Payment

metadata = Base.metadata

__all__ = [
    "Allocation",
    "ApiKey",
    "BureauFile",
    "Consent",
    "ContactAttempt",
    "CreditLine",
    "CreditLineChange",
    "Event",
    "ExternalIdLookup",
    "IdempotencyRecord",
    "Instalment",
    "JournalEntry",
    "LedgerAccount",
    "LedgerPosting",
    "LegalCase",
    "Merchant",
    "NationalIdLookup",
    "Operator",
    "Order",
    "OutboxMessage",
    "Payment",
    "Refund",
    "SandboxClock",
    "Shopper",
    "SweepRun",
    "metadata",
]
