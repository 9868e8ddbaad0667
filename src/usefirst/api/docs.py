"""The API's documentation pages, served with no request to another host.

Swagger UI (``/docs``) comes from the swagger-ui-bundle package (PyPI ``swagger-ui-bundle-v2``,
Swagger UI 5, which reads OpenAPI 3.1) and is served from ``/docs/assets``; ReDoc (``/redoc``)
comes from the fastapi-offline package's standalone build (that package ships no newer Swagger
UI, and swagger-ui-bundle no ReDoc) and is served from ``/redoc/assets``, without the Google Fonts
link FastAPI's page adds by default. Both pages work offline and where public CDNs are blocked or
slow (mainland China)."""

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
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            redoc_js_url=f"{REDOC_ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{REDOC_ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
