"""The codes the console shows, by family, taken from the domains' own constants where they have
them: each ``family.code`` needs an entry in both catalogs (checked by the translation tests)."""

from __future__ import annotations

from usefirst.collections import ladder as collections_ladder
from usefirst.collections import portfolio as collections_portfolio
from usefirst.collections import service as collections_service
from usefirst.collections.contact_policy import PHONE_REPORTED_WRONG
from usefirst.collections.models import HARDSHIP_HOLDING_STATUSES
from usefirst.disputes import service as disputes_service
from usefirst.identity.service import API_KEY_KINDS, OPERATOR_ROLES
from usefirst.merchants import standing as merchant_standing
from usefirst.orders import service as orders_service
from usefirst.privacy import complaints as privacy_complaints
from usefirst.repayment import service as repayment_service
from usefirst.risk import cases as risk_cases

CODE_FAMILIES: dict[str, tuple[str, ...]] = {
    "order_status": orders_service.ALL_STATUSES,
    "case_status": risk_cases.CASE_STATUSES,
    "case_type": risk_cases.CASE_TYPES,
    "case_outcome": risk_cases.OUTCOMES,
    "decision_outcome": ("approved", "review", "step_up", "declined"),
    "role": (*OPERATOR_ROLES, "merchant"),
    "channel": (*collections_ladder.CHANNELS, "call"),
    "contact_status": ("scheduled", "deferred", "sent", "suppressed", "failed"),
    "contact_reason": (
        "quiet_hours",
        "daily_contact_limit",
        "daily_call_limit",
        "dispute_open",
        "no_verified_email",
        "email_not_configured",
        PHONE_REPORTED_WRONG,
        "paid",
        *(f"order_{status}" for status in orders_service.ALL_STATUSES),
    ),
    "call_outcome": collections_service.CALL_OUTCOMES,
    "promise_status": ("pending", "kept", "broken"),
    "bucket": collections_portfolio.BUCKET_ORDER,
    "complaint_category": privacy_complaints.CATEGORIES,
    "complaint_status": ("open", "answered", "closed"),
    "dispute_status": ("open", "awaiting_evidence", "under_review", "resolved"),
    "dispute_reason": tuple(
        reason for reasons in disputes_service.REASONS_BY_OPENER.values() for reason in reasons
    ),
    "dispute_outcome": disputes_service.OUTCOMES,
    "merchant_status": merchant_standing.STATUSES,
    "shopper_status": ("active", "rejected", "erased"),
    "step": ("collector_call",),
    "dispute_side": disputes_service.SIDES,
    "dispute_action": ("opened", "evidence_added", "resolved"),
    "payout_status": ("paid",),
    "legal_status": ("referred", "filed", "judgment", "closed"),
    "key_kind": API_KEY_KINDS,
    "key_state": ("active", "expiring", "expired", "revoked"),
    # The shopper's options (issue 18): hardship requests, schedules, auto-debit, reconciliation.
    "hardship_status": (
        *HARDSHIP_HOLDING_STATUSES,
        "completed",
        "broken",
        "settled",
        "lapsed",
        "declined",
    ),
    "hardship_opened_by": ("shopper", "operator"),
    "hardship_decision": ("plan", "settlement", "declined"),
    "instalment_status": (
        "scheduled",
        "pending",
        "overdue",
        "charged_off",
        *repayment_service.CLOSED_STATUSES,
    ),
    "credit_status": ("active", "frozen", "closed"),
    "provider": ("sandbox", "wechatpay", "alipay"),
    "mandate_status": ("active", "revoked"),
    "charge_status": ("scheduled", "submitted", "succeeded", "failed", "cancelled", "reversed"),
    "stop_reason": (
        "mandate_revoked",
        "instalment_paid",
        "disputed",
        "hardship",
        "attempts_exhausted",
    ),
    "confirmed_by": ("callback", "query", "statement", "request"),
    "callback_source": ("callback", "query", "statement", "request"),
    "callback_outcome": ("posted", "recorded", "duplicate", "reversed", "rejected"),
    "break_kind": (
        "missing_on_provider",
        "amount_mismatch",
        "unknown_charge",
        "unknown_refund",
        "reversal_needs_review",
    ),
}
