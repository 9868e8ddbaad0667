"""API keys and operator tokens in the console, for admins: every key with its state, expiry and
last use (never a secret), and revocation with a reason. Revocation goes through the same flow
as the API and the command line, so it is audited alike and the process forgets the key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from usefirst.console.web import check_csrf, redirect, signed_in
from usefirst.flows import credentials
from usefirst.identity import service as identity_service
from usefirst.kit.clock import system_now
from usefirst.kit.errors import UsefirstError

router = APIRouter(prefix="/console/credentials", include_in_schema=False)


def _page(request: Request, *, error: str | None = None, status_code: int = 200) -> Response:
    with signed_in(request, page="credentials") as page:
        now = system_now()
        keys = [
            identity_service.api_key_view(key, now=now)
            for key in identity_service.list_api_keys(page.work.session)
        ]
        return page.render("credentials.html", status_code=status_code, keys=keys, error=error)


@router.get("", response_class=HTMLResponse)
def credential_list(request: Request) -> Response:
    return _page(request)


@router.post("/{key_id}/revoke", response_class=HTMLResponse)
def revoke(
    request: Request,
    key_id: str,
    reason: Annotated[str, Form(max_length=500)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    secret_hash: str | None = None
    error: str | None = None
    with signed_in(request, page="credentials") as page:
        check_csrf(page.session_row.csrf_token, csrf_token, language=page.language)
        try:
            revoked = credentials.revoke_key(
                page.work.session,
                key_id=key_id,
                reason=reason,
                actor=f"operator:{page.identity.operator_id}",
                now=system_now(),
            )
        except UsefirstError as refused:
            error = refused.message
        else:
            secret_hash = revoked.secret_hash
        runtime = page.runtime
    if error is not None:
        return _page(request, error=error, status_code=422)
    assert secret_hash is not None
    runtime.forget_credential(secret_hash)
    return redirect("/console/credentials")
