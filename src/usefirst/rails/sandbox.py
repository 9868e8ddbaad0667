"""The engine's client for the local sandbox rail (``rails/sandbox_server.py``): the default
provider of ``./dev run``. It speaks that rail's HTTP protocol and verifies its signed callbacks
exactly as a real provider's would be verified (signature, freshness)."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

import httpx

from usefirst.kit.clock import system_now
from usefirst.rails.provider import (
    CallbackRejected,
    ChargeRequest,
    ChargeStatus,
    Mandate,
    ProviderEvent,
    ProviderRefused,
    ProviderUnavailable,
    StatementLine,
)
from usefirst.rails.sandbox_signing import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature,
)

# A callback older (or newer) than this by the wall clock is refused: a captured callback cannot
# be replayed later, and the event id stops a replay within the window.
CALLBACK_TOLERANCE_SECONDS = 300
EVENT_TYPES = ("charge.succeeded", "charge.failed", "charge.reversed")
STATEMENT_KINDS = ("charge", "refund", "reversal")


class SandboxProvider:
    name = "sandbox"
    payment_method = "bank_card"
    callback_acknowledgement: str | None = None

    def __init__(
        self,
        *,
        base_url: str,
        secret: str,
        timeout_seconds: float = 10.0,
        wall_clock: Callable[[], datetime] = system_now,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.timeout_seconds = timeout_seconds
        self.wall_clock = wall_clock

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.secret}"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        try:
            response = httpx.request(
                method,
                f"{self.base_url}{path}",
                json=body,
                headers=headers,
                timeout=self.timeout_seconds,
            )
        except httpx.HTTPError as error:
            raise ProviderUnavailable(f"sandbox rail: {error}") from error
        if response.status_code >= 500:
            raise ProviderUnavailable(f"sandbox rail answered {response.status_code}")
        payload = response.json()
        if response.status_code >= 400:
            raise ProviderRefused(str(payload.get("code", "refused")), response.text)
        return dict(payload)

    def authorise_mandate(
        self,
        *,
        shopper_reference: str,
        idempotency_key: str,
        provider_mandate_id: str | None = None,
    ) -> Mandate:
        # The sandbox creates its mandates itself; an id signed elsewhere means nothing to it.
        if provider_mandate_id is not None:
            raise ProviderRefused("unknown_mandate", "the sandbox rail creates its own mandates")
        payload = self._call(
            "POST",
            "/v1/mandates",
            body={"shopper_reference": shopper_reference},
            idempotency_key=idempotency_key,
        )
        return Mandate(
            provider_mandate_id=str(payload["mandate_id"]),
            is_active=payload["status"] == "active",
        )

    def revoke_mandate(self, *, mandate_id: str) -> Mandate:
        payload = self._call("POST", f"/v1/mandates/{mandate_id}/revoke")
        return Mandate(provider_mandate_id=mandate_id, is_active=payload["status"] == "active")

    def charge(self, request: ChargeRequest) -> ChargeStatus:
        payload = self._call(
            "POST",
            "/v1/charges",
            body={
                "mandate_id": request.mandate_id,
                "amount_minor": request.amount_minor,
                "currency": request.currency,
                "reference": request.reference,
                "description": request.description,
            },
            idempotency_key=request.idempotency_key,
        )
        return _status(payload)

    def refund(self, *, provider_charge_id: str, amount_minor: int, idempotency_key: str) -> str:
        payload = self._call(
            "POST",
            "/v1/refunds",
            body={"charge_id": provider_charge_id, "amount_minor": amount_minor},
            idempotency_key=idempotency_key,
        )
        return str(payload["refund_id"])

    def query(self, *, provider_charge_id: str) -> ChargeStatus:
        return _status(self._call("GET", f"/v1/charges/{provider_charge_id}"))

    def parse_callback(self, *, headers: Mapping[str, str], body: bytes) -> ProviderEvent:
        lowered = {key.lower(): value for key, value in headers.items()}
        timestamp = lowered.get(TIMESTAMP_HEADER.lower())
        event_id = lowered.get(EVENT_ID_HEADER.lower())
        given = lowered.get(SIGNATURE_HEADER.lower())
        if not (timestamp and event_id and given):
            raise CallbackRejected("signature_missing", "the callback is not signed")
        expected = signature(secret=self.secret, timestamp=timestamp, event_id=event_id, body=body)
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise CallbackRejected("signature_invalid", "the callback's signature does not match")
        try:
            sent_at = int(timestamp)
        except ValueError:
            raise CallbackRejected("timestamp_invalid") from None
        if abs(self.wall_clock().timestamp() - sent_at) > CALLBACK_TOLERANCE_SECONDS:
            raise CallbackRejected("timestamp_stale", "the callback is too old or from the future")
        try:
            payload = json.loads(body)
            event_type = str(payload["type"])
            if event_type not in EVENT_TYPES or str(payload["id"]) != event_id:
                raise CallbackRejected("body_invalid", "unknown event type or id")
            amount = payload["amount_minor"]
            if not isinstance(amount, int):
                raise CallbackRejected("body_invalid", "amount_minor is not an integer")
            return ProviderEvent(
                event_id=event_id,
                event_type=event_type,  # type: ignore[arg-type]
                provider_charge_id=str(payload["charge_id"]),
                reference=str(payload["reference"]),
                amount_minor=amount,
                currency=str(payload["currency"]),
                failure_code=payload.get("failure_code"),
            )
        except (KeyError, TypeError, ValueError):
            raise CallbackRejected("body_invalid", "the callback body cannot be read") from None

    def statement(self, *, on: date) -> list[StatementLine]:
        payload = self._call("GET", f"/v1/statements/{on.isoformat()}")
        lines = []
        for line in payload["lines"]:
            kind = str(line["type"])
            if kind not in STATEMENT_KINDS:
                raise ProviderRefused("statement_invalid", f"unknown line type {kind!r}")
            lines.append(
                StatementLine(
                    provider_charge_id=str(line["charge_id"]),
                    reference=str(line["reference"]),
                    kind=kind,  # type: ignore[arg-type]
                    amount_minor=int(line["amount_minor"]),
                    currency=str(line["currency"]),
                )
            )
        return lines


def _status(payload: dict[str, Any]) -> ChargeStatus:
    state = str(payload["status"])
    if state not in ("processing", "succeeded", "failed"):
        raise ProviderRefused("status_invalid", f"unknown charge status {state!r}")
    return ChargeStatus(
        provider_charge_id=str(payload["charge_id"]),
        reference=str(payload["reference"]),
        state=state,  # type: ignore[arg-type]
        amount_minor=int(payload["amount_minor"]),
        currency=str(payload["currency"]),
        failure_code=payload.get("failure_code"),
        reversed_minor=int(payload.get("reversed_minor") or 0),
    )
