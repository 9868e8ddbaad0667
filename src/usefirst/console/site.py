"""The console as mounted on the API's app: sign-in and dashboard (``web``) and every page module
(their words are in the gettext catalogs under ``locale/``, see ``i18n``), then static files,
security headers and error pages."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URL, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from usefirst.console import (
    collections_pages,
    compliance_pages,
    config_pages,
    credential_pages,
    hardship_pages,
    i18n,
    merchant_pages,
    reconciliation_pages,
    risk_pages,
    support_pages,
    web,
)
from usefirst.kit.errors import UsefirstError

PAGE_ROUTERS: tuple[APIRouter, ...] = (
    web.router,
    collections_pages.router,
    compliance_pages.router,
    risk_pages.router,
    merchant_pages.router,
    config_pages.router,
    credential_pages.router,
    support_pages.router,
    hardship_pages.router,
    reconciliation_pages.router,
)


def install(app: FastAPI) -> None:
    """Mount the console on the API's app: pages, static files, headers, error pages."""
    for router in PAGE_ROUTERS:
        app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=web.HERE / "static"), name="console-static")

    app.add_middleware(ConsoleHeaders)

    _console_error_pages(app)

    @app.exception_handler(web.SignInRequired)
    async def on_sign_in_required(request: Request, exc: web.SignInRequired) -> Response:
        return web.redirect("/console/login")

    @app.exception_handler(web.PageForbidden)
    async def on_forbidden(request: Request, exc: web.PageForbidden) -> Response:
        return _refused(request, language=exc.language, message_key="forbidden")

    @app.exception_handler(web.CsrfRejected)
    async def on_csrf(request: Request, exc: web.CsrfRejected) -> Response:
        return _refused(request, language=exc.language, message_key="csrf_failed")


class ConsoleHeaders:
    """The console's security headers on every response under /console, as plain ASGI (an
    ``http`` middleware function would run each request of the API, too, in a task of its own
    with its body passed through memory streams)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not URL(scope=scope).path.startswith("/console"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in web.SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def form_refusal_page(
    scope: MutableMapping[str, Any], error: UsefirstError, fields: list[tuple[str, str]]
) -> Response:
    """What the request guard answers for a refused form: under /console a console page that
    keeps the form (``web.refused_form_page``), elsewhere the API's JSON error."""
    request = Request(scope)
    if not _is_console_page(request):
        return JSONResponse(
            status_code=error.status_code, content=error.to_body(), headers=error.headers()
        )
    page: Response = await run_in_threadpool(
        web.refused_form_page, request, field=error.field, fields=fields
    )
    # Answered before the app (and its console_headers middleware) is reached.
    for name, value in web.SECURITY_HEADERS.items():
        page.headers.setdefault(name, value)
    return page


def _refused(request: Request, *, language: str, message_key: str) -> Response:
    return web.error_page(request, status_code=403, message=i18n.translate(message_key, language))


def _is_console_page(request: Request) -> bool:
    path = request.url.path
    return (path == "/console" or path.startswith("/console/")) and not path.startswith(
        "/console/static/"
    )


def _console_error_pages(app: FastAPI) -> None:
    """Under /console, unknown paths and ids (404), bad query strings or forms (422) and domain
    refusals that escape a page answer with a console page, not the API's JSON; everywhere else
    the API's own handlers (registered before the console is installed) answer as before."""
    api_handlers: dict[Any, Any] = dict(app.exception_handlers)

    async def delegate(request: Request, exc: Exception) -> Response:
        handler = api_handlers[type(exc) if type(exc) in api_handlers else _kind_of(exc)]
        response: Response = await handler(request, exc)
        return response

    async def on_error(request: Request, exc: Exception) -> Response:
        if not _is_console_page(request):
            return await delegate(request, exc)
        language = web.language_of(request)
        if isinstance(exc, RequestValidationError):
            return web.error_page(
                request, status_code=422, message=i18n.translate("bad_request_page", language)
            )
        if isinstance(exc, UsefirstError):
            status = exc.status_code
            message = (
                i18n.translate("not_found", language)
                if status == 404
                else i18n.refusal(exc.code, exc.message, language)
            )
            return web.error_page(request, status_code=status, message=message)
        status = getattr(exc, "status_code", 500)
        key = "not_found" if status == 404 else "bad_request_page"
        return web.error_page(request, status_code=status, message=i18n.translate(key, language))

    for kind in (UsefirstError, RequestValidationError, StarletteHTTPException):
        if kind in api_handlers:
            app.add_exception_handler(kind, on_error)


def _kind_of(exc: Exception) -> type:
    for kind in (UsefirstError, RequestValidationError, StarletteHTTPException):
        if isinstance(exc, kind):
            return kind
    raise exc
