"""Response bodies of the v1 API, as the handlers build them: the contract (shared API.md and
docs/api-additions.md) in the OpenAPI document, and a check on what is returned.

Every model forbids fields it does not name, so a handler that returns a field the model lacks
fails loudly in the tests rather than sending an undocumented field. Routes that return a dict
are validated and serialised through their model (``response_model_exclude_unset``: a field a
handler leaves out, such as a contact attempt's call outcome, stays out). The money paths
(checkout, payments, ship, confirm receipt, refunds and every idempotent call) build their JSON
response themselves and only document it here: FastAPI does not validate a returned Response,
so they pay nothing for it (tests/api/test_response_models.py checks their bodies instead).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

Item = TypeVar("Item")


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(Out, Generic[Item]):
    """One page of a list, oldest first; ``starting_after`` the last id for the next."""

    data: list[Item]
    has_more: bool


class DataList(Out, Generic[Item]):
    """A whole list (not paged)."""

    data: list[Item]


# --- shoppers and credit ------------------------------------------------------------------------


class CreditReasonOut(Out):
    code: str
    message: str
    # Set by the scorecard: the feature behind the reason and its points.
    feature: str | None = None
    points: int | None = None
    shortfall: int | None = None


class CreditOut(Out):
    limit_minor: int
    used_minor: int
    available_minor: int
    currency: str
    status: str
    score: int | None
    band: str | None
    scorecard_version: str | None
    reasons: list[CreditReasonOut]
    reviewed_at: datetime


class UnmaskedIdentityOut(Out):
    name: str | None
    national_id: str | None
    phone: str | None
    email: str | None


class ShopperOut(Out):
    id: str
    external_id: str
    status: str
    name_masked: str
    national_id_masked: str
    phone_masked: str
    email_masked: str | None
    language: str
    time_zone: str
    credit: CreditOut
    created_at: datetime
    # Only with ?unmasked=true, for admin and compliance operators (audited).
    unmasked: UnmaskedIdentityOut | None = None


class StatementInstalmentOut(Out):
    seq: int
    due_on: date | None
    principal_minor: int
    fees_minor: int
    late_fees_minor: int
    amount_due_minor: int
    paid_minor: int
    days_past_due: int
    status: str


class StatementOrderOut(Out):
    order_id: str
    merchant_id: str
    plan: str
    status: str
    amount_minor: int
    instalments: list[StatementInstalmentOut]


class ShopperStatementOut(Out):
    shopper_id: str
    currency: str
    orders: list[StatementOrderOut]
    charged_off_minor: int
    outstanding_minor: int
    overdue_minor: int
    next_due_on: date | None
    unapplied_credit_minor: int


# --- orders -------------------------------------------------------------------------------------


class OrderItemOut(Out):
    sku: str
    name: str
    category: str
    quantity: int
    unit_price_minor: int


class ShipmentOut(Out):
    carrier: str | None
    tracking_number: str | None
    shipped_at: datetime | None
    delivered_at: datetime | None


class InstalmentOut(Out):
    seq: int
    due_on: date | None
    amount_minor: int
    principal_minor: int
    fees_minor: int
    late_fees_minor: int
    paid_minor: int
    status: str


class OrderOut(Out):
    id: str
    shopper_id: str
    merchant_id: str
    amount_minor: int
    refunded_minor: int
    currency: str
    plan: str
    status: str
    items: list[OrderItemOut]
    shipment: ShipmentOut | None
    instalments: list[InstalmentOut]
    created_at: datetime


class ReasonOut(Out):
    code: str
    message: str


class DecisionOut(Out):
    outcome: Literal["approved", "review", "step_up", "declined"]
    reasons: list[ReasonOut]
    decided_at: datetime
    # The risk score, when the risk engine scored the checkout.
    score: int | None = None


class CheckoutOut(Out):
    order: OrderOut
    decision: DecisionOut


class RefundOut(Out):
    id: str
    order_id: str
    amount_minor: int
    currency: str
    reduced_debt_minor: int
    waived_fees_minor: int
    returned_to_shopper_minor: int
    reason: str
    created_at: datetime
    order: OrderOut


class AllocationOut(Out):
    order_id: str
    seq: int
    fees_minor: int
    principal_minor: int


class PaymentOut(Out):
    id: str
    shopper_id: str
    amount_minor: int
    currency: str
    order_id: str | None
    method: str
    external_ref: str | None
    allocations: list[AllocationOut]
    unapplied_minor: int
    created_at: datetime


# --- merchants ----------------------------------------------------------------------------------


class MerchantOut(Out):
    id: str
    name: str
    category: str
    status: str
    webhook_url: str | None
    settlement_days: int
    fee_rate_bps: int
    created_at: datetime


class NewMerchantOut(MerchantOut):
    # Both shown in this answer only.
    api_key: str
    webhook_secret: str


class WebhookSecretOut(Out):
    merchant_id: str
    webhook_secret: str
    previous_secret_valid_until: datetime | None


class BalanceOut(Out):
    merchant_id: str
    payable_minor: int
    held_minor: int
    reserve_minor: int
    currency: str


class SettlementOut(Out):
    id: str
    merchant_id: str
    currency: str
    settled_on: date
    status: str
    order_count: int
    gross_minor: int
    refunded_minor: int
    fee_minor: int
    reserve_minor: int
    reserve_released_minor: int
    clawback_minor: int
    fines_minor: int
    net_minor: int
    reserve_release_on: date | None
    reserve_released_at: datetime | None
    payout_rail: str
    payout_reference: str
    paid_at: datetime


class SettlementLineOut(Out):
    entry_id: str
    entry_kind: str
    component: str
    order_id: str | None
    amount_minor: int


class SettlementWithLinesOut(SettlementOut):
    lines: list[SettlementLineOut]


class SettlementPage(Page[SettlementOut]):
    pass


class MerchantStatementLineOut(Out):
    entry_id: str
    entry_kind: str
    order_id: str | None
    amount_minor: int
    created_at: datetime
    settlement_id: str | None
    is_held: bool


class MerchantStatementOut(Out):
    merchant_id: str
    currency: str
    ledger_payable_minor: int
    pending_minor: int
    settled_minor: int
    is_reconciled: bool
    problems: list[str]
    lines: list[MerchantStatementLineOut]


class StandingChangeOut(Out):
    id: str
    merchant_id: str
    from_status: str
    to_status: str
    reason: str
    evidence: list[str]
    decided_by: str
    appeal_id: str | None
    created_at: datetime


class FineOut(Out):
    id: str
    merchant_id: str
    amount_minor: int
    currency: str
    reason: str
    evidence: list[str]
    decided_by: str
    status: str
    entry_id: str
    reversal_entry_id: str | None
    created_at: datetime
    reversed_at: datetime | None


class AppealOut(Out):
    id: str
    merchant_id: str
    subject_type: str
    subject_id: str
    grounds: str
    evidence: list[str]
    status: str
    filed_by: str
    filed_at: datetime
    decided_by: str | None
    decision_note: str | None
    decided_at: datetime | None


class StandingOut(Out):
    merchant_id: str
    status: str
    changes: list[StandingChangeOut]
    fines: list[FineOut]
    appeals: list[AppealOut]


class StandingChangeResultOut(Out):
    merchant_id: str
    status: str
    # None when the merchant already had that status (200, nothing changed).
    change: StandingChangeOut | None


# --- events, ledger, sandbox --------------------------------------------------------------------


class EventOut(Out):
    id: str
    type: str
    created_at: datetime
    data: dict[str, Any]


class EventPage(Page[EventOut]):
    pass


class RedeliveryOut(Out):
    event_id: str
    destinations: list[Literal["merchant", "platform"]]


class TrialBalanceLineOut(Out):
    account: str
    kind: str
    currency: str
    debits_minor: int
    credits_minor: int
    balance_minor: int


class TrialBalanceOut(Out):
    accounts: list[TrialBalanceLineOut]
    debits_minor: int
    credits_minor: int


class ClockOut(Out):
    now: datetime
    business_on: date


class HealthOut(Out):
    status: Literal["ok"]


# --- collections --------------------------------------------------------------------------------


class ContactAttemptOut(Out):
    id: str
    # None for a notice about the shopper's account (a credit limit changed), not an order.
    order_id: str | None
    seq: int
    channel: str
    step: str
    template: str | None
    scheduled_at: datetime
    sent_at: datetime | None
    status: str
    status_reason: str | None
    destination_masked: str | None
    # A collector's call only: what came of it.
    outcome: str | None = None
    promise_on: date | None = None
    promise_minor: int | None = None
    note: str | None = None
    operator_id: str | None = None


class ContactAttemptPage(Page[ContactAttemptOut]):
    pass


class PromiseOut(Out):
    promise_on: date
    promise_minor: int
    paid_since_minor: int
    status: Literal["kept", "pending", "broken"]


class QueueEntryOut(Out):
    order_id: str
    shopper_id: str
    overdue_minor: int
    currency: str
    days_past_due: int
    bucket: str
    priority: int
    # The latest promise to pay, if the shopper made one.
    promise: PromiseOut | None = None


class QueuePage(Page[QueueEntryOut]):
    pass


class LateFeeWaiverOut(Out):
    id: str
    order_id: str
    amount_minor: int
    currency: str
    reason: str
    operator_id: str | None
    entry_id: str
    created_at: datetime


class WaivedLateFeesOut(Out):
    waived_minor: int
    waiver: LateFeeWaiverOut
    order: OrderOut


class BureauFileOut(Out):
    id: str
    period: str
    format: Literal["metro2", "jsonl"]
    records: int
    created_at: datetime


class BureauFilePage(Page[BureauFileOut]):
    pass


class ClaimOut(Out):
    principal_minor: int
    fees_minor: int
    currency: str


class LegalCaseOut(Out):
    id: str
    order_id: str
    shopper_id: str
    status: str
    claimed: ClaimOut
    opened_at: datetime
    updated_at: datetime


class LegalCasePage(Page[LegalCaseOut]):
    pass


# --- risk ---------------------------------------------------------------------------------------


class RiskDecisionOut(Out):
    order_id: str
    shopper_id: str
    merchant_id: str
    amount_minor: int
    currency: str
    outcome: str
    risk_outcome: str
    score: int
    credit_score: int | None
    model_score: float | None
    model_version: str | None
    rule_set_version: str
    reasons: list[ReasonOut]
    # Each rule that fired, the features the rules read and the links found (devices, IPs,
    # addresses, phones shared with others), as recorded at the decision.
    rule_hits: list[dict[str, Any]]
    features: dict[str, Any]
    links: list[dict[str, Any]]
    latency_micros: int
    decided_at: datetime


class RiskCaseOut(Out):
    id: str
    type: str
    status: str
    subject_ids: list[str]
    amount_at_risk_minor: int
    reason: str
    opened_at: datetime
    updated_at: datetime
    assignee: str | None
    resolution: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    # On a single case (not in lists): what opened it and the analyst's note.
    evidence: dict[str, Any] | None = None
    note: str | None = None


class RiskCasePage(Page[RiskCaseOut]):
    pass


class StepUpVerifiedOut(Out):
    verified: Literal[True]
    order: OrderOut


# --- disputes -----------------------------------------------------------------------------------


class EvidenceOut(Out):
    id: str
    submitted_by: str
    content_type: str
    size_bytes: int
    sha256: str
    filename: str | None
    created_at: datetime


class DisputeResolutionOut(Out):
    outcome: str | None
    basis: str | None
    shopper_refund_minor: int
    refund_id: str | None
    note: str | None
    resolved_by: str | None
    resolved_at: datetime | None


class DisputeActionOut(Out):
    seq: int
    action: str
    actor: str
    status: str
    detail: str
    at: datetime


class DisputeOut(Out):
    id: str
    order_id: str
    shopper_id: str
    merchant_id: str
    opened_by: Literal["merchant", "shopper"]
    respondent: Literal["merchant", "shopper"]
    reason: str
    description: str
    status: str
    disputed_minor: int
    currency: str
    pauses_collections: bool
    respond_by: datetime
    decide_by: datetime
    opened_at: datetime
    responded_at: datetime | None
    resolution: DisputeResolutionOut | None
    evidence: list[EvidenceOut]
    history: list[DisputeActionOut]


class DisputeWithAddedEvidenceOut(DisputeOut):
    added_evidence: EvidenceOut


class DisputePage(Page[DisputeOut]):
    pass


# --- privacy ------------------------------------------------------------------------------------


class ShopperExportOut(Out):
    shopper_id: str
    export_id: str
    generated_at: datetime
    # One section per kind of record held about the shopper (identity, consents, credit,
    # orders, payments, ledger postings, contacts, bureau lines, audit entries, …), decrypted.
    sections: dict[str, Any]


class RetainedRecordOut(Out):
    record: str
    count: int
    reason: str
    ids: list[str] | None = None


class ErasureOut(Out):
    id: str
    shopper_id: str
    status: Literal["erased"]
    erased_at: datetime
    erased: dict[str, int]
    retained: list[RetainedRecordOut]


class NewComplaintOut(Out):
    id: str
    shopper_id: str
    category: str
    status: str
    respond_by: datetime
    created_at: datetime


class ComplaintResponseOut(Out):
    id: str
    operator_id: str
    message: str | None
    closes_complaint: bool
    created_at: datetime


class AuditEntryOut(Out):
    seq: int
    id: str
    occurred_at: datetime
    actor: str
    action: str
    subject_shopper_id: str | None
    fields: list[str]
    purpose: str
    reference_id: str | None
    row_hash: str


class ComplaintOut(Out):
    id: str
    shopper_id: str
    category: str
    # None once the shopper's data was erased.
    description: str | None
    status: str
    respond_by: datetime
    is_overdue: bool
    responded_at: datetime | None
    closed_at: datetime | None
    created_at: datetime
    responses: list[ComplaintResponseOut]
    # Privacy complaints, to compliance and admins: every audited read of the shopper's data.
    access_trail: list[AuditEntryOut] | None = None


class ComplaintPage(Page[ComplaintOut]):
    pass


# --- payment rails and the shopper's options ----------------------------------------------------


class MandateOut(Out):
    id: str
    shopper_id: str
    provider: str
    provider_mandate_id: str
    status: str
    created_at: datetime
    revoked_at: datetime | None


class MandateList(DataList[MandateOut]):
    pass


class RailCallbackOut(Out):
    id: str
    source: str
    event_id: str | None
    event_type: str | None
    amount_minor: int | None
    outcome: str
    reason: str | None
    received_at: datetime


class ChargeOut(Out):
    id: str
    seq: int
    attempt: int
    provider: str
    mandate_id: str
    amount_minor: int
    currency: str
    status: str
    charge_on: date
    submit_at: datetime
    provider_charge_id: str | None
    failure_code: str | None
    next_attempt_on: date | None
    stop_reason: str | None
    confirmed_by: str | None
    payment_id: str | None
    reversed_minor: int
    callbacks: list[RailCallbackOut]


class OrderChargesOut(Out):
    order_id: str
    data: list[ChargeOut]


class CallbackOutcomeOut(Out):
    outcome: Literal["posted", "recorded", "duplicate", "rejected"]
    reason: str | None


class ReconciliationBreakOut(Out):
    id: str
    provider: str
    statement_on: date
    kind: str
    shopper_id: str | None
    charge_id: str | None
    provider_charge_id: str | None
    our_amount_minor: int | None
    their_amount_minor: int | None
    found_at: datetime
    resolved_at: datetime | None
    age_days: int


class ReconciliationBreakList(DataList[ReconciliationBreakOut]):
    pass


class PayoffQuoteOut(Out):
    order_id: str
    currency: str
    principal_minor: int
    late_fees_minor: int
    plan_fees_earned_minor: int
    plan_fees_rebated_minor: int
    payoff_minor: int
    valid_on: date


class PayoffOut(Out):
    order_id: str
    payment_id: str
    paid_minor: int
    plan_fees_rebated_minor: int
    order_status: str


class ExtensionOut(Out):
    order_id: str
    seq: int
    due_on: date | None
    extended_days: int


class CreditBalanceRefundOut(Out):
    shopper_id: str
    refunded_minor: int
    currency: str
    via: Literal["provider", "platform"]
    external_ref: str | None
    entry_id: str


# --- credentials --------------------------------------------------------------------------------


class ApiKeyOut(Out):
    """What anyone may see of a key: never its secret or its hash."""

    id: str
    kind: Literal["platform", "merchant", "operator"]
    label: str
    merchant_id: str | None
    operator_id: str | None
    role: str | None
    state: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    revoked_reason: str | None
    replaced_by_key_id: str | None


class ApiKeyPage(Page[ApiKeyOut]):
    pass


class NewApiKeyOut(ApiKeyOut):
    secret: str = Field(description="The key itself, shown in this answer only.")


class RotatedApiKeyOut(Out):
    old: ApiKeyOut
    new: NewApiKeyOut


# --- non-JSON bodies ----------------------------------------------------------------------------

BINARY = {"type": "string", "format": "binary"}


def binary_response(*media_types: str, description: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of an endpoint answering a file of one of ``media_types``."""
    return {
        200: {
            "description": description,
            "content": {media_type: {"schema": BINARY} for media_type in media_types},
        }
    }


