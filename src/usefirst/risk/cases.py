"""Cases analysts work: an order, a shopper, a merchant or a ring, with the evidence that opened
it. A new signal about a subject that already has an open case joins that case. Resolving a case
(``usefirst.flows.case_resolution``) acts on its orders (a cleared held order proceeds, a
confirmed one is declined or cancelled and its credit released); risk's part, here, decides what
confirming means for each order, records training labels and remembers confirmed fraudsters so
later checkouts linked to them are caught. A merchant counts as a fraudster only when the case is
about it or its own acts are in the evidence; otherwise it is the fraudster's victim."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic_core import to_jsonable_python
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from usefirst.identity.repository import IdentityRepository
from usefirst.kit.errors import Conflict, NotFound, ValidationFailed
from usefirst.kit.ids import new_id
from usefirst.orders.models import Order
from usefirst.risk import actions
from usefirst.risk.models import KnownFraudSubject, RiskCase, RiskLabel
from usefirst.risk.repository import RiskRepository

CaseType = Literal["order", "shopper", "merchant", "ring"]
CASE_TYPES = ("order", "shopper", "merchant", "ring")
CASE_STATUSES = ("open", "assigned", "resolved")
OUTCOMES = ("confirmed_fraud", "legitimate")
# Orders held at checkout (for an analyst, or for the shopper's one-time code): not yet approved.
HELD_STATUSES = ("review", "step_up")
MAX_SIGNALS = 200
# Monitor hits on what the merchant itself did with the order: a waybill it reused for another
# shopper or took from another merchant, goods it sent to its own address. A shopper cannot
# produce them, so confirming the fraud confirms the merchant's part in it. A missed first payment
# or a quick "received" tap is the shopper's doing, and a malformed waybill may be a typo.
# The merchant enters the waybill and ships: a fake, reused or foreign tracking number in an order
# confirmed as fraud is its own act (an honest typo is cleared as legitimate instead).
MERCHANT_IMPLICATING_MONITORS = frozenset(
    {
        "delivered_to_merchant",
        "tracking_reused",
        "tracking_reused_by_other_merchant",
        "tracking_malformed",
    }
)


class CaseAlreadyResolved(Conflict):
    code = "case_already_resolved"
    default_message = "This case is already resolved."


def subject_key(case_type: str, subject_ids: list[str]) -> str:
    """The key a case's signals join by: its type and its primary (first) subject."""
    return f"{case_type}:{subject_ids[0]}"


def open_or_update_case(
    session: Session,
    *,
    case_type: CaseType | str,
    subject_ids: list[str],
    amount_at_risk_minor: int,
    evidence: dict[str, Any],
    reason: str,
    now: datetime,
) -> RiskCase:
    """Open a case, or add this signal to the open case of the same type whose first subject is
    the same (the first subject id is the case's primary subject: the order of an order case, the
    merchant or shopper of theirs, a ring's anchor). Subjects are united, the amount at risk is
    the largest seen, and the signal (``reason`` with ``evidence``) is appended once.
    ``evidence["order_ids"]`` names orders the case covers besides ``ord_`` subjects: resolving
    the case acts on and labels them all."""
    opening = new_case(
        case_type=case_type,
        subject_ids=subject_ids,
        amount_at_risk_minor=amount_at_risk_minor,
        evidence=evidence,
        reason=reason,
        now=now,
    )
    return open_or_update_cases(session, openings=[opening], now=now)[0]


def open_or_update_cases(
    session: Session, *, openings: Sequence[RiskCase], now: datetime
) -> list[RiskCase]:
    """:func:`open_or_update_case` for many signals at once (each made by :func:`new_case`), in
    their order: one look-up (and lock) of the open cases of all their subjects, the new cases
    inserted together and the joined ones updated together at the flush. A later signal about
    the same subject joins the case an earlier one opened. The case each signal opened or
    joined, in order."""
    repository = RiskRepository(session)
    open_cases = repository.open_cases_for(sorted({opening.subject_key for opening in openings}))
    touched: list[RiskCase] = []
    for opening in openings:
        case = open_cases.get(opening.subject_key)
        if case is None:
            repository.add(opening)
            open_cases[opening.subject_key] = opening
            touched.append(opening)
            continue
        _join(case, opening, now=now)
        touched.append(case)
    session.flush()
    return touched


