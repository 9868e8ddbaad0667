"""How the local sandbox rail signs what it sends: HMAC-SHA256 with the shared secret over
``timestamp.event_id.body``, in the ``Sandbox-Signature`` header (``v1=<hex>``). The same scheme
signs callbacks (sandbox → engine) and is checked by the engine's sandbox provider."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Sandbox-Signature"
TIMESTAMP_HEADER = "Sandbox-Timestamp"
EVENT_ID_HEADER = "Sandbox-Event-Id"


def signature(*, secret: str, timestamp: str, event_id: str, body: bytes) -> str:
    signed = f"{timestamp}.{event_id}.".encode() + body
    return "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signed_headers(*, secret: str, timestamp: str, event_id: str, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        EVENT_ID_HEADER: event_id,
        SIGNATURE_HEADER: signature(
            secret=secret, timestamp=timestamp, event_id=event_id, body=body
        ),
    }
