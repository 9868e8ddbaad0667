"""The console as mounted on the API's app: sign-in and dashboard (``web``) and every page module,
listed here as ordinary imports (each registers its words with ``i18n.register`` when imported),
then static files, security headers and error pages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from usefirst.console import (
    collections_pages,
    compliance_pages,
    config_pages,
    credential_pages,
    i18n,
    merchant_pages,
    risk_pages,
    web,
)

PAGE_ROUTERS: tuple[APIRouter, ...] = (
    web.router,
    collections_pages.router,
    compliance_pages.router,
    risk_pages.router,
    merchant_pages.router,
    config_pages.router,
    credential_pages.router,
)


def install(app: FastAPI) -> None:
    """Mount the console on the API's app: pages, static files, headers, error pages."""
    for router in PAGE_ROUTERS:
        app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=web.HERE / "static"), name="console-static")

    @app.middleware("http")
    async def console_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if request.url.path.startswith("/console"):
            for name, value in web.SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
        return response

    @app.exception_handler(web.SignInRequired)
    async def on_sign_in_required(request: Request, exc: web.SignInRequired) -> Response:
        return web.redirect("/console/login")

    @app.exception_handler(web.PageForbidden)
    async def on_forbidden(request: Request, exc: web.PageForbidden) -> Response:
        return _refused(request, language=exc.language, message_key="forbidden")

    @app.exception_handler(web.CsrfRejected)
    async def on_csrf(request: Request, exc: web.CsrfRejected) -> Response:
        return _refused(request, language=exc.language, message_key="csrf_failed")


def _refused(request: Request, *, language: str, message_key: str) -> Response:
    return web.render(
        request,
        "message.html",
        status_code=403,
        language=language,
        message=i18n.translate(message_key, language),
    )