def _join(case: RiskCase, opening: RiskCase, *, now: datetime) -> None:
    """Add the signal of ``opening`` (a new case about the same subject) to the open ``case``."""
    subjects = opening.subject_ids
    signal = opening.evidence["signals"][0]
    order_ids = opening.evidence["order_ids"]
    merged_subjects = list(dict.fromkeys([*case.subject_ids, *subjects]))
    merged_orders = list(dict.fromkeys([*case.evidence.get("order_ids", []), *order_ids]))
    signals = list(case.evidence.get("signals", []))
    known = [(item["reason"], item["evidence"]) for item in signals]
    if (signal["reason"], signal["evidence"]) not in known and len(signals) < MAX_SIGNALS:
        signals.append(signal)
    case.subject_ids = merged_subjects
    case.evidence = {**case.evidence, "order_ids": merged_orders, "signals": signals}
    flag_modified(case, "subject_ids")
    flag_modified(case, "evidence")
    case.amount_at_risk_minor = max(case.amount_at_risk_minor, opening.amount_at_risk_minor)
    case.updated_at = now


def new_case(
    *,
    case_type: CaseType | str,
    subject_ids: list[str],
    amount_at_risk_minor: int,
    evidence: dict[str, Any],
    reason: str,
    now: datetime,
) -> RiskCase:
    """The case a first signal opens (not added to the session): what
    :func:`open_or_update_case` opens when the subject has no open case; when it has one, the
    signal joins that case instead (:func:`open_or_update_cases`)."""
    if case_type not in CASE_TYPES:
        raise ValueError(f"case_type must be one of {CASE_TYPES}")
    subjects = [subject for subject in dict.fromkeys(subject_ids) if subject]
    if not subjects:
        raise ValueError("a case needs at least one subject")
    if amount_at_risk_minor < 0:
        raise ValueError("amount_at_risk_minor must not be negative")
    signal = to_jsonable_python({"reason": reason, "observed_at": now, "evidence": evidence})
    order_ids = [str(order_id) for order_id in evidence.get("order_ids", [])]
    order_ids += [subject for subject in subjects if subject.startswith("ord_")]
    return RiskCase(
        id=new_id("case"),
        case_type=case_type,
        status="open",
        subject_key=subject_key(case_type, subjects),
        subject_ids=subjects,
        amount_at_risk_minor=amount_at_risk_minor,
        reason=reason[:500],
        evidence={"order_ids": list(dict.fromkeys(order_ids)), "signals": [signal]},
        opened_at=now,
        updated_at=now,
    )


def get_case(session: Session, *, case_id: str) -> RiskCase:
    case = RiskRepository(session).get_case(case_id)
    if case is None:
        raise NotFound("No such case.")
    return case


def list_cases(
    session: Session,
    *,
    status: str | None,
    case_type: str | None,
    starting_after: str | None,
    limit: int,
) -> list[RiskCase]:
    if status is not None and status not in CASE_STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(CASE_STATUSES)}.", field="status")
    if case_type is not None and case_type not in CASE_TYPES:
        raise ValidationFailed(f"type must be one of {', '.join(CASE_TYPES)}.", field="type")
    return RiskRepository(session).cases(
        status=status, case_type=case_type, starting_after=starting_after, limit=limit
    )


