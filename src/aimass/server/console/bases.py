"""Console pages for bases: the project's bases and the packaged ones to import, a base's
versions with the models trained from each, importing and deleting.

Importing and deleting call the REST API's own route functions with the same checks
(``models:write``; a packaged name or a directory inside ``AIMASS_IMPORT_DIRS``, never
a URL; a version models were trained from is refused, naming them).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from aimass.errors import InvalidArgument, NotFound
from aimass.server.console._render import (
    after_delete,
    form,
    guard,
    page,
    principal,
    require_csrf,
    state,
    version_field,
)
from aimass.server.console.urls import PREFIX

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.get(PREFIX + "/p/{project}/bases", name="console.bases")
@guard
async def bases(request: Request, project: str) -> Response:
    """The project's bases (newest version of each) and the packaged bases this server
    can import."""
    from aimass.jobs.bases import list_packaged_bases
    from aimass.schemas import PackagedBaseOut

    me = principal(request)
    me.require("read", project=project)
    ws = state(request).workspace

    def load() -> dict[str, Any]:
        return {
            "registered": ws.bases.list(project=project),
            "packaged": [PackagedBaseOut.from_entity(b) for b in list_packaged_bases()],
        }

    found = await run_in_threadpool(load)
    return page(
        request,
        "bases.html",
        project=project,
        can_import=me.can("models:write", project=project),
        **found,
    )


@router.post(PREFIX + "/p/{project}/bases", name="console.import_base")
@guard
async def import_base(request: Request, project: str) -> Response:
    """Import a packaged base (or a Hugging Face directory inside the server's import
    directories) through the API's ``POST .../bases``; on to the base's page."""
    from aimass.schemas import BaseImport
    from aimass.server.routes.datasets import import_base as import_route

    principal(request).require("models:write", project=project)
    fields = await form(request)
    require_csrf(request, fields)
    try:
        body = BaseImport(
            source=fields.get("source", "").strip() or None,
            path=fields.get("path", "").strip() or None,
            name=fields.get("name", "").strip() or None,
        )
    except ValidationError as exc:
        raise InvalidArgument(f"the import form is not valid: {exc}") from None
    ws = state(request).workspace
    made = await run_in_threadpool(lambda: import_route(body=body, project=project, ws=ws))
    target = f"{PREFIX}/p/{project}/bases/{made.name}?version={made.version}"
    return RedirectResponse(target, status_code=303)


@router.get(PREFIX + "/p/{project}/bases/{name}", name="console.base")
@guard
async def base(request: Request, project: str, name: str, version: int | None = None) -> Response:
    """A base's versions: architecture, size, where its weights came from, their license,
    and the model versions trained from each."""
    me = principal(request)
    me.require("read", project=project)
    ws = state(request).workspace

    def load() -> dict[str, Any]:
        versions = ws.bases.versions(name, project=project)
        used = {b.version: ws.bases.trained_from(b.ref, project=project) for b in versions}
        free = [b for b in versions if not used[b.version]]
        return {"versions": versions, "used": used, "free": free}

    found = await run_in_threadpool(load)
    return page(
        request,
        "base_model.html",
        project=project,
        name=name,
        chosen=version,
        can_delete=me.can("models:write", project=project),
        **found,
    )


@router.post(PREFIX + "/p/{project}/bases/{name}/delete", name="console.delete_base_version")
@guard
async def delete_base_version(request: Request, project: str, name: str) -> Response:
    """Delete the posted version, which no model version may have been trained from (the
    page asks for confirmation first); its bundle goes at the next ``aimass gc``."""
    from aimass.server.routes.datasets import delete_base_version as delete_route

    principal(request).require("models:write", project=project)
    fields = await form(request)
    require_csrf(request, fields)
    ws = state(request).workspace
    await run_in_threadpool(delete_route, name, version_field(fields), project, ws)
    try:
        await run_in_threadpool(ws.bases.versions, name, project=project)
    except NotFound:  # that was the last version
        return after_delete(project, "bases")
    return after_delete(project, f"bases/{name}")
