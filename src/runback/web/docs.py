"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), served whole by runback: no CDN.

FastAPI's own pages load their scripts and styles from a CDN, so a server without internet
access (or a browser behind a strict proxy) shows a blank page. The assets come instead from
the ``fastapi-offline`` package (Swagger UI 5 and ReDoc 2 bundles, MIT), installed with the
server and never downloaded at run time; this module serves them under ``ASSETS_PATH``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Final

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_PATH: Final = "/docs-assets"
SWAGGER_JS: Final = f"{ASSETS_PATH}/swagger-ui-bundle.js"
SWAGGER_CSS: Final = f"{ASSETS_PATH}/swagger-ui.css"
REDOC_JS: Final = f"{ASSETS_PATH}/redoc.standalone.js"
FAVICON: Final = f"{ASSETS_PATH}/favicon.png"


def _assets() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def add_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Serve Swagger UI at ``docs_url`` and ReDoc at ``redoc_url`` from local assets.

    The app is made with ``docs_url=None, redoc_url=None`` (FastAPI's pages use a CDN).
    """
    app.mount(ASSETS_PATH, StaticFiles(directory=_assets()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    title = app.title

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")  # behind a proxy's path prefix
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=root + SWAGGER_JS,
            swagger_css_url=root + SWAGGER_CSS,
            swagger_favicon_url=root + FAVICON,
            # Swagger UI would send the schema to an online validator for its badge.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=root + REDOC_JS,
            redoc_favicon_url=root + FAVICON,
            with_google_fonts=False,
        )
