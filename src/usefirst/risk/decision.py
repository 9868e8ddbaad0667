"""The risk half of a checkout decision: features, rules, the fraud model and link signals
combined into approve | step_up | review | declined, with plain reasons, and the full record
stored for analysts and backtests.

:func:`assess_checkout` only reads (it runs before the order exists, so history features never
count the order itself); :func:`record_checkout_decision` writes the record and carries the
decision out once the order is stored.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session

from usefirst.credit.policy import Reason
from usefirst.kit import config_versions
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.db import Part, new_row
from usefirst.kit.settings import Settings
from usefirst.orders.models import Order
from usefirst.risk import actions, cases, model_registry, signal_repository, signals
from usefirst.risk import service as risk_service
from usefirst.risk.effects import RiskEffects
from usefirst.risk.features import FEATURE_NAMES, CheckoutFeatures, compute_checkout_features
from usefirst.risk.model_registry import FraudScorer
from usefirst.risk.models import LinkObservation, RiskDecision
from usefirst.risk.repository import RiskRepository
from usefirst.risk.rules import (
    RULES_CONFIG_KIND,
    Evaluation,
    RuleSet,
    active_rule_set,
    parse_rule_set,
)

REASONS_SHOWN = 3
STEP_UP_REASON = Reason(
    "step_up_required", "Confirm this order with the one-time code sent to your phone."
)
REVIEW_REASON = Reason("held_for_review", "The order is held until our team has checked it.")
MODEL_REASON = Reason("model_risk", "Our fraud model rates this order as risky.")


@lru_cache(maxsize=1)
def default_model() -> FraudScorer | None:
    """The shipped fraud model, loaded once per process; None until one is installed."""
    try:
        # Imported on first use: onnxruntime is heavy, and a process that never scores (the
        # CLI, the worker) should not pay for it.
        from usefirst.risk import fraud_model
    except ImportError:
        return None
    loaded: FraudScorer | None = fraud_model.load_default_model()
    return loaded


def model_of(session: Session, settings: Settings) -> FraudScorer | None:
    """The fraud model in force: the newest promoted version, else the shipped artefact."""
    return config_versions.in_force(
        session,
        kind=model_registry.MODEL_CONFIG_KIND,
        parse=lambda version: model_registry.load_promoted(
            session, version.content, shipped=default_model
        ),
        fallback=default_model,
        max_age_seconds=settings.config_refresh_seconds,
    )


def rule_set_of(session: Session, settings: Settings) -> RuleSet:
    """The rules in force: the newest version saved in the console, else the rule file."""
    return config_versions.in_force(
        session,
        kind=RULES_CONFIG_KIND,
        parse=lambda version: parse_rule_set(version.content, source=f"version {version.number}"),
        fallback=lambda: active_rule_set(settings.risk_rules_file),
        max_age_seconds=settings.config_refresh_seconds,
    )


@dataclass(frozen=True)
class Assessment:
    features: CheckoutFeatures
    evaluation: Evaluation
    rule_set_version: str
    model_score: float | None
    model_version: str | None
    model_points: int
    outcome: str  # what risk alone decides: approved | step_up | review | declined
    reasons: list[Reason]
    started_ns: int

    @property
    def merchant_warnings(self) -> list[str]:
        return [
            hit.merchant_reason
            for hit in self.evaluation.hits
            if hit.merchant_warning and hit.merchant_reason
        ]


def assess_checkout(
    session: Session,
    *,
    shopper_id: str,
    merchant_id: str,
    amount_minor: int,
    items: Sequence[Mapping[str, Any]],
    device_id: str | None,
    ip: str | None,
    shipping_address: str | None,
    credit_limit_minor: int,
    credit_used_minor: int,
    cipher: FieldCipher,
    settings: Settings,
    now: datetime,
    model: FraudScorer | bool | None = True,
) -> Assessment:
    """Decide what risk thinks of a checkout. ``model=True`` uses the model in force
    (:func:`model_of`); pass a model (or None for none) to override."""
    started_ns = time.perf_counter_ns()
    rule_set = rule_set_of(session, settings)
    features = compute_checkout_features(
        session,
        shopper_id=shopper_id,
        merchant_id=merchant_id,
        amount_minor=amount_minor,
        items=items,
        device_id=device_id,
        ip=ip,
        shipping_address=shipping_address,
        cipher=cipher,
        now=now,
        credit_limit_minor=credit_limit_minor,
        credit_used_minor=credit_used_minor,
        resellable_categories=rule_set.resellable_categories,
    )
    fraud_model = model_of(session, settings) if model is True else (model or None)
    model_score = None
    if fraud_model is not None and not isinstance(fraud_model, bool):
        model_score = min(max(float(fraud_model.score(features.values)), 0.0), 1.0)
    evaluation = rule_set.evaluate(features.values, model_score=model_score)
    model_points = round((model_score or 0.0) * rule_set.model_weight)
    return Assessment(
        features=features,
        evaluation=evaluation,
        rule_set_version=rule_set.version,
        model_score=model_score,
        model_version=fraud_model.version
        if fraud_model is not None and model_score is not None
        else None,
        model_points=model_points,
        outcome=evaluation.outcome,
        reasons=_reasons(evaluation, model_points),
        started_ns=started_ns,
    )


def _reasons(evaluation: Evaluation, model_points: int) -> list[Reason]:
    """What the shopper and the marketplace are told: the decisive rules first (an outcome, then
    the most points), and the model when it weighed in."""
    if evaluation.outcome == "approved":
        return []
    ranked = sorted(
        evaluation.hits,
        key=lambda hit: (hit.outcome is not None, hit.score),
        reverse=True,
    )
    reasons = [Reason(hit.rule_id, hit.reason) for hit in ranked[:REASONS_SHOWN]]
    if model_points >= 20 or not reasons:
        reasons.append(MODEL_REASON)
    if evaluation.outcome == "step_up":
        reasons.insert(0, STEP_UP_REASON)
    elif evaluation.outcome == "review":
        reasons.insert(0, REVIEW_REASON)
    return reasons


def decided_by(assessment: Assessment) -> str:
    model = f"+model:{assessment.model_version}" if assessment.model_version else ""
    return f"rules:{assessment.rule_set_version}{model}"[:80]


def record_checkout_decision(
    session: Session,
    *,
    order: Order,
    assessment: Assessment,
    reasons: list[Reason],
    credit_score: int | None,
    cipher: FieldCipher,
    settings: Settings,
    now: datetime,
    effects: RiskEffects,
) -> RiskDecision:
    """Store the decision record and the checkout's identifiers, and carry out what risk
    decided: a held order opens a case (and warns the merchant through ``effects`` when a rule
    says so), a step-up order sends the shopper a one-time code."""
    features = assessment.features
    order.shipping_address_hash = features.link_hashes.get("address")
    repository = RiskRepository(session)
    observations = _observations(order, assessment, now)
    repository.add_observations(observations)
    signal_repository.record(session, *_signal_rows(order, assessment))
    # After the signals' hour counts, as the one-statement write (which PostgreSQL runs last
    # part first) takes them: a shopper's concurrent checkouts lock the rows in one order.
    repository.record_link_values(observations)
    by = decided_by(assessment)
    if order.status in ("step_up", "review") or (
        order.status == "declined" and assessment.outcome == "declined"
    ):
        actions.log_action(
            session,
            action={"step_up": "step_up", "review": "review"}.get(order.status, "decline"),
            subject_id=order.shopper_id,
            order_id=order.id,
            decided_by=by,
            reason="; ".join(reason.code for reason in reasons)[:500],
            details={"risk_score": assessment.evaluation.score},
            now=now,
        )
    if order.status == "review":
        case = cases.open_or_update_case(
            session,
            case_type="order",
            subject_ids=[order.id, order.shopper_id],
            amount_at_risk_minor=order.amount_minor,
            evidence={
                "merchant_id": order.merchant_id,
                "rule_hits": [hit.as_dict() for hit in assessment.evaluation.hits],
                "model_score": assessment.model_score,
                "links": [link.as_dict() for link in features.links],
            },
            reason="held at checkout: " + ", ".join(reason.code for reason in reasons[1:]),
            now=now,
        )
        if assessment.merchant_warnings:
            effects.warn_merchant(
                session,
                order=order,
                case_id=case.id,
                warnings=assessment.merchant_warnings,
                settings=settings,
                now=now,
            )
    elif order.status == "step_up":
        risk_service.start_step_up(session, order=order, cipher=cipher, settings=settings, now=now)
    row = _decision_row(order, assessment, reasons, credit_score, now)
    repository.add(row)
    return row


def insert_checkout_decision(
    *,
    order: Order,
    assessment: Assessment,
    reasons: list[Reason],
    credit_score: int | None,
    now: datetime,
) -> list[Part]:
    """What ``record_checkout_decision`` stores, as parts of a larger write
    (``kit.db.write_prepared``), for a checkout risk approved: nothing to carry out."""
    if assessment.outcome != "approved":
        raise ValueError("a held or declined checkout is carried out by record_checkout_decision")
    observations = _observations(order, assessment, now)
    decision = _decision_row(order, assessment, reasons, credit_score, now)
    return [
        *RiskRepository.insert_parts([*observations, decision]),
        *RiskRepository.link_value_parts(observations),
        *signal_repository.writes(*_signal_rows(order, assessment)),
    ]


def _signal_rows(
    order: Order, assessment: Assessment
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The checkout's rows of the online signals' counters: its events and its hours."""
    events = signals.event_rows(
        keys=assessment.features.signal_keys,
        shopper_id=order.shopper_id,
        order_id=order.id,
        merchant_id=order.merchant_id,
        amount_minor=order.amount_minor,
        status=order.status,
        created_at=order.created_at,
    )
    hours = signals.hour_rows(
        shopper_id=order.shopper_id,
        merchant_id=order.merchant_id,
        amount_minor=order.amount_minor,
        created_at=order.created_at,
    )
    return events, hours


