"""The local sandbox rail: a payment provider you run beside the engine (``usefirst rails
sandbox-provider``, started by ``./dev run``) that behaves like a real one over real HTTP.

- mandates are authorised and revoked;
- a charge is accepted at once (``processing``) and decided later, after a random delay; a
  configurable share is declined (``insufficient_funds``); the outcome is sent to the callback
  URL as a signed callback (and retried a few times if the engine does not answer 2xx); a
  configurable share of callbacks is lost, as happens with real providers;
- the same ``Idempotency-Key`` returns the same charge (a different body with it is a 409);
- charges can be queried, refunded and (a sandbox control) reversed as a chargeback;
- each business day's settled charges, refunds and reversals are downloadable as a statement.

Sandbox controls under ``/v1/sandbox/``: force the next outcomes, set the provider's business
date, reverse a charge. Nothing here is used by the engine's production path; it is the stand-in
for the world outside, speaking a protocol the engine's sandbox provider verifies.
"""

from __future__ import annotations

import hmac
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib import request as urllib_request
from urllib.error import URLError
from zoneinfo import ZoneInfo

from usefirst.rails.sandbox_signing import signed_headers

DECLINE_CODE = "insufficient_funds"


@dataclass
class SandboxConfig:
    secret: str
    callback_url: str | None = None
    decline_rate: float = 0.0
    lose_callback_rate: float = 0.0
    min_delay_seconds: float = 0.05
    max_delay_seconds: float = 0.5
    seed: int | None = None
    time_zone: str = "Asia/Shanghai"
    callback_attempts: int = 3


@dataclass
class _Charge:
    id: str
    mandate_id: str
    reference: str
    amount_minor: int
    currency: str
    fingerprint: str
    state: str = "processing"
    failure_code: str | None = None
    refunded_minor: int = 0
    reversed_minor: int = 0


@dataclass
class _State:
    mandates: dict[str, str] = field(default_factory=dict)  # id -> active | revoked
    mandate_keys: dict[str, str] = field(default_factory=dict)
    charges: dict[str, _Charge] = field(default_factory=dict)
    charge_keys: dict[str, str] = field(default_factory=dict)
    refund_keys: dict[str, str] = field(default_factory=dict)
    statements: dict[date, list[dict[str, Any]]] = field(default_factory=dict)
    forced_outcomes: list[str] = field(default_factory=list)
    business_on: date | None = None
    callbacks_sent: int = 0
    callbacks_lost: int = 0


