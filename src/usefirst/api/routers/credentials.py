"""API keys and operator tokens: list, issue, rotate (with an overlap), revoke.

Who may manage which key: an admin operator any key; the platform its own keys and merchants'
keys; a merchant its own keys; any operator its own tokens (revoke only). Another holder's key
is 404, as any object of another merchant is. Operator tokens are issued only against a fresh
TOTP code of the operator's console sign-in (or on the server, by the command line), and are
never rotated: a token cannot prolong itself; issue a new one with a code, then revoke the old.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from usefirst.api import responses as r
from usefirst.api.credential_schemas import (
    CreateApiKeyIn,
    CreateOperatorTokenIn,
    RevokeApiKeyIn,
    RotateApiKeyIn,
)
from usefirst.api.deps import PrincipalDep, RuntimeDep, client_address, page, require
from usefirst.console import auth as console_auth
from usefirst.flows import credentials
from usefirst.identity import service as identity_service
from usefirst.identity.models import ApiKey
from usefirst.identity.service import Principal
from usefirst.kit.clock import system_now
from usefirst.kit.errors import (
    AuthenticationRequired,
    NotFound,
    PermissionDenied,
    TooManyFailedAttempts,
    ValidationFailed,
)

router = APIRouter(tags=["credentials"])


def actor_of(principal: Principal) -> str:
    if principal.kind == "operator":
        return f"operator:{principal.operator_id}"
    if principal.kind == "merchant":
        return f"merchant:{principal.merchant_id}"
    return f"platform:{principal.key_id}"


def _is_admin(principal: Principal) -> bool:
    return principal.kind == "operator" and principal.role == "admin"


def _check_may_manage(principal: Principal, key: ApiKey) -> None:
    """404 unless ``principal`` may see and manage ``key``."""
    if _is_admin(principal):
        return
    allowed = (
        (principal.kind == "platform" and key.kind in ("platform", "merchant"))
        or (principal.kind == "merchant" and key.merchant_id == principal.merchant_id)
        or (principal.kind == "operator" and key.operator_id == principal.operator_id)
    )
    if not allowed:
        raise NotFound("No such API key.")


@router.get("/v1/api-keys", response_model=r.ApiKeyPage, response_model_exclude_unset=True)
def list_api_keys(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    kind: Annotated[Literal["platform", "merchant", "operator"] | None, Query()] = None,
    merchant_id: Annotated[str | None, Query(max_length=40)] = None,
    include_revoked: bool = True,
    limit: Annotated[int, Query(ge=1, le=500)] = 500,
) -> dict[str, Any]:
    """Keys the caller may manage, oldest first; never a secret or its hash."""
    require(principal, platform=True, merchant=True, roles=("admin",))
    if principal.kind == "merchant":
        merchant_id = principal.merchant_id
    now = system_now()
    with runtime.work(read_only=True) as work:
        keys = identity_service.list_api_keys(
            work.session, kind=kind, merchant_id=merchant_id, include_revoked=include_revoked
        )
        if principal.kind == "platform":
            keys = [key for key in keys if key.kind in ("platform", "merchant")]
        return page(keys, limit, lambda key: identity_service.api_key_view(key, now=now))


@router.post(
    "/v1/api-keys",
    status_code=201,
    response_model=r.NewApiKeyOut,
    response_model_exclude_unset=True,
)
def create_api_key(body: CreateApiKeyIn, runtime: RuntimeDep, principal: PrincipalDep) -> Any:
    """A platform key (admins) or a merchant key (admins, the platform); the secret is in this
    answer only."""
    if body.kind == "platform":
        require(principal, roles=("admin",))
    else:
        require(principal, platform=True, roles=("admin",))
    if (body.kind == "merchant") != (body.merchant_id is not None):
        raise ValidationFailed(
            "merchant_id is required for a merchant key, and only for one.", field="merchant_id"
        )
    now = system_now()
    expires_at = now + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    with runtime.work() as work:
        if body.kind == "platform":
            issued = credentials.issue_platform_key(
                work.session,
                actor=actor_of(principal),
                label=body.label,
                expires_at=expires_at,
                now=now,
            )
        else:
            assert body.merchant_id is not None
            issued = credentials.issue_merchant_key(
                work.session,
                merchant_id=body.merchant_id,
                actor=actor_of(principal),
                label=body.label,
                expires_at=expires_at,
                now=now,
            )
        view = identity_service.api_key_view(issued.key, now=now)
    # Not replayable by Idempotency-Key on purpose: the answer carries a secret shown once.
    return {**view, "secret": issued.secret}


@router.post(
    "/v1/api-keys/{key_id}/rotate",
    status_code=201,
    response_model=r.RotatedApiKeyOut,
    response_model_exclude_unset=True,
)
def rotate_api_key(
    key_id: str, body: RotateApiKeyIn, runtime: RuntimeDep, principal: PrincipalDep
) -> Any:
    """A new key for the same holder; the old one works ``overlap_hours`` longer, then expires."""
    require(principal, platform=True, merchant=True, roles=("admin",))
    now = system_now()
    with runtime.work() as work:
        key = identity_service.get_api_key(work.session, key_id=key_id)
        _check_may_manage(principal, key)
        rotated = credentials.rotate_key(
            work.session,
            key_id=key_id,
            actor=actor_of(principal),
            now=now,
            overlap=timedelta(hours=body.overlap_hours),
        )
        answer = {
            "old": identity_service.api_key_view(rotated.old, now=now),
            "new": {
                **identity_service.api_key_view(rotated.new, now=now),
                "secret": rotated.secret,
            },
        }
        old_hash = rotated.old.secret_hash
    if body.overlap_hours == 0:
        runtime.forget_credential(old_hash)
    return answer


@router.post(
    "/v1/api-keys/{key_id}/revoke", response_model=r.ApiKeyOut, response_model_exclude_unset=True
)
def revoke_api_key(
    key_id: str, body: RevokeApiKeyIn, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Revoke the key: refused (401 ``api_key_revoked``) from its next use. Idempotent."""
    now = system_now()
    with runtime.work() as work:
        key = identity_service.get_api_key(work.session, key_id=key_id)
        _check_may_manage(principal, key)
        revoked = credentials.revoke_key(
            work.session, key_id=key_id, reason=body.reason, actor=actor_of(principal), now=now
        )
        view = identity_service.api_key_view(revoked.key, now=now)
    runtime.forget_credential(revoked.secret_hash)
    return view