# --- hardship ------------------------------------------------------------------------------------


class HardshipRequestOut(Out):
    id: str
    shopper_id: str
    order_id: str
    status: Literal[
        "open", "offered", "plan", "completed", "broken", "settled", "lapsed", "declined"
    ]
    opened_by: Literal["shopper", "operator"]
    reason: str
    currency: str
    owed_minor: int
    opened_on: date
    answer_due_on: date
    decision: Literal["plan", "settlement", "declined"] | None
    decision_note: str | None
    decided_on: date | None
    plan_months: int | None
    plan_instalment_minor: int | None
    settlement_minor: int | None
    settlement_valid_until_on: date | None
    written_off_minor: int | None
    missed_notice_on: date | None
    ended_on: date | None


class HardshipPlanInstalmentOut(Out):
    seq: int
    due_on: date
    amount_minor: int


class HardshipDecisionOut(HardshipRequestOut):
    """The request as answered; ``plan`` the re-spread instalments when the answer is a plan."""

    plan: list[HardshipPlanInstalmentOut] | None


class HardshipSettlementOut(HardshipRequestOut):
    """The request closed by its settlement payment, with that payment and the order's status."""

    payment_id: str
    order_status: str


class HardshipRequestPage(Page[HardshipRequestOut]):
    pass


class HardshipRequestList(DataList[HardshipRequestOut]):
    pass