class SandboxRail:
    """The provider's behaviour, independent of HTTP (the server below exposes it)."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.state = _State()
        self.lock = threading.Lock()
        self.random = random.Random(config.seed)
        self.timers: list[threading.Timer] = []

    def today(self) -> date:
        if self.state.business_on is not None:
            return self.state.business_on
        return datetime.now(UTC).astimezone(ZoneInfo(self.config.time_zone)).date()

    def authorise_mandate(self, key: str) -> dict[str, Any]:
        with self.lock:
            mandate_id = self.state.mandate_keys.get(key)
            if mandate_id is None:
                mandate_id = f"mdt_{uuid.uuid4().hex[:20]}"
                self.state.mandate_keys[key] = mandate_id
                self.state.mandates[mandate_id] = "active"
            return {"mandate_id": mandate_id, "status": self.state.mandates[mandate_id]}

    def revoke_mandate(self, mandate_id: str) -> dict[str, Any] | None:
        with self.lock:
            if mandate_id not in self.state.mandates:
                return None
            self.state.mandates[mandate_id] = "revoked"
            return {"mandate_id": mandate_id, "status": "revoked"}

    def charge(self, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        fingerprint = json.dumps(body, sort_keys=True)
        with self.lock:
            existing = self.state.charge_keys.get(key)
            if existing is not None:
                charge = self.state.charges[existing]
                if charge.fingerprint != fingerprint:
                    return 409, {"code": "idempotency_key_reused"}
                return 200, self._view(charge)
            mandate_state = self.state.mandates.get(str(body.get("mandate_id")))
            if mandate_state is None:
                return 404, {"code": "unknown_mandate"}
            amount = body.get("amount_minor")
            if not isinstance(amount, int) or amount <= 0:
                return 400, {"code": "invalid_amount"}
            charge = _Charge(
                id=f"ch_{uuid.uuid4().hex[:24]}",
                mandate_id=str(body["mandate_id"]),
                reference=str(body.get("reference", "")),
                amount_minor=amount,
                currency=str(body.get("currency", "CNY")),
                fingerprint=fingerprint,
            )
            self.state.charges[charge.id] = charge
            self.state.charge_keys[key] = charge.id
            if mandate_state != "active":
                outcome = "mandate_revoked"
            elif self.state.forced_outcomes:
                outcome = self.state.forced_outcomes.pop(0)
            else:
                outcome = (
                    "decline" if self.random.random() < self.config.decline_rate else "succeed"
                )
            delay = self.random.uniform(
                self.config.min_delay_seconds, self.config.max_delay_seconds
            )
        self._later(delay, lambda: self._decide(charge.id, outcome))
        return 202, self._view(charge)

    def _decide(self, charge_id: str, outcome: str) -> None:
        with self.lock:
            charge = self.state.charges[charge_id]
            if outcome in ("succeed", "lose_callback"):
                charge.state = "succeeded"
                self._statement_line(charge, "charge", charge.amount_minor)
            else:
                charge.state = "failed"
                charge.failure_code = DECLINE_CODE if outcome == "decline" else outcome
            event_type = "charge.succeeded" if charge.state == "succeeded" else "charge.failed"
            payload = self._event(charge, event_type, charge.amount_minor)
            # "lose_callback" (a forced outcome) succeeds and its callback never arrives.
            lose = outcome == "lose_callback" or (
                self.random.random() < self.config.lose_callback_rate
            )
        if lose:
            with self.lock:
                self.state.callbacks_lost += 1
            return
        self._send_callback(payload)

    def reverse(self, charge_id: str, amount_minor: int | None) -> dict[str, Any] | None:
        with self.lock:
            charge = self.state.charges.get(charge_id)
            if charge is None or charge.state != "succeeded":
                return None
            amount = amount_minor or charge.amount_minor - charge.reversed_minor
            charge.reversed_minor += amount
            self._statement_line(charge, "reversal", amount)
            payload = self._event(charge, "charge.reversed", amount)
        self._send_callback(payload)
        return self._view(charge)

    def refund(self, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            existing = self.state.refund_keys.get(key)
            if existing is not None:
                return 200, {"refund_id": existing}
            charge = self.state.charges.get(str(body.get("charge_id")))
            amount = body.get("amount_minor")
            if charge is None or charge.state != "succeeded":
                return 404, {"code": "unknown_charge"}
            if not isinstance(amount, int) or amount <= 0:
                return 400, {"code": "invalid_amount"}
            if amount > charge.amount_minor - charge.refunded_minor - charge.reversed_minor:
                return 400, {"code": "refund_exceeds_charge"}
            charge.refunded_minor += amount
            refund_id = f"rf_{uuid.uuid4().hex[:24]}"
            self.state.refund_keys[key] = refund_id
            self._statement_line(charge, "refund", amount)
            return 201, {"refund_id": refund_id}

    def query(self, charge_id: str) -> dict[str, Any] | None:
        with self.lock:
            charge = self.state.charges.get(charge_id)
            return None if charge is None else self._view(charge)

    def statement(self, on: date) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.state.statements.get(on, []))

    def _view(self, charge: _Charge) -> dict[str, Any]:
        return {
            "charge_id": charge.id,
            "reference": charge.reference,
            "status": charge.state,
            "amount_minor": charge.amount_minor,
            "currency": charge.currency,
            "failure_code": charge.failure_code,
            "reversed_minor": charge.reversed_minor,
        }

    def _statement_line(self, charge: _Charge, kind: str, amount_minor: int) -> None:
        self.state.statements.setdefault(self.today(), []).append(
            {
                "charge_id": charge.id,
                "reference": charge.reference,
                "type": kind,
                "amount_minor": amount_minor,
                "currency": charge.currency,
            }
        )

    def _event(self, charge: _Charge, event_type: str, amount_minor: int) -> dict[str, Any]:
        return {
            "id": f"evt_{uuid.uuid4().hex[:24]}",
            "type": event_type,
            "charge_id": charge.id,
            "reference": charge.reference,
            "amount_minor": amount_minor,
            "currency": charge.currency,
            "failure_code": charge.failure_code,
        }

    def _send_callback(self, payload: dict[str, Any]) -> None:
        url = self.config.callback_url
        if url is None:
            return
        body = json.dumps(payload).encode()
        headers = signed_headers(
            secret=self.config.secret,
            timestamp=str(int(time.time())),
            event_id=str(payload["id"]),
            body=body,
        )
        for attempt in range(self.config.callback_attempts):
            try:
                call = urllib_request.Request(url, data=body, headers=headers, method="POST")
                with urllib_request.urlopen(call, timeout=10) as response:
                    if 200 <= response.status < 300:
                        with self.lock:
                            self.state.callbacks_sent += 1
                        return
            except (URLError, OSError):
                pass
            time.sleep(0.2 * (attempt + 1))

    def _later(self, delay: float, action: Any) -> None:
        timer = threading.Timer(delay, action)
        timer.daemon = True
        self.timers.append(timer)
        timer.start()

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until every decided charge's callback has been sent (tests, demos)."""
        deadline = time.monotonic() + timeout
        for timer in list(self.timers):
            timer.join(max(deadline - time.monotonic(), 0))


