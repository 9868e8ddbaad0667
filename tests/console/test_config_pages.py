"""Editing the risk rules and the dunning ladder in the console (no browser): a bad document is
rejected with the line and reason of each problem and nothing changes; a good one shows its
changes and a backtest before it is saved; a save puts the new version in force for the next
checkout; a stale edit, a missing CSRF token and the wrong role change nothing."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select

from tests.console.test_risk_pages import csrf_of, no_model
from tests.console.test_sign_in import add_operator, sign_in
from tests.factories import checkout_body, create_merchant, enrol
from usefirst.collections.ladder import DEFAULT_LADDER_FILE
from usefirst.kit.models import ConfigVersion
from usefirst.risk import decision as risk_decision
from usefirst.risk import service as risk_service
from usefirst.risk.rules import DEFAULT_RULES_FILE
from usefirst.runtime import Runtime

DEFAULT_RULES = DEFAULT_RULES_FILE.read_text(encoding="utf-8")
BIG_ORDERS_RULE = """
[[rules]]
id = "big_orders"
when = "order_amount_minor >= 25000"
outcome = "review"
reason = "Orders of 250 yuan or more are checked by an analyst."
"""
NEW_RULES = DEFAULT_RULES.replace('version = "2026-12-07.3"', 'version = "ops-big-orders"') + (
    BIG_ORDERS_RULE
)
BAD_RULES = DEFAULT_RULES.replace("review_at = 70", "review_at = -1") + BIG_ORDERS_RULE.replace(
    "order_amount_minor >= 25000", "order_amount >= 25000"
)
HOSTILE = "<script>alert(1)</script>"
__all__ = ["no_model"]  # autouse: outcomes come from the rules alone


def version_count(runtime: Runtime) -> int:
    with runtime.work(read_only=True) as work:
        return int(work.session.scalar(select(func.count()).select_from(ConfigVersion)) or 0)


def rules_in_force(runtime: Runtime) -> str:
    with runtime.work(read_only=True) as work:
        return risk_decision.rule_set_of(work.session, runtime.settings).version


def checkout(
    client: TestClient, headers: dict[str, str], merchant: dict[str, Any]
) -> dict[str, Any]:
    shopper = enrol(client, headers)
    response = client.post(
        "/v1/checkouts",
        headers=headers,
        json=checkout_body(shopper["id"], merchant["id"], amount_minor=30_000),
    )
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()["order"]
    return order


def check_in_editor(client: TestClient, slug: str, content: str) -> Response:
    """Open the editor (for its CSRF token) and submit ``content`` to the check step."""
    editor = client.get(f"/console/config/{slug}?lang=en")
    assert editor.status_code == 200
    return client.post(
        f"/console/config/{slug}/check",
        data={"csrf_token": csrf_of(editor.text), "based_on": "0", "content": content},
    )


def problems_of(html: str) -> list[str]:
    section = html.split('id="problems"')[1].split("</section>")[0]
    return [
        unescape(re.sub(r"<[^>]+>", "", item)).strip()
        for item in re.findall(r"<li>(.*?)</li>", section, re.S)
    ]


def test_a_bad_rule_file_is_rejected_with_lines_and_reasons_and_nothing_changes(
    runtime: Runtime, client: TestClient
) -> None:
    add_operator(runtime, "analyst@example.com", "risk_analyst")
    sign_in(client, "analyst@example.com")
    editor = client.get("/console/config/rules?lang=en")
    assert editor.status_code == 200
    assert f"the file {DEFAULT_RULES_FILE} (no version saved in the console yet)" in editor.text
    assert 'href="/console/config/rules">Risk rules</a>' in editor.text  # the nav link
    # The file in force, escaped, ready to edit.
    assert "when = &#34;link_known_fraud &gt;= 1&#34;" in editor.text

    rejected = client.post(
        "/console/config/rules/check",
        data={"csrf_token": csrf_of(editor.text), "based_on": "0", "content": ""},
        files={"upload": ("my-rules.toml", BAD_RULES.encode(), "text/plain")},
    )
    assert rejected.status_code == 422
    bad_line = BAD_RULES.splitlines().index('when = "order_amount >= 25000"') + 1
    assert problems_of(rejected.text) == [
        "line 17: thresholds.review_at must be a positive integer",
        f"line {bad_line}: rule 'big_orders': condition unknown name 'order_amount' (column 1)",
    ]
    assert "The document was rejected; nothing was changed:" in rejected.text
    # The uploaded text comes back in the editor to be fixed.
    assert "order_amount &gt;= 25000" in rejected.text
    # Saving it directly (without the check) is refused the same way.
    refused = client.post(
        "/console/config/rules/save",
        data={"csrf_token": csrf_of(editor.text), "based_on": "0", "content": BAD_RULES},
    )
    assert refused.status_code == 422
    assert version_count(runtime) == 0
    assert rules_in_force(runtime) == "2026-12-07.3"

    not_text = client.post(
        "/console/config/rules/check",
        data={"csrf_token": csrf_of(editor.text), "based_on": "0", "content": ""},
        files={"upload": ("rules.toml", b"\xff\xfe\x00garbage", "application/octet-stream")},
    )
    assert not_text.status_code == 422
    assert "The file is not UTF-8 text." in not_text.text
    assert version_count(runtime) == 0


def test_a_rule_change_is_backtested_then_saved_and_decides_the_next_checkout(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    merchant = create_merchant(client, platform_headers)
    earlier = [checkout(client, platform_headers, merchant) for _ in range(3)]
    assert [order["status"] for order in earlier] == ["approved"] * 3
    add_operator(runtime, "analyst@example.com", "risk_analyst")
    sign_in(client, "analyst@example.com")
    preview = check_in_editor(client, "rules", NEW_RULES)
    assert preview.status_code == 200
    assert "The document is valid: ops-big-orders." in preview.text
    diff = preview.text.split('id="diff"')[1].split("</pre>")[0]
    assert '<span class="removed">-version = &#34;2026-12-07.3&#34;</span>' in diff
    assert '<span class="added">+id = &#34;big_orders&#34;</span>' in diff
    assert "The 3 checkout decisions stored in the last 90 days, replayed through" in preview.text
    assert "Orders whose outcome would change: 3 of 3" in preview.text
    transitions = preview.text.split('id="transitions"')[1].split("</table>")[0]
    assert re.findall(r"<td>(\w+)</td><td>(\w+)</td><td>(\d+)</td>", transitions) == [
        ("approved", "review", "3")
    ]
    for order in earlier:
        assert order["id"] in transitions
    hits = preview.text.split('id="rule-hits"')[1].split("</table>")[0]
    assert '<tr class="changed"><td>big_orders</td><td>0</td><td>3</td></tr>' in hits
    assert version_count(runtime) == 0  # nothing saved by the check

    saved = client.post(
        "/console/config/rules/save",
        data={
            "csrf_token": csrf_of(preview.text),
            "based_on": "0",
            "content": NEW_RULES.replace("\n", "\r\n"),  # as a browser's form sends it
            "note": f"hold big orders {HOSTILE}",
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == "/console/config/rules?saved=1"
    page = client.get("/console/config/rules?saved=1&lang=en")
    assert "Saved as version 1; it is in force now." in page.text
    assert re.search(r"In force:\s+version 1, saved by analyst@example.com at ", page.text)
    versions = page.text.split('id="versions"')[1].split("</table>")[0]
    assert "<td>1</td><td>ops-big-orders</td><td>analyst@example.com</td>" in versions
    assert "hold big orders &lt;script&gt;alert(1)&lt;/script&gt;" in versions
    assert HOSTILE not in page.text
    assert rules_in_force(runtime) == "ops-big-orders"

    after = checkout(client, platform_headers, merchant)
    assert after["status"] == "review"
    with runtime.work(read_only=True) as work:
        record = risk_service.get_decision(work.session, order_id=after["id"])
        assert record.rule_set_version == "ops-big-orders"
        assert [hit["id"] for hit in record.rule_hits] == ["big_orders"]

    # A second analyst's edit that started from the file (version 0) is refused.
    stale = client.post(
        "/console/config/rules/save",
        data={"csrf_token": csrf_of(page.text), "based_on": "0", "content": DEFAULT_RULES},
    )
    assert stale.status_code == 409
    assert "Version 1 was saved after this edit started from version 0" in stale.text
    assert version_count(runtime) == 1
    assert rules_in_force(runtime) == "ops-big-orders"


def test_ladder_editor_backtests_and_saves_for_compliance_only(
    runtime: Runtime, client: TestClient
) -> None:
    for email, role in (
        ("collector@example.com", "collector"),
        ("analyst@example.com", "risk_analyst"),
        ("compliance@example.com", "compliance"),
    ):
        add_operator(runtime, email, role)
    sign_in(client, "collector@example.com")
    assert client.get("/console/config/rules").status_code == 403
    assert client.get("/console/config/ladder").status_code == 403
    client.cookies.clear()
    sign_in(client, "analyst@example.com")
    assert client.get("/console/config/ladder").status_code == 403
    client.cookies.clear()
    sign_in(client, "compliance@example.com")
    assert client.get("/console/config/rules").status_code == 403
    later_call = DEFAULT_LADDER_FILE.read_text(encoding="utf-8").replace(
        'day = 7\naction = "call_queue"', 'day = 10\naction = "call_queue"'
    )
    preview = check_in_editor(client, "ladder", later_call)
    assert preview.status_code == 200
    assert "The document is valid: 10 steps, day -3 to 180." in preview.text
    totals = preview.text.split('id="ladder-totals"')[1].split("</table>")[0]
    assert "Into the call queue (instalments)" in totals
    steps = preview.text.split('id="ladder-steps"')[1].split("</table>")[0]
    assert "<tr><td>+10</td><td>call_queue</td><td>0</td></tr>" in steps

    # Without the session's CSRF token nothing is saved.
    forged = client.post(
        "/console/config/ladder/save",
        data={"csrf_token": "forged", "based_on": "0", "content": later_call},
    )
    assert forged.status_code == 403
    assert version_count(runtime) == 0

    saved = client.post(
        "/console/config/ladder/save",
        data={"csrf_token": csrf_of(preview.text), "based_on": "0", "content": later_call},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    assert version_count(runtime) == 1
    from usefirst.collections import service as collections_service

    with runtime.work(read_only=True) as work:
        ladder = collections_service.ladder_of(work.session, runtime.settings)
    assert ladder.action_day("call_queue") == 10


def test_the_rules_check_replays_the_last_90_days_only(
    runtime: Runtime, client: TestClient, platform_headers: dict[str, str]
) -> None:
    merchant = create_merchant(client, platform_headers)
    checkout(client, platform_headers, merchant)
    runtime.advance_test_clock(seconds=91 * 86_400)
    recent = checkout(client, platform_headers, merchant)
    add_operator(runtime, "analyst@example.com", "risk_analyst")
    sign_in(client, "analyst@example.com")
    preview = check_in_editor(client, "rules", NEW_RULES)
    assert "The 1 checkout decisions stored in the last 90 days" in preview.text
    transitions = preview.text.split('id="transitions"')[1].split("</table>")[0]
    assert re.findall(r"<td>(\w+)</td><td>(\w+)</td><td>(\d+)</td>", transitions) == [
        ("approved", "review", "1")
    ]
    assert recent["id"] in transitions


def test_rules_saved_in_the_console_need_a_new_version_and_a_condition_python_can_take(
    runtime: Runtime, client: TestClient
) -> None:
    add_operator(runtime, "analyst@example.com", "risk_analyst")
    sign_in(client, "analyst@example.com")
    token = csrf_of(client.get("/console/config/rules?lang=en").text)
    same_version = DEFAULT_RULES + BIG_ORDERS_RULE
    version_line = DEFAULT_RULES.splitlines().index('version = "2026-12-07.3"') + 1
    for action in ("check", "save"):
        refused = client.post(
            f"/console/config/rules/{action}",
            data={"csrf_token": token, "based_on": "0", "content": same_version},
        )
        assert refused.status_code == 422
        assert problems_of(refused.text) == [
            f"line {version_line}: version '2026-12-07.3' already names other content (the file "
            f"{DEFAULT_RULES_FILE}); a changed document needs a new version"
        ]
    hostile = NEW_RULES.replace("order_amount_minor >= 25000", "not " * 40 + "has_model")
    when_line = hostile.splitlines().index(f'when = "{"not " * 40}has_model"') + 1
    refused = client.post(
        "/console/config/rules/save",
        data={"csrf_token": token, "based_on": "0", "content": hostile},
    )
    assert refused.status_code == 422
    assert problems_of(refused.text) == [
        f"line {when_line}: rule 'big_orders': condition nests deeper than 32 levels (column 129)"
    ]
    assert version_count(runtime) == 0
    assert rules_in_force(runtime) == "2026-12-07.3"
