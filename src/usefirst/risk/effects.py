"""The port through which risk's findings reach other domains.

At checkout, in its monitors and in the nightly link graph, risk decides that a merchant must not
be paid for an order while a case is open, that a merchant goes on watch, that a shopper's credit
is frozen while a case about them is open, or that a merchant is warned before it ships. Those are
other domains' changes (merchants, credit, notify), and risk calls no other domain's services: the
caller passes an implementation of :class:`RiskEffects`. The flows' implementation is the module
``usefirst.flows.risk_effects``: each of its functions carries one effect out in its domain and
records it in risk's action log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from usefirst.kit.settings import Settings
from usefirst.orders.models import Order


class RiskEffects(Protocol):
    def hold_settlement(
        self,
        session: Session,
        *,
        merchant_id: str,
        order_id: str,
        case_id: str,
        reason: str,
        decided_by: str,
        now: datetime,
    ) -> None:
        """Keep the merchant from being paid for the order while the case is open."""
        ...

    def put_merchant_on_watch(
        self,
        session: Session,
        *,
        merchant_id: str,
        reason: str,
        evidence: list[str],
        decided_by: str,
        case_id: str | None,
        now: datetime,
    ) -> bool:
        """Watch an active merchant; True when its standing changed."""
        ...

    def freeze_shopper_limit(
        self,
        session: Session,
        *,
        shopper_id: str,
        case_id: str,
        reason: str,
        decided_by: str,
        now: datetime,
    ) -> bool:
        """No new pay-later orders for the shopper while the case is open; True when this case
        placed its hold now."""
        ...

    def warn_merchant(
        self,
        session: Session,
        *,
        order: Order,
        case_id: str,
        warnings: list[str],
        settings: Settings,
        now: datetime,
    ) -> str:
        """Tell the merchant, before it ships, that an order is held and why; the event's id."""
        ...
