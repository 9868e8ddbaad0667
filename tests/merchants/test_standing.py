"""Merchant standing over the API: watch, suspension (no checkout, no payout), fines in the
ledger, appeals filed by the merchant and decided by an admin, and who may do what."""

from __future__ import annotations

from typing import Any

from tests.factories import bearer
from tests.merchants.settlement_env import Env, open_env
from usefirst.merchants.standing import StandingConflict, change_standing

EVIDENCE = ["https://console.example/cases/cas_1", "https://files.example/ev/sha256-ab12"]


def set_status(env: Env, merchant_id: str, status: str, headers: dict[str, str]) -> Any:
    return env.client.post(
        f"/v1/merchants/{merchant_id}/standing",
        headers=headers,
        json={"status": status, "reason": f"moved to {status}", "evidence": EVIDENCE},
    )


def standing(env: Env, merchant_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = env.client.get(f"/v1/merchants/{merchant_id}/standing", headers=headers or env.admin)
    assert response.status_code == 200, response.text
    return dict(response.json())


def fine(env: Env, merchant_id: str, amount_minor: int, key: str) -> Any:
    return env.client.post(
        f"/v1/merchants/{merchant_id}/fines",
        headers={**env.admin, "Idempotency-Key": key},
        json={
            "amount_minor": amount_minor,
            "reason": "complicit in cash-out",
            "evidence": EVIDENCE,
        },
    )


def test_standing_changes_carry_reason_evidence_and_decider(database_url: str) -> None:
    with open_env(database_url) as env:
        merchant = env.merchant()
        merchant_id = merchant["id"]
        watched = set_status(env, merchant_id, "on_watch", env.analyst)
        assert watched.status_code == 201, watched.text
        change = watched.json()["change"]
        assert {k: change[k] for k in ("from_status", "to_status", "reason", "evidence")} == {
            "from_status": "active",
            "to_status": "on_watch",
            "reason": "moved to on_watch",
            "evidence": EVIDENCE,
        }
        assert change["decided_by"].startswith("operator:op_")
        # The same status again records nothing.
        again = set_status(env, merchant_id, "on_watch", env.admin)
        assert again.status_code == 200 and again.json()["change"] is None
        assert set_status(env, merchant_id, "banned", env.admin).status_code == 201

        history = standing(env, merchant_id)
        assert history["status"] == "banned"
        assert [(c["from_status"], c["to_status"]) for c in history["changes"]] == [
            ("active", "on_watch"),
            ("on_watch", "banned"),
        ]
        assert (
            env.client.get(f"/v1/merchants/{merchant_id}", headers=env.platform).json()["status"]
            == "banned"
        )
        # A ban is lifted only by granting an appeal, even by an admin.
        lifted = set_status(env, merchant_id, "active", env.admin)
        assert lifted.status_code == 409
        assert lifted.json()["error"]["code"] == "standing_conflict"
        with env.runtime.work() as work:
            try:
                change_standing(
                    work.session,
                    merchant_id=merchant_id,
                    status="active",
                    reason="monitor cleared",
                    evidence=[],
                    decided_by="risk:monitor",
                    now=work.now,
                )
            except StandingConflict:
                pass
            else:
                raise AssertionError("a ban must not be lifted outside an appeal")
        assert len(standing(env, merchant_id)["changes"]) == 2
        assert len(env.events("merchant.standing_changed")) == 2


def test_suspension_declines_checkout_and_reinstatement_allows_it(database_url: str) -> None:
    with open_env(database_url) as env:
        merchant = env.merchant()
        assert set_status(env, merchant["id"], "suspended", env.analyst).status_code == 201
        declined = env.checkout(merchant, 10_000)
        assert declined["decision"]["outcome"] == "declined"
        assert declined["order"]["status"] == "declined"
        assert [r["code"] for r in declined["decision"]["reasons"]] == ["merchant_not_accepting"]
        credit = env.client.get(
            f"/v1/shoppers/{declined['order']['shopper_id']}/credit", headers=env.platform
        ).json()
        assert credit["available_minor"] == credit["limit_minor"]  # nothing reserved
        assert set_status(env, merchant["id"], "on_watch", env.admin).status_code == 201
        assert env.checkout(merchant, 10_000)["decision"]["outcome"] == "approved"


def test_fines_are_posted_in_the_ledger_once_per_key(database_url: str) -> None:
    with open_env(database_url) as env:
        merchant_id = env.merchant()["id"]
        first = fine(env, merchant_id, 2_500, "fine-a")
        assert first.status_code == 201, first.text
        body = first.json()
        assert (body["amount_minor"], body["currency"], body["status"]) == (2_500, "CNY", "posted")
        assert body["evidence"] == EVIDENCE
        replay = fine(env, merchant_id, 2_500, "fine-a")
        assert replay.status_code == 201
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json() == body
        reused = fine(env, merchant_id, 3_000, "fine-a")
        assert reused.status_code == 409
        balances = env.account_balances()
        assert balances[f"merchant_payable:{merchant_id}:CNY"] == 2_500  # the merchant owes it
        assert balances["merchant_penalty_income::CNY"] == -2_500
        assert env.balance(merchant_id)["payable_minor"] == -2_500
        assert len(standing(env, merchant_id)["fines"]) == 1


def test_invalid_fines_change_nothing(database_url: str) -> None:
    with open_env(database_url) as env:
        merchant = env.merchant()
        merchant_id = merchant["id"]
        cases = [
            (env.admin, {"amount_minor": 0, "reason": "x", "evidence": EVIDENCE}, 422),
            (env.admin, {"amount_minor": 100, "reason": "x", "evidence": []}, 422),
            (env.admin, {"amount_minor": 100, "reason": " ", "evidence": EVIDENCE}, 422),
            (env.admin, {"amount_minor": 100, "currency": "XXX", "reason": "x",
                         "evidence": EVIDENCE}, 422),
            (env.analyst, {"amount_minor": 100, "reason": "x", "evidence": EVIDENCE}, 403),
            (env.platform, {"amount_minor": 100, "reason": "x", "evidence": EVIDENCE}, 403),
            (bearer(merchant["api_key"]), {"amount_minor": 100, "reason": "x",
                                           "evidence": EVIDENCE}, 403),
        ]  # fmt: skip
        for headers, body, status in cases:
            response = env.client.post(
                f"/v1/merchants/{merchant_id}/fines", headers=headers, json=body
            )
            assert response.status_code == status, (body, response.text)
        missing = env.client.post(
            "/v1/merchants/mer_missing/fines",
            headers=env.admin,
            json={"amount_minor": 100, "reason": "x", "evidence": EVIDENCE},
        )
        assert missing.status_code == 404
        assert env.account_balances() == {}
        assert standing(env, merchant_id)["fines"] == []


def test_appeal_against_a_suspension_is_granted_and_restores_standing(database_url: str) -> None:
    with open_env(database_url) as env:
        merchant = env.merchant()
        merchant_id, own = merchant["id"], bearer(merchant["api_key"])
        set_status(env, merchant_id, "on_watch", env.analyst)
        suspended = set_status(env, merchant_id, "suspended", env.analyst).json()["change"]

        filed = env.client.post(
            f"/v1/merchants/{merchant_id}/appeals",
            headers=own,
            json={
                "subject_id": suspended["id"],
                "grounds": "The parcels were collected by the buyers themselves.",
                "evidence": ["https://files.example/pickup-log.pdf"],
            },
        )
        assert filed.status_code == 201, filed.text
        appeal = filed.json()
        assert (appeal["status"], appeal["subject_type"], appeal["filed_by"]) == (
            "open",
            "standing_change",
            f"merchant:{merchant_id}",
        )
        duplicate = env.client.post(
            f"/v1/merchants/{merchant_id}/appeals",
            headers=own,
            json={"subject_id": suspended["id"], "grounds": "again"},
        )
        assert duplicate.status_code == 409
        assert duplicate.json()["error"]["code"] == "appeal_conflict"

        # Only an admin decides; the merchant cannot decide its own appeal.
        decide_path = f"/v1/merchants/{merchant_id}/appeals/{appeal['id']}/decide"
        decision = {"outcome": "granted", "note": "pickup log checks out"}
        assert env.client.post(decide_path, headers=own, json=decision).status_code == 403
        assert env.client.post(decide_path, headers=env.analyst, json=decision).status_code == 403
        granted = env.client.post(decide_path, headers=env.admin, json=decision)
        assert granted.status_code == 200, granted.text
        assert granted.json()["status"] == "granted"
        assert granted.json()["decided_by"] == f"operator:{env.admin_id}"
        again = env.client.post(decide_path, headers=env.admin, json=decision)
        assert again.status_code == 409

        history = standing(env, merchant_id, own)
        assert history["status"] == "on_watch"  # what the suspension replaced
        last = history["changes"][-1]
        assert (last["from_status"], last["to_status"], last["appeal_id"]) == (
            "suspended",
            "on_watch",
            appeal["id"],
        )
        assert last["evidence"] == ["https://files.example/pickup-log.pdf"]
        assert [a["status"] for a in history["appeals"]] == ["granted"]
        # The earlier change is history now: it cannot be appealed.
        stale = env.client.post(
            f"/v1/merchants/{merchant_id}/appeals",
            headers=own,
            json={"subject_id": history["changes"][0]["id"], "grounds": "and this one"},
        )
        assert stale.status_code == 409


def test_a_ban_is_lifted_by_a_granted_appeal(database_url: str) -> None:
    with open_env(database_url) as env:
        merchant = env.merchant()
        merchant_id, own = merchant["id"], bearer(merchant["api_key"])
        banned = set_status(env, merchant_id, "banned", env.admin).json()["change"]
        appeal = env.client.post(
            f"/v1/merchants/{merchant_id}/appeals",
            headers=own,
            json={"subject_id": banned["id"], "grounds": "Wrong merchant: a shared address."},
        ).json()
        decided = env.client.post(
            f"/v1/merchants/{merchant_id}/appeals/{appeal['id']}/decide",
            headers=env.admin,
            json={"outcome": "granted", "note": "address belongs to a logistics hub"},
        )
        assert decided.status_code == 200, decided.text
        assert standing(env, merchant_id)["status"] == "active"


def test_fine_appeals_reverse_the_fine_when_granted_and_keep_it_when_denied(
    database_url: str,
) -> None:
    with open_env(database_url) as env:
        merchant = env.merchant()
        merchant_id, own = merchant["id"], bearer(merchant["api_key"])
        kept = fine(env, merchant_id, 1_000, "fine-kept").json()
        reversed_fine = fine(env, merchant_id, 4_000, "fine-reversed").json()

        def appeal_and_decide(fine_id: str, outcome: str) -> dict[str, Any]:
            appeal = env.client.post(
                f"/v1/merchants/{merchant_id}/appeals",
                headers=own,
                json={"subject_id": fine_id, "grounds": "we did nothing wrong"},
            ).json()
            response = env.client.post(
                f"/v1/merchants/{merchant_id}/appeals/{appeal['id']}/decide",
                headers=env.admin,
                json={"outcome": outcome, "note": "reviewed"},
            )
            assert response.status_code == 200, response.text
            return dict(response.json())

        assert appeal_and_decide(kept["id"], "denied")["status"] == "denied"
        assert appeal_and_decide(reversed_fine["id"], "granted")["status"] == "granted"
        fines = {f["id"]: f for f in standing(env, merchant_id)["fines"]}
        assert fines[kept["id"]]["status"] == "posted"
        assert fines[reversed_fine["id"]]["status"] == "reversed"
        assert fines[reversed_fine["id"]]["reversal_entry_id"].startswith("je_")
        balances = env.account_balances()
        assert balances[f"merchant_payable:{merchant_id}:CNY"] == 1_000
        assert balances["merchant_penalty_income::CNY"] == -1_000
        # A reversed fine has nothing left to appeal.
        again = env.client.post(
            f"/v1/merchants/{merchant_id}/appeals",
            headers=own,
            json={"subject_id": reversed_fine["id"], "grounds": "once more"},
        )
        assert again.status_code == 409


def test_only_the_merchant_itself_appeals_and_only_staff_change_standing(
    database_url: str,
) -> None:
    with open_env(database_url) as env:
        merchant_a, merchant_b = env.merchant(), env.merchant()
        change = set_status(env, merchant_a["id"], "suspended", env.admin).json()["change"]
        body = {"subject_id": change["id"], "grounds": "not us"}
        other = env.client.post(
            f"/v1/merchants/{merchant_a['id']}/appeals",
            headers=bearer(merchant_b["api_key"]),
            json=body,
        )
        assert other.status_code == 404
        for headers in (env.platform, env.admin):
            response = env.client.post(
                f"/v1/merchants/{merchant_a['id']}/appeals", headers=headers, json=body
            )
            assert response.status_code == 403
        for headers in (env.platform, bearer(merchant_a["api_key"])):
            assert set_status(env, merchant_a["id"], "active", headers).status_code == 403
        assert (
            env.client.get(
                f"/v1/merchants/{merchant_a['id']}/standing",
                headers=bearer(merchant_b["api_key"]),
            ).status_code
            == 404
        )
        assert standing(env, merchant_a["id"])["appeals"] == []
        assert standing(env, merchant_a["id"])["status"] == "suspended"
