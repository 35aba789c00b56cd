"""``create_app(settings)``: the REST API, one app per call, no module-level state."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from aimass._version import __version__
from aimass.server import console, docs_ui
from aimass.server.errors import install_error_handlers
from aimass.server.middleware import RequestPipeline
from aimass.server.routes import datasets, generate, jobs, models, pipelines, projects, system
from aimass.server.state import ServerState
from aimass.settings import Settings
from aimass.workspace import Workspace

__all__ = ["UNAUTHENTICATED_PATHS", "create_app", "iter_routes"]

# The only paths that answer without an API key (a test proves every other route refuses);
# the docs pages' assets (every file under /static/) are listed by exact path.
UNAUTHENTICATED_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/v1/openapi.json"}
    | docs_ui.DOCS_PATHS
    | docs_ui.STATIC_PATHS
)

_DESCRIPTION = """\
Self-hosted model-as-a-service for transformer models on sensitive data.

Every endpoint except health, readiness, metrics and this document needs an API
key (`Authorization: Bearer aimass_...`). Request bodies are JSON only. Errors
are `{"error": {"code", "type", "message", "details", "request_id"}}` with a
stable `code`.
"""


def create_app(
    settings: Settings,
    *,
    workspace: Workspace | None = None,
    job_workers: int | None = None,
    freeze_gc: bool = False,
) -> FastAPI:
    """Build the API for the aimass home in ``settings``.

    Args:
        settings: Where the store and artifacts live, limits, security knobs.
        workspace: Serve this workspace instead of opening one (tests share it).
        job_workers: Override ``settings.job_workers`` (0 runs no jobs in this process).
        freeze_gc: Once started (models warm), move every object then alive out of the
            cyclic garbage collector's sight (``gc.freeze``), for a process that serves
            until it exits (``aimass serve``): a full collection over them took ~200 ms
            here and paused every request in flight. Off for apps made and dropped in
            one process (tests): frozen objects are never collected.

    The admin key is created, workers started and models warmed when the app
    starts (its lifespan, ``await app.state.aimass.open()``); outside a lifespan,
    ``app.state.aimass.start()`` does all but the warm-up.
    """
    state = ServerState(settings, workspace)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.open(workers=job_workers)
        if freeze_gc:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            await state.stop()

    app = FastAPI(
        title="aimass",
        version=__version__,
        description=_DESCRIPTION,
        openapi_url="/v1/openapi.json",
        docs_url=None,  # /v1/docs and /v1/redoc: docs_ui.router, from vendored assets
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        lifespan=lifespan,
    )
    app.state.aimass = state
    install_error_handlers(app)
    for module in (system, projects, datasets, jobs, models, pipelines, generate):
        app.include_router(module.router)
    app.include_router(docs_ui.router)
    app.include_router(system.api)
    app.include_router(console.router)
    app.mount(console.STATIC_PREFIX, console.static_files(), name="console-static")
    app.add_middleware(RequestPipeline, state=state, public_paths=UNAUTHENTICATED_PATHS)
    return app


def iter_routes(routes: Iterable[Any]) -> Iterator[tuple[str, str, str]]:
    """Every ``(method, path, name)`` the app answers, included routers flattened."""
    for route in routes:
        nested = getattr(route, "effective_candidates", None)
        if nested is not None:
            yield from iter_routes(nested())
            continue
        for method in sorted(getattr(route, "methods", None) or ()):
            yield method, route.path, str(route.name)