@router.post(
    "/v1/operator-tokens",
    status_code=201,
    response_model=r.NewApiKeyOut,
    response_model_exclude_unset=True,
)
def create_operator_token(
    body: CreateOperatorTokenIn, request: Request, runtime: RuntimeDep, principal: PrincipalDep
) -> Any:
    """A new personal token of the calling operator, against a fresh TOTP code of their console
    sign-in; bound to their role (an admin may choose a narrower one), expiring in
    ``expires_in_days`` (default 30, at most 90)."""
    if principal.kind != "operator" or principal.operator_id is None:
        raise PermissionDenied("Only an operator can issue an operator token.")
    now = system_now()
    guard = console_auth.SignInGuard(
        throttles=runtime.auth_throttles, client_address=client_address(request.scope.get("client"))
    )
    refusal: console_auth.SignInFailed | None = None
    view: dict[str, Any] = {}
    lifetime = timedelta(days=body.expires_in_days) if body.expires_in_days else None
    with runtime.work() as work:
        operator = identity_service.get_operator(work.session, operator_id=principal.operator_id)
        identity_service.check_operator_token_request(
            operator=operator, role=body.role, lifetime=lifetime
        )
        try:
            console_auth.confirm_fresh_code(
                work.session,
                operator_id=operator.id,
                code=body.totp_code,
                cipher=runtime.cipher,
                settings=runtime.settings,
                now=now,
                guard=guard,
            )
        except console_auth.SignInFailed as failure:
            refusal = failure
        else:
            issued = credentials.issue_operator_token(
                work.session,
                operator=operator,
                actor=actor_of(principal),
                now=now,
                role=body.role,
                lifetime=lifetime,
                label=body.label,
            )
            view = {**identity_service.api_key_view(issued.key, now=now), "secret": issued.secret}
    # The failure was counted in the transaction above (committed), then reported.
    if refusal is not None:
        if refusal.retry_after_seconds is not None:
            raise TooManyFailedAttempts(retry_after_seconds=refusal.retry_after_seconds)
        raise _WrongCode()
    return view


class _WrongCode(AuthenticationRequired):
    code = "second_factor_required"
    default_message = (
        "A fresh code from the authenticator app of your console sign-in is required "
        "(wrong, already used, or no sign-in with two-step verification)."
    )
