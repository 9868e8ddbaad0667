"""Shopper enrolment over HTTP: shape, masking, validation, uniqueness, consent."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.collections.dunning_env import open_env
from tests.factories import checkout_body, create_merchant, enrol, national_id, phone
from usefirst.credit.models import CreditLine, CreditLineChange
from usefirst.identity.models import Consent, ExternalIdLookup, NationalIdLookup, Shopper
from usefirst.identity.validation import national_id_check_character
from usefirst.runtime import Runtime


def enrol_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "external_id": f"u-{national_id()}",
        "name": "张三丰",
        "national_id": national_id(),
        "phone": phone(),
        "email": "zhangsanfeng@example.com",
        "consent": {"privacy_policy_version": "2026-01", "credit_report_authorized": True},
        "device_id": "d-1",
        "ip": "203.0.113.5",
    }
    body.update(overrides)
    return body


def row_counts(runtime: Runtime) -> dict[str, int]:
    with runtime.work(read_only=True) as work:
        return {
            model.__tablename__: int(
                work.session.scalar(select(func.count()).select_from(model)) or 0
            )
            for model in (
                Shopper,
                CreditLine,
                CreditLineChange,
                Consent,
                NationalIdLookup,
                ExternalIdLookup,
            )
        }


def business_today(client: TestClient, headers: dict[str, str]) -> date:
    response = client.get("/v1/sandbox/clock", headers=headers)
    assert response.status_code == 200
    return date.fromisoformat(response.json()["business_on"])


def id_born_on(birth_on: date, sequence: str = "123") -> str:
    first = f"110105{birth_on:%Y%m%d}{sequence}"
    return first + national_id_check_character(first)


def years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    if field is not None:
        assert error["field"] == field
    return dict(error)


def test_enrol_returns_masked_shopper_with_default_credit(
    client: TestClient, platform_headers: dict[str, str]
) -> None:
    clock_now = datetime.fromisoformat(
        client.get("/v1/sandbox/clock", headers=platform_headers).json()["now"]
    )
    body = enrol_body(
        external_id="u-123",
        national_id="11010519491231002X",
        phone="+8613800138000",
        email="a.person@example.com",
    )
    response = client.post("/v1/shoppers", headers=platform_headers, json=body)
    assert response.status_code == 201, response.text
    shopper = response.json()
    assert shopper["id"].startswith("shp_")
    assert shopper["external_id"] == "u-123"
    assert shopper["status"] == "active"
    assert shopper["name_masked"] == "张**"
    assert shopper["national_id_masked"] == "110***********002X"
    assert shopper["phone_masked"] == "+86 138****8000"
    assert shopper["email_masked"] == "a***@example.com"
    assert datetime.fromisoformat(shopper["created_at"]) == clock_now
    credit = shopper["credit"]
    assert credit["limit_minor"] == 100_000
    assert credit["used_minor"] == 0
    assert credit["available_minor"] == 100_000
    assert credit["currency"] == "CNY"
    assert credit["status"] == "active"
    assert credit["band"] == "new"
    assert [reason["code"] for reason in credit["reasons"]] == ["cold_start_limit"]
    assert all(reason["message"] for reason in credit["reasons"])
    assert datetime.fromisoformat(credit["reviewed_at"]) == clock_now
    # Plain PII never comes back.
    for secret in ("11010519491231002X", "8613800138000", "13800138000", "张三丰", "a.person@"):
        assert secret not in response.text

    fetched = client.get(f"/v1/shoppers/{shopper['id']}", headers=platform_headers)
    assert fetched.status_code == 200
    assert fetched.json() == shopper
    credit_response = client.get(f"/v1/shoppers/{shopper['id']}/credit", headers=platform_headers)
    assert credit_response.status_code == 200
    assert credit_response.json() == credit


def test_enrol_without_email_lowercase_x_and_unknown_ids(
    client: TestClient, platform_headers: dict[str, str]
) -> None:
    body = enrol_body(national_id="11010519491231002x")
    del body["email"]
    shopper = client.post("/v1/shoppers", headers=platform_headers, json=body).json()
    assert shopper["national_id_masked"] == "110***********002X"
    assert shopper["email_masked"] is None
    for path in ("", "/credit", "/statement"):
        response = client.get(f"/v1/shoppers/shp_doesnotexist{path}", headers=platform_headers)
        assert_error(response, 404, "not_found")


INVALID_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"national_id": "110105199001150011"}, "national_id"),  # wrong check digit
    ({"national_id": "11010519900115001"}, "national_id"),  # 17 characters
    ({"national_id": "A10105199001150011"}, "national_id"),  # not digits
    ({"phone": "13800138000"}, "phone"),  # no + prefix
    ({"phone": "+86123"}, "phone"),  # not a valid number
    ({"phone": "+86 not a phone"}, "phone"),
    ({"email": "not-an-email"}, "email"),
    ({"name": "   "}, "name"),
    ({"external_id": ""}, "external_id"),
    ({"consent": {"privacy_policy_version": "2026-01"}}, "consent.credit_report_authorized"),
    (
        {"consent": {"privacy_policy_version": " ", "credit_report_authorized": True}},
        "consent.privacy_policy_version",
    ),
]


def test_enrol_rejects_invalid_fields_with_422_and_field(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    before = row_counts(runtime)
    for override, field in INVALID_FIELDS:
        response = client.post(
            "/v1/shoppers", headers=platform_headers, json=enrol_body(**override)
        )
        assert_error(response, 422, "validation_error", field)
    error = assert_error(
        client.post(
            "/v1/shoppers",
            headers=platform_headers,
            json=enrol_body(national_id="110105199001150011"),
        ),
        422,
        "validation_error",
        "national_id",
    )
    assert "check digit" in error["message"]
    assert row_counts(runtime) == before


def test_birth_date_must_be_possible_and_at_least_18_years_ago(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    for first in ("11010519900230123", "11010519901301123", "11010518991231123"):
        response = client.post(
            "/v1/shoppers",
            headers=platform_headers,
            json=enrol_body(national_id=first + national_id_check_character(first)),
        )
        error = assert_error(response, 422, "validation_error", "national_id")
        assert "birth date" in error["message"]
    future = business_today(client, platform_headers) + timedelta(days=1)
    response = client.post(
        "/v1/shoppers", headers=platform_headers, json=enrol_body(national_id=id_born_on(future))
    )
    assert_error(response, 422, "validation_error", "national_id")
    assert row_counts(runtime)["shoppers"] == 0

    # At least 18 on the business date.
    today = business_today(client, platform_headers)
    eighteen_tomorrow = years_before(today, 18) + timedelta(days=1)
    response = client.post(
        "/v1/shoppers",
        headers=platform_headers,
        json=enrol_body(national_id=id_born_on(eighteen_tomorrow)),
    )
    error = assert_error(response, 422, "validation_error", "national_id")
    assert "18" in error["message"]
    assert row_counts(runtime)["shoppers"] == 0

    response = client.post(
        "/v1/shoppers",
        headers=platform_headers,
        json=enrol_body(national_id=id_born_on(years_before(today, 18))),
    )
    assert response.status_code == 201, response.text
    assert row_counts(runtime)["shoppers"] == 1


def test_same_national_id_or_external_id_twice_is_409_and_changes_nothing(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    the_id = id_born_on(date(1985, 6, 1), "451")
    first = enrol(client, platform_headers, national_id=the_id)
    before = row_counts(runtime)
    assert before["shoppers"] == 1
    for variant in (the_id, the_id.lower(), f"  {the_id} "):
        response = client.post(
            "/v1/shoppers", headers=platform_headers, json=enrol_body(national_id=variant)
        )
        assert_error(response, 409, "shopper_exists", "national_id")
    assert row_counts(runtime) == before
    assert client.get(f"/v1/shoppers/{first['id']}", headers=platform_headers).json() == first

    # The marketplace's own user id is unique too.
    response = client.post(
        "/v1/shoppers",
        headers=platform_headers,
        json=enrol_body(external_id=first["external_id"]),
    )
    assert_error(response, 409, "shopper_exists", "external_id")
    assert row_counts(runtime) == before


def test_unknown_fields_and_contacts_are_rejected(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    before = row_counts(runtime)
    for extra, field in [
        ({"nickname": "zs"}, "nickname"),
        ({"credit_limit_minor": 9_999_999}, "credit_limit_minor"),
    ]:
        response = client.post("/v1/shoppers", headers=platform_headers, json=enrol_body(**extra))
        error = assert_error(response, 422, "validation_error", field)
        assert field in error["message"]
    for extra, field in [
        ({"contacts": [{"name": "李四", "phone": "+8613900139000"}]}, "contacts"),
        ({"contacts": []}, "contacts"),
        ({"address_book": []}, "address_book"),
        ({"emergency_contacts": []}, "emergency_contacts"),
    ]:
        response = client.post("/v1/shoppers", headers=platform_headers, json=enrol_body(**extra))
        error = assert_error(response, 422, "validation_error", field)
        assert "contacts" in error["message"]
    consent = {"privacy_policy_version": "2026-01", "credit_report_authorized": True, "x": 1}
    response = client.post(
        "/v1/shoppers", headers=platform_headers, json=enrol_body(consent=consent)
    )
    assert_error(response, 422, "validation_error", "consent.x")
    assert row_counts(runtime) == before


def test_consent_without_credit_report_gives_rejected_shopper_and_closed_line(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    body = enrol_body(
        consent={"privacy_policy_version": "2026-01", "credit_report_authorized": False}
    )
    response = client.post("/v1/shoppers", headers=platform_headers, json=body)
    assert response.status_code == 201, response.text
    shopper = response.json()
    assert shopper["status"] == "rejected"
    credit = shopper["credit"]
    assert credit["status"] == "closed"
    assert credit["limit_minor"] == 0
    assert credit["used_minor"] == 0
    assert credit["available_minor"] == 0
    assert [reason["code"] for reason in credit["reasons"]] == ["credit_report_not_authorized"]

    with runtime.work(read_only=True) as work:
        consents = [
            (row.privacy_policy_version, row.credit_report_authorized, row.source)
            for row in work.session.scalars(
                select(Consent).where(Consent.shopper_id == shopper["id"])
            )
        ]
    assert consents == [("2026-01", False, "api")]

    # A rejected shopper's checkout is recorded and declined, the line untouched.
    merchant = create_merchant(client, platform_headers)
    checkout = client.post(
        "/v1/checkouts",
        headers=platform_headers,
        json=checkout_body(shopper["id"], merchant["id"], 1_000),
    )
    assert checkout.status_code == 201
    assert checkout.json()["decision"]["outcome"] == "declined"
    assert [r["code"] for r in checkout.json()["decision"]["reasons"]] == ["credit_line_closed"]
    assert checkout.json()["order"]["status"] == "declined"
    after = client.get(f"/v1/shoppers/{shopper['id']}/credit", headers=platform_headers).json()
    assert after == credit


def test_enrol_is_idempotent_with_a_key(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    body = enrol_body()
    headers = {**platform_headers, "Idempotency-Key": "enrol-1"}
    first = client.post("/v1/shoppers", headers=headers, json=body)
    again = client.post("/v1/shoppers", headers=headers, json=body)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert row_counts(runtime)["shoppers"] == 1
    other = client.post("/v1/shoppers", headers=headers, json=enrol_body())
    assert_error(other, 409, "idempotency_key_reused")
    assert row_counts(runtime)["shoppers"] == 1


def test_enrol_needs_the_platform(client: TestClient, platform_headers: dict[str, str]) -> None:
    merchant = create_merchant(client, platform_headers)
    response = client.post(
        "/v1/shoppers",
        headers={"Authorization": f"Bearer {merchant['api_key']}"},
        json=enrol_body(),
    )
    assert_error(response, 403, "forbidden")
    assert_error(client.post("/v1/shoppers", json=enrol_body()), 401, "unauthenticated")


def test_language_and_time_zone_default_and_can_be_given(
    client: TestClient, platform_headers: dict[str, str]
) -> None:
    default = client.post("/v1/shoppers", headers=platform_headers, json=enrol_body())
    assert default.status_code == 201, default.text
    assert (default.json()["language"], default.json()["time_zone"]) == (
        "zh-CN",
        "Asia/Shanghai",
    )
    chosen = client.post(
        "/v1/shoppers",
        headers=platform_headers,
        json=enrol_body(language="en", time_zone="America/New_York"),
    )
    assert chosen.status_code == 201, chosen.text
    shown = client.get(f"/v1/shoppers/{chosen.json()['id']}", headers=platform_headers)
    assert shown.status_code == 200, shown.text
    assert (shown.json()["language"], shown.json()["time_zone"]) == ("en", "America/New_York")


def test_operator_time_zone_is_the_default(database_url: str, tmp_path: Path) -> None:
    with open_env(database_url, tmp_path, time_zone="Europe/London") as env:
        shopper = env.enrol()
    assert (shopper["language"], shopper["time_zone"]) == ("zh-CN", "Europe/London")


def test_bad_language_or_time_zone_is_422_and_stores_nothing(
    client: TestClient, platform_headers: dict[str, str], runtime: Runtime
) -> None:
    before = row_counts(runtime)
    for extra, code, field in [
        ({"time_zone": "Mars/Olympus_Mons"}, "invalid_time_zone", "time_zone"),
        ({"time_zone": "../../etc/passwd"}, "invalid_time_zone", "time_zone"),
        ({"time_zone": "localtime"}, "invalid_time_zone", "time_zone"),
        ({"time_zone": "america/new_york"}, "invalid_time_zone", "time_zone"),
        ({"time_zone": ""}, "invalid_time_zone", "time_zone"),
        ({"language": "fr"}, "unsupported_language", "language"),
        ({"language": "zh"}, "unsupported_language", "language"),
        ({"language": "en", "time_zone": "Nowhere"}, "invalid_time_zone", "time_zone"),
    ]:
        response = client.post("/v1/shoppers", headers=platform_headers, json=enrol_body(**extra))
        assert_error(response, 422, code, field)
    assert row_counts(runtime) == before


def test_preferences_can_be_changed_and_a_bad_value_changes_nothing(
    client: TestClient, platform_headers: dict[str, str]
) -> None:
    shopper = enrol(client, platform_headers)
    path = f"/v1/shoppers/{shopper['id']}/preferences"

    def preferences() -> tuple[str, str]:
        shown = client.get(f"/v1/shoppers/{shopper['id']}", headers=platform_headers).json()
        return shown["language"], shown["time_zone"]

    for body, code, field in [
        ({"language": "en", "time_zone": "Europe/Lndon"}, "invalid_time_zone", "time_zone"),
        ({"language": "de", "time_zone": "Europe/London"}, "unsupported_language", "language"),
    ]:
        assert_error(client.patch(path, headers=platform_headers, json=body), 422, code, field)
        assert preferences() == ("zh-CN", "Asia/Shanghai")
    response = client.patch(path, headers=platform_headers, json={"colour": "red"})
    assert_error(response, 422, "validation_error", "colour")

    changed = client.patch(path, headers=platform_headers, json={"language": "en"})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["language"], changed.json()["time_zone"]) == ("en", "Asia/Shanghai")
    changed = client.patch(path, headers=platform_headers, json={"time_zone": "Europe/London"})
    assert changed.status_code == 200, changed.text
    assert preferences() == ("en", "Europe/London")

    missing = client.patch(
        "/v1/shoppers/shp_missing/preferences", headers=platform_headers, json={"language": "en"}
    )
    assert missing.status_code == 404, missing.text
