"""Cases analysts work: an order, a shopper, a merchant or a ring, with the evidence that opened
it. A new signal about a subject that already has an open case joins that case. Resolving a case
acts on its orders (a cleared held order proceeds, a confirmed one is declined or cancelled and
its credit released), records training labels and remembers confirmed fraudsters so later
checkouts linked to them are caught. A merchant counts as a fraudster only when the case is about
it or its own acts are in the evidence; otherwise it is the fraudster's victim."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic_core import to_jsonable_python
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from usefirst.kit.errors import Conflict, NotFound, ValidationFailed
from usefirst.kit.ids import new_id
from usefirst.kit.settings import Settings
from usefirst.risk import actions
from usefirst.risk.models import KnownFraudSubject, RiskCase, RiskLabel
from usefirst.risk.repository import RiskRepository

CaseType = Literal["order", "shopper", "merchant", "ring"]
CASE_TYPES = ("order", "shopper", "merchant", "ring")
CASE_STATUSES = ("open", "assigned", "resolved")
OUTCOMES = ("confirmed_fraud", "legitimate")
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


def _subject_key(case_type: str, subject_ids: list[str]) -> str:
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
    if case_type not in CASE_TYPES:
        raise ValueError(f"case_type must be one of {CASE_TYPES}")
    subjects = [subject for subject in dict.fromkeys(subject_ids) if subject]
    if not subjects:
        raise ValueError("a case needs at least one subject")
    if amount_at_risk_minor < 0:
        raise ValueError("amount_at_risk_minor must not be negative")
    repository = RiskRepository(session)
    key = _subject_key(case_type, subjects)
    signal = to_jsonable_python({"reason": reason, "observed_at": now, "evidence": evidence})
    order_ids = [str(order_id) for order_id in evidence.get("order_ids", [])]
    order_ids += [subject for subject in subjects if subject.startswith("ord_")]
    case = repository.open_case_for(key)
    if case is None:
        case = RiskCase(
            id=new_id("case"),
            case_type=case_type,
            status="open",
            subject_key=key,
            subject_ids=subjects,
            amount_at_risk_minor=amount_at_risk_minor,
            reason=reason[:500],
            evidence={"order_ids": list(dict.fromkeys(order_ids)), "signals": [signal]},
            opened_at=now,
            updated_at=now,
        )
        repository.add(case)
        session.flush()
        return case
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
    case.amount_at_risk_minor = max(case.amount_at_risk_minor, amount_at_risk_minor)
    case.updated_at = now
    session.flush()
    return case


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
    from usefirst.identity.repository import IdentityRepository

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


def resolve_case(
    session: Session,
    *,
    case_id: str,
    outcome: str,
    note: str,
    resolved_by: str,
    settings: Settings,
    now: datetime,
) -> RiskCase:
    """Close a case as confirmed fraud or legitimate and act on it.

    Legitimate: held orders proceed (approved), this case's settlement holds are released, and a
    watch this case put a merchant under is lifted unless something else keeps the merchant
    suspected (another open or confirmed case about it, or a confirmed fraud of its own).
    Confirmed fraud: orders not yet shipped are declined (held) or cancelled (approved) and
    their credit released; orders already shipped stay held from settlement; the shoppers'
    credit lines close and they are remembered as known fraud. A merchant is treated as a
    fraudster only when implicated (see :func:`implicated_merchants`): it goes on watch, is
    remembered as known fraud, and what it was already paid for the case's orders is clawed
    back. A merchant that was only the fraudster's victim keeps its standing and its money.
    Either way every order of the case becomes a training label."""
    if outcome not in OUTCOMES:
        raise ValidationFailed(f"outcome must be one of {', '.join(OUTCOMES)}.", field="outcome")
    note = note.strip()
    if not 1 <= len(note) <= 2000:
        raise ValidationFailed("note must have 1 to 2000 characters.", field="note")
    repository = RiskRepository(session)
    case = repository.get_case(case_id, for_update=True)
    if case is None:
        raise NotFound("No such case.")
    if case.status == "resolved":
        raise CaseAlreadyResolved()
    decided_by = f"operator:{resolved_by}"
    order_ids = list(case.evidence.get("order_ids", []))
    if outcome == "legitimate":
        _clear(session, case=case, order_ids=order_ids, decided_by=decided_by, settings=settings,
               now=now)  # fmt: skip
    else:
        _confirm(session, case=case, order_ids=order_ids, decided_by=decided_by,
                 settings=settings, now=now)  # fmt: skip
    case.status = "resolved"
    case.resolution = outcome
    case.note = note
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
        decided_by=decided_by,
        reason=note,
        now=now,
    )
    session.flush()
    return case


def _label(session: Session, *, shopper_id: str, order_id: str, label: str, case: RiskCase,
           decided_by: str, now: datetime) -> None:  # fmt: skip
    RiskRepository(session).upsert_label(
        RiskLabel(
            shopper_id=shopper_id,
            order_id=order_id,
            label=label,
            case_id=case.id,
            decided_by=decided_by,
            decided_at=now,
        )
    )


def _clear(
    session: Session,
    *,
    case: RiskCase,
    order_ids: list[str],
    decided_by: str,
    settings: Settings,
    now: datetime,
) -> None:
    # Orders call risk at checkout, so risk reaches orders lazily (no import cycle).
    from usefirst.flows import held_orders
    from usefirst.orders import service as order_service

    for order_id in order_ids:
        order = order_service.find_order(session, order_id=order_id)
        if order.status in ("review", "step_up"):
            held_orders.release_held_order(session, order_id=order.id, settings=settings, now=now)
            actions.log_action(
                session,
                action="approve",
                subject_id=order.shopper_id,
                order_id=order.id,
                case_id=case.id,
                decided_by=decided_by,
                reason="the case was cleared as legitimate",
                now=now,
            )
        _label(session, shopper_id=order.shopper_id, order_id=order.id, label="legitimate",
               case=case, decided_by=decided_by, now=now)  # fmt: skip
    repository = RiskRepository(session)
    case_actions = repository.actions_of_case(case.id)
    held = {
        (action.subject_id, action.order_id)
        for action in case_actions
        if action.action == "hold_settlement" and action.order_id is not None
    }
    for merchant_id, order_id in sorted(held):
        assert order_id is not None
        actions.release_settlement(
            session,
            merchant_id=merchant_id,
            order_id=order_id,
            case_id=case.id,
            decided_by=decided_by,
            now=now,
        )
    _lift_watches(session, case=case, decided_by=decided_by, now=now)
    actions.lift_shopper_freezes(session, case_id=case.id, decided_by=decided_by, now=now)


def _lift_watches(session: Session, *, case: RiskCase, decided_by: str, now: datetime) -> None:
    """A merchant this case put on watch, or that it is about, goes back to active when nothing
    else keeps it suspected: no other case about it is open or was confirmed, and it is no
    confirmed fraudster. Only a watch that one of its cleared cases placed is lifted."""
    repository = RiskRepository(session)
    merchant_ids = {
        action.subject_id
        for action in repository.actions_of_case(case.id)
        if action.action == "watch_merchant"
    }
    if case.case_type in ("merchant", "ring"):
        merchant_ids.update(subject for subject in case.subject_ids if subject.startswith("mer_"))
    for merchant_id in sorted(merchant_ids):
        others = [
            other for other in repository.cases_about_merchant(merchant_id) if other.id != case.id
        ]
        # An open case has no resolution yet: it keeps the watch as a confirmed one does.
        if repository.is_known_fraud(merchant_id) or any(
            other.resolution != "legitimate" for other in others
        ):
            continue
        actions.lift_merchant_watch(
            session,
            merchant_id=merchant_id,
            case_ids=[case.id, *(other.id for other in others)],
            reason=f"case {case.id} was cleared as legitimate",
            decided_by=decided_by,
            now=now,
        )


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


def _confirm(
    session: Session,
    *,
    case: RiskCase,
    order_ids: list[str],
    decided_by: str,
    settings: Settings,
    now: datetime,
) -> None:
    from usefirst.credit import service as credit_service
    from usefirst.flows import cancellation, held_orders
    from usefirst.orders import service as order_service

    repository = RiskRepository(session)
    shoppers = [subject for subject in case.subject_ids if subject.startswith("shp_")]
    orders = [order_service.find_order(session, order_id=order_id) for order_id in order_ids]
    merchants = sorted(
        implicated_merchants(case, order_merchant_ids={order.merchant_id for order in orders})
    )
    held = {
        (action.subject_id, action.order_id)
        for action in repository.actions_of_case(case.id)
        if action.action == "hold_settlement"
    }
    for order in orders:
        if case.case_type == "order":
            # Buyers of a merchant's case may be its victims; an order case is about its buyer.
            shoppers.append(order.shopper_id)
        if order.status in ("review", "step_up"):
            held_orders.decline_held_order(
                session,
                order_id=order.id,
                reason_code="confirmed_fraud",
                reason_message="A fraud investigation confirmed this order was not genuine.",
                settings=settings,
                now=now,
            )
            action = "decline"
        elif order.status == "approved":
            cancellation.cancel(
                session, order_id=order.id, merchant_id=None, settings=settings, now=now
            )
            action = "cancel"
        elif order.merchant_id not in merchants:
            # An honest merchant that shipped in good faith is paid for the goods: the unpaid debt
            # is the shopper's, in collections. A hold this case placed while it was open ends.
            action = "pay_merchant"
            if (order.merchant_id, order.id) in held:
                actions.release_settlement(
                    session,
                    merchant_id=order.merchant_id,
                    order_id=order.id,
                    case_id=case.id,
                    decided_by=decided_by,
                    now=now,
                    reason="the merchant is not implicated: it is paid for goods it shipped",
                )
        else:
            action = "keep_held"
            if order.status != "declined":
                actions.claw_back_paid_order(
                    session,
                    merchant_id=order.merchant_id,
                    order_id=order.id,
                    currency=order.currency,
                    case_id=case.id,
                    decided_by=decided_by,
                    now=now,
                )
            if (order.merchant_id, order.id) not in held and order.status != "declined":
                actions.hold_settlement(
                    session,
                    merchant_id=order.merchant_id,
                    order_id=order.id,
                    case_id=case.id,
                    reason="confirmed fraud: do not pay out this order",
                    decided_by=decided_by,
                    now=now,
                )
        actions.log_action(
            session,
            action=action,
            subject_id=order.shopper_id,
            order_id=order.id,
            case_id=case.id,
            decided_by=decided_by,
            reason="the case was confirmed as fraud",
            now=now,
        )
        _label(session, shopper_id=order.shopper_id, order_id=order.id, label="fraud",
               case=case, decided_by=decided_by, now=now)  # fmt: skip
    for shopper_id in dict.fromkeys(shoppers):
        repository.mark_known_fraud(
            KnownFraudSubject(subject_id=shopper_id, case_id=case.id, confirmed_at=now)
        )
        if credit_service.close_for_fraud(session, shopper_id=shopper_id, now=now):
            actions.log_action(
                session,
                action="close_credit",
                subject_id=shopper_id,
                case_id=case.id,
                decided_by=decided_by,
                reason="credit closed after confirmed fraud",
                now=now,
            )
    for merchant_id in merchants:
        repository.mark_known_fraud(
            KnownFraudSubject(subject_id=merchant_id, case_id=case.id, confirmed_at=now)
        )
        actions.put_merchant_on_watch(
            session,
            merchant_id=merchant_id,
            reason=f"confirmed fraud in case {case.id}",
            evidence=[case.id],
            decided_by=decided_by,
            case_id=case.id,
            now=now,
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
