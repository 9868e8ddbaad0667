"""Issue 3: the collector queue and calls over the API. Orders enter the queue on day +7, ranked by
overdue amount × days past due; calls obey quiet hours and one call a day; a promise to pay takes
the order out of the queue until its date, and a broken promise brings it back."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from tests.collections.dunning_env import Env, local_at, open_env, parse_time

X_DUE = date(2027, 3, 9)  # bought on 2027-03-02
Y_DUE = date(2027, 3, 11)  # bought on 2027-03-04


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert error.get("field") == field


def queue_entry(env: Env, order: dict[str, Any], shopper_id: str, due_on: date) -> dict[str, Any]:
    """What the queue should say of an order, from its statement."""
    overdue_minor = env.statement(shopper_id)["overdue_minor"]
    days = (env.today() - due_on).days
    return {
        "order_id": order["id"],
        "shopper_id": shopper_id,
        "overdue_minor": overdue_minor,
        "currency": "CNY",
        "days_past_due": days,
        "bucket": "1-30",
        "priority": overdue_minor * days,
    }


def test_queue_priority_calls_and_promises(database_url: str, tmp_path: Path) -> None:
    with open_env(database_url, tmp_path) as env:
        xena = env.enrol()
        yuri = env.enrol()
        zoe = env.enrol()
        x_order = env.buy(xena["id"], 30_000)
        env.advance(days=2)
        y_order = env.buy(yuri["id"], 50_000)

        env.advance_to_day(X_DUE + timedelta(days=6))
        assert env.queue() == []
        env.advance_to_day(X_DUE + timedelta(days=7))
        x_entry = queue_entry(env, x_order, xena["id"], X_DUE)
        assert x_entry["overdue_minor"] == 30_000 + 7 * 15
        assert env.queue() == [x_entry]

        # Two days later Yuri enters too and ranks first: 50 175 × 7 > 30 135 × 9.
        env.advance_to_day(Y_DUE + timedelta(days=7))
        y_entry = queue_entry(env, y_order, yuri["id"], Y_DUE)
        x_entry = queue_entry(env, x_order, xena["id"], X_DUE)
        assert (y_entry["priority"], x_entry["priority"]) == (50_175 * 7, 30_135 * 9)
        assert env.queue() == [y_entry, x_entry]
        limited = env.client.get(
            "/v1/collections/queue", headers=env.collector, params={"limit": 1}
        ).json()
        assert (limited["data"], limited["has_more"]) == ([y_entry], True)
        assert_error(
            env.client.get("/v1/collections/queue", headers=env.platform), 403, "forbidden"
        )

        # Calls: never in the quiet hours.
        today = env.today()
        env.advance_to_day(today, 22)
        before = env.contacts(xena["id"])
        assert_error(env.call(x_order["id"], outcome="no_answer"), 409, "contact_not_allowed")
        env.advance_to_day(today + timedelta(days=1), 7, 59)
        assert_error(env.call(x_order["id"], outcome="no_answer"), 409, "contact_not_allowed")
        assert env.contacts(xena["id"]) == before

        # One call a day per shopper.
        env.advance_to_day(today + timedelta(days=1), 10, 30)
        call = env.call(x_order["id"], outcome="no_answer", note="  rang twice  ")
        assert call.status_code == 201, call.text
        body = call.json()
        assert {
            key: body[key]
            for key in ("order_id", "seq", "channel", "step", "template", "status", "outcome")
        } == {
            "order_id": x_order["id"],
            "seq": 0,
            "channel": "call",
            "step": "collector_call",
            "template": None,
            "status": "sent",
            "outcome": "no_answer",
        }
        assert parse_time(body["sent_at"]) == local_at(today + timedelta(days=1), 10, 30)
        assert body["destination_masked"] == xena["phone_masked"]
        assert body["note"] == "rang twice"
        assert body["operator_id"] == env.collector_id
        assert env.contacts(xena["id"])[-1] == body
        assert_error(env.call(x_order["id"], outcome="reached"), 409, "contact_not_allowed")
        admin_call = env.client.post(
            f"/v1/collections/{x_order['id']}/contacts",
            headers=env.admin,
            json={"outcome": "reached"},
        )
        assert_error(admin_call, 409, "contact_not_allowed")  # the same shopper, still today
        assert [c["outcome"] for c in env.contacts(xena["id"]) if c["channel"] == "call"] == [
            "no_answer"
        ]
        # Another shopper may be called, by an admin too; an order not overdue may not.
        admin_call = env.client.post(
            f"/v1/collections/{y_order['id']}/contacts",
            headers=env.admin,
            json={"outcome": "refused"},
        )
        assert admin_call.status_code == 201, admin_call.text
        z_order = env.buy(zoe["id"], 10_000)  # delivered today: nothing is due yet
        assert_error(env.call(z_order["id"], outcome="reached"), 409, "contact_not_allowed")
        assert_error(
            env.client.post(
                f"/v1/collections/{x_order['id']}/contacts",
                headers=env.platform,
                json={"outcome": "reached"},
            ),
            403,
            "forbidden",
        )

        # Bad requests are 422 and record nothing.
        env.advance(days=1)
        today = env.today()
        calls_before = env.contacts(yuri["id"])
        for bad, field in (
            ({"outcome": "threatened"}, "outcome"),
            ({"outcome": "promise_to_pay", "promise_minor": 10_000}, "promise_on"),
            (
                {
                    "outcome": "promise_to_pay",
                    "promise_on": (today + timedelta(days=31)).isoformat(),
                    "promise_minor": 10_000,
                },
                "promise_on",
            ),
            (
                {
                    "outcome": "promise_to_pay",
                    "promise_on": (today - timedelta(days=1)).isoformat(),
                    "promise_minor": 10_000,
                },
                "promise_on",
            ),
            (
                {"outcome": "promise_to_pay", "promise_on": today.isoformat()},
                "promise_minor",
            ),
            (
                {
                    "outcome": "promise_to_pay",
                    "promise_on": today.isoformat(),
                    "promise_minor": 0,
                },
                "promise_minor",
            ),
            ({"outcome": "reached", "promise_on": today.isoformat()}, "outcome"),
            ({"outcome": "reached", "contacts": ["mum"]}, "contacts"),
        ):
            assert_error(env.call(y_order["id"], **bad), 422, "validation_error", field)
        assert env.contacts(yuri["id"]) == calls_before

        # Yuri promises 200 yuan by the day after tomorrow: out of the queue until then.
        promise_on = today + timedelta(days=2)
        promised = env.call(
            y_order["id"],
            outcome="promise_to_pay",
            promise_on=promise_on.isoformat(),
            promise_minor=20_000,
        )
        assert promised.status_code == 201, promised.text
        assert (promised.json()["promise_on"], promised.json()["promise_minor"]) == (
            promise_on.isoformat(),
            20_000,
        )
        for _ in range(3):
            assert [entry["order_id"] for entry in env.queue()] == [x_order["id"]]
            env.advance(days=1)
        # The promise date passed without the money: back in the queue, the promise broken.
        assert env.today() == promise_on + timedelta(days=1)
        y_entry = queue_entry(env, y_order, yuri["id"], Y_DUE)
        y_entry["promise"] = {
            "promise_on": promise_on.isoformat(),
            "promise_minor": 20_000,
            "paid_since_minor": 0,
            "status": "broken",
        }
        assert env.queue() == [y_entry, queue_entry(env, x_order, xena["id"], X_DUE)]

        # Xena promises 100 yuan and pays it: the promise is kept. She still owes the rest, so the
        # order stays in the queue.
        env.advance_to_day(env.today(), 11)
        kept_on = env.today() + timedelta(days=3)
        assert (
            env.call(
                x_order["id"],
                outcome="promise_to_pay",
                promise_on=kept_on.isoformat(),
                promise_minor=10_000,
            ).status_code
            == 201
        )
        assert [entry["order_id"] for entry in env.queue()] == [y_order["id"]]
        env.pay(xena["id"], 10_000)
        x_entry = queue_entry(env, x_order, xena["id"], X_DUE)
        x_entry["promise"] = {
            "promise_on": kept_on.isoformat(),
            "promise_minor": 10_000,
            "paid_since_minor": 10_000,
            "status": "kept",
        }
        assert x_entry["overdue_minor"] == 30_000 + 15 * x_entry["days_past_due"] - 10_000
        assert x_entry in env.queue()

        # Paid in full: out of the queue for good.
        env.pay(xena["id"], x_entry["overdue_minor"])
        assert [entry["order_id"] for entry in env.queue()] == [y_order["id"]]
        assert_error(env.call(x_order["id"], outcome="reached"), 409, "contact_not_allowed")
        env.assert_ledger_clean()


def test_a_number_reported_wrong_is_not_called_or_sent_sms_again(
    database_url: str, tmp_path: Path
) -> None:
    """Only the shopper may be contacted: once a collector reaches someone else on the phone on
    file, that number gets no SMS and no call; the other channels go on."""
    with open_env(database_url, tmp_path) as env:
        xena = env.enrol()
        x_order = env.buy(xena["id"], 30_000)
        env.advance_to_day(X_DUE + timedelta(days=7), 10)
        sms_before = len(env.sms_lines())
        call = env.call(x_order["id"], outcome="wrong_number", note="a stranger answered")
        assert call.status_code == 201, call.text

        env.advance_to_day(X_DUE + timedelta(days=15), 20)
        final = [c for c in env.contacts(xena["id"]) if c["step"] == "day_+15"]
        assert sorted((c["channel"], c["status"], c["status_reason"]) for c in final) == [
            ("email", "suppressed", "no_verified_email"),  # enrolled without an email
            ("sms", "suppressed", "phone_reported_wrong"),
        ]
        assert len(env.sms_lines()) == sms_before

        before = env.contacts(xena["id"])
        refused = env.call(x_order["id"], outcome="reached")
        assert_error(refused, 409, "contact_not_allowed")
        assert "wrong number" in refused.json()["error"]["message"]
        assert env.contacts(xena["id"]) == before
