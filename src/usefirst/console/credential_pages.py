"""API keys and operator tokens in the console, for admins: every key with its state, expiry and
last use (never a secret), and revocation with a reason. Revocation goes through the same flow
as the API and the command line, so it is audited alike and the process forgets the key."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from usefirst.console import i18n
from usefirst.console.listing import PAGE_SIZE, SEARCH_MAX_CHARS, pager, search_of
from usefirst.console.repository import credentials_page
from usefirst.console.web import check_csrf, redirect, signed_in
from usefirst.flows import credentials
from usefirst.identity import service as identity_service
from usefirst.kit.clock import system_now
from usefirst.kit.errors import UsefirstError, ValidationFailed

router = APIRouter(prefix="/console/credentials", include_in_schema=False)


def _page(
    request: Request,
    *,
    error: str | None = None,
    status_code: int = 200,
    query: dict[str, str] | None = None,
) -> Response:
    chosen = query or {}
    kind = chosen.get("kind", "")
    if kind and kind not in identity_service.API_KEY_KINDS:
        raise ValidationFailed("kind is not a kind of key.", field="kind")
    state = chosen.get("state", "")
    after = chosen.get("after", "")
    with signed_in(request, page="credentials") as page:
        now = system_now()
        session = page.work.session
        listing = credentials_page(
            session,
            kind=kind or None,
            revoked={"": None, "live": False, "revoked": True}[state],
            search=search_of(session, chosen.get("q", ""), cipher=page.runtime.cipher),
            after=after or None,
            limit=PAGE_SIZE,
        )
        shown = {name: chosen.get(name, "") for name in ("q", "kind", "state")}
        return page.render(
            "credentials.html",
            status_code=status_code,
            keys=[identity_service.api_key_view(key, now=now) for key in listing.rows],
            error=error,
            query=shown,
            kinds=identity_service.API_KEY_KINDS,
            paging=pager("/console/credentials", listing, chosen=shown, after=after),
        )


@router.get("", response_class=HTMLResponse)
def credential_list(
    request: Request,
    q: Annotated[str, Query(max_length=SEARCH_MAX_CHARS)] = "",
    kind: Annotated[str, Query(max_length=16)] = "",
    state: Annotated[Literal["", "live", "revoked"], Query()] = "",
    after: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    return _page(request, query={"q": q, "kind": kind, "state": state, "after": after})


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
            error = i18n.refusal(refused.code, refused.message, page.language)
        else:
            secret_hash = revoked.secret_hash
        runtime = page.runtime
    if error is not None:
        return _page(request, error=error, status_code=422)
    assert secret_hash is not None
    runtime.forget_credential(secret_hash)
    return redirect("/console/credentials")
