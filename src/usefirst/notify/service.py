"""Events, and their delivery as signed webhooks (Standard Webhooks) to merchants and platform."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx
from pydantic_core import to_jsonable_python
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from usefirst.kit.clock import system_now
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.db import Database
from usefirst.kit.ids import new_id
from usefirst.kit.logs import REQUEST_ID_HEADER, current_request_id, new_request_id
from usefirst.kit.models import Event
from usefirst.kit.outbox import queued_message
from usefirst.kit.settings import Settings
from usefirst.merchants.repository import MerchantRepository
from usefirst.merchants.webhooks import webhook_secret_of
from usefirst.notify.repository import EventRepository

WEBHOOK_TOPIC = "webhook"


def publish_event(
    session: Session,
    *,
    event_type: str,
    data: dict[str, Any],
    now: datetime,
    settings: Settings,
    merchant_id: str | None = None,
    shopper_id: str | None = None,
    one_statement: bool = False,
) -> str:
    """Record an event and queue its webhooks in the caller's transaction. ``one_statement``
    (a request publishing one event): on PostgreSQL the event and its messages are written at
    once by one statement; otherwise they are flushed with the unit of work, where many events
    of a batch (the daily sweep) share multi-row inserts."""
    event_id = new_id("event")
    messages = []
    if settings.platform_webhook_url and settings.platform_webhook_secret:
        messages.append(
            queued_message(
                topic=WEBHOOK_TOPIC,
                payload={"event_id": event_id, "destination": "platform"},
                now=now,
            )
        )
    if merchant_id is not None:
        merchant = MerchantRepository(session).get(merchant_id)
        if merchant is not None and merchant.webhook_url:
            messages.append(
                queued_message(
                    topic=WEBHOOK_TOPIC,
                    payload={
                        "event_id": event_id,
                        "destination": "merchant",
                        "merchant_id": merchant_id,
                    },
                    now=now,
                )
            )
    EventRepository(session).add_with_deliveries(
        {
            "id": event_id,
            "type": event_type,
            "merchant_id": merchant_id,
            "shopper_id": shopper_id,
            "data": to_jsonable_python(data),
            "created_at": now,
        },
        messages,
        one_statement=one_statement,
    )
    return event_id


def event_body(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "created_at": event.created_at.isoformat().replace("+00:00", "Z"),
        "data": event.data,
    }


def list_events(
    session: Session,
    *,
    merchant_id: str | None,
    event_type: str | None,
    starting_after: str | None,
    limit: int,
) -> list[Event]:
    return EventRepository(session).list(
        merchant_id=merchant_id, event_type=event_type, starting_after=starting_after, limit=limit
    )


class WebhookSender:
    """Outbox handler: POST one event to one destination, signed; raises unless 2xx."""

    def __init__(self, *, database: Database, settings: Settings, cipher: FieldCipher) -> None:
        self.database = database
        self.settings = settings
        self.cipher = cipher
        self.client = httpx.Client(timeout=settings.webhook_timeout_seconds)

    def __call__(self, payload: dict[str, Any]) -> None:
        with self.database.transaction(read_only=True) as session:
            event = EventRepository(session).get(payload["event_id"])
            if event is None:
                raise LookupError(f"event {payload['event_id']} is gone")
            if payload["destination"] == "platform":
                url = self.settings.platform_webhook_url
                secret = self.settings.platform_webhook_secret
            else:
                merchant = MerchantRepository(session).get(payload["merchant_id"])
                if merchant is None:
                    raise LookupError(f"merchant {payload['merchant_id']} is gone")
                url = merchant.webhook_url
                secret = webhook_secret_of(merchant, cipher=self.cipher)
            body = json.dumps(event_body(event), ensure_ascii=False)
            event_id = event.id
        # Receivers check the timestamp against their real clock, so this is wall time even when
        # a sandbox test clock has moved business time forward.
        sent_at = system_now()
        if not url or not secret:
            return  # destination removed its webhook after the event: nothing to deliver
        signature = Webhook(secret).sign(event_id, sent_at, body)
        response = self.client.post(
            url,
            content=body.encode("utf-8"),
            headers={
                "content-type": "application/json",
                "webhook-id": event_id,
                "webhook-timestamp": str(int(sent_at.timestamp())),
                "webhook-signature": signature,
                # The id of the request that caused the event, for the receiver's logs and ours.
                REQUEST_ID_HEADER: current_request_id() or new_request_id(),
            },
        )
        if not 200 <= response.status_code < 300:
            raise RuntimeError(f"{url} answered {response.status_code}")
