"""Risk's daily monitors and its link graph, with what they find carried out: risk finds and
decides (``usefirst.risk.monitors``, ``usefirst.risk.graph``); settlement holds, merchant watches
and credit freezes happen in their domains through ``usefirst.flows.risk_effects``.

The daily sweep runs the three jobs (each takes the session and the business day, as every job of
the sweep does); ``usefirst risk graph`` runs the graph on demand.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from usefirst.flows import risk_effects
from usefirst.kit.business_day import DailyContext
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.settings import Settings
from usefirst.risk import graph, monitors


def first_instalment_missed(session: Session, context: DailyContext) -> dict[str, int]:
    """Daily: orders whose first instalment is overdue with nothing paid open cases."""
    return monitors.first_instalment_missed(session, context, effects=risk_effects)


def merchant_drift(session: Session, context: DailyContext) -> dict[str, int]:
    """Daily: merchants whose pay-later book changed abruptly go on watch."""
    return monitors.merchant_drift(session, context, effects=risk_effects)


def nightly_graph(session: Session, context: DailyContext) -> dict[str, int]:
    """Daily (after collections, before settlement): one link-graph run per business date."""
    return graph.nightly_graph(session, context, effects=risk_effects)


def run_graph(
    session: Session, *, cipher: FieldCipher, settings: Settings, now: datetime
) -> graph.GraphRunSummary:
    """Run link analysis now: score groups of linked shoppers, open or update ring cases."""
    return graph.run_graph(session, cipher=cipher, settings=settings, now=now, effects=risk_effects)
