"""The web console: ``aimass serve`` at ``/``, server-rendered, signed in with an API key.

Pages are Jinja2 templates (:mod:`.pages`, :mod:`.actions`, :mod:`.limits`,
:mod:`.pipelines`, :mod:`.compare`, :mod:`.bases`, :mod:`.storage`); a key is
exchanged for a session cookie (:mod:`.session`), every form carries a CSRF token, and
the console shows and does only what the key's scopes allow. Every asset is in this package.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.staticfiles import StaticFiles

from aimass.server.console import actions, bases, compare, limits, pages, pipelines, storage
from aimass.server.console.urls import PREFIX

__all__ = ["STATIC", "router", "static_files"]

STATIC = Path(__file__).with_name("static")

router = APIRouter(include_in_schema=False)
router.include_router(pages.router)
router.include_router(actions.router)
router.include_router(limits.router)
router.include_router(pipelines.router)
router.include_router(compare.router)
router.include_router(bases.router)
router.include_router(storage.router)


def static_files() -> StaticFiles:
    """The console's own stylesheet and script, served at ``/console/static``."""
    return StaticFiles(directory=STATIC)


STATIC_PREFIX = PREFIX + "/static"
