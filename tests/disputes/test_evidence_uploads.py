"""Evidence over HTTP: accepted files are stored by SHA-256 under the evidence directory and
listed on the dispute; oversize, wrong-type and path-like uploads are refused with nothing stored
(no file on disk, no row, no history, no state change); only the dispute's parties see it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.disputes.dispute_env import (
    JPEG_BYTES,
    JSON_BYTES,
    PDF_BYTES,
    PNG_BYTES,
    TEXT_BYTES,
    DisputeEnv,
    open_dispute_env,
    sha256_of,
)
from tests.factories import bearer

MAX_BYTES = 4096


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, response.text
    assert error["message"]
    if field is not None:
        assert error["field"] == field


def filed(d: DisputeEnv) -> dict[str, Any]:
    shopper = d.env.enrol()
    order = d.buy(shopper["id"])
    return d.open(order["id"])


def test_accepted_files_are_stored_by_hash_and_listed(database_url: str, tmp_path: Path) -> None:
    with open_dispute_env(database_url, tmp_path, dispute_evidence_max_bytes=MAX_BYTES) as d:
        dispute = filed(d)
        merchant = d.merchant_headers()
        uploads = [
            (d.platform, "cracked-cup.jpg", JPEG_BYTES, "image/jpeg", "shopper"),
            (d.platform, "chat.json", JSON_BYTES, "application/json", "shopper"),
            (merchant, "发货单.pdf", PDF_BYTES, "application/pdf", "merchant"),
            (merchant, "packing.png", PNG_BYTES, "image/png", "merchant"),
            (merchant, "courier-note.txt", TEXT_BYTES, "text/plain", "merchant"),
        ]
        statuses = []
        for headers, name, content, content_type, side in uploads:
            response = d.upload(
                dispute["id"], content, headers=headers, filename=name, content_type=content_type
            )
            assert response.status_code == 201, response.text
            added = response.json()["added_evidence"]
            assert {key: added[key] for key in added if key not in ("id", "created_at")} == {
                "submitted_by": side,
                "content_type": content_type,
                "size_bytes": len(content),
                "sha256": sha256_of(content),
                "filename": name,
            }
            statuses.append(response.json()["status"])
        # The shopper (opener) gave evidence, then the merchant (respondent) answered.
        assert statuses == [
            "awaiting_evidence",
            "awaiting_evidence",
            "under_review",
            "under_review",
            "under_review",
        ]

        view = d.get(dispute["id"])
        assert [(row["filename"], row["sha256"]) for row in view["evidence"]] == [
            (name, sha256_of(content)) for _, name, content, _, _ in uploads
        ]
        assert view["responded_at"] is not None
        # On disk: one file per content hash, named by nothing but the hash.
        expected = sorted(
            d.evidence_dir / sha256_of(content)[:2] / sha256_of(content)[2:4] / sha256_of(content)
            for _, _, content, _, _ in uploads
        )
        assert d.stored_files() == expected
        for _, _, content, _, _ in uploads:
            digest = sha256_of(content)
            assert (d.evidence_dir / digest[:2] / digest[2:4] / digest).read_bytes() == content

        # Downloading gives the same bytes, as an attachment that a browser must not sniff.
        pdf = view["evidence"][2]
        response = d.client.get(
            f"/v1/disputes/{dispute['id']}/evidence/{pdf['id']}/content", headers=d.support
        )
        assert response.status_code == 200
        assert response.content == PDF_BYTES
        assert response.headers["content-type"] == "application/pdf"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-disposition"] == (
            "attachment; filename*=UTF-8''%E5%8F%91%E8%B4%A7%E5%8D%95.pdf"
        )
        assert d.row_counts() == (1, 5, 6)


def test_the_same_bytes_twice_store_nothing_new(database_url: str, tmp_path: Path) -> None:
    with open_dispute_env(database_url, tmp_path) as d:
        dispute = filed(d)
        first = d.upload(dispute["id"], PDF_BYTES, headers=d.merchant_headers(), filename="a.pdf")
        again = d.upload(dispute["id"], PDF_BYTES, headers=d.merchant_headers(), filename="b.pdf")
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json()["added_evidence"] == first.json()["added_evidence"]
        assert d.row_counts() == (1, 1, 2)
        assert len(d.stored_files()) == 1


def refused_uploads() -> list[tuple[str, bytes, str, str, int, str]]:
    """(file name, bytes, declared type, case, status, code)."""
    return [
        ("big.txt", b"a" * (MAX_BYTES + 1), "text/plain", "one byte over", 413,
         "evidence_too_large"),
        ("huge.pdf", b"%PDF-" + b"0" * (200 * 1024), "application/pdf", "far over", 413,
         "evidence_too_large"),
        ("anim.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "image/gif", "gif", 415,
         "evidence_type_not_allowed"),
        ("setup.pdf", b"MZ\x90\x00\x03\x00\x00\x00", "application/pdf", "program as pdf", 415,
         "evidence_type_not_allowed"),
        ("photo.png", PDF_BYTES, "image/png", "pdf as png", 415, "evidence_type_not_allowed"),
        ("chat.json", b"{broken", "application/json", "bad json", 415,
         "evidence_type_not_allowed"),
        ("../../etc/passwd", TEXT_BYTES, "text/plain", "dot-dot", 422,
         "evidence_filename_invalid"),
        ("/etc/cron.d/evil", TEXT_BYTES, "text/plain", "absolute", 422,
         "evidence_filename_invalid"),
        ("..\\..\\boot.ini", TEXT_BYTES, "text/plain", "backslashes", 422,
         "evidence_filename_invalid"),
        ("..", TEXT_BYTES, "text/plain", "parent", 422, "evidence_filename_invalid"),
        ("", b"", "text/plain", "empty", 422, "validation_error"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("filename", "content", "content_type", "case", "status", "code"),
    refused_uploads(),
    ids=[case for _, _, _, case, _, _ in refused_uploads()],
)
def test_refused_uploads_store_nothing(
    database_url: str,
    tmp_path: Path,
    filename: str,
    content: bytes,
    content_type: str,
    case: str,
    status: int,
    code: str,
) -> None:
    with open_dispute_env(database_url, tmp_path, dispute_evidence_max_bytes=MAX_BYTES) as d:
        dispute = filed(d)
        before = d.get(dispute["id"])
        events_before = len(d.dispute_events())
        response = d.upload(
            dispute["id"],
            content,
            headers=d.merchant_headers(),
            filename=filename,
            content_type=content_type,
        )
        assert_error(response, status, code, "file")
        assert d.stored_files() == []
        assert not d.evidence_dir.exists() or list(d.evidence_dir.rglob("*")) == []
        assert d.row_counts() == (1, 0, 1)
        assert d.get(dispute["id"]) == before
        assert len(d.dispute_events()) == events_before


def test_upload_without_a_file_field_is_refused(database_url: str, tmp_path: Path) -> None:
    with open_dispute_env(database_url, tmp_path) as d:
        dispute = filed(d)
        response = d.client.post(
            f"/v1/disputes/{dispute['id']}/evidence",
            headers=d.merchant_headers(),
            files={"attachment": ("a.pdf", PDF_BYTES, "application/pdf")},
        )
        assert_error(response, 422, "validation_error", "file")
        assert d.row_counts() == (1, 0, 1)
        assert d.stored_files() == []


def test_only_the_disputes_parties_see_or_add_evidence(database_url: str, tmp_path: Path) -> None:
    with open_dispute_env(database_url, tmp_path) as d:
        dispute = filed(d)
        added = d.upload(dispute["id"], PDF_BYTES, headers=d.merchant_headers(), filename="a.pdf")
        assert added.status_code == 201
        evidence_id = added.json()["added_evidence"]["id"]
        other = bearer(d.other_merchant["api_key"])

        # Another merchant: 404 everywhere, no existence leak, nothing stored.
        assert_error(d.client.get(f"/v1/disputes/{dispute['id']}", headers=other), 404,
                     "not_found")  # fmt: skip
        assert_error(
            d.client.get(
                f"/v1/disputes/{dispute['id']}/evidence/{evidence_id}/content", headers=other
            ),
            404,
            "not_found",
        )
        assert_error(d.upload(dispute["id"], PNG_BYTES, headers=other, filename="b.png"), 404,
                     "not_found")  # fmt: skip
        listed = d.client.get("/v1/disputes", headers=other)
        assert listed.status_code == 200
        assert listed.json() == {"data": [], "has_more": False}
        # Collectors do not work disputes.
        assert_error(d.client.get(f"/v1/disputes/{dispute['id']}", headers=d.env.collector), 403,
                     "forbidden")  # fmt: skip
        assert_error(
            d.upload(dispute["id"], PNG_BYTES, headers=d.env.collector, filename="c.png"),
            403,
            "forbidden",
        )
        assert d.row_counts() == (1, 1, 2)
        assert len(d.stored_files()) == 1

        # The merchant itself, the platform and support see it, with the same evidence list.
        for headers in (d.merchant_headers(), d.platform, d.support, d.env.admin):
            assert [row["id"] for row in d.get(dispute["id"], headers)["evidence"]] == [evidence_id]
        listed = d.client.get("/v1/disputes", headers=d.merchant_headers())
        assert [row["id"] for row in listed.json()["data"]] == [dispute["id"]]


def test_a_damaged_file_is_never_served(database_url: str, tmp_path: Path) -> None:
    with open_dispute_env(database_url, tmp_path) as d:
        dispute = filed(d)
        added = d.upload(dispute["id"], PDF_BYTES, headers=d.merchant_headers(), filename="a.pdf")
        evidence_id = added.json()["added_evidence"]["id"]
        [path] = d.stored_files()
        path.write_bytes(b"%PDF-1.7 something else entirely")
        response = d.client.get(
            f"/v1/disputes/{dispute['id']}/evidence/{evidence_id}/content", headers=d.support
        )
        assert_error(response, 500, "evidence_corrupted")
