"""The console's storage page (all-projects admins): collect the artifacts nothing refers
to any more, first as a dry run, through the API's own ``POST /v1/artifacts:gc``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from aimass.server.console._render import form, guard, page, principal, require_csrf, state
from aimass.server.console.urls import PREFIX

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

DEFAULT_OLDER_THAN = "1h"


@router.get(PREFIX + "/storage", name="console.storage")
@guard
async def storage(request: Request) -> Response:
    """The collection form: how old an unreferenced artifact must be, list or remove."""
    principal(request).require_global_admin()
    return page(request, "storage.html", older_than=DEFAULT_OLDER_THAN, report=None)


@router.post(PREFIX + "/storage/gc", name="console.gc")
@guard
async def collect(request: Request) -> Response:
    """List (``dry_run``) or remove what nothing refers to; the page shows the report."""
    from aimass.durations import parse_duration
    from aimass.schemas import GarbageCollect
    from aimass.server.routes.projects import collect_garbage

    me = principal(request)
    me.require_global_admin()
    fields = await form(request)
    require_csrf(request, fields)
    older_than = fields.get("older_than", "").strip() or DEFAULT_OLDER_THAN
    body = GarbageCollect(
        older_than_seconds=parse_duration(older_than, what="older than"),
        dry_run=fields.get("dry_run") == "1",
    )
    ws = state(request).workspace
    report = await run_in_threadpool(
        lambda: collect_garbage(body=body, request=request, principal=me, ws=ws)
    )
    return page(request, "storage.html", older_than=older_than, report=report)
