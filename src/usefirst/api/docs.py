"""The API's documentation pages, served with no request to another host.

Swagger UI (``/docs``) comes from the swagger-ui-bundle package (PyPI ``swagger-ui-bundle-v2``,
Swagger UI 5, which reads OpenAPI 3.1) and is served from ``/docs/assets``; ReDoc (``/redoc``)
comes from the fastapi-offline package's standalone build (that package ships no newer Swagger
UI, and swagger-ui-bundle no ReDoc) and is served from ``/redoc/assets``, without the Google Fonts
link FastAPI's page adds by default. Both pages work offline and where public CDNs are blocked or
slow (mainland China).

Each page also carries a Content-Security-Policy that lets it load nothing from another host: the
ReDoc build links the Redocly logo in its footer from Redocly's CDN, and the browser now drops
that request instead of sending it (the footer shows its text without the image)."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

ASSETS_PATH = "/docs/assets"
REDOC_ASSETS_PATH = "/redoc/assets"
REDOC_ASSETS_DIRECTORY = Path(fastapi_offline.__file__).parent / "static"


# Scripts, styles, images and fonts from this server only. Swagger UI's page starts it with an
# inline script, and both render styles inline; ReDoc searches in a worker made from a blob.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'none'"
)


def _self_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = DOCS_POLICY
    return page


def install_offline_docs(app: FastAPI) -> None:
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(ASSETS_PATH, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
    app.mount(
        REDOC_ASSETS_PATH,
        StaticFiles(directory=str(REDOC_ASSETS_DIRECTORY)),
        name="redoc-assets",
    )

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return _self_only(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{app.title} API",
                swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
                swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
                swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
            )
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return _self_only(
            get_redoc_html(
                openapi_url=openapi_url,
                title=f"{app.title} API",
                redoc_js_url=f"{REDOC_ASSETS_PATH}/redoc.standalone.js",
                redoc_favicon_url=f"{REDOC_ASSETS_PATH}/favicon.png",
                with_google_fonts=False,
            )
        )
