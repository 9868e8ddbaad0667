"""Request plumbing shared by every router: the runtime, the caller, idempotent execution."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from starlette.concurrency import run_in_threadpool

from usefirst.api.text_rules import IDEMPOTENCY_KEY_PATTERN
from usefirst.identity.service import Principal, authenticate
from usefirst.kit.errors import AuthenticationRequired, PermissionDenied
from usefirst.kit.idempotency import MAX_KEY_LENGTH, fingerprint, run_idempotent
from usefirst.runtime import Runtime, Work


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def authenticate_authorization(runtime: Runtime, authorization: str | None) -> Principal:
    """The caller of an ``Authorization: Bearer <key>`` header, or AuthenticationRequired."""
    if not authorization or not authorization.startswith("Bearer "):
        raise AuthenticationRequired()
    secret = authorization[len("Bearer ") :].strip()
    with runtime.database.transaction(read_only=True) as session:
        principal = authenticate(session, secret=secret)
    if principal is None:
        raise AuthenticationRequired("The API key is not valid.")
    return principal


async def get_principal(request: Request) -> Principal:
    # The request guard (api.guard) authenticated every /v1/ request before reading its body;
    # async, so taking its result costs no second trip through the thread pool.
    checked: Principal | None = request.scope.get("state", {}).get("principal")
    if checked is not None:
        return checked
    return await run_in_threadpool(
        authenticate_authorization, get_runtime(request), request.headers.get("authorization")
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
