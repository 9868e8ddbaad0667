"""The shopper's options in the console (no browser), on SQLite and PostgreSQL: the hardship queue
and a request answered with a plan; the order page's payoff quote, due-date extension, hardship
opening and auto-debit attempts; the shopper page's credit-balance refund; the reconciliation
breaks with their age. Each action: the exact values shown, the flow's result through the API,
forbidden roles refused, a bad input shown with nothing changed, a repeated form changing
nothing."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.collections.dunning_env import Env, dump_tables, open_env
from tests.console.test_collections_pages import csrf_of
from tests.console.test_console_forms import form_token_of
from tests.console.test_sign_in import PASSWORD, add_operator, sign_in
from tests.rails.rail_env import open_rail_env
from usefirst.api.app import create_app
from usefirst.console import auth
from usefirst.identity.models import Operator
from usefirst.privacy.models import AuditEntry
from usefirst.rails import service as rails_service

DUE = date(2027, 3, 9)  # a pay-after-delivery order bought on the start day, 2027-03-02
REPORTED_ON = DUE + timedelta(days=30)  # 30 days late: 30,000 + 450 of late fees
OWED = 30_450
ANSWER_DUE = REPORTED_ON + timedelta(days=21)  # 2027-04-29
TABLES = [
    "payments",
    "allocations",
    "journal_entries",
    "ledger_postings",
    "instalments",
    "credit_lines",
    "hardship_requests",
    "orders",
    "outbox_messages",
    "events",
    "contact_attempts",
    "rail_charges",
    "reconciliation_breaks",
]


def console_for(env: Env, email: str, role: str) -> TestClient:
    """A second browser: its own cookies, signed in as a new operator with ``role``."""
    add_operator(env.runtime, email, role)
    client = TestClient(create_app(env.runtime))
    sign_in(client, email)
    return client


def collector_console(env: Env) -> TestClient:
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
    client = TestClient(create_app(env.runtime))
    sign_in(client, "collector@example.com")
    return client


def form_of(page: Any, **fields: str) -> dict[str, str]:
    return {"csrf_token": csrf_of(page.text), "form_token": form_token_of(page.text), **fields}


def audit_count(env: Env) -> int:
    with env.runtime.work(read_only=True) as work:
        return int(work.session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def test_hardship_queue_and_a_plan_answered_in_the_console(
    database_url: str, tmp_path: Path
) -> None:
    with open_env(database_url, tmp_path) as env:
        shopper = env.enrol()
        order = env.buy(shopper["id"], 30_000)
        env.advance_to_day(REPORTED_ON)
        opened = env.client.post(
            f"/v1/orders/{order['id']}/hardship",
            headers={**env.platform, "Idempotency-Key": "hardship-1"},
            json={"reason": "lost my job in March"},
        )
        assert opened.status_code == 201, opened.text
        request_id = opened.json()["id"]
        console = collector_console(env)

        queue = console.get("/console/hardship?lang=en")
        assert queue.status_code == 200
        row = re.search(rf'<tr data-request="{request_id}">(.*?)</tr>', queue.text, re.S)
        assert row is not None
        cells = re.findall(r"<td>(.*?)</td>", row.group(1), re.S)
        assert cells[1] == f'<a href="/console/orders/{order["id"]}">{order["id"]}</a>'
        assert cells[3:] == [
            "the shopper (through the platform)",
            '<span class="badge badge-hardship_status badge-open">awaiting answer</span>',
            "¥304.50",
            "2027-04-08",
            "2027-04-29",
            "",
        ]
        # The menu and the dashboard count the request awaiting an answer.
        assert (
            '<strong id="hardship-waiting"><a href="/console/hardship">1</a></strong>'
            in console.get("/console/dashboard").text
        )
        assert re.search(
            r'href="/console/hardship">Hardship</a><span class="count"[^>]*>1<', queue.text
        )

        # A day past the answer deadline: the queue marks it late, first, by how many days.
        env.advance_to_day(ANSWER_DUE + timedelta(days=1))
        late = console.get("/console/hardship?overdue=on&lang=en")
        assert f'<tr data-request="{request_id}" class="overdue error">' in late.text
        assert "<strong>1 day late</strong>" in late.text
        assert "(1)" in late.text
        assert "(0)" in console.get("/console/hardship?status=plan").text

        path = f"/console/hardship/{request_id}"
        page = console.get(f"{path}?lang=en")
        assert '<strong id="owed-when-opened">¥304.50</strong>' in page.text
        assert '<strong id="owed-now">¥304.50</strong>' in page.text  # late fees held
        assert '<strong id="answer-due" class="error">2027-04-29 · answer overdue</strong>' in (
            page.text
        )
        assert '<dd id="hardship-reason">lost my job in March</dd>' in page.text

        # Bad input: shown with the reason, nothing changed.
        before = dump_tables(env.runtime, TABLES)
        for fields, status, message in (
            (
                {"decision": "plan", "plan_months": "13"},
                422,
                "plan_months must be between 1 and 12.",
            ),
            ({"decision": "plan", "plan_months": "x3"}, 422, "Enter the plan&#39;s months"),
            (
                {"decision": "settlement", "settlement_amount": "304.50"},
                422,
                "settlement_minor must be more than 0 and less than the 30450 the order owes.",
            ),
            ({"decision": "settlement", "settlement_amount": "1.234"}, 422, "at most two decimals"),
        ):
            refused = console.post(f"{path}/decision?lang=en", data=form_of(page, **fields))
            assert refused.status_code == status, fields
            assert message in refused.text, fields
            assert 'aria-invalid="true" aria-describedby="decision-error"' in refused.text
        zh = console.post(
            f"{path}/decision?lang=zh", data=form_of(page, decision="plan", plan_months="13")
        )
        assert (
            '<p class="error" role="alert" id="decision-error">计划月数须在 1 到 12 之间。</p>'
            in (zh.text)
        )
        assert dump_tables(env.runtime, TABLES) == before

        # Other roles may not open the queue nor answer.
        for role in ("risk_analyst", "compliance"):
            other = console_for(env, f"{role}@example.com", role)
            assert other.get("/console/hardship").status_code == 403
            assert other.get(path).status_code == 403
            other_page = other.get("/console/dashboard")
            refused = other.post(
                f"{path}/decision",
                data={"csrf_token": csrf_of(other_page.text), "decision": "declined"},
            )
            assert refused.status_code == 403
        # A forged form (no CSRF token) is refused.
        assert console.post(f"{path}/decision", data={"decision": "declined"}).status_code == 403
        assert dump_tables(env.runtime, TABLES) == before

        # A plan over three months: what the API gives, shown on the page.
        form = form_of(page, decision="plan", plan_months="3", note="three months")
        answered = console.post(f"{path}/decision", data=form, follow_redirects=False)
        assert answered.status_code == 303
        assert answered.headers["location"] == f"{path}?decided=1"
        [view] = env.client.get(f"/v1/orders/{order['id']}/hardship", headers=env.collector).json()[
            "data"
        ]
        assert (view["status"], view["plan_months"], view["plan_instalment_minor"]) == (
            "plan",
            3,
            10_150,
        )
        assert view["decision_note"] == "three months"
        decided = console.get(f"{path}?decided=1&lang=en")
        assert '<p class="ok" role="status" id="decided">' in decided.text
        assert '<dd id="plan-terms">3 months of about ¥101.50, fee-free</dd>' in decided.text
        assert 'id="decision-form"' not in decided.text
        plan_rows = re.findall(
            r'<tr data-seq="(\d)">\s*<td>\d</td>\s*<td>([^<]*)</td>', decided.text
        )
        assert plan_rows == [
            ("1", "2027-03-09"),
            ("2", "2027-05-30"),
            ("3", "2027-06-30"),
            ("4", "2027-07-30"),
        ]
        after = dump_tables(env.runtime, TABLES)
        # The same form again: nothing more is done, and the page says so.
        again = console.post(f"{path}/decision", data=form, follow_redirects=False)
        assert again.headers["location"] == f"{path}?repeated=1"
        assert dump_tables(env.runtime, TABLES) == after
        # A second answer (a fresh form) is refused: the request is no longer open.
        second = console.post(
            f"{path}/decision?lang=en",
            data={**form, "form_token": "another-form", "decision": "declined"},
        )
        assert second.status_code == 409
        assert "This hardship request is not awaiting an answer." in second.text
        assert dump_tables(env.runtime, TABLES) == after
        assert len(env.events("hardship.decided")) == 1
        # An unknown request is the console's 404 page.
        assert console.get("/console/hardship/hdr_nope").status_code == 404


def test_order_page_quote_extension_and_opening_hardship(database_url: str, tmp_path: Path) -> None:
    with open_env(database_url, tmp_path) as env:
        shopper = env.enrol(phone="+8613700001111")
        order = env.buy(shopper["id"], 60_000, plan="instalments_3")
        support = console_for(env, "support@example.com", "support")
        audited = audit_count(env)

        found = support.get("/console/orders?q=13700001111&lang=en")
        assert f'<a href="/console/orders/{order["id"]}">{order["id"]}</a>' in found.text
        assert "(1)" in found.text
        path = f"/console/orders/{order['id']}"
        page = support.get(f"{path}?lang=en")
        assert page.status_code == 200
        quote = env.client.get(f"/v1/orders/{order['id']}/payoff-quote", headers=env.platform)
        body = quote.json()
        fees = [row["fees_minor"] for row in order["instalments"]]
        assert body["plan_fees_rebated_minor"] == sum(fees) > 0
        for element, minor in (
            ("quote-principal", 60_000),
            ("quote-late-fees", 0),
            ("quote-fees-earned", 0),
            ("quote-fees-rebated", sum(fees)),
        ):
            assert f'<td id="{element}">¥{minor / 100:,.2f}</td>' in page.text, element
        assert '<strong id="quote-total">¥600.00</strong>' in page.text
        assert body["payoff_minor"] == 60_000
        assert '<p id="quote-valid">Valid on 2027-03-02 only.</p>' in page.text
        # The shopper is shown masked only: no unmasked read, nothing audited.
        masked = env.client.get(f"/v1/shoppers/{shopper['id']}", headers=env.platform).json()
        assert (
            f'<strong id="shopper-name"><a href="/console/shoppers/{shopper["id"]}">'
            f"{masked['name_masked']}</a></strong> <span>{masked['phone_masked']}</span>"
        ) in page.text
        assert "13700001111" not in page.text
        assert audit_count(env) == audited

        # The extension: a bad number of days is refused with the flow's reason, nothing changed.
        first_due = date.fromisoformat(order["instalments"][0]["due_on"])
        before = dump_tables(env.runtime, TABLES)
        for days, message in (
            ("11", "days must be between 1 and 10."),
            ("x", "Choose an instalment and enter a whole number of days."),
        ):
            refused = support.post(
                f"{path}/extension?lang=en", data=form_of(page, seq="1", days=days)
            )
            assert refused.status_code == 422
            assert f'<p class="error" role="alert" id="extension-error">{message}</p>' in (
                refused.text
            )
            assert 'value="' + days + '" aria-invalid="true"' in refused.text
        assert dump_tables(env.runtime, TABLES) == before
        # A collector sees the order, its hardship and charges, but neither quote nor extension.
        collector = collector_console(env)
        seen = collector.get(f"{path}?lang=en")
        assert seen.status_code == 200
        assert 'id="payoff-quote"' not in seen.text
        assert 'id="extension-form"' not in seen.text
        assert 'id="hardship-form"' in seen.text
        assert (
            collector.post(f"{path}/extension", data=form_of(seen, seq="1", days="5")).status_code
            == 403
        )
        assert collector.get(f"/console/shoppers/{shopper['id']}").status_code == 403
        for role in ("risk_analyst", "compliance"):
            other = console_for(env, f"{role}@example.com", role)
            assert other.get(path).status_code == 403
            assert other.get("/console/orders").status_code == 403
        assert dump_tables(env.runtime, TABLES) == before

        form = form_of(page, seq="1", days="10")
        moved = support.post(f"{path}/extension", data=form, follow_redirects=False)
        assert moved.status_code == 303
        assert moved.headers["location"] == f"{path}?extended=1"
        new_due = first_due + timedelta(days=10)
        assert env.order(order["id"])["instalments"][0]["due_on"] == new_due.isoformat()
        shown = support.get(f"{path}?extended=1&lang=en")
        assert (
            f'<td>{new_due.isoformat()} <span class="muted">(extended by 10 days)</span></td>'
            in (shown.text)
        )
        assert '<p class="muted" id="extension-used">' in shown.text
        after = dump_tables(env.runtime, TABLES)
        repeat = support.post(f"{path}/extension", data=form, follow_redirects=False)
        assert repeat.headers["location"] == f"{path}?repeated=1"
        assert dump_tables(env.runtime, TABLES) == after
        twice = support.post(
            f"{path}/extension?lang=en", data={**form, "form_token": "another-form"}
        )
        assert twice.status_code == 409
        assert "This order&#39;s due date was already extended once." in twice.text
        assert dump_tables(env.runtime, TABLES) == after
        assert len(env.events("order.due_date_extended")) == 1

        # Opening a hardship request for the shopper: a reason is needed.
        empty = support.post(f"{path}/hardship?lang=en", data=form_of(shown, reason="  "))
        assert empty.status_code == 422
        assert '<p class="error" role="alert" id="hardship-error">Write the reason' in empty.text
        assert dump_tables(env.runtime, TABLES) == after
        form = form_of(shown, reason="在医院住院两周")
        opened = support.post(f"{path}/hardship", data=form, follow_redirects=False)
        assert opened.status_code == 303
        [view] = env.client.get(f"/v1/orders/{order['id']}/hardship", headers=env.collector).json()[
            "data"
        ]
        assert opened.headers["location"] == f"/console/hardship/{view['id']}?opened=1"
        assert (view["opened_by"], view["reason"], view["status"]) == (
            "operator",
            "在医院住院两周",
            "open",
        )
        [requested] = env.events("hardship.requested")
        assert requested["data"]["id"] == view["id"]
        held = dump_tables(env.runtime, TABLES)
        repeat = support.post(f"{path}/hardship", data=form, follow_redirects=False)
        assert repeat.headers["location"] == f"/console/hardship/{view['id']}?repeated=1"
        refused = support.post(
            f"{path}/hardship?lang=zh", data={**form, "form_token": "another-form"}
        )
        assert refused.status_code == 409
        assert "该订单已有一项救济申请正在处理或计划执行中。" in refused.text
        assert dump_tables(env.runtime, TABLES) == held
        holding = support.get(f"{path}?lang=en")
        assert f'<a href="/console/hardship/{view["id"]}">{view["id"]}</a></p>' in holding.text
        assert 'id="hardship-form"' not in holding.text
        assert audit_count(env) == audited


def test_shopper_page_refunds_the_credit_balance(database_url: str, tmp_path: Path) -> None:
    with open_env(database_url, tmp_path) as env:
        shopper = env.enrol()
        order = env.buy(shopper["id"], 10_000)
        env.pay(shopper["id"], 10_000, order["id"])
        env.pay(shopper["id"], 2_500)  # beyond what was owed: held as credit
        support = console_for(env, "support@example.com", "support")
        path = f"/console/shoppers/{shopper['id']}"
        page = support.get(f"{path}?lang=en")
        assert '<strong id="credit-held">¥25.00</strong>' in page.text
        assert "Refund ¥25.00" in page.text
        assert f'<a href="/console/orders/{order["id"]}">' in page.text

        # No provider is configured: a refund through it is refused, nothing changed.
        before = dump_tables(env.runtime, TABLES)
        refused = support.post(
            f"{path}/credit-balance/refund?lang=en", data=form_of(page, via="provider")
        )
        assert refused.status_code == 409
        assert "No charge through the payment provider is large enough" in refused.text
        assert 'value="provider" checked' in refused.text
        assert dump_tables(env.runtime, TABLES) == before
        # Collectors and analysts may not refund (nor see the page).
        collector = collector_console(env)
        assert collector.get(path).status_code == 403
        other = collector.get("/console/dashboard")
        assert (
            collector.post(
                f"{path}/credit-balance/refund",
                data={"csrf_token": csrf_of(other.text), "via": "platform"},
            ).status_code
            == 403
        )
        assert dump_tables(env.runtime, TABLES) == before

        form = form_of(page, via="platform", external_ref="bank-transfer-77")
        done = support.post(f"{path}/credit-balance/refund", data=form, follow_redirects=False)
        assert done.status_code == 303
        assert done.headers["location"] == f"{path}?refunded=1"
        [event] = env.events("credit_balance.refunded")
        assert {key: event["data"][key] for key in ("refunded_minor", "via", "external_ref")} == {
            "refunded_minor": 2_500,
            "via": "platform",
            "external_ref": "bank-transfer-77",
        }
        after = dump_tables(env.runtime, TABLES)
        repeat = support.post(f"{path}/credit-balance/refund", data=form, follow_redirects=False)
        assert repeat.headers["location"] == f"{path}?repeated=1"
        assert dump_tables(env.runtime, TABLES) == after
        shown = support.get(f"{path}?refunded=1&lang=en")
        assert '<strong id="credit-held">¥0.00</strong>' in shown.text
        assert '<p id="nothing-held">' in shown.text
        nothing = support.post(
            f"{path}/credit-balance/refund?lang=zh",
            data={**form, "form_token": "another-form"},
        )
        assert nothing.status_code == 409
        assert "平台未保管该顾客的多付款。" in nothing.text
        assert dump_tables(env.runtime, TABLES) == after
        assert len(env.events("credit_balance.refunded")) == 1
        env.assert_ledger_clean()


def test_order_page_shows_auto_debit_attempts_and_callbacks(
    database_url: str, tmp_path: Path
) -> None:
    with open_rail_env(database_url, tmp_path) as rail_env:
        env = rail_env.env
        shopper = env.enrol()
        rail_env.mandate(shopper["id"])
        order = env.buy(shopper["id"], 15_000)
        rail_env.force("decline")
        env.advance_to_day(DUE, hour=10, minute=5)
        rail_env.send_charges()
        [charge] = rail_env.charges(order["id"])
        assert (charge["status"], charge["failure_code"]) == ("failed", "insufficient_funds")
        [callback] = charge["callbacks"]
        console = collector_console(env)
        page = console.get(f"/console/orders/{order['id']}?lang=en")
        row = re.search(rf'<tr data-charge="{charge["id"]}">(.*?)</tr>', page.text, re.S)
        assert row is not None
        cells = [
            re.sub(r"\s+", " ", cell).strip()
            for cell in re.findall(r"<td>(.*?)</td>", row.group(1), re.S)
        ]
        assert cells[1:] == [
            "1",
            "1",
            "2027-03-09",
            "¥150.00",
            '<span class="badge badge-charge_status badge-failed">failed</span>',
            "Declined by the provider: <code>insufficient_funds</code><br>"
            "Confirmed by the provider&#39;s callback",
            charge["next_attempt_on"],
        ]
        assert charge["next_attempt_on"] == "2027-03-10"
        assert f'<tr class="callback" data-callback="{callback["id"]}">' in page.text
        assert '<span class="badge badge-callback_outcome badge-recorded">recorded</span>' in (
            page.text
        )
        zh = console.get(f"/console/orders/{order['id']}?lang=zh")
        assert '<span class="badge badge-charge_status badge-failed">扣款失败</span>' in zh.text


def test_reconciliation_breaks_with_their_age(database_url: str, tmp_path: Path) -> None:
    with open_env(database_url, tmp_path) as env:
        with env.runtime.work() as work:
            row, _ = rails_service.record_break(
                work.session,
                provider="sandbox",
                statement_on=work.today - timedelta(days=3),
                kind="amount_mismatch",
                line_key="sbx_ch_1",
                provider_charge_id="sbx_ch_1",
                our_amount_minor=15_000,
                their_amount_minor=14_000,
                now=work.now,
            )
            break_id = row.id
        admin = console_for(env, "admin-console@example.com", "admin")
        page = admin.get("/console/reconciliation?lang=en")
        found = re.search(rf'<tr data-break="{break_id}">(.*?)</tr>', page.text, re.S)
        assert found is not None
        cells = re.findall(r"<td[^>]*>(.*?)</td>", found.group(1), re.S)
        assert cells[1:9] == [
            "sandbox rail",
            "2027-02-27",
            "3 days",
            "amounts differ",
            '<br><span class="muted">sbx_ch_1</span>',
            "¥150.00",
            "¥140.00",
            "<strong>open</strong>",
        ]
        assert '<p id="open-breaks">1 open break</p>' in page.text
        # The menu has no room for it: the admin's dashboard counts the open breaks and links.
        assert (
            '<strong id="open-breaks"><a href="/console/reconciliation">1 open break</a></strong>'
            in admin.get("/console/dashboard?lang=en").text
        )
        for role in ("support", "collector"):
            other = (
                collector_console(env)
                if role == "collector"
                else console_for(env, "support@example.com", role)
            )
            assert other.get("/console/reconciliation").status_code == 403
            dashboard = other.get("/console/dashboard")
            assert (
                other.post(
                    f"/console/reconciliation/{break_id}/resolve",
                    data={"csrf_token": csrf_of(dashboard.text)},
                ).status_code
                == 403
            )
        before = dump_tables(env.runtime, TABLES)
        missing = admin.post("/console/reconciliation/brk_nope/resolve", data=form_of(page))
        assert missing.status_code == 404
        assert dump_tables(env.runtime, TABLES) == before
        form = {
            "csrf_token": csrf_of(page.text),
            "form_token": re.findall(r'name="form_token" value="([^"]+)"', page.text)[0],
        }
        done = admin.post(
            f"/console/reconciliation/{break_id}/resolve", data=form, follow_redirects=False
        )
        assert done.headers["location"] == "/console/reconciliation?resolved_one=1"
        [view] = env.client.get(
            "/v1/rails/reconciliation/breaks?include_resolved=true", headers=env.admin
        ).json()["data"]
        assert view["resolved_at"] is not None
        after = dump_tables(env.runtime, TABLES)
        repeat = admin.post(
            f"/console/reconciliation/{break_id}/resolve", data=form, follow_redirects=False
        )
        assert repeat.headers["location"] == "/console/reconciliation?repeated=1"
        assert dump_tables(env.runtime, TABLES) == after
        assert (
            '<p id="open-breaks">0 open breaks</p>'
            in admin.get("/console/reconciliation?lang=en").text
        )
        resolved = admin.get("/console/reconciliation?resolved=on&lang=en")
        assert f'<tr data-break="{break_id}">' in resolved.text
        assert "resolved 2027-03-02" in resolved.text
