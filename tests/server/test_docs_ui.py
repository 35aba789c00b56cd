"""The API docs work offline (issue 15): /v1/docs and /v1/redoc load only this server's files.

Both pages answer without a key; every script, style, icon and document they name is
on this server (``/static/...`` or ``/v1/openapi.json``), and so is everything
``swagger-ui.css`` loads; each page's Content-Security-Policy allows no other host;
``/static/`` serves the vendored files with their types and nothing outside them.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from starlette.routing import Mount

from aimass.server import UNAUTHENTICATED_PATHS, iter_routes
from aimass.server.docs_ui import DOCS_PATHS, STATIC_DIR, STATIC_PATHS

PAGES = ["/v1/docs", "/v1/redoc"]
VENDOR = "/static/vendor"
# Any absolute or scheme-relative URL: a load from another host.
EXTERNAL = re.compile(r"(?:[a-z][a-z0-9+.-]*:)?//", re.I)
# Sources a policy may name: none of them is another host.
LOCAL_SOURCES = {"'self'", "'none'", "'unsafe-inline'", "data:", "blob:"}


class _Links(HTMLParser):
    """Every URL-valued attribute of a page, as ``(tag, attribute, value)``."""

    URL_ATTRIBUTES = frozenset({"src", "href", "spec-url", "action", "data", "poster", "srcset"})

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in self.URL_ATTRIBUTES or name.endswith("-url"):
                self.found.append((tag, name, value or ""))


def links(page: str) -> list[tuple[str, str, str]]:
    parser = _Links()
    parser.feed(page)
    return parser.found


def policy(header: str) -> dict[str, list[str]]:
    """A Content-Security-Policy header as ``{directive: [sources]}``."""
    directives = {}
    for part in header.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


@pytest.mark.parametrize("path", PAGES)
def test_the_docs_pages_answer_without_a_key(client, path):
    r = client.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert path in UNAUTHENTICATED_PATHS


@pytest.mark.parametrize("path", PAGES)
def test_the_pages_load_only_this_servers_files(client, path):
    page = client.get(path).text
    assert not EXTERNAL.search(page), "no absolute or //host URL anywhere in the page"
    found = links(page)
    assert found, "the parser saw the page's links"
    for tag, attribute, url in found:
        assert url == "/v1/openapi.json" or url.startswith("/static/"), (tag, attribute, url)
        assert not url.startswith("//") and ".." not in url, url
        answer = client.get(url)
        assert answer.status_code == 200, (url, answer.status_code)


def test_swagger_ui_is_booted_by_a_file_not_an_inline_script(client):
    parser = _Links()
    page = client.get("/v1/docs").text
    parser.feed(page)
    scripts = [url for tag, attribute, url in parser.found if tag == "script"]
    assert scripts == [
        f"{VENDOR}/swagger-ui/swagger-ui-bundle.js",
        "/static/docs/swagger-init.js",
    ]
    assert parser.tags.count("script") == len(scripts), "every <script> has a src"
    assert f'href="{VENDOR}/swagger-ui/swagger-ui.css"' in page
    assert 'data-openapi-url="/v1/openapi.json"' in page
    boot = client.get("/static/docs/swagger-init.js").text
    assert "validatorUrl: null" in boot, "the spec's URL is never sent to validator.swagger.io"
    assert "http://" not in boot and "https://" not in boot


def test_redoc_loads_the_vendored_bundle_without_google_fonts(client):
    page = client.get("/v1/redoc").text
    found = links(page)
    assert ("script", "src", f"{VENDOR}/redoc/redoc.standalone.js") in found
    assert ("redoc", "spec-url", "/v1/openapi.json") in found
    assert "fonts.googleapis" not in page and "fastapi.tiangolo.com" not in page


def test_swagger_ui_css_loads_nothing_from_another_host(client):
    r = client.get(f"{VENDOR}/swagger-ui/swagger-ui.css")
    assert r.status_code == 200
    css = r.text
    assert "@import" not in css
    urls = re.findall(r"url\(\s*(['\"]?)(.*?)\1\s*\)", css, re.S)
    assert len(urls) > 5, "the stylesheet's url() values were found"
    for _, url in urls:
        # data: URIs are inline (their SVGs name the www.w3.org namespace, load nothing).
        if url.startswith("data:"):
            continue
        assert not EXTERNAL.match(url), url


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        (f"{VENDOR}/swagger-ui/swagger-ui-bundle.js", "text/javascript"),
        (f"{VENDOR}/swagger-ui/swagger-ui.css", "text/css"),
        (f"{VENDOR}/swagger-ui/favicon-32x32.png", "image/png"),
        (f"{VENDOR}/redoc/redoc.standalone.js", "text/javascript"),
        ("/static/docs/swagger-init.js", "text/javascript"),
        (f"{VENDOR}/redoc/LICENSE", "text/plain"),
    ],
)
def test_the_assets_are_served_with_their_types(client, path, media_type):
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0] == media_type
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.content == (STATIC_DIR / path.removeprefix("/static/")).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/static/../aimass.db",
        "/static/vendor/../../settings.py",
        "/static/%2e%2e/app.py",  # the server decodes it to /static/../app.py
        "/static/..%2fapp.py",
        "/static/vendor/%2e%2e/%2e%2e/docs_ui.py",
        "/static/vendor/swagger-ui/%2e%2e/%2e%2e/%2e%2e/app.py",
        "/static//etc/passwd",
        "/static/vendor/",
        "/static/vendor",
        "/static/",
        "/static/vendor/swagger-ui/swagger-ui.css.map",
    ],
)
def test_static_serves_nothing_outside_the_vendored_files(client, path):
    r = client.get(path)
    assert r.status_code == 404, (path, r.status_code, r.text[:200])
    assert "import" not in r.text and "<a href" not in r.text, "no source file, no listing"


@pytest.mark.parametrize("path", PAGES)
def test_the_pages_policy_allows_nothing_from_another_host(client, path):
    header = client.get(path).headers["content-security-policy"]
    directives = policy(header)
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"], "no inline script, no other host"
    assert directives["img-src"] == ["'self'", "data:"]
    assert directives["connect-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    for name, sources in directives.items():
        assert set(sources) <= LOCAL_SOURCES, (name, sources)
    if path == "/v1/docs":
        assert directives["style-src"] == ["'self'"]


def test_fastapis_cdn_docs_are_not_served(client):
    assert client.app.docs_url is None and client.app.redoc_url is None
    for path in ("/docs", "/redoc", "/v1/docs/oauth2-redirect"):
        assert client.get(path).status_code in (401, 404), path
    assert not set(client.get("/v1/openapi.json").json()["paths"]) & DOCS_PATHS


def test_the_public_static_paths_are_exactly_the_files_served(client):
    files = {p for p in STATIC_DIR.rglob("*") if p.is_file()}
    assert {f"/static/{p.relative_to(STATIC_DIR).as_posix()}" for p in files} == STATIC_PATHS
    assert {p for p in UNAUTHENTICATED_PATHS if p.startswith("/static/")} == STATIC_PATHS
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"):
        assert f"{VENDOR}/swagger-ui/{name}" in STATIC_PATHS
    for name in ("redoc.standalone.js", "LICENSE"):
        assert f"{VENDOR}/redoc/{name}" in STATIC_PATHS
    assert not any(p.suffix == ".py" for p in files)
    for path in STATIC_PATHS:
        assert client.get(path).status_code == 200, path


def _mounts(routes):
    for route in routes:
        nested = getattr(route, "effective_candidates", None)
        if nested is not None:
            yield from _mounts(nested())
            continue
        inner = getattr(route, "starlette_route", None) or route
        if isinstance(inner, Mount):
            yield inner.path


def test_static_is_one_mount_outside_the_route_table(app):
    """Mounts are not in the route table the auth-surface test walks (``iter_routes``):
    /static is mounted once, and its files are the public paths checked above."""
    assert list(_mounts(app.routes)).count("/static") == 1
    assert not any(path.startswith("/static") for _, path, _ in iter_routes(app.routes))


def test_a_cached_asset_is_revalidated_not_resent(client):
    path = f"{VENDOR}/swagger-ui/swagger-ui.css"
    etag = client.get(path).headers["etag"]
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
