"""Reconciliation of a payment rail: the provider's statement of a day, line by line, against
what we posted.

- a charge line we posted as paid: matched;
- a charge line we have not posted (its callback was lost and no query settled it yet): posted
  now, once, through the payment waterfall (the statement is the provider's confirmation);
- a charge we posted that the statement of its day lacks: a break (``missing_on_provider``),
  flagged for an operator, never silently reversed;
- a line whose amount differs from our charge: a break (``amount_mismatch``), nothing posted;
- a line for a charge we do not know: a break (``unknown_charge``);
- a reversal (chargeback): the payment is undone (``flows.auto_debit.reverse_charge``) unless it
  was already; one that cannot be undone automatically is a break (``reversal_needs_review``);
- a refund line: matched when it is a refund we made, else a break (``unknown_refund``).

Running a date twice changes nothing the second time: posted charges match, breaks are found
once per line. The daily sweep asks for the previous day's statement (an outbox message, so the
provider is never called inside the sweep's transaction); ``usefirst reconcile`` runs one date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from usefirst.credit import service as credit_service
from usefirst.flows.auto_debit import RailWork, apply_provider_result
from usefirst.kit.clock import business_date
from usefirst.kit.settings import Settings
from usefirst.rails import service as rails_service
from usefirst.rails.models import RailCharge
from usefirst.rails.provider import PaymentProvider, StatementLine


@dataclass
class ReconciliationReport:
    provider: str
    statement_on: date
    lines: int = 0
    matched: int = 0
    posted: int = 0
    reversed: int = 0
    new_breaks: int = 0
    breaks: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "statement_on": self.statement_on.isoformat(),
            "lines": self.lines,
            "matched": self.matched,
            "posted": self.posted,
            "reversed": self.reversed,
            "new_breaks": self.new_breaks,
            "breaks": self.breaks,
        }


def _charge_of_line(
    session: Session, provider: PaymentProvider, line: StatementLine, known: dict[str, RailCharge]
) -> RailCharge | None:
    charge = known.get(line.provider_charge_id)
    if charge is not None:
        return charge
    charge = rails_service.charge_by_reference(
        session, provider=provider.name, reference=line.reference
    )
    if charge is None or (
        charge.provider_charge_id is not None
        and charge.provider_charge_id != line.provider_charge_id
    ):
        return None
    return charge


def reconcile_statement(
    session: Session,
    *,
    provider: PaymentProvider,
    statement_on: date,
    lines: list[StatementLine],
    settings: Settings,
    now: datetime,
) -> ReconciliationReport:
    report = ReconciliationReport(provider=provider.name, statement_on=statement_on)
    today = business_date(now, settings.time_zone)
    known = {
        str(charge.provider_charge_id): charge
        for charge in rails_service.charges_by_provider_ids(
            session,
            provider=provider.name,
            provider_ids=sorted({line.provider_charge_id for line in lines}),
        )
    }
    settled_here: set[str] = set()

    def flag(
        kind: str,
        line_key: str,
        *,
        charge: RailCharge | None = None,
        provider_charge_id: str | None = None,
        ours: int | None = None,
        theirs: int | None = None,
    ) -> None:
        _, is_new = rails_service.record_break(
            session,
            provider=provider.name,
            statement_on=statement_on,
            kind=kind,
            line_key=line_key,
            charge=charge,
            provider_charge_id=provider_charge_id,
            our_amount_minor=ours,
            their_amount_minor=theirs,
            now=now,
        )
        report.new_breaks += int(is_new)

    for line in lines:
        report.lines += 1
        line_key = f"{line.kind}:{line.provider_charge_id}"
        found = _charge_of_line(session, provider, line, known)
        if found is None:
            flag(
                "unknown_refund" if line.kind == "refund" else "unknown_charge",
                line_key,
                provider_charge_id=line.provider_charge_id,
                theirs=line.amount_minor,
            )
            continue
        if line.kind == "refund":
            # Refunds of a charge are not made by this engine yet: an operator looks at each.
            flag(
                "unknown_refund",
                line_key,
                charge=found,
                provider_charge_id=line.provider_charge_id,
                theirs=line.amount_minor,
            )
            continue
        credit_service.lock_credit_line(session, shopper_id=found.shopper_id)
        charge = rails_service.charge_of(
            session, shopper_id=found.shopper_id, charge_id=found.id, for_update=True
        )
        assert charge is not None
        if line.kind == "charge":
            settled_here.add(charge.id)
            if line.amount_minor != charge.amount_minor or line.currency != charge.currency:
                flag(
                    "amount_mismatch",
                    line_key,
                    charge=charge,
                    provider_charge_id=line.provider_charge_id,
                    ours=charge.amount_minor,
                    theirs=line.amount_minor,
                )
                continue
            if charge.status in ("succeeded", "reversed"):
                report.matched += 1
                continue
            outcome = apply_provider_result(
                session,
                charge=charge,
                state="succeeded",
                provider=provider,
                provider_charge_id=line.provider_charge_id,
                failure_code=None,
                source="statement",
                settings=settings,
                now=now,
            )
            report.posted += int(outcome.outcome == "posted")
        else:
            outcome = apply_provider_result(
                session,
                charge=charge,
                state="reversed",
                provider=provider,
                provider_charge_id=line.provider_charge_id,
                failure_code=None,
                source="statement",
                settings=settings,
                now=now,
                amount_minor=line.amount_minor,
            )
            if outcome.outcome == "duplicate":
                report.matched += 1
                continue
            if outcome.outcome == "rejected":
                flag(
                    "reversal_needs_review",
                    line_key,
                    charge=charge,
                    provider_charge_id=line.provider_charge_id,
                    ours=charge.amount_minor,
                    theirs=line.amount_minor,
                )
                continue
            report.reversed += 1
        rails_service.record_callback(
            session,
            provider=provider.name,
            outcome=outcome.outcome,
            reason=outcome.reason,
            source="statement",
            event_type=f"statement.{line.kind}",
            charge=charge,
            provider_charge_id=line.provider_charge_id,
            amount_minor=line.amount_minor,
            now=now,
        )
    for charge in rails_service.succeeded_on(session, provider=provider.name, on=statement_on):
        if charge.id not in settled_here:
            flag(
                "missing_on_provider",
                f"charge:{charge.id}",
                charge=charge,
                provider_charge_id=charge.provider_charge_id,
                ours=charge.amount_minor,
            )
    report.breaks = [
        rails_service.break_view(row, today=today)
        for row in rails_service.breaks(session, provider=provider.name)
        if row.statement_on == statement_on
    ]
    session.flush()
    return report


def reconcile_day(rail: RailWork, *, statement_on: date) -> ReconciliationReport:
    """Fetch the provider's statement of ``statement_on`` (no transaction open while it is
    fetched) and reconcile it in one transaction."""
    lines = rail.provider.statement(on=statement_on)
    with rail.database.transaction() as session:
        return reconcile_statement(
            session,
            provider=rail.provider,
            statement_on=statement_on,
            lines=lines,
            settings=rail.settings,
            now=rail.clock.now(session),
        )


class StatementReconciler:
    """The worker's handler of ``rails.reconcile`` (enqueued by the daily sweep for the day
    before): reconcile that day's statement."""

    def __init__(self, rail: RailWork) -> None:
        self.rail = rail

    def __call__(self, payload: dict[str, Any]) -> None:
        if payload.get("provider") != self.rail.provider.name:
            return
        reconcile_day(self.rail, statement_on=date.fromisoformat(str(payload["statement_on"])))


def break_report(
    session: Session, *, provider: str | None, today: date, include_resolved: bool = False
) -> list[dict[str, Any]]:
    """Every open break (resolved ones too when asked), oldest statement first, with its age."""
    return [
        rails_service.break_view(row, today=today)
        for row in rails_service.breaks(
            session, provider=provider, include_resolved=include_resolved
        )
    ]


def resolve_break(session: Session, *, break_id: str, today: date, now: datetime) -> dict[str, Any]:
    """An operator settled the break (outside the engine, or by a correcting entry)."""
    row = rails_service.resolve_break(session, break_id=break_id, now=now)
    return rails_service.break_view(row, today=today)
