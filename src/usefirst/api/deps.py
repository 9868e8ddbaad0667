"""Request plumbing shared by every router: the runtime, the caller, idempotent execution."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import orjson
from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from starlette.concurrency import run_in_threadpool

from usefirst.api.credential_cache import CredentialCache
from usefirst.api.text_rules import IDEMPOTENCY_KEY_PATTERN
from usefirst.identity.service import Principal, authenticate, record_key_use
from usefirst.kit.clock import system_now
from usefirst.kit.errors import AuthenticationRequired, PermissionDenied, TooManyFailedAttempts
from usefirst.kit.idempotency import (
    MAX_KEY_LENGTH,
    ResponseRecord,
    check_key,
    fingerprint,
    stored_response,
)
from usefirst.runtime import Runtime, Work


class FastJSONResponse(JSONResponse):
    """A response whose content is already JSON-able (``to_jsonable_python``), encoded by orjson
    (several times faster than the standard library for an order view)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def jsonable(payload: Any) -> Any:
    """``payload`` as JSON values, by the encoder FastAPI uses for returned dicts, so a POST
    and a GET of one object render times identically (RFC 3339 with "Z")."""
    return to_jsonable_python(payload)


def json_response(payload: Any, *, status_code: int = 200) -> FastJSONResponse:
    return FastJSONResponse(status_code=status_code, content=jsonable(payload))


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def runtime_dependency(request: Request) -> Runtime:
    # Async: FastAPI runs a plain function dependency in the thread pool, a hop per request
    # for an attribute read.
    return get_runtime(request)


RuntimeDep = Annotated[Runtime, Depends(runtime_dependency)]


def credential_cache(app_state: Any) -> CredentialCache:
    """The app's per-process memory of authenticated keys (made with the app, see api.app)."""
    cache: CredentialCache = app_state.credential_cache
    return cache


def client_address(scope_client: tuple[str, int] | None) -> str:
    """The caller's address as the server sees it (behind a reverse proxy, run the server with
    the proxy's address in --forwarded-allow-ips so that this is the client's, not the proxy's)."""
    return scope_client[0] if scope_client is not None else "unknown"


def _look_up(runtime: Runtime, secret: str, address: str) -> Principal:
    throttle = runtime.auth_throttles.api_keys
    retry_after = throttle.retry_after_seconds(address)
    if retry_after is not None:
        raise TooManyFailedAttempts(retry_after_seconds=retry_after)
    try:
        with runtime.database.transaction(read_only=True) as session:
            principal = authenticate(session, secret=secret)
    except AuthenticationRequired:
        throttle.record_failure(address)
        raise
    if principal is None:
        throttle.record_failure(address)
        raise AuthenticationRequired("The API key is not valid.")
    if principal.needs_last_used_update:
        with runtime.database.transaction() as session:
            record_key_use(session, key_id=principal.key_id, now=system_now())
    return principal


async def authenticate_authorization(
    runtime: Runtime, cache: CredentialCache, authorization: str | None, address: str
) -> Principal:
    """The caller of the key in ``Authorization: Bearer <key>``. A wrong, revoked or expired key
    is 401 and counts against the client address; past the limit every key from it that this
    process does not already know is 429 until the window moves on (refused before the key is
    looked at, so a throttled guess learns nothing). A key this process authenticated within
    ``credential_cache_seconds`` is no guess and is not checked again: so the throttle, which may
    count in the database, costs a request with a known key nothing. Async so that a remembered
    key costs no hop to the thread pool; only a look-up does (and records the key's use at most
    once a minute)."""
    if not authorization or not authorization.startswith("Bearer "):
        raise AuthenticationRequired()
    secret = authorization[len("Bearer ") :].strip()
    principal = cache.get(secret)
    if principal is None:
        principal = await run_in_threadpool(_look_up, runtime, secret, address)
        cache.remember(secret, principal)
    return principal


