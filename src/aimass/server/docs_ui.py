"""The API documentation pages, from assets in the package: nothing loads from a CDN.

``GET /v1/docs`` is Swagger UI and ``GET /v1/redoc`` is ReDoc, both reading
``/v1/openapi.json``. Their scripts, styles and favicon are the vendored files under
``static/vendor`` (versions and licenses in ``static/vendor/README.md``), served at
``/static/`` by a mount on :data:`router`; Swagger UI boots from ``static/docs/swagger-init.js``
rather than an inline script, so each page's Content-Security-Policy allows scripts
from this server only, and nothing at all from any other host. An offline network
gets working docs, and a browser reading them calls nowhere else.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = [
    "DOCS_CSP",
    "DOCS_PATHS",
    "REDOC_CSP",
    "STATIC_DIR",
    "STATIC_PATHS",
    "STATIC_PREFIX",
    "router",
]

OPENAPI_URL = "/v1/openapi.json"
STATIC_PREFIX = "/static"
STATIC_DIR = Path(__file__).with_name("static")
DOCS_PATHS = frozenset({"/v1/docs", "/v1/redoc"})
# Every file /static/ serves, by its exact path: the request pipeline's public paths
# match exactly, so the assets are listed rather than matched by prefix.
STATIC_PATHS = frozenset(
    f"{STATIC_PREFIX}/{path.relative_to(STATIC_DIR).as_posix()}"
    for path in STATIC_DIR.rglob("*")
    if path.is_file()
)

_SWAGGER = f"{STATIC_PREFIX}/vendor/swagger-ui"
_FAVICON = f"{_SWAGGER}/favicon-32x32.png"
_TITLE = "aimass API"

# Scripts and styles from this server only; the spec and "Try it out" go to this server;
# images are this server's or the data: URIs in swagger-ui.css.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
# ReDoc (styled-components) writes its styles into <style> elements at run time, and its
# search index runs in a worker made from a blob: URL; still nothing from another host.
REDOC_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; worker-src blob:; form-action 'none'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

_SWAGGER_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{title}</title>
<link rel="stylesheet" type="text/css" href="{css}">
<link rel="icon" type="image/png" href="{favicon}">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="{bundle}"></script>
<script src="{init}"></script>
</body>
</html>
"""

router = APIRouter(include_in_schema=False)


def _headers(csp: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


@router.get("/v1/docs", name="docs.swagger_ui")
def swagger_ui() -> HTMLResponse:
    """Swagger UI on the OpenAPI document (the vendored bundle, booted by our own script)."""
    page = _SWAGGER_PAGE.format(
        title=html.escape(_TITLE),
        css=f"{_SWAGGER}/swagger-ui.css",
        favicon=_FAVICON,
        openapi=OPENAPI_URL,
        bundle=f"{_SWAGGER}/swagger-ui-bundle.js",
        init=f"{STATIC_PREFIX}/docs/swagger-init.js",
    )
    return HTMLResponse(page, headers=_headers(DOCS_CSP))


@router.get("/v1/redoc", name="docs.redoc")
def redoc() -> HTMLResponse:
    """ReDoc on the OpenAPI document (the vendored standalone bundle, no Google Fonts)."""
    page = get_redoc_html(
        openapi_url=OPENAPI_URL,
        title=_TITLE,
        redoc_js_url=f"{STATIC_PREFIX}/vendor/redoc/redoc.standalone.js",
        redoc_favicon_url=_FAVICON,
        with_google_fonts=False,
    )
    return HTMLResponse(bytes(page.body), headers=_headers(REDOC_CSP))


# Fixed types: the platform's mimetypes table can be wrong (.js as text/plain on some
# Windows hosts), and with nosniff a browser would then refuse the script.
_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".md": "text/markdown; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}


class _Assets(StaticFiles):
    """Files under ``static/`` only (Starlette refuses paths that resolve outside it and
    lists no directory), with fixed content types and ``nosniff``."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["x-content-type-options"] = "nosniff"
        if response.status_code != 304:  # a 304 carries no body and so no type
            kind = _MEDIA_TYPES.get(Path(full_path).suffix.lower(), "text/plain; charset=utf-8")
            response.headers["content-type"] = kind
        return response


# The /static/ mount: the vendored docs assets and the Swagger UI boot script. Not checked
# at import: a build that left the files out still serves the API (the pages would 404
# their assets; tests/server/test_docs_ui.py checks the files are there).
router.mount(
    STATIC_PREFIX,
    _Assets(directory=STATIC_DIR, check_dir=False, follow_symlink=False),
    name="static",
)
