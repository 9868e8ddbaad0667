"""What an evidence file must be to be accepted: decided from its bytes, its size and a plain
name, before anything is stored; and the content-addressed store itself."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.disputes.dispute_env import JPEG_BYTES, JSON_BYTES, PDF_BYTES, PNG_BYTES, TEXT_BYTES
from usefirst.disputes.errors import (
    EvidenceCorrupted,
    EvidenceFilenameInvalid,
    EvidenceTooLarge,
    EvidenceTypeNotAllowed,
)
from usefirst.disputes.storage import EvidenceStore, check_upload, clean_filename
from usefirst.kit.errors import InvariantViolated, ValidationFailed


@pytest.mark.parametrize(
    ("content", "declared", "detected"),
    [
        (PDF_BYTES, "application/pdf", "application/pdf"),
        (PNG_BYTES, "image/png", "image/png"),
        (JPEG_BYTES, "image/jpeg", "image/jpeg"),
        (JPEG_BYTES, "image/jpg", "image/jpeg"),
        (TEXT_BYTES, "text/plain; charset=utf-8", "text/plain"),
        (JSON_BYTES, "application/json", "application/json"),
        # A JSON document sent as text stays text; sent as nothing in particular, it is JSON.
        (JSON_BYTES, "text/plain", "text/plain"),
        (JSON_BYTES, "application/octet-stream", "application/json"),
        (PNG_BYTES, None, "image/png"),
        (b"\xef\xbb\xbfline one\r\nline two\tend\n", "", "text/plain"),
    ],
)
def test_accepted_types_are_detected_from_the_bytes(
    content: bytes, declared: str | None, detected: str
) -> None:
    checked = check_upload(
        content=content, declared_content_type=declared, filename="x", max_bytes=1024
    )
    assert checked.content_type == detected
    assert checked.sha256 == hashlib.sha256(content).hexdigest()
    assert checked.size_bytes == len(content)


@pytest.mark.parametrize(
    ("content", "declared"),
    [
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "image/gif"),  # a type not on the list
        (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00", "application/octet-stream"),  # a Windows program
        (b"PK\x03\x04\x14\x00\x00\x00", "application/zip"),
        (PNG_BYTES, "application/pdf"),  # declared one allowed type, is another
        (PDF_BYTES, "text/plain"),
        (b"MZ\x90\x00\x03\x00", "image/png"),  # declared an image, is a program
        (b"\x00\x01\x02binary\xff\xfe", "text/plain"),  # not UTF-8 text
        (b"looks like text\x07with a bell", "text/plain"),  # control characters
        (b"{not json", "application/json"),
        (b"42", "application/json"),  # JSON, but not a document
    ],
)
def test_other_content_is_refused(content: bytes, declared: str) -> None:
    with pytest.raises(EvidenceTypeNotAllowed) as refused:
        check_upload(content=content, declared_content_type=declared, filename="x", max_bytes=1024)
    assert refused.value.status_code == 415
    assert refused.value.field == "file"


def test_size_limit_is_exact() -> None:
    assert (
        check_upload(
            content=b"a" * 100, declared_content_type="text/plain", filename=None, max_bytes=100
        ).size_bytes
        == 100
    )
    with pytest.raises(EvidenceTooLarge):
        check_upload(
            content=b"a" * 101, declared_content_type="text/plain", filename=None, max_bytes=100
        )
    with pytest.raises(ValidationFailed, match="empty"):
        check_upload(content=b"", declared_content_type="text/plain", filename=None, max_bytes=100)


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "..",
        ".",
        "/etc/passwd",
        "evidence/../../../root/.ssh/authorized_keys",
        "..\\..\\windows\\system32\\drivers\\etc\\hosts",
        "sub\\file.pdf",
        "C:evil.pdf",
        "name\x00.pdf",
        "bell\x07.txt",
        "right-to-left\u202egnp.exe",
        "a" * 256,
    ],
)
def test_path_like_or_unprintable_names_are_refused(name: str) -> None:
    with pytest.raises(EvidenceFilenameInvalid) as refused:
        clean_filename(name)
    assert refused.value.code == "evidence_filename_invalid"
    assert refused.value.status_code == 422


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("  waybill.pdf ", "waybill.pdf"),
        ("发货单 2027-03.pdf", "发货单 2027-03.pdf"),
        (".hidden-but-harmless.txt", ".hidden-but-harmless.txt"),
        ("", None),
        (None, None),
        ("a" * 255, "a" * 255),
    ],
)
def test_plain_names_are_kept_as_metadata(name: str | None, kept: str | None) -> None:
    assert clean_filename(name) == kept


def test_store_is_content_addressed_atomic_and_verified(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "evidence")
    checked = check_upload(
        content=PDF_BYTES,
        declared_content_type="application/pdf",
        filename="passwd.pdf",
        max_bytes=1024,
    )
    digest = hashlib.sha256(PDF_BYTES).hexdigest()
    path = store.save(checked)
    assert path == tmp_path / "evidence" / digest[:2] / digest[2:4] / digest
    assert path.read_bytes() == PDF_BYTES
    # Saving the same bytes again writes nothing new and leaves no temporary file behind.
    assert store.save(checked) == path
    assert [p for p in (tmp_path / "evidence").rglob("*") if p.is_file()] == [path]
    assert store.read(digest) == PDF_BYTES

    # A damaged copy is never served, and a new upload of the same bytes repairs it.
    path.write_bytes(b"%PDF-tampered")
    with pytest.raises(EvidenceCorrupted):
        store.read(digest)
    store.save(checked)
    assert store.read(digest) == PDF_BYTES

    with pytest.raises(InvariantViolated):
        store.path_of("../" + digest[3:])