def assign_case(
    session: Session, *, case_id: str, operator_id: str, assigned_by: str, now: datetime
) -> RiskCase:
    operator = IdentityRepository(session).get_operator(operator_id)
    if operator is None or operator.role not in ("risk_analyst", "admin"):
        raise ValidationFailed(
            "operator_id must name a risk analyst or an admin.", field="operator_id"
        )
    repository = RiskRepository(session)
    case = repository.get_case(case_id, for_update=True)
    if case is None:
        raise NotFound("No such case.")
    if case.status == "resolved":
        raise CaseAlreadyResolved()
    case.status = "assigned"
    case.assignee = operator_id
    case.assigned_at = now
    case.updated_at = now
    actions.log_action(
        session,
        action="assign_case",
        subject_id=case.subject_ids[0],
        case_id=case.id,
        decided_by=f"operator:{assigned_by}",
        reason=f"assigned to {operator_id}",
        now=now,
    )
    session.flush()
    return case


def case_to_resolve(session: Session, *, case_id: str, outcome: str, note: str) -> RiskCase:
    """The case, locked, for an analyst to resolve as ``outcome`` (confirmed fraud or legitimate)
    with ``note``; refused when either is invalid, the case unknown or already resolved."""
    if outcome not in OUTCOMES:
        raise ValidationFailed(f"outcome must be one of {', '.join(OUTCOMES)}.", field="outcome")
    if not 1 <= len(note.strip()) <= 2000:
        raise ValidationFailed("note must have 1 to 2000 characters.", field="note")
    case = RiskRepository(session).get_case(case_id, for_update=True)
    if case is None:
        raise NotFound("No such case.")
    if case.status == "resolved":
        raise CaseAlreadyResolved()
    return case


def order_ids_of(case: RiskCase) -> list[str]:
    """The orders the case covers: resolving it acts on and labels them all."""
    return list(case.evidence.get("order_ids", []))


def record_resolution(
    session: Session,
    *,
    case: RiskCase,
    outcome: str,
    note: str,
    resolved_by: str,
    now: datetime,
) -> None:
    """Close the case with the analyst's outcome and note (after its orders were acted on)."""
    case.status = "resolved"
    case.resolution = outcome
    case.note = note.strip()
    case.resolved_by = resolved_by
    case.resolved_at = now
    case.updated_at = now
    if case.assignee is None:
        case.assignee = resolved_by
        case.assigned_at = now
    actions.log_action(
        session,
        action=f"resolve_{outcome}",
        subject_id=case.subject_ids[0],
        case_id=case.id,
        decided_by=f"operator:{resolved_by}",
        reason=case.note,
        now=now,
    )
    session.flush()


def label_order(
    session: Session, *, case: RiskCase, order: Order, label: str, decided_by: str, now: datetime
) -> None:
    """Record the case's outcome for the order as its training label."""
    RiskRepository(session).upsert_label(
        RiskLabel(
            shopper_id=order.shopper_id,
            order_id=order.id,
            label=label,
            case_id=case.id,
            decided_by=decided_by,
            decided_at=now,
        )
    )


def watches_to_lift(session: Session, *, case: RiskCase) -> list[tuple[str, list[str]]]:
    """The merchants whose watch clearing the case may lift, each with the cleared cases whose
    watch that may be (this case first): a merchant this case put on watch, or that it is about,
    when nothing else keeps it suspected: no other case about it is open or was confirmed, and it
    is no confirmed fraudster."""
    repository = RiskRepository(session)
    merchant_ids = {
        action.subject_id
        for action in repository.actions_of_case(case.id)
        if action.action == "watch_merchant"
    }
    if case.case_type in ("merchant", "ring"):
        merchant_ids.update(subject for subject in case.subject_ids if subject.startswith("mer_"))
    liftable = []
    for merchant_id in sorted(merchant_ids):
        others = [
            other for other in repository.cases_about_merchant(merchant_id) if other.id != case.id
        ]
        # An open case has no resolution yet: it keeps the watch as a confirmed one does.
        if repository.is_known_fraud(merchant_id) or any(
            other.resolution != "legitimate" for other in others
        ):
            continue
        liftable.append((merchant_id, [case.id, *(other.id for other in others)]))
    return liftable


