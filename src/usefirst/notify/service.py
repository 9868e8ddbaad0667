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
from usefirst.kit.db import Database, Part
from usefirst.kit.errors import Conflict, NotFound, ValidationFailed
from usefirst.kit.ids import new_id
from usefirst.kit.logs import REQUEST_ID_HEADER, current_request_id, new_request_id
from usefirst.kit.models import Event
from usefirst.kit.outbox import enqueue, queued_message
from usefirst.kit.settings import Settings
from usefirst.merchants.repository import MerchantRepository
from usefirst.merchants.webhooks import check_destination, signing_secrets_of
from usefirst.notify.repository import EventRepository

WEBHOOK_TOPIC = "webhook"
# An event the shopper is also told about: the worker plans the notice from the event
# (flows/shopper_notices.py), so the request that caused it writes one more outbox row and
# nothing else.
NOTICE_TOPIC = "shopper_notice"


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
    tell_shopper: bool = False,
) -> str:
    """Record an event and queue its webhooks in the caller's transaction. ``one_statement``
    (a request publishing one event): on PostgreSQL the event and its messages are written at
    once by one statement; otherwise they are flushed with the unit of work, where many events
    of a batch (the daily sweep) share multi-row inserts. ``tell_shopper``: a message to the
    notice planner (``NOTICE_TOPIC``) goes with the webhooks."""
    merchant = MerchantRepository(session).get(merchant_id) if merchant_id is not None else None
    event, messages = _event_rows(
        event_type=event_type,
        data=data,
        now=now,
        settings=settings,
        merchant_id=merchant_id,
        shopper_id=shopper_id,
        merchant_webhook_url=merchant.webhook_url if merchant is not None else None,
        tell_shopper=tell_shopper,
    )
    EventRepository(session).add_with_deliveries(event, messages, one_statement=one_statement)
    return str(event["id"])


def insert_event(
    *,
    event_type: str,
    data: dict[str, Any],
    now: datetime,
    settings: Settings,
    merchant_id: str | None,
    shopper_id: str | None,
    merchant_webhook_url: str | None,
    tell_shopper: bool = False,
) -> list[Part]:
    """``publish_event`` as parts of a larger write (``kit.db.write_prepared``), for a caller
    that has read the merchant's webhook URL already."""
    event, messages = _event_rows(
        event_type=event_type,
        data=data,
        now=now,
        settings=settings,
        merchant_id=merchant_id,
        shopper_id=shopper_id,
        merchant_webhook_url=merchant_webhook_url,
        tell_shopper=tell_shopper,
    )
    return EventRepository.insert_parts(event, messages)


def _event_rows(
    *,
    event_type: str,
    data: dict[str, Any],
    now: datetime,
    settings: Settings,
    merchant_id: str | None,
    shopper_id: str | None,
    merchant_webhook_url: str | None,
    tell_shopper: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The event's row and its outbox messages' (one per webhook destination, and one to the
    notice planner when the shopper is told too)."""
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
    if merchant_id is not None and merchant_webhook_url:
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
    if tell_shopper:
        messages.append(queued_message(topic=NOTICE_TOPIC, payload={"event_id": event_id}, now=now))
    event = {
        "id": event_id,
        "type": event_type,
        "merchant_id": merchant_id,
        "shopper_id": shopper_id,
        "data": to_jsonable_python(data),
        "created_at": now,
    }
    return event, messages


WEBHOOK_DESTINATIONS = ("merchant", "platform")


def redeliver_event(
    session: Session,
    *,
    event_id: str,
    merchant_id: str | None,
    destinations: tuple[str, ...],
    settings: Settings,
    now: datetime,
) -> list[str]:
    """Queue the event's webhook once more to each of ``destinations`` that has an endpoint now;
    the receiver gets the same event id (``webhook-id``), so it can tell a redelivery from a new
    event. ``merchant_id`` scopes the look-up to one merchant's events (404 for another's).
    Returns the destinations queued; none at all is a 409."""
    event = EventRepository(session).get(event_id)
    if event is None or (merchant_id is not None and event.merchant_id != merchant_id):
        raise NotFound("No such event.")
    for destination in destinations:
        if destination not in WEBHOOK_DESTINATIONS:
            raise ValidationFailed("destination must be merchant or platform.", field="destination")
    queued: list[str] = []
    if "platform" in destinations and settings.platform_webhook_url:
        enqueue(
            session,
            topic=WEBHOOK_TOPIC,
            payload={"event_id": event.id, "destination": "platform", "redelivery": True},
            now=now,
            shard_key=event.shard_key,
        )
        queued.append("platform")
    if "merchant" in destinations and event.merchant_id is not None:
        merchant = MerchantRepository(session).get(event.merchant_id)
        if merchant is not None and merchant.webhook_url:
            enqueue(
                session,
                topic=WEBHOOK_TOPIC,
                payload={
                    "event_id": event.id,
                    "destination": "merchant",
                    "merchant_id": event.merchant_id,
                    "redelivery": True,
                },
                now=now,
                shard_key=event.shard_key,
            )
            queued.append("merchant")
    if not queued:
        raise Conflict("No webhook endpoint to redeliver this event to.", field="destination")
    return queued


def event_of(session: Session, *, event_id: str) -> Event | None:
    return EventRepository(session).get(event_id)


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
        # Receivers check the timestamp against their real clock, so this is wall time even when
        # a sandbox test clock has moved business time forward; so is the secrets' overlap.
        sent_at = system_now()
        with self.database.transaction(read_only=True) as session:
            event = EventRepository(session).get(payload["event_id"])
            if event is None:
                raise LookupError(f"event {payload['event_id']} is gone")
            is_guarded = False
            if payload["destination"] == "platform":
                url = self.settings.platform_webhook_url
                secret = self.settings.platform_webhook_secret
                signing_secrets = [secret] if secret else []
            else:
                merchant = MerchantRepository(session).get(payload["merchant_id"])
                if merchant is None:
                    raise LookupError(f"merchant {payload['merchant_id']} is gone")
                url = merchant.webhook_url
                signing_secrets = signing_secrets_of(merchant, cipher=self.cipher, now=sent_at)
                # A merchant's URL came through the API: guarded unless the operator allows it.
                is_guarded = not self.settings.webhook_allow_private_destinations
            body = json.dumps(event_body(event), ensure_ascii=False)
            event_id = event.id
        if not url or not signing_secrets:
            return  # destination removed its webhook after the event: nothing to deliver
        signature = " ".join(
            Webhook(secret).sign(event_id, sent_at, body) for secret in signing_secrets
        )
        headers = {
            "content-type": "application/json",
            "webhook-id": event_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": signature,
            # The id of the request that caused the event, for the receiver's logs and ours.
            REQUEST_ID_HEADER: current_request_id() or new_request_id(),
        }
        extensions: dict[str, Any] = {}
        if is_guarded:
            # Resolved again now, and the request goes to the very address checked: a name that
            # was public when the URL was set and points inward since (DNS rebinding) is refused.
            destination = check_destination(url)
            if url.startswith("https://"):
                extensions["sni_hostname"] = destination.host
            headers["host"] = destination.host_header()
            url = destination.connect_url()
        response = self.client.post(
            url, content=body.encode("utf-8"), headers=headers, extensions=extensions
        )
        if not 200 <= response.status_code < 300:
            raise RuntimeError(f"{url} answered {response.status_code}")
