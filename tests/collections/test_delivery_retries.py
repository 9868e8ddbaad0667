"""A reminder whose channel fails (the mail server or SMS gateway is down) is not lost: it is tried
again 30 and then 60 minutes later, the contact policy checked afresh each time, and logged as
failed only after the third try."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from tests.collections.dunning_env import (
    Env,
    RecordingHandler,
    free_port,
    open_env,
    parse_time,
)

DUE = date(2027, 3, 9)  # bought on 2027-03-02
SETTINGS = {"smtp_host": "127.0.0.1", "smtp_sender": "billing@example.com"}


def email_of(env: Env, shopper_id: str) -> dict[str, Any]:
    [email] = [c for c in env.contacts(shopper_id) if c["channel"] == "email"]
    return email


def test_a_failed_email_is_tried_again_and_sent_once_the_server_answers(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens here yet
    with open_env(database_url, tmp_path, smtp_port=port, **SETTINGS) as env:
        ann = env.enrol(email="ann@example.com")
        env.buy(ann["id"], 30_000)
        env.advance_to_day(DUE + timedelta(days=3), 9, 59)
        planned = email_of(env, ann["id"])
        first_try = parse_time(planned["scheduled_at"])
        assert first_try is not None and planned["status"] == "scheduled"

        env.advance_to(first_try)
        email = email_of(env, ann["id"])
        assert (email["status"], email["sent_at"]) == ("deferred", None)
        assert email["status_reason"].startswith("delivery_failed: ")
        assert parse_time(email["scheduled_at"]) == first_try + timedelta(minutes=30)

        env.advance_to(first_try + timedelta(minutes=30))
        email = email_of(env, ann["id"])
        assert (email["status"], email["sent_at"]) == ("deferred", None)
        assert parse_time(email["scheduled_at"]) == first_try + timedelta(minutes=90)

        mailbox = RecordingHandler()
        controller = Controller(mailbox, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            env.advance_to(first_try + timedelta(minutes=90))
        finally:
            controller.stop()
        email = email_of(env, ann["id"])
        assert (email["status"], email["status_reason"]) == ("sent", None)
        assert parse_time(email["sent_at"]) == first_try + timedelta(minutes=90)
        assert [message["To"] for message in mailbox.messages()] == ["ann@example.com"]


def test_an_email_that_fails_three_times_is_logged_as_failed(
    database_url: str, tmp_path: Path
) -> None:
    with open_env(database_url, tmp_path, smtp_port=free_port(), **SETTINGS) as env:
        bob = env.enrol(email="bob@example.com")
        env.buy(bob["id"], 30_000)
        env.advance_to_day(DUE + timedelta(days=3), 9, 59)
        first_try = parse_time(email_of(env, bob["id"])["scheduled_at"])
        assert first_try is not None

        env.advance_to(first_try + timedelta(minutes=90))
        email = email_of(env, bob["id"])
        assert email["status"] == "failed"
        assert parse_time(email["sent_at"]) == first_try + timedelta(minutes=90)
        assert not email["status_reason"].startswith("delivery_failed")  # the server's own error
        env.advance(days=1)
        assert email_of(env, bob["id"]) == email


def test_two_workers_at_once_still_send_at_most_three_contacts_a_day(
    database_url: str, tmp_path: Path
) -> None:
    """Each worker claims what it sends under the shopper's lock before sending: a second worker
    preparing the shopper's other reminders meanwhile sees them in the day's count."""
    from sqlalchemy import select

    from usefirst.collections.service import CONTACT_TOPIC
    from usefirst.kit.models import OutboxMessage

    with open_env(database_url, tmp_path) as env:
        cleo = env.enrol()
        env.buy(cleo["id"], 10_000)
        env.buy(cleo["id"], 20_000)
        env.advance_to_day(DUE - timedelta(days=1), 7)
        planned = [c for c in env.contacts(cleo["id"]) if c["step"] == "day_-1"]
        assert sorted(c["channel"] for c in planned) == ["push", "push", "sms", "sms"]
        with env.runtime.work(read_only=True) as work:
            payloads = [
                row.payload
                for row in work.session.scalars(
                    select(OutboxMessage)
                    .where(OutboxMessage.topic == CONTACT_TOPIC)
                    .where(OutboxMessage.delivered_at.is_(None))
                    .order_by(OutboxMessage.id)
                )
                if row.payload["attempt_id"] in {c["id"] for c in planned}
            ]
        assert len(payloads) == 4
        with env.runtime.work() as work:
            env.runtime.clock.set(work.session, parse_time(planned[0]["scheduled_at"]))
        deliverer = env.runtime.outbox_handlers()[CONTACT_TOPIC]
        # Every worker prepares before any has recorded what it sent.
        prepared = [deliverer._prepare(payload) for payload in payloads]  # type: ignore[attr-defined]
        assert sum(message is not None for message in prepared) == 3
        refused = [c for c in env.contacts(cleo["id"]) if c["status"] == "deferred"]
        assert [c["status_reason"] for c in refused] == ["daily_contact_limit"]
