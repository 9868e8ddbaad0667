"""Complaints: filing, operator responses, the 15-day SLA with overdue ones surfaced (list and
daily sweep), roles, and the audit trail a privacy complaint shows to compliance."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.factories import enrol
from tests.privacy.privacy_env import operator_headers
from usefirst.collections.models import SweepRun
from usefirst.privacy.models import Complaint, ComplaintResponse
from usefirst.runtime import Runtime

JOB = "usefirst.privacy.complaints:flag_overdue_complaints"


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def file(
    client: TestClient, headers: dict[str, str], shopper_id: str, category: str, words: str
) -> dict[str, object]:
    response = client.post(
        "/v1/complaints",
        headers=headers,
        json={"shopper_id": shopper_id, "category": category, "description": words},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def counts(runtime: Runtime) -> tuple[int, int]:
    with runtime.work(read_only=True) as work:
        return (
            int(work.session.scalar(select(func.count()).select_from(Complaint)) or 0),
            int(work.session.scalar(select(func.count()).select_from(ComplaintResponse)) or 0),
        )


def test_filing_responding_and_closing(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    shopper = enrol(client, platform_headers)
    with runtime.work(read_only=True) as work:
        now = work.now
    filed = file(client, platform_headers, shopper["id"], "billing", "I was charged twice")
    assert set(filed) == {"id", "shopper_id", "category", "status", "respond_by", "created_at"}
    assert filed["status"] == "open" and str(filed["id"]).startswith("cmp_")
    assert parse(str(filed["respond_by"])) == parse(str(filed["created_at"])) + timedelta(days=15)
    assert parse(str(filed["created_at"])) >= now

    as_platform = client.get(f"/v1/complaints/{filed['id']}", headers=platform_headers).json()
    assert as_platform["description"] == "I was charged twice"
    assert as_platform["responses"] == [] and as_platform["is_overdue"] is False
    assert "access_trail" not in as_platform

    support = operator_headers(runtime, "support")
    answered = client.post(
        f"/v1/complaints/{filed['id']}/responses",
        headers=support,
        json={"message": "We are refunding the duplicate."},
    )
    assert answered.status_code == 201, answered.text
    body = answered.json()
    assert body["status"] == "answered" and body["closed_at"] is None
    assert [r["message"] for r in body["responses"]] == ["We are refunding the duplicate."]
    closed = client.post(
        f"/v1/complaints/{filed['id']}/responses",
        headers=support,
        json={"message": "Refunded.", "closes": True},
    ).json()
    assert closed["status"] == "closed" and closed["closed_at"] is not None
    assert [r["closes_complaint"] for r in closed["responses"]] == [False, True]

    before = counts(runtime)
    refused = client.post(
        f"/v1/complaints/{filed['id']}/responses", headers=support, json={"message": "more"}
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "complaint_closed"
    assert counts(runtime) == before == (1, 2)


def test_validation_and_roles_change_nothing(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    shopper = enrol(client, platform_headers)
    for body, status, field in (
        ({"shopper_id": shopper["id"], "category": "rude", "description": "x"}, 422, "category"),
        ({"shopper_id": shopper["id"], "category": "other", "description": ""}, 422, "description"),
        ({"shopper_id": "shp_missing", "category": "other", "description": "x"}, 404, None),
        (
            {"shopper_id": shopper["id"], "category": "other", "description": "x", "extra": 1},
            422,
            "extra",
        ),
    ):
        response = client.post("/v1/complaints", headers=platform_headers, json=body)
        assert response.status_code == status, response.text
        assert response.json()["error"].get("field") == field
    assert counts(runtime) == (0, 0)

    filed = file(client, platform_headers, shopper["id"], "other", "hello")
    collector = operator_headers(runtime, "collector")
    denied = client.post(
        "/v1/complaints",
        headers=collector,
        json={"shopper_id": shopper["id"], "category": "other", "description": "x"},
    )
    assert denied.status_code == 403
    assert client.get(f"/v1/complaints/{filed['id']}", headers=collector).status_code == 403
    assert client.get("/v1/complaints", headers=collector).status_code == 403
    assert client.get("/v1/complaints", headers=platform_headers).status_code == 403
    for headers in (collector, platform_headers):
        response = client.post(
            f"/v1/complaints/{filed['id']}/responses", headers=headers, json={"message": "x"}
        )
        assert response.status_code == 403
    assert client.get("/v1/complaints/cmp_missing", headers=platform_headers).status_code == 404
    assert counts(runtime) == (1, 0)


def test_overdue_complaints_are_listed_and_counted_once_by_the_sweep(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    shopper = enrol(client, platform_headers)
    late = file(client, platform_headers, shopper["id"], "collection_conduct", "called at night")
    answered = file(client, platform_headers, shopper["id"], "billing", "wrong fee")
    support = operator_headers(runtime, "support")
    client.post(
        f"/v1/complaints/{answered['id']}/responses", headers=support, json={"message": "fixed"}
    )
    assert client.get("/v1/complaints?overdue=true", headers=support).json()["data"] == []

    advanced = client.post("/v1/sandbox/clock/advance", headers=platform_headers, json={"days": 17})
    assert advanced.status_code == 200, advanced.text
    overdue = client.get("/v1/complaints?overdue=true", headers=support).json()
    assert [row["id"] for row in overdue["data"]] == [late["id"]]
    assert overdue["data"][0]["is_overdue"] is True and overdue["has_more"] is False
    everything = client.get("/v1/complaints", headers=support).json()["data"]
    assert {row["id"] for row in everything} == {late["id"], answered["id"]}
    status_filtered = client.get("/v1/complaints?status=answered", headers=support).json()
    assert [row["id"] for row in status_filtered["data"]] == [answered["id"]]

    with runtime.work(read_only=True) as work:
        summaries = [
            run.summary["jobs"][JOB]
            for run in work.session.scalars(select(SweepRun).order_by(SweepRun.business_on))
        ]
    assert sum(day["complaints_newly_overdue"] for day in summaries) == 1
    assert summaries[-1]["complaints_overdue"] == 1
    assert [day["complaints_overdue"] for day in summaries].count(0) >= 15

    # An answer ends the overdue state.
    client.post(
        f"/v1/complaints/{late['id']}/responses", headers=support, json={"message": "sorry"}
    )
    assert client.get("/v1/complaints?overdue=true", headers=support).json()["data"] == []


def test_a_privacy_complaint_shows_compliance_who_read_the_data(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    shopper = enrol(client, platform_headers)
    other = enrol(client, platform_headers)
    compliance = operator_headers(runtime, "compliance")
    admin = operator_headers(runtime, "admin", email="boss@example.com")
    read = client.get(f"/v1/shoppers/{shopper['id']}?unmasked=true", headers=admin)
    assert read.status_code == 200
    client.get(f"/v1/shoppers/{other['id']}?unmasked=true", headers=admin)
    filed = file(client, platform_headers, shopper["id"], "privacy", "who saw my ID?")
    billing = file(client, platform_headers, shopper["id"], "billing", "fee")

    view = client.get(f"/v1/complaints/{filed['id']}", headers=compliance).json()
    [entry] = view["access_trail"]
    with runtime.work(read_only=True) as work:
        from usefirst.identity.models import Operator

        admin_id = work.session.scalars(
            select(Operator.id).where(Operator.email == "boss@example.com")
        ).one()
    assert entry["actor"] == admin_id
    assert entry["action"] == "shopper.read_unmasked"
    assert entry["subject_shopper_id"] == shopper["id"]
    assert entry["fields"] == ["name", "national_id", "phone"]
    support = operator_headers(runtime, "support")
    assert "access_trail" not in client.get(f"/v1/complaints/{filed['id']}", headers=support).json()
    assert (
        "access_trail"
        not in client.get(f"/v1/complaints/{billing['id']}", headers=compliance).json()
    )
