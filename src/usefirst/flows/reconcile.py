"""Reconciliation: the ledger proves itself, then agrees with what repayment says is owed."""

from __future__ import annotations

from sqlalchemy.orm import Session

from usefirst.ledger import service as ledger_service
from usefirst.ledger.service import AuditReport
from usefirst.repayment import service as repayment_service


def audit(session: Session) -> AuditReport:
    """Prove the ledger: entries balance, debits = credits, receivables = statements."""
    report = ledger_service.audit_journal(session)
    receivables = ledger_service.receivables_by_shopper(session)
    statements = repayment_service.outstanding_by_shopper(session)
    for shopper_id in sorted(set(receivables) | set(statements)):
        ledger_amount = receivables.get(shopper_id, 0)
        statement_amount = statements.get(shopper_id, 0)
        report.shoppers_checked += 1
        if ledger_amount != statement_amount:
            report.problems.append(
                f"shopper {shopper_id}: receivable {ledger_amount} != statement {statement_amount}"
            )
    return report
