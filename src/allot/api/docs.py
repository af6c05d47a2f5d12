"""The browsable API documentation (Swagger UI) at ``/v1/docs``, served entirely by this
server, so it works on a cluster without internet access.

Swagger UI's files (the script bundle, its stylesheet, a favicon) come from the installed
``fastapi-offline`` package, which ships Swagger UI 5's distribution files (FastAPI's own docs
page loads the same files from a CDN). They are served under ``/v1/docs/assets/``.

Invariants: the page names no other host (every URL in it is a path on this server), and
neither the page, its assets nor the OpenAPI document need a token: they describe the API and
hold no data. Swagger UI's online validator is switched off, since it would call a public
host.
"""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_JS = "swagger-ui-bundle.js"
SWAGGER_CSS = "swagger-ui.css"
FAVICON = "favicon.png"


def assets_directory() -> Path:
    """Where the installed Swagger UI files are (a plain directory: the package is installed
    from a wheel, never zipped)."""
    with as_file(files("fastapi_offline") / "static") as path:
        return Path(path)


def install_docs(app: FastAPI, *, docs_url: str, openapi_url: str, title: str) -> None:
    """Serve Swagger UI for ``openapi_url`` at ``docs_url``, its files at ``docs_url/assets``."""
    assets_url = f"{docs_url}/assets"
    app.mount(assets_url, StaticFiles(directory=assets_directory()), name="docs-assets")

    @app.get(docs_url, include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - API",
            swagger_js_url=f"{assets_url}/{SWAGGER_JS}",
            swagger_css_url=f"{assets_url}/{SWAGGER_CSS}",
            swagger_favicon_url=f"{assets_url}/{FAVICON}",
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )
