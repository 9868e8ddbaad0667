"""The request guard: what every request passes before any endpoint sees it, as pure ASGI.

In order: the text of the path, query string and headers (api.text_rules); for the v1 API the
caller's key, before a byte of the body is read (a missing or wrong key with a 64 MB body is a
quick 401, not a parse); the body's size, by ``Content-Length`` and by the bytes that actually
arrive (413); and a JSON or form body read whole within that limit and checked once: valid
UTF-8, no duplicate keys, nesting and numbers within bounds, every string and key by the text
rules (422 naming the field). The checked body is then handed on unchanged.

It also puts the security headers on every response. Pure ASGI (no BaseHTTPMiddleware): no
extra task or response copy per request.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from usefirst.api.text_rules import (
    LINE_RULE_MESSAGE,
    TEXT_RULE_MESSAGE,
    breaks_line_rule,
    breaks_text_rule,
)
from usefirst.kit.errors import (
    AuthenticationRequired,
    PayloadTooLarge,
    UsefirstError,
    ValidationFailed,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API_PREFIX = "/v1/"
# Payment providers' callbacks carry the provider's signature, not an API key: the endpoint
# verifies it (rails), so the guard checks their text and size but asks for no key.
SIGNED_CALLBACK_PATH = re.compile(r"/v1/rails/[a-z0-9_]+/callbacks")
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
# Deeper than any body of the API (checkout items are three levels down).
MAX_JSON_DEPTH = 32
# Far more digits than any amount or count the API takes (the models bound each field, and a
# service answers with its own code for a promise or refund above what is owed); a 4,300-digit
# number is refused before Python spends time converting it.
MAX_INTEGER_DIGITS = 30
MAX_NUMBER_CHARACTERS = 40

NOSNIFF = (b"x-content-type-options", b"nosniff")
NO_STORE = (b"cache-control", b"no-store")
JSON_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
NO_REFERRER = (b"referrer-policy", b"no-referrer")


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """Bytes a request body may have, by the kind of endpoint."""

    json_bytes: int
    form_bytes: int
    upload_bytes: int
    upload_paths_end_with: tuple[str, ...] = ("/evidence",)

    def for_request(self, path: str, content_type: str) -> int:
        if content_type.startswith("multipart/form-data") and path.endswith(
            self.upload_paths_end_with
        ):
            return self.upload_bytes
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            return self.form_bytes
        return self.json_bytes


# (the Authorization header, the client (host, port) as the server saw it) -> the principal
Authenticator = Callable[[str | None, tuple[str, int] | None], Awaitable[object]]
# A refused form outside the API (the console): (the request, the refusal, the form's fields as
# sent) -> the page that answers it, so that a person gets a page keeping the form, not JSON.
FormRefusalPage = Callable[[Scope, UsefirstError, list[tuple[str, str]]], Awaitable[ASGIApp]]


class _RefusedPageForm(Exception):
    def __init__(self, error: UsefirstError, body: bytes) -> None:
        self.error = error
        self.body = body


def _is_json(content_type: str) -> bool:
    """As FastAPI decides: no content type, ``application/json`` or ``application/*+json``."""
    if not content_type:
        return True
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


class _BadNumber(Exception):
    pass


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise _BadNumber()
    return int(text)


def _bounded_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARACTERS:
        raise _BadNumber()
    value = float(text)
    if not math.isfinite(value):
        raise _BadNumber()
    return value


def _no_constant(text: str) -> Any:
    raise _BadNumber()


def _field(path: list[str]) -> str | None:
    return ".".join(path) or None


def _check_json_value(value: Any, path: list[str]) -> None:
    if len(path) > MAX_JSON_DEPTH:
        raise ValidationFailed(
            f"The request body is nested more than {MAX_JSON_DEPTH} levels deep.",
            field=_field(path[:MAX_JSON_DEPTH]),
        )
    if isinstance(value, str):
        if breaks_text_rule(value):
            raise ValidationFailed(f"This field {TEXT_RULE_MESSAGE}.", field=_field(path))
    elif isinstance(value, dict):
        for key, item in value.items():
            if breaks_line_rule(key):
                raise ValidationFailed(
                    f"A field name {LINE_RULE_MESSAGE}.", field=_field(path) or "body"
                )
            path.append(key)
            _check_json_value(item, path)
            path.pop()
    elif isinstance(value, list):
        for index, item in enumerate(value):
            path.append(str(index))
            _check_json_value(item, path)
            path.pop()


def check_json_body(body: bytes) -> None:
    """Raise ValidationFailed unless ``body`` is JSON this API can read as meant."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationFailed("The request body is not valid UTF-8.") from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_object_without_duplicates,
            parse_int=_bounded_int,
            parse_float=_bounded_float,
            parse_constant=_no_constant,
        )
    except _DuplicateKey as duplicate:
        raise ValidationFailed(
            f"The field {duplicate.key!r} appears more than once in the request body.",
            field=duplicate.key if not breaks_line_rule(duplicate.key) else None,
        ) from None
    except _BadNumber:
        raise ValidationFailed(
            f"Numbers in the request body must be finite and have at most "
            f"{MAX_INTEGER_DIGITS} digits."
        ) from None
    except RecursionError:
        raise ValidationFailed(
            f"The request body is nested more than {MAX_JSON_DEPTH} levels deep."
        ) from None
    except ValueError:
        raise ValidationFailed("The request body is not valid JSON.") from None
    _check_json_value(value, [])


def check_form_body(body: bytes) -> None:
    try:
        fields = parse_qsl(body.decode("latin-1"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise ValidationFailed("The form is not valid UTF-8.") from None
    for name, value in fields:
        if breaks_line_rule(name):
            raise ValidationFailed(f"A form field name {LINE_RULE_MESSAGE}.")
        if breaks_text_rule(value):
            raise ValidationFailed(f"This field {TEXT_RULE_MESSAGE}.", field=name)


class RequestGuard:
    """Pure ASGI middleware; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: BodyLimits,
        authenticate: Authenticator,
        documented_paths: Callable[[], Mapping[str, Mapping[str, Any]]],
        form_refusal_page: FormRefusalPage | None = None,
    ) -> None:
        self.app = app
        self.form_refusal_page = form_refusal_page
        self.limits = limits
        self.authenticate = authenticate
        self.documented_paths = documented_paths
        self._compiled: list[tuple[re.Pattern[str], str]] | None = None

    def _path_templates(self) -> list[tuple[re.Pattern[str], str]]:
        """The documented paths (``/v1/orders/{order_id}``) as patterns, with the methods each
        takes (for ``Allow``); made on first use, which is a refusal or a 405."""
        if self._compiled is None:
            self._compiled = [
                (
                    re.compile(re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]*)", re.escape(template))),
                    ", ".join(sorted(method.upper() for method in item if method in HTTP_METHODS)),
                )
                for template, item in self.documented_paths().items()
            ]
        return self._compiled

    def allowed_methods(self, path: str) -> str | None:
        """Every method the path takes: Starlette's 405 names only those of the first route
        that matched the path (``GET`` for a path that also takes ``POST``)."""
        for template, methods in self._path_templates():
            if template.fullmatch(path) is not None:
                return methods
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        is_api = path.startswith(API_PREFIX)
        send_with_headers = _with_security_headers(send, is_api=is_api, guard=self, path=path)
        try:
            receive = await self._guard(scope, receive, path=path, is_api=is_api)
        except UsefirstError as error:
            await _send_error(send_with_headers, error)
            return
        except _RefusedPageForm as refused:
            assert self.form_refusal_page is not None
            fields = parse_qsl(
                refused.body.decode("utf-8", errors="replace"), keep_blank_values=True
            )
            page = await self.form_refusal_page(scope, refused.error, fields)
            await page(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    async def _guard(self, scope: Scope, receive: Receive, *, path: str, is_api: bool) -> Receive:
        self._check_path(scope, path)
        _check_query(scope.get("query_string", b""))
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        authorization = None
        content_type = ""
        content_length = None
        chunked = False
        for name, raw in headers:
            if _header_breaks_rule(raw):
                raise ValidationFailed(
                    f"This header {LINE_RULE_MESSAGE}.", field=name.decode("latin-1")
                )
            value = raw.decode("latin-1")
            if name == b"authorization":
                authorization = value
            elif name == b"content-type":
                content_type = value.lower()
            elif name == b"content-length":
                content_length = value
            elif name == b"transfer-encoding":
                chunked = True
        if is_api and not SIGNED_CALLBACK_PATH.fullmatch(path):
            if authorization is None or not authorization.startswith("Bearer "):
                raise AuthenticationRequired()
            # The key is looked up before the body is read (and before routing: no key, no
            # knowing which paths exist); the endpoint's dependency reuses the result.
            principal = await self.authenticate(authorization, scope.get("client"))
            scope.setdefault("state", {})["principal"] = principal
        if content_length in (None, "0") and not chunked:
            return receive
        limit = self.limits.for_request(path, content_type)
        is_upload = limit == self.limits.upload_bytes and content_type.startswith(
            "multipart/form-data"
        )
        if content_length is not None:
            if not content_length.isdigit():
                raise ValidationFailed("Content-Length must be a number.", field="content-length")
            # An upload endpoint refuses a declared length itself, before reading, with its own
            # error code (evidence_too_large); the guard still counts what streams in.
            if int(content_length) > limit and not is_upload:
                raise _too_large(limit)
        if content_type.startswith("multipart/form-data"):
            return _counting(receive, limit)
        is_form = content_type.startswith("application/x-www-form-urlencoded")
        if not (is_form or _is_json(content_type)):
            return _counting(receive, limit)
        body = await _read_body(receive, limit)
        if body:
            if is_form:
                try:
                    check_form_body(body)
                except ValidationFailed as error:
                    if is_api or self.form_refusal_page is None:
                        raise
                    raise _RefusedPageForm(error, body) from None
            else:
                check_json_body(body)
        return _replaying(body, receive)

    def _check_path(self, scope: Scope, path: str) -> None:
        if not breaks_line_rule(path):
            return
        field = "path"
        for template, _ in self._path_templates():
            match = template.fullmatch(path)
            if match is not None:
                named = [
                    name for name, value in match.groupdict().items() if breaks_line_rule(value)
                ]
                if named:
                    field = named[0]
                    break
        raise ValidationFailed(f"This path parameter {LINE_RULE_MESSAGE}.", field=field)


_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def _header_breaks_rule(raw: bytes) -> bool:
    """Header values are bytes: read as UTF-8 where they are (then the line rule applies), and
    otherwise only ASCII control bytes are refused (tab is allowed between words)."""
    if raw.isascii():
        return _CONTROL_BYTES.search(raw) is not None
    try:
        return breaks_line_rule(raw.decode("utf-8").replace("\t", " "))
    except UnicodeDecodeError:
        return _CONTROL_BYTES.search(raw) is not None


def _check_query(query_string: bytes) -> None:
    if not query_string:
        return
    try:
        fields = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise ValidationFailed("The query string is not valid UTF-8.") from None
    for name, value in fields:
        if breaks_line_rule(name):
            raise ValidationFailed(f"A query parameter name {LINE_RULE_MESSAGE}.")
        if breaks_line_rule(value):
            raise ValidationFailed(f"This query parameter {LINE_RULE_MESSAGE}.", field=name)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body may have at most {limit} bytes here.")


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _counting(receive: Receive, limit: int) -> Receive:
    """For bodies the endpoint streams itself (uploads): stop at ``limit`` bytes. The error is
    raised inside the endpoint's read, so it is answered by the app's error handler."""
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise _too_large(limit)
        return message

    return counted


def _with_security_headers(send: Send, *, is_api: bool, guard: RequestGuard, path: str) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
            if message["status"] == 405:
                allowed = guard.allowed_methods(path)
                if allowed is not None:
                    headers = [(name, value) for name, value in headers if name.lower() != b"allow"]
                    headers.append((b"allow", allowed.encode("ascii")))
            present = {name.lower() for name, _ in headers}
            wanted = [NOSNIFF]
            if is_api or message["status"] >= 400:
                wanted += [NO_STORE, NO_REFERRER]
            if any(
                name.lower() == b"content-type" and value.startswith(b"application/json")
                for name, value in headers
            ):
                wanted.append(JSON_CSP)
            headers.extend(header for header in wanted if header[0] not in present)
            message["headers"] = headers
        await send(message)

    return send_with_headers


def error_response_headers() -> list[tuple[bytes, bytes]]:
    return [NOSNIFF, NO_STORE, NO_REFERRER, JSON_CSP]


async def _send_error(send: Send, error: UsefirstError) -> None:
    body = json.dumps(error.to_body(), ensure_ascii=False).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    if isinstance(error, AuthenticationRequired):
        headers.append((b"www-authenticate", b"Bearer"))
    headers += [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in error.headers().items()
    ]
    # The security headers come from the send wrapper.
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
