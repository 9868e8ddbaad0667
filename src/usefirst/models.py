"""Every table, imported in one place so Alembic, key rotation and tests see the whole schema."""

from sqlalchemy import Table

from usefirst.collections.models import (
    BureauFile,
    ContactAttempt,
    DelinquentOrder,
    LateFeeWaiver,
    LegalCase,
    SweepRun,
)
from usefirst.credit.models import CreditLine, CreditLineChange
from usefirst.disputes.models import (
    Dispute,
    DisputeAction,
    DisputedOrder,
    DisputeEvidence,
    DisputePauseClosure,
)
from usefirst.identity.models import (
    ApiKey,
    Consent,
    ConsoleAccount,
    ConsoleSession,
    ExternalIdLookup,
    NationalIdLookup,
    Operator,
    Shopper,
)
from usefirst.kit.db import Base
from usefirst.kit.models import (
    AuthThrottleHit,
    ConfigVersion,
    Event,
    IdempotencyRecord,
    OutboxMessage,
    SandboxClock,
)
from usefirst.kit.personal_data import SHOPPER_COLUMN
from usefirst.ledger.models import JournalEntry, LedgerAccount, LedgerOpenItem, LedgerPosting
from usefirst.merchants.models import (
    Merchant,
    MerchantAppeal,
    MerchantFine,
    Settlement,
    SettlementHold,
    SettlementLine,
    StandingChange,
)
from usefirst.orders.models import Order, Refund
from usefirst.privacy.models import (
    AuditChainHead,
    AuditEntry,
    Complaint,
    ComplaintResponse,
    PrivacyRequest,
)
from usefirst.rails.models import (
    PaymentMandate,
    RailCallback,
    RailCharge,
    ReconciliationBreak,
)
from usefirst.repayment.models import Allocation, Instalment, InstalmentChange, Payment
from usefirst.risk.models import (
    FraudModelVersion,
    GraphMember,
    GraphRun,
    KnownFraudSubject,
    LinkObservation,
    LinkValue,
    Ring,
    RiskAction,
    RiskCase,
    RiskDecision,
    RiskLabel,
    StepUpChallenge,
)

metadata = Base.metadata


def shopper_tables() -> list[Table]:
    """Every table keyed (distributed) by shopper: the rows about one shopper carry its id."""
    return [table for table in metadata.sorted_tables if SHOPPER_COLUMN in table.c]


__all__ = [
    "Allocation",
    "ApiKey",
    "AuditChainHead",
    "AuditEntry",
    "AuthThrottleHit",
    "BureauFile",
    "Complaint",
    "ComplaintResponse",
    "ConfigVersion",
    "Consent",
    "ConsoleAccount",
    "ConsoleSession",
    "ContactAttempt",
    "CreditLine",
    "CreditLineChange",
    "DelinquentOrder",
    "Dispute",
    "DisputeAction",
    "DisputeEvidence",
    "DisputePauseClosure",
    "DisputedOrder",
    "Event",
    "ExternalIdLookup",
    "FraudModelVersion",
    "GraphMember",
    "GraphRun",
    "IdempotencyRecord",
    "Instalment",
    "InstalmentChange",
    "JournalEntry",
    "KnownFraudSubject",
    "LateFeeWaiver",
    "LedgerAccount",
    "LedgerOpenItem",
    "LedgerPosting",
    "LegalCase",
    "LinkObservation",
    "LinkValue",
    "Merchant",
    "MerchantAppeal",
    "MerchantFine",
    "NationalIdLookup",
    "Operator",
    "Order",
    "OutboxMessage",
    "Payment",
    "PaymentMandate",
    "PrivacyRequest",
    "RailCallback",
    "RailCharge",
    "ReconciliationBreak",
    "Refund",
    "Ring",
    "RiskAction",
    "RiskCase",
    "RiskDecision",
    "RiskLabel",
    "SandboxClock",
    "Settlement",
    "SettlementHold",
    "SettlementLine",
    "Shopper",
    "StandingChange",
    "StepUpChallenge",
    "SweepRun",
    "metadata",
    "shopper_tables",
]