async def get_principal(request: Request) -> Principal:
    # The request guard (api.guard) authenticated every /v1/ request before reading its body;
    # the endpoint takes its result.
    checked: Principal | None = request.scope.get("state", {}).get("principal")
    if checked is not None:
        return checked
    return await authenticate_authorization(
        get_runtime(request),
        credential_cache(request.app.state),
        request.headers.get("authorization"),
        client_address(request.scope.get("client")),
    )


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(
    principal: Principal,
    *,
    platform: bool = False,
    merchant: bool = False,
    roles: tuple[str, ...] = (),
) -> None:
    """403 unless the caller is one of the allowed kinds (operators by role)."""
    if platform and principal.kind == "platform":
        return
    if merchant and principal.kind == "merchant":
        return
    if principal.kind == "operator" and principal.role in roles:
        return
    raise PermissionDenied()


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        pattern=IDEMPOTENCY_KEY_PATTERN,
    ),
]


class IdempotentCall:
    """One money-moving POST: its caller, its ``Idempotency-Key`` and the request it fingerprints.

    ``run`` opens the request's unit of work; the action's effects are committed at most once
    per key: a retry with the same key and body gets the stored response (status included), and
    whatever the retry's own run did is rolled back (a new key, the common case, costs no
    look-up; see ``usefirst.kit.idempotency``).
    """

    def __init__(
        self,
        *,
        runtime: Runtime,
        request: Request,
        principal: Principal,
        idempotency_key: str | None,
    ) -> None:
        self.runtime = runtime
        self.request = request
        self.principal = principal
        self.idempotency_key = idempotency_key

    def run(
        self, body: BaseModel | None, action: Callable[[Work], tuple[int, Any]]
    ) -> JSONResponse:
        """Run ``action`` and record its answer under the key after it."""

        def recorded(work: Work, record: ResponseRecord | None) -> tuple[int, Any]:
            status, payload = action(work)
            payload = jsonable(payload)
            if record is not None:
                record.write(work.session, status, payload)
            return status, payload

        return self.run_recorded(body, recorded)

    def run_recorded(
        self,
        body: BaseModel | None,
        action: Callable[[Work, ResponseRecord | None], tuple[int, Any]],
    ) -> JSONResponse:
        """Run ``action``, which writes its answer (JSON values) with its work through the
        record it is given (None without a key), raising ``KeyAlreadyRecorded`` when the key
        has an answer already."""
        request_fingerprint = fingerprint(
            self.request.method,
            self.request.url.path,
            body.model_dump(mode="json") if body is not None else None,
        )
        principal = self.principal
        principal_id = principal.key_id if principal.kind != "platform" else "platform"
        key = self.idempotency_key
        check_key(key)
        try:
            with self.runtime.work() as work:
                record = (
                    ResponseRecord(principal_id, key, request_fingerprint, work.now)
                    if key is not None
                    else None
                )
                status, payload = action(work, record)
        except Exception:
            # Rolled back. A key that has a recorded response (a retry, or a concurrent twin
            # that committed first) is answered with it, whatever this attempt ran into.
            if key is None:
                raise
            with self.runtime.database.transaction(read_only=True) as session:
                stored = stored_response(
                    session,
                    principal_id=principal_id,
                    key=key,
                    request_fingerprint=request_fingerprint,
                )
            if stored is None:
                raise
            status, payload = stored
            return FastJSONResponse(
                status_code=status, content=payload, headers={"Idempotent-Replayed": "true"}
            )
        return FastJSONResponse(status_code=status, content=payload)


async def get_idempotent_call(
    request: Request,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> IdempotentCall:
    return IdempotentCall(
        runtime=runtime, request=request, principal=principal, idempotency_key=idempotency_key
    )


IdempotentCallDep = Annotated[IdempotentCall, Depends(get_idempotent_call)]


def page(rows: list[Any], limit: int, view: Callable[[Any], Any]) -> dict[str, Any]:
    return {"data": [view(row) for row in rows[:limit]], "has_more": len(rows) > limit}