class _Handler(BaseHTTPRequestHandler):
    rail: SandboxRail

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorised(self) -> bool:
        given = self.headers.get("Authorization", "")
        expected = f"Bearer {self.rail.config.secret}"
        if hmac.compare_digest(given.encode(), expected.encode()):
            return True
        self._reply(401, {"code": "unauthorised"})
        return False

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}

    def do_POST(self) -> None:
        if not self._authorised():
            return
        path = self.path.rstrip("/")
        body = self._body()
        key = self.headers.get("Idempotency-Key") or ""
        parts = path.split("/")
        if path == "/v1/mandates":
            if not key:
                self._reply(400, {"code": "idempotency_key_required"})
                return
            self._reply(201, self.rail.authorise_mandate(key))
        elif len(parts) == 5 and parts[1:3] == ["v1", "mandates"] and parts[4] == "revoke":
            revoked = self.rail.revoke_mandate(parts[3])
            self._reply(404, {"code": "unknown_mandate"}) if revoked is None else self._reply(
                200, revoked
            )
        elif path == "/v1/charges":
            if not key:
                self._reply(400, {"code": "idempotency_key_required"})
                return
            status, payload = self.rail.charge(key, body)
            self._reply(status, payload)
        elif path == "/v1/refunds":
            if not key:
                self._reply(400, {"code": "idempotency_key_required"})
                return
            status, payload = self.rail.refund(key, body)
            self._reply(status, payload)
        elif path == "/v1/sandbox/outcomes":
            outcomes = [str(item) for item in body.get("outcomes", [])]
            with self.rail.lock:
                self.rail.state.forced_outcomes.extend(outcomes)
            self._reply(200, {"queued": len(self.rail.state.forced_outcomes)})
        elif path == "/v1/sandbox/today":
            with self.rail.lock:
                self.rail.state.business_on = date.fromisoformat(str(body["on"]))
            self._reply(200, {"on": str(body["on"])})
        elif (
            len(parts) == 6
            and parts[1:4] == ["v1", "sandbox", "charges"]
            and parts[5] == ("reverse")
        ):
            amount = body.get("amount_minor")
            reversed_charge = self.rail.reverse(
                parts[4], amount if isinstance(amount, int) else None
            )
            if reversed_charge is None:
                self._reply(404, {"code": "unknown_charge"})
            else:
                self._reply(200, reversed_charge)
        else:
            self._reply(404, {"code": "not_found"})

    def do_GET(self) -> None:
        if not self._authorised():
            return
        parts = self.path.rstrip("/").split("/")
        if len(parts) == 4 and parts[1:3] == ["v1", "charges"]:
            charge = self.rail.query(parts[3])
            self._reply(404, {"code": "unknown_charge"}) if charge is None else self._reply(
                200, charge
            )
        elif len(parts) == 4 and parts[1:3] == ["v1", "statements"]:
            try:
                on = date.fromisoformat(parts[3])
            except ValueError:
                self._reply(400, {"code": "invalid_date"})
                return
            self._reply(200, {"date": on.isoformat(), "lines": self.rail.statement(on)})
        else:
            self._reply(404, {"code": "not_found"})


class SandboxRailServer:
    """The sandbox rail on a real HTTP port (0 picks a free one), served from a thread."""

    def __init__(self, config: SandboxConfig, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.rail = SandboxRail(config)
        handler = type("SandboxRailHandler", (_Handler,), {"rail": self.rail})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> SandboxRailServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for timer in self.rail.timers:
            timer.cancel()

    def serve_forever(self) -> None:
        self.server.serve_forever()