def implicated_merchants(case: RiskCase, *, order_merchant_ids: set[str]) -> set[str]:
    """The merchants a confirmed fraud in this case is also about: the merchant of a merchant case
    or the one a ring buys from, and in an order case the merchant whose own acts a monitor
    recorded (:data:`MERCHANT_IMPLICATING_MONITORS`). ``order_merchant_ids`` are the merchants of
    the case's orders, for signals recorded before monitors named the merchant."""
    if case.case_type in ("merchant", "ring"):
        return {subject for subject in case.subject_ids if subject.startswith("mer_")}
    implicated: set[str] = set()
    for signal in case.evidence.get("signals", []):
        evidence = signal.get("evidence") or {}
        if evidence.get("monitor") in MERCHANT_IMPLICATING_MONITORS:
            merchant_id = evidence.get("merchant_id")
            implicated.update([str(merchant_id)] if merchant_id else order_merchant_ids)
    return implicated


@dataclass(frozen=True)
class ConfirmedFraud:
    """Who a case confirmed as fraud is about and what becomes of each of its orders."""

    shoppers: list[str]  # their credit closes; remembered as known fraud
    merchants: list[str]  # implicated: on watch, remembered, paid orders clawed back
    held: set[tuple[str, str]]  # (merchant id, order id) the case already holds from settlement

    def verdict_on(self, order: Order) -> str:
        """decline (held at checkout), cancel (approved, not shipped), pay_merchant (shipped by a
        merchant that is not implicated) or keep_held (the implicated merchant's)."""
        if order.status in HELD_STATUSES:
            return "decline"
        if order.status == "approved":
            return "cancel"
        if order.merchant_id not in self.merchants:
            return "pay_merchant"
        return "keep_held"

    def is_held(self, order: Order) -> bool:
        return (order.merchant_id, order.id) in self.held


def confirmed_fraud(session: Session, *, case: RiskCase, orders: list[Order]) -> ConfirmedFraud:
    """What confirming the case as fraud is about (see :class:`ConfirmedFraud`). A merchant is a
    fraudster only when implicated (:func:`implicated_merchants`); otherwise it was the
    fraudster's victim and keeps its standing and its money."""
    shoppers = [subject for subject in case.subject_ids if subject.startswith("shp_")]
    if case.case_type == "order":
        # Buyers of a merchant's case may be its victims; an order case is about its buyer.
        shoppers += [order.shopper_id for order in orders]
    merchants = implicated_merchants(
        case, order_merchant_ids={order.merchant_id for order in orders}
    )
    return ConfirmedFraud(
        shoppers=list(dict.fromkeys(shoppers)),
        merchants=sorted(merchants),
        held=actions.settlement_holds_of_case(session, case_id=case.id),
    )


def record_verdict(
    session: Session, *, case: RiskCase, order: Order, verdict: str, decided_by: str, now: datetime
) -> None:
    """Log what confirming the fraud did to the order (after it was done) and label it fraud."""
    actions.log_action(
        session,
        action=verdict,
        subject_id=order.shopper_id,
        order_id=order.id,
        case_id=case.id,
        decided_by=decided_by,
        reason="the case was confirmed as fraud",
        now=now,
    )
    label_order(session, case=case, order=order, label="fraud", decided_by=decided_by, now=now)


def remember_fraudster(session: Session, *, subject_id: str, case: RiskCase, now: datetime) -> None:
    """A confirmed fraudster: later checkouts linked to it are caught."""
    RiskRepository(session).mark_known_fraud(
        KnownFraudSubject(subject_id=subject_id, case_id=case.id, confirmed_at=now)
    )


def case_view(case: RiskCase, *, with_evidence: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": case.id,
        "type": case.case_type,
        "status": case.status,
        "subject_ids": list(case.subject_ids),
        "amount_at_risk_minor": case.amount_at_risk_minor,
        "reason": case.reason,
        "opened_at": case.opened_at,
        "updated_at": case.updated_at,
        "assignee": case.assignee,
        "resolution": case.resolution,
        "resolved_by": case.resolved_by,
        "resolved_at": case.resolved_at,
    }
    if with_evidence:
        body["evidence"] = case.evidence
        body["note"] = case.note
    return body
