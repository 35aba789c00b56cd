"""The served home of tests/server (a tiny trained model), and the attacker's tools.

The fixtures are the ones ``tests/server/conftest.py`` defines (imported, so the
attacks run against exactly the app the API tests use); the helpers here build
what an attacker sends: a pickle that leaves a marker when unpickled, a concrete
URL for every route template, a request body streamed straight into the ASGI app.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from aimass.server import iter_routes
from tests.server.conftest import (  # noqa: F401  (fixtures, used by name)
    admin,
    app,
    client,
    client_with,
    make_key,
    serve_settings,
    settings_for,
    trained_home,
)

__all__ = ["WRONG", "Body", "WritesMarker", "api_routes", "asgi_post", "concrete", "make_key"]

P = "/v1/projects/default"
# A well-formed key that does not exist (its id is all zeros).
WRONG = {"Authorization": "Bearer aimass_000000000000_" + "A" * 43}


class WritesMarker:
    """Unpickling this creates ``marker``: proof that something unpickled it."""

    def __init__(self, marker: Path | str) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def concrete(path: str) -> str:
    """A request path for a route template: every parameter gets a harmless value."""
    values = {"project": "default", "ref": "sentiment@production", "version": "1"}
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values.get(m.group(1), "x"), path)


def api_routes(asgi_app) -> Iterator[tuple[str, str]]:
    """Every ``(method, path template)`` of an app (HEAD left out: it mirrors GET)."""
    for method, path, _ in iter_routes(asgi_app.routes):
        if method != "HEAD":
            yield method, path


class Body:
    """An ASGI ``receive`` that hands out a body in chunks and counts what was read."""

    def __init__(self, chunk: int, chunks: int) -> None:
        self.chunk, self.left, self.read = chunk, chunks, 0

    async def __call__(self):
        if self.left == 0:
            return {"type": "http.disconnect"}
        self.left -= 1
        self.read += self.chunk
        return {"type": "http.request", "body": b" " * self.chunk, "more_body": self.left > 0}


def asgi_post(
    asgi_app, path: str, headers: dict[str, str], body: Body
) -> tuple[int, dict[str, str]]:
    """One POST straight through the ASGI app: ``(status, response headers)``."""
    sent = []

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("localhost", 80),
    }
    asyncio.run(asgi_app(scope, body, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}


@pytest.fixture
def unthrottled(client_with):  # noqa: F811
    """A client whose failed-authentication throttle lets one wrong key try every route."""
    return client_with(auth_failures_per_key="1000/minute", auth_failures_per_address="1000/minute")
