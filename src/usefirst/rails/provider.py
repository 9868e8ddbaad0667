"""What a payment rail is to the engine: one interface that every provider (the local sandbox,
WeChat Pay) implements, and the plain values that cross it.

A provider moves money; the engine decides what the money means. So nothing here posts to the
ledger: a charge's outcome reaches the books only through ``flows.auto_debit`` once the provider
has confirmed it (a verified callback or a query), never because a request was accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Literal, Protocol

ChargeState = Literal["processing", "succeeded", "failed"]
EventType = Literal["charge.succeeded", "charge.failed", "charge.reversed"]
StatementKind = Literal["charge", "refund", "reversal"]


class ProviderUnavailable(Exception):
    """The provider did not answer, or answered with a server error: try again later with the
    same idempotency key (the provider charges once per key)."""


class ProviderRefused(Exception):
    """The provider refused the request itself (bad request, unknown mandate): retrying the same
    request cannot succeed."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(f"{code}: {message}")


class CallbackRejected(Exception):
    """A callback that must not be believed: bad or missing signature, stale timestamp, a body
    that cannot be read. ``reason`` is a stable code recorded with the callback."""

    def __init__(self, reason: str, message: str = "") -> None:
        self.reason = reason
        super().__init__(message or reason)


@dataclass(frozen=True)
class Mandate:
    """The shopper's authorisation for the engine to charge them (a 委托代扣 contract, a card
    on file): the provider's id for it and whether it can be charged."""

    provider_mandate_id: str
    is_active: bool


@dataclass(frozen=True)
class ChargeRequest:
    mandate_id: str  # the provider's mandate id
    amount_minor: int
    currency: str
    reference: str  # our charge id: the provider echoes it in callbacks and statements
    idempotency_key: str
    description: str


@dataclass(frozen=True)
class ChargeStatus:
    provider_charge_id: str
    reference: str
    state: ChargeState
    amount_minor: int
    currency: str
    failure_code: str | None = None
    reversed_minor: int = 0


@dataclass(frozen=True)
class ProviderEvent:
    """A verified callback: the provider's event id (unique per event, so a replay is seen), what
    happened and to which charge."""

    event_id: str
    event_type: EventType
    provider_charge_id: str
    reference: str
    amount_minor: int
    currency: str
    failure_code: str | None = None


def settled_event(event_id: str, status: ChargeStatus) -> ProviderEvent:
    """The event a provider's verified notification of a settled charge stands for."""
    return ProviderEvent(
        event_id=event_id,
        event_type="charge.succeeded" if status.state == "succeeded" else "charge.failed",
        provider_charge_id=status.provider_charge_id,
        reference=status.reference,
        amount_minor=status.amount_minor,
        currency=status.currency,
        failure_code=status.failure_code,
    )


@dataclass(frozen=True)
class StatementLine:
    """One line of the provider's settlement statement for a day."""

    provider_charge_id: str
    reference: str
    kind: StatementKind
    amount_minor: int
    currency: str


class PaymentProvider(Protocol):
    """A payment rail. Every call has a timeout; every money-moving call carries an idempotency
    key, so a call retried after a timeout never moves money twice."""

    name: str
    # The payment method the engine records a confirmed charge under (repayment's methods).
    payment_method: str
    # The exact body a provider needs to read as "received" (Alipay sends a notification again
    # until the answer is the text ``success``); None: the engine's JSON outcome.
    callback_acknowledgement: str | None

    def authorise_mandate(
        self,
        *,
        shopper_reference: str,
        idempotency_key: str,
        provider_mandate_id: str | None = None,
    ) -> Mandate:
        """A mandate for the shopper: created by the provider, or (``provider_mandate_id``) one
        the shopper signed in the provider's own app, checked to be in force."""
        ...

    def revoke_mandate(self, *, mandate_id: str) -> Mandate: ...

    def charge(self, request: ChargeRequest) -> ChargeStatus:
        """Send a charge: ``processing`` until confirmed, or ``failed`` when the provider's
        verified answer is itself the decline (never ``succeeded``: success is confirmed by a
        callback or a query)."""
        ...

    def refund(
        self, *, provider_charge_id: str, amount_minor: int, idempotency_key: str
    ) -> str: ...

    def query(self, *, provider_charge_id: str) -> ChargeStatus: ...

    def parse_callback(self, *, headers: Mapping[str, str], body: bytes) -> ProviderEvent: ...

    def statement(self, *, on: date) -> list[StatementLine]: ...
