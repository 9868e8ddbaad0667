"""Evidence files: what is accepted, and where the bytes are kept.

A file is accepted only if its bytes are one of a few harmless types (decided from the bytes, not
from what the caller declared), it is within the size limit and its name is a plain file name.
Accepted bytes are stored content-addressed: ``<root>/ab/cd/<sha256>``. The caller's file name is
never part of a path; it is kept, cleaned, as metadata only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from usefirst.disputes.errors import (
    EvidenceCorrupted,
    EvidenceFilenameInvalid,
    EvidenceTooLarge,
    EvidenceTypeNotAllowed,
)
from usefirst.kit.errors import InvariantViolated, ValidationFailed

PDF = "application/pdf"
PNG = "image/png"
JPEG = "image/jpeg"
TEXT = "text/plain"
JSON = "application/json"
ALLOWED_CONTENT_TYPES = (PDF, PNG, JPEG, TEXT, JSON)
# Declared types that say nothing about the content: the bytes decide.
UNSPECIFIC_CONTENT_TYPES = ("", "application/octet-stream")
CONTENT_TYPE_ALIASES = {"image/jpg": JPEG, "image/pjpeg": JPEG, "text/json": JSON}

MAX_FILENAME_CHARACTERS = 255
# Separators, a Windows drive or stream colon, and anything the OS treats specially in a name.
_FORBIDDEN_IN_FILENAME = re.compile(r"[/\\:\x00]")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# Text may hold tabs, line breaks and form feeds, but no other control characters.
_ALLOWED_TEXT_CONTROLS = {"\t", "\n", "\r", "\f"}


@dataclass(frozen=True)
class CheckedFile:
    content: bytes
    content_type: str
    sha256: str
    filename: str | None

    @property
    def size_bytes(self) -> int:
        return len(self.content)


def clean_filename(name: str | None) -> str | None:
    """The caller's file name as safe metadata, or an error when it tries to be a path."""
    if name is None:
        return None
    cleaned = unicodedata.normalize("NFC", name).strip()
    if not cleaned:
        return None
    if _FORBIDDEN_IN_FILENAME.search(cleaned) or cleaned in (".", ".."):
        raise EvidenceFilenameInvalid(
            "The file name must be a plain name, without directories, '..' or drive letters.",
            field="file",
        )
    if any(unicodedata.category(character) in ("Cc", "Cf") for character in cleaned):
        raise EvidenceFilenameInvalid(
            "The file name must not contain control or formatting characters.", field="file"
        )
    if len(cleaned) > MAX_FILENAME_CHARACTERS:
        raise EvidenceFilenameInvalid(
            f"The file name must have at most {MAX_FILENAME_CHARACTERS} characters.", field="file"
        )
    return cleaned


def _normalise_declared(content_type: str | None) -> str:
    declared = (content_type or "").split(";", 1)[0].strip().lower()
    return CONTENT_TYPE_ALIASES.get(declared, declared)


def _as_text(content: bytes) -> str | None:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    text = text.removeprefix("\ufeff")
    if any(
        unicodedata.category(character) == "Cc" and character not in _ALLOWED_TEXT_CONTROLS
        for character in text
    ):
        return None
    return text


def _is_json_document(text: str) -> bool:
    try:
        document = json.loads(text)
    except ValueError:
        return False
    return isinstance(document, dict | list)


def detect_content_type(content: bytes, *, declared: str | None) -> str:
    """The type the bytes really are, checked against what the caller declared."""
    claimed = _normalise_declared(declared)
    if claimed not in ALLOWED_CONTENT_TYPES and claimed not in UNSPECIFIC_CONTENT_TYPES:
        raise EvidenceTypeNotAllowed(
            f"Files of type {claimed!r} are not accepted as evidence; use PDF, PNG, JPEG, "
            "plain text or JSON.",
            field="file",
        )
    detected: str | None
    if content.startswith(b"%PDF-"):
        detected = PDF
    elif content.startswith(b"\x89PNG\r\n\x1a\n"):
        detected = PNG
    elif content.startswith(b"\xff\xd8\xff"):
        detected = JPEG
    else:
        text = _as_text(content)
        if text is None:
            detected = None
        elif claimed == TEXT:
            detected = TEXT
        elif _is_json_document(text):
            detected = JSON
        else:
            detected = TEXT
    if detected is None:
        raise EvidenceTypeNotAllowed(
            "The file's content is not a PDF, PNG, JPEG, UTF-8 text or JSON document.",
            field="file",
        )
    if claimed not in UNSPECIFIC_CONTENT_TYPES and claimed != detected:
        raise EvidenceTypeNotAllowed(
            f"The file was sent as {claimed} but its content is {detected}.", field="file"
        )
    return detected


def check_upload(
    *, content: bytes, declared_content_type: str | None, filename: str | None, max_bytes: int
) -> CheckedFile:
    """Everything that decides whether a file is accepted, before anything is stored."""
    cleaned_name = clean_filename(filename)
    if len(content) > max_bytes:
        raise EvidenceTooLarge(f"Evidence files may be at most {max_bytes} bytes.", field="file")
    if not content:
        raise ValidationFailed("The file is empty.", field="file")
    content_type = detect_content_type(content, declared=declared_content_type)
    return CheckedFile(
        content=content,
        content_type=content_type,
        sha256=hashlib.sha256(content).hexdigest(),
        filename=cleaned_name,
    )


class EvidenceStore:
    """Content-addressed files under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, sha256: str) -> Path:
        if not _SHA256_HEX.fullmatch(sha256):
            raise InvariantViolated("an evidence path is made from a SHA-256 hex digest only")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def save(self, checked: CheckedFile) -> Path:
        """Write the bytes once (atomically: a reader never sees half a file). Saving bytes that
        are already stored is a no-op, unless the stored copy was damaged."""
        target = self.path_of(checked.sha256)
        if target.exists() and self._digest(target) == checked.sha256:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(checked.content)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target

    def read(self, sha256: str) -> bytes:
        content = self.path_of(sha256).read_bytes()
        if hashlib.sha256(content).hexdigest() != sha256:
            raise EvidenceCorrupted()
        return content

    @staticmethod
    def _digest(path: Path) -> str:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
