"""The console's limits page: a project's quotas (editable by an all-projects admin)
and what its keys carry (budgets, output policies, stored limits, with today's use;
editable by the project's admins).

The page changes them through the same workspace calls as ``PATCH
/v1/projects/{project}`` and ``PATCH /v1/projects/{project}/keys/{id}`` (validated
the same way, the cached values dropped, a limit raised above the deployment's only
by an all-projects admin) and its audit records carry the same details.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from aimass.server.console._render import form, guard, page, principal, require_csrf, state
from aimass.server.console.urls import PREFIX
from aimass.server.routes.projects import key_audit_details
from aimass.settings import LIMIT_NAMES

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _changes(
    fields: Mapping[str, str], current: Mapping[str, object], names: Iterable[str], prefix: str = ""
) -> dict[str, str | None]:
    """The form fields ``prefix + name`` that differ from ``current``: the new value, or
    ``None`` where the field was emptied (remove the stored value)."""
    changes: dict[str, str | None] = {}
    for name in names:
        given = fields.get(prefix + name, "").strip()
        now = current.get(name)
        if given != ("" if now is None else str(now)):
            changes[name] = given or None
    return changes


@router.get(PREFIX + "/p/{project}/limits", name="console.limits")
@guard
async def limits(request: Request, project: str, saved: str | None = None) -> Response:
    """The project's limits (stored, in effect, the deployment's) and its keys' (admin scope)."""
    me = principal(request)
    me.require("admin", project=project)
    ws = state(request).workspace
    settings = ws.settings
    subject = f"project:{project}"

    def load() -> dict[str, Any]:
        stored = ws.projects.get(project).limits
        rows = []
        for name in LIMIT_NAMES["project"]:
            deployment = settings.limit(name, subject)
            # From the row just read, not the servers' cache: the page shows one state.
            effective = stored.get(name, deployment)
            rows.append(
                {
                    "name": name,
                    "stored": stored.get(name),
                    "effective": effective,
                    "deployment": deployment,
                }
            )
        keys = [
            {
                "record": k,
                "used_today": ws.limits.used_today(k.id) if k.predict_budget else None,
                "deployment": {n: settings.limit(n, f"key:{k.id}") for n in LIMIT_NAMES["key"]},
            }
            for k in ws.keys.list(project=project)
            if not k.revoked
        ]
        return {"rows": rows, "keys": keys}

    return page(
        request,
        "limits.html",
        project=project,
        saved=saved is not None,
        key_limit_names=LIMIT_NAMES["key"],
        **await run_in_threadpool(load),
    )


@router.post(PREFIX + "/p/{project}/limits", name="console.set_limits")
@guard
async def set_limits(request: Request, project: str) -> Response:
    """Store the project's limits from the form: a changed field sets its limit, an
    emptied one removes it (the deployment's value applies again)."""
    me = principal(request)
    me.require("admin", project=project)
    me.require_global_admin()  # the operator's quotas on a tenant, as PATCH /v1/projects/{p}
    fields = await form(request)
    require_csrf(request, fields)
    ws = state(request).workspace

    def store() -> tuple[dict[str, Any], list[str]]:
        stored = ws.projects.get(project).limits
        changes = _changes(fields, stored, LIMIT_NAMES["project"], prefix="limit_")
        if changes:
            stored = ws.limits.set_project_limits(project, changes).limits
        return dict(stored), sorted(changes)

    updated, changed = await run_in_threadpool(store)
    request.scope["state"]["audit_details"] = {"limits": updated, "changed": changed}
    return RedirectResponse(f"{PREFIX}/p/{project}/limits?saved=1", status_code=303)


@router.post(PREFIX + "/p/{project}/keys/{key_id}/limits", name="console.update_key")
@guard
async def update_key(request: Request, project: str, key_id: str) -> Response:
    """Change a key's query budget, output policy and limits from its row of the form:
    a changed field sets the value, an emptied one removes it."""
    me = principal(request)
    me.require("admin", project=project)
    fields = await form(request)
    require_csrf(request, fields)
    ws = state(request).workspace

    def store() -> tuple[Any, list[str]]:
        current = ws.keys.get(key_id, project=project)
        quota = {"predict_budget": current.predict_budget, "output_policy": current.output_policy}
        changes: dict[str, Any] = _changes(fields, quota, quota)
        limits = _changes(fields, current.limits, LIMIT_NAMES["key"], prefix="limit_")
        if limits:
            changes["limits"] = limits
        if not changes:
            return current, []
        updated = ws.keys.update(
            key_id, changes, project=project, by_global_admin=me.is_global_admin
        )
        return updated, sorted(changes)

    updated, changed = await run_in_threadpool(store)
    request.scope["state"]["audit_details"] = {**key_audit_details(updated), "changed": changed}
    return RedirectResponse(f"{PREFIX}/p/{project}/limits?saved=1", status_code=303)
