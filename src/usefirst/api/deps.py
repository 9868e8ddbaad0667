"""Request plumbing shared by every router: the runtime, the caller, idempotent execution."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from usefirst.identity.service import Principal, authenticate, record_key_use
from usefirst.kit.clock import system_now
from usefirst.kit.errors import AuthenticationRequired, PermissionDenied, TooManyFailedAttempts
from usefirst.kit.idempotency import fingerprint, run_idempotent
from usefirst.runtime import Runtime, Work


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def client_address(request: Request) -> str:
    """The caller's address as the server sees it (behind a reverse proxy, run the server with
    the proxy's address in --forwarded-allow-ips so that this is the client's, not the proxy's)."""
    return request.client.host if request.client is not None else "unknown"


def get_principal(
    request: Request, runtime: RuntimeDep, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    """The caller of the key in ``Authorization``. A wrong, revoked or expired key is 401 and
    counts against the client address; past the limit every key from it is 429 until the
    window moves on (refused before the key is looked at, so a throttled guess learns nothing)."""
    if not authorization or not authorization.startswith("Bearer "):
        raise AuthenticationRequired()
    throttle = runtime.auth_throttles.api_keys
    address = client_address(request)
    retry_after = throttle.retry_after_seconds(address)
    if retry_after is not None:
        raise TooManyFailedAttempts(retry_after_seconds=retry_after)
    secret = authorization[len("Bearer ") :].strip()
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


IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


class IdempotentCall:
    """One money-moving POST: its caller, its ``Idempotency-Key`` and the request it fingerprints.

    ``run`` opens the request's unit of work and runs the action at most once per key: a retry with
    the same key and body gets the stored response (status included) without running it again.
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
        request_fingerprint = fingerprint(
            self.request.method,
            self.request.url.path,
            body.model_dump(mode="json") if body is not None else None,
        )
        principal = self.principal
        with self.runtime.work() as work:

            def encoded() -> tuple[int, Any]:
                status, payload = action(work)
                # The same encoder FastAPI uses for returned dicts, so a POST and a GET of one
                # object render times identically (RFC 3339 with "Z").
                return status, to_jsonable_python(payload)

            status, payload, replayed = run_idempotent(
                work.session,
                principal_id=principal.key_id if principal.kind != "platform" else "platform",
                key=self.idempotency_key,
                request_fingerprint=request_fingerprint,
                now=work.now,
                handler=encoded,
            )
        headers = {"Idempotent-Replayed": "true"} if replayed else {}
        return JSONResponse(status_code=status, content=payload, headers=headers)


def get_idempotent_call(
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