def _observations(order: Order, assessment: Assessment, now: datetime) -> list[LinkObservation]:
    return [
        new_row(
            LinkObservation,
            shopper_id=order.shopper_id,
            order_id=order.id,
            kind=kind,
            value_hash=value_hash,
            merchant_id=order.merchant_id,
            observed_at=now,
        )
        for kind, value_hash in sorted(assessment.features.link_hashes.items())
    ]


def _decision_row(
    order: Order,
    assessment: Assessment,
    reasons: list[Reason],
    credit_score: int | None,
    now: datetime,
) -> RiskDecision:
    features = assessment.features
    return new_row(
        RiskDecision,
        shopper_id=order.shopper_id,
        order_id=order.id,
        merchant_id=order.merchant_id,
        amount_minor=order.amount_minor,
        currency=order.currency,
        outcome=order.status,
        risk_outcome=assessment.outcome,
        risk_score=assessment.evaluation.score,
        credit_score=credit_score,
        model_score=assessment.model_score,
        model_version=assessment.model_version,
        rule_set_version=assessment.rule_set_version,
        rule_hits=[hit.as_dict() for hit in assessment.evaluation.hits],
        reasons=[reason.as_dict() for reason in reasons],
        features=dict(features.values),
        links=[link.as_dict() for link in features.links],
        latency_micros=min((time.perf_counter_ns() - assessment.started_ns) // 1000, 2**31 - 1),
        decided_at=now,
    )


def decision_view(row: RiskDecision) -> dict[str, Any]:
    return {
        "order_id": row.order_id,
        "shopper_id": row.shopper_id,
        "merchant_id": row.merchant_id,
        "amount_minor": row.amount_minor,
        "currency": row.currency,
        "outcome": row.outcome,
        "risk_outcome": row.risk_outcome,
        "score": row.risk_score,
        "credit_score": row.credit_score,
        "model_score": row.model_score,
        "model_version": row.model_version,
        "rule_set_version": row.rule_set_version,
        "reasons": row.reasons,
        "rule_hits": row.rule_hits,
        "features": row.features,
        "links": row.links,
        "latency_micros": row.latency_micros,
        "decided_at": row.decided_at,
    }


@dataclass
class BacktestReport:
    rule_set_version: str
    decisions: int = 0
    transitions: dict[tuple[str, str], int] = field(default_factory=dict)
    examples: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    rule_hits: dict[str, int] = field(default_factory=dict)  # decisions each rule would hit
    baseline_hits: dict[str, int] = field(default_factory=dict)  # the same for ``baseline``

    @property
    def changed(self) -> int:
        return sum(count for (old, new), count in self.transitions.items() if old != new)


EXAMPLES_PER_TRANSITION = 5


def backtest(
    session: Session,
    *,
    rule_set: RuleSet,
    baseline: RuleSet | None = None,
    since: datetime | None = None,
) -> BacktestReport:
    """Replay every stored decision's features (and model score) through ``rule_set`` and count
    how risk's outcome would move. Features missing from old records count as 0. With a
    ``baseline`` (the rules in force), its rule hits are counted in the same pass to compare;
    with ``since``, only decisions made from then on are replayed."""
    report = BacktestReport(rule_set_version=rule_set.version)
    for row in RiskRepository(session).decisions(since=since):
        values = {name: float(row.features.get(name, 0.0)) for name in FEATURE_NAMES}
        if baseline is not None:
            for hit in baseline.evaluate(values, model_score=row.model_score).hits:
                report.baseline_hits[hit.rule_id] = report.baseline_hits.get(hit.rule_id, 0) + 1
        evaluation = rule_set.evaluate(values, model_score=row.model_score)
        new = evaluation.outcome
        for hit in evaluation.hits:
            report.rule_hits[hit.rule_id] = report.rule_hits.get(hit.rule_id, 0) + 1
        key = (row.risk_outcome, new)
        report.decisions += 1
        report.transitions[key] = report.transitions.get(key, 0) + 1
        shown = report.examples.setdefault(key, [])
        if row.risk_outcome != new and len(shown) < EXAMPLES_PER_TRANSITION:
            shown.append(row.order_id)
    return report
