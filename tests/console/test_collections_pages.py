"""The collections queue in the console (no browser): the queue, an account's history, recording
outcomes, and the contact policy's refusal shown with its reason and nothing recorded."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import select

from tests.collections.dunning_env import open_env
from tests.console.test_sign_in import PASSWORD, sign_in
from usefirst.console import auth
from usefirst.identity.models import Operator
from usefirst.identity.service import create_operator

DUE = date(2027, 3, 9)  # a pay-after-delivery order bought on 2027-03-02


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def test_collector_works_the_queue(database_url: str, tmp_path: Path) -> None:
    with open_env(database_url, tmp_path) as env:
        shopper = env.enrol()
        order = env.buy(shopper["id"], 30_000)
        env.advance_to_day(DUE + timedelta(days=7))
        with env.runtime.work() as work:
            collector = work.session.scalar(
                select(Operator).where(Operator.email == "collector@example.com")
            )
            assert collector is not None
            auth.create_account(
                work.session,
                email="collector@example.com",
                password=PASSWORD,
                operator_id=collector.id,
                now=work.now,
            )
        sign_in(env.client, "collector@example.com")

        queue = env.client.get("/console/collections?lang=en")
        assert queue.status_code == 200
        assert f'href="/console/collections/{order["id"]}"' in queue.text
        assert "¥301.05" in queue.text  # 300.00 + 7 days of late fees at 0.15
        page = env.client.get(f"/console/collections/{order['id']}")
        assert '<strong id="days-past-due">7</strong>' in page.text

        promise_on = (DUE + timedelta(days=10)).isoformat()
        recorded = env.client.post(
            f"/console/collections/{order['id']}/calls",
            data={
                "csrf_token": csrf_of(page.text),
                "outcome": "promise_to_pay",
                "promise_on": promise_on,
                "promise_amount": "301.05",
                "note": "will pay on payday",
            },
            follow_redirects=False,
        )
        assert recorded.status_code == 303
        calls = [contact for contact in env.contacts(shopper["id"]) if contact["channel"] == "call"]
        assert [(c["outcome"], c["promise_on"], c["promise_minor"], c["note"]) for c in calls] == [
            ("promise_to_pay", promise_on, 30_105, "will pay on payday")
        ]

        # A second call the same day breaks the one-call-a-day rule: refused, with the reason.
        again = env.client.get(f"/console/collections/{order['id']}?lang=en")
        # Out of the queue while the promise holds, the account still shows what is overdue.
        assert '<strong id="overdue-amount">¥301.05</strong>' in again.text
        assert (
            f'href="/console/collections/{order["id"]}"'
            not in env.client.get("/console/collections").text
        )
        refused = env.client.post(
            f"/console/collections/{order['id']}/calls?lang=en",
            data={"csrf_token": csrf_of(again.text), "outcome": "reached"},
            follow_redirects=False,
        )
        assert refused.status_code == 409
        assert "The shopper was already called today." in refused.text
        assert [c["outcome"] for c in env.contacts(shopper["id"]) if c["channel"] == "call"] == [
            "promise_to_pay"
        ]

        # A malformed amount is refused before anything is tried.
        env.advance(days=1)
        page = env.client.get(f"/console/collections/{order['id']}?lang=en")
        bad = env.client.post(
            f"/console/collections/{order['id']}/calls?lang=en",
            data={
                "csrf_token": csrf_of(page.text),
                "outcome": "promise_to_pay",
                "promise_on": promise_on,
                "promise_amount": "12.345",
            },
        )
        assert bad.status_code == 409
        assert "The promised date or amount is not valid." in bad.text
        assert len([c for c in env.contacts(shopper["id"]) if c["channel"] == "call"]) == 1


def test_other_roles_cannot_open_collections(database_url: str, tmp_path: Path) -> None:
    with open_env(database_url, tmp_path) as env:
        with env.runtime.work() as work:
            analyst, _ = create_operator(
                work.session, email="analyst@example.com", role="risk_analyst", now=work.now
            )
            auth.create_account(
                work.session,
                email="analyst@example.com",
                password=PASSWORD,
                operator_id=analyst.id,
                now=work.now,
            )
        sign_in(env.client, "analyst@example.com")
        assert env.client.get("/console/collections").status_code == 403
        assert 'href="/console/collections"' not in env.client.get("/console/dashboard").text
