"""Console pages: sign-in, projects, a project's home, datasets, models and pipeline reports
(a pipeline's own page and forms are in :mod:`.pipelines`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from aimass.errors import AimassError, NotFound, Unauthenticated
from aimass.server.console._render import (
    HEADERS,
    after_delete,
    form,
    guard,
    page,
    principal,
    require_csrf,
    session,
    state,
    version_field,
)
from aimass.server.console.session import COOKIE
from aimass.server.console.urls import PREFIX
from aimass.server.throttle import client_address
from aimass.workspace.access import parse_key

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.get("/", name="console.root")
async def root() -> Response:
    """A browser at the server's root goes to the console."""
    return RedirectResponse(PREFIX, status_code=303)


@router.get(PREFIX + "/sign-in", name="console.sign_in_page")
async def sign_in_page(request: Request, next: str = PREFIX) -> Response:
    """The sign-in form: paste an API key."""
    return page(request, "sign_in.html", next=_local(next))


@router.post(PREFIX + "/sign-in", name="console.sign_in")
async def sign_in(request: Request) -> Response:
    """Exchange an API key for a session cookie (the key itself is not kept)."""
    fields = await form(request)
    app = state(request)
    key = fields.get("key", "").strip()
    address, key_id = client_address(request.scope), parse_key(key)
    try:
        await app.throttle.run(app.throttle.check_auth, address, key_id)
        principal_ = await run_in_threadpool(app.workspace.keys.authenticate, key)
    except Unauthenticated as exc:
        await app.throttle.run(app.throttle.auth_failed, address, key_id)
        request.scope["state"]["error_code"] = str(exc.code)
        return page(request, "sign_in.html", status=401, error=str(exc), next=fields.get("next"))
    assert principal_.key_id is not None
    value, _ = app.console_sessions.issue(principal_.key_id)
    request.scope["state"]["principal"] = principal_  # the audit names who signed in
    response = RedirectResponse(_local(fields.get("next", PREFIX)), status_code=303)
    response.set_cookie(
        COOKIE,
        value,
        max_age=int(app.console_sessions.lifetime),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post(PREFIX + "/sign-out", name="console.sign_out")
@guard
async def sign_out(request: Request) -> Response:
    """End the session (its cookie is refused from now on) and clear the cookie."""
    principal(request)
    require_csrf(request, await form(request))
    current = session(request)
    if current is not None:
        state(request).console_sessions.end(current)
    response = RedirectResponse(PREFIX + "/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get(PREFIX, name="console.home")
@guard
async def home(request: Request) -> Response:
    """The projects the key sees (a one-project key goes straight to its project)."""
    me = principal(request)
    if me.project is not None:
        return RedirectResponse(f"{PREFIX}/p/{me.project}", status_code=303)
    projects = await run_in_threadpool(state(request).workspace.projects.list, me)
    return page(request, "projects.html", projects=projects)


@router.get(PREFIX + "/p/{project}", name="console.project")
@guard
async def project_home(request: Request, project: str) -> Response:
    """A project's datasets, models, jobs and (for admins) recent activity."""
    me = principal(request)
    me.require("read", project=project)
    ws = state(request).workspace

    def load() -> dict[str, Any]:
        found = {
            "info": ws.projects.get(project),
            "datasets": ws.datasets.list(project=project),
            "models": ws.models.list(project=project),
            "pipelines": ws.pipelines.list(project=project),
            "jobs": ws.jobs.list(project=project, limit=10),
            "activity": [],
        }
        if me.can("admin", project=project):
            found["activity"] = ws.audit.list(project=project, limit=10)
        return found

    return page(request, "project.html", project=project, **await run_in_threadpool(load))


ROWS_PER_PAGE = 25


@router.get(PREFIX + "/p/{project}/datasets/{name}", name="console.dataset")
@guard
async def dataset(
    request: Request,
    project: str,
    name: str,
    version: int | None = None,
    split: str | None = None,
    offset: int = 0,
) -> Response:
    """A dataset's versions; the chosen one's splits, labels, provenance, PII report, and
    (for keys that may write data) its rows, a page at a time."""
    me = principal(request)
    me.require("read", project=project)
    ws = state(request).workspace
    versions = await run_in_threadpool(ws.datasets.versions, name, project=project)
    if not versions:
        raise NotFound(f"dataset {name!r} does not exist in project {project!r}")
    chosen = next((v for v in versions if v.version == version), versions[-1])
    counts = chosen.stats.get("label_counts") or {}
    totals: dict[str, int] = {}
    for per_split in counts.values():
        for label, n in per_split.items():
            totals[label] = totals.get(label, 0) + n
    top = max(totals.values(), default=0) or 1
    bars = [(label, n, round(100 * n / top)) for label, n in sorted(totals.items())]
    rows, total = None, 0
    if me.can("data:write", project=project):  # the records themselves, not only statistics
        rows, total = await run_in_threadpool(
            lambda: ws.datasets.rows(
                f"{name}@{chosen.version}",
                project=project,
                split=split or None,
                offset=max(0, offset),
                limit=ROWS_PER_PAGE,
            )
        )
    return page(
        request,
        "dataset.html",
        project=project,
        name=name,
        versions=versions,
        chosen=chosen,
        bars=bars,
        deid=chosen.provenance.get("deidentification"),
        can_delete=me.can("data:write", project=project),
        rows=rows,
        total=total,
        split=split or "",
        offset=max(0, offset),
        per_page=ROWS_PER_PAGE,
    )


@router.post(PREFIX + "/p/{project}/datasets/{name}/delete", name="console.delete_dataset_version")
@guard
async def delete_dataset_version(request: Request, project: str, name: str) -> Response:
    """Delete the posted version of a dataset (the page asks for confirmation first); its
    file goes at the next ``aimass gc``."""
    me = principal(request)
    me.require("data:write", project=project)
    fields = await form(request)
    require_csrf(request, fields)
    ws = state(request).workspace
    await run_in_threadpool(
        ws.datasets.delete_version, name, version_field(fields), project=project
    )
    left = await run_in_threadpool(ws.datasets.versions, name, project=project)
    return after_delete(project, f"datasets/{name}" if left else "")


@router.get(PREFIX + "/p/{project}/upload", name="console.upload_page")
@guard
async def upload_page(request: Request, project: str) -> Response:
    """The dataset upload form (the data:write scope)."""
    principal(request).require("data:write", project=project)
    return page(request, "upload.html", project=project)


@router.post(PREFIX + "/p/{project}/datasets", name="console.upload")
@guard
async def upload(request: Request, project: str) -> Response:
    """Import the uploaded file (sent base64 by the page's script, with progress); the
    answer is JSON for the script: where to go, or the error to show."""
    from aimass.data.importer import ImportOptions
    from aimass.workspace.privacy import DeidentifyOptions

    principal(request).require("data:write", project=project)
    fields = await form(request)
    require_csrf(request, fields)
    options = {k: fields.get(k) or None for k in ("kind", "text_field", "label_field")}
    mode = fields.get("deidentify") or None
    ws = state(request).workspace
    try:
        version, created = await run_in_threadpool(
            ws.datasets.import_content,
            fields.get("content_base64", ""),
            name=fields.get("name", ""),
            fmt=fields.get("format", ""),
            project=project,
            options=ImportOptions.from_fields(options),
            base64_encoded=True,
            deidentify=DeidentifyOptions.from_fields({"mode": mode} if mode else None),
        )
    except AimassError as exc:
        request.scope["state"]["error_code"] = str(exc.code)
        return JSONResponse({"error": exc.message}, status_code=exc.http_status, headers=HEADERS)
    target = f"{PREFIX}/p/{project}/datasets/{version.name}?version={version.version}"
    return JSONResponse({"redirect": target, "created": created}, headers=HEADERS)


@router.get(PREFIX + "/p/{project}/models/{name}", name="console.model")
@guard
async def model(request: Request, project: str, name: str) -> Response:
    """A model's versions and their metrics side by side, aliases, lineage, privacy,
    reports and the newest version's card."""
    me = principal(request)
    me.require("read", project=project)
    ws = state(request).workspace

    def load() -> dict[str, Any]:
        versions = ws.models.versions(name, project=project)
        if not versions:
            raise NotFound(f"model {name!r} does not exist in project {project!r}")
        newest = versions[-1]
        reports = ws.models.attachments(newest.ref, project=project)
        return {
            "versions": versions,
            "newest": newest,
            "card": ws.models.card(newest.ref, project=project),
            "reports": reports,
            "metric_names": _metric_names(versions),
        }

    found = await run_in_threadpool(load)
    settings = state(request).settings
    return page(
        request,
        "model.html",
        project=project,
        name=name,
        protected=set(settings.protected_aliases),
        can_move=me.can("models:write", project=project, model=name)
        or me.can("train", project=project),
        can_delete=me.can("models:write", project=project),
        **found,
    )


@router.post(PREFIX + "/p/{project}/models/{name}/alias", name="console.move_alias")
@guard
async def move_alias(request: Request, project: str, name: str) -> Response:
    """Point an alias at a version (the page asks for confirmation first)."""
    me = principal(request)
    fields = await form(request)
    require_csrf(request, fields)
    alias, version = fields.get("alias", "").strip(), version_field(fields)
    app = state(request)
    ws = app.workspace
    me.require("read", project=project)
    ws.models.check_alias_move(me, project, name, alias)
    await run_in_threadpool(ws.models.set_alias, name, alias, version, project=project)
    app.forget_versions(project, name)
    return RedirectResponse(f"{PREFIX}/p/{project}/models/{name}", status_code=303)


@router.post(PREFIX + "/p/{project}/models/{name}/delete", name="console.delete_model_version")
@guard
async def delete_model_version(request: Request, project: str, name: str) -> Response:
    """Delete the posted version, which no alias may hold (the page asks for confirmation
    first); its bundle and reports go at the next ``aimass gc``."""
    me = principal(request)
    me.require("models:write", project=project)
    fields = await form(request)
    require_csrf(request, fields)
    app = state(request)
    ws = app.workspace
    await run_in_threadpool(ws.models.delete_version, name, version_field(fields), project=project)
    app.forget_versions(project, name)
    left = await run_in_threadpool(ws.models.versions, name, project=project)
    return after_delete(project, f"models/{name}" if left else "")


@router.post(PREFIX + "/p/{project}/models/{name}/verify", name="console.verify_model")
@guard
async def verify_model(request: Request, project: str, name: str) -> Response:
    """Check the newest (or the posted) version's signature and file digests."""
    me = principal(request)
    me.require("read", project=project)
    fields = await form(request)
    require_csrf(request, fields)
    ref = f"{name}@{fields.get('version') or 'latest'}"
    result = await run_in_threadpool(state(request).workspace.models.verify, ref, project=project)
    return page(request, "verified.html", project=project, name=name, result=result)


@router.get(
    PREFIX + "/p/{project}/models/{name}/versions/{version}/reports/{report}",
    name="console.report",
)
@guard
async def report(request: Request, project: str, name: str, version: int, report: str) -> Response:
    """A stored evaluation report's HTML, for the model page's frame (sandboxed)."""
    principal(request).require("read", project=project)
    ws = state(request).workspace

    def find() -> Any:
        found = ws.reports.evaluations(f"{name}@{version}", project=project)
        chosen = next((a for a in found if a.name == report), None)
        if chosen is None:
            raise NotFound(f"model {name}@{version} has no evaluation report {report!r}")
        return ws.reports.report_file(chosen, fmt="html")

    return _report_page(await run_in_threadpool(find))


def _report_page(path: Path) -> Response:
    """A report's HTML for a page's frame: self-contained (inline styles and scripts of its
    own), so it gets a sandbox of its own instead of the console's policy."""
    headers = {
        **HEADERS,
        "content-security-policy": "sandbox allow-scripts; default-src 'none'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:",
    }
    return FileResponse(path, media_type="text/html; charset=utf-8", headers=headers)


@router.get(
    PREFIX + "/p/{project}/pipelines/{name}/versions/{version}/reports/{report}",
    name="console.pipeline_report",
)
@guard
async def pipeline_report(
    request: Request, project: str, name: str, version: int, report: str
) -> Response:
    """A pipeline version's evaluation report, for the pipeline page's frame (sandboxed)."""
    principal(request).require("read", project=project)
    ws = state(request).workspace
    path = await run_in_threadpool(
        lambda: ws.pipelines.report_file(f"{name}@{version}", report, project=project)
    )
    return _report_page(path)


def _metric_names(versions: list[Any]) -> list[tuple[str, str]]:
    """``(split, metric)`` pairs with a number in some version, test first."""
    names: list[tuple[str, str]] = []
    for split in ("test", "validation"):
        for version in versions:
            for metric, value in (version.metrics.get(split) or {}).items():
                if isinstance(value, int | float) and (split, metric) not in names:
                    names.append((split, metric))
    return names


def _local(target: str | None) -> str:
    """A redirect target inside the console (never another site)."""
    if not target or not target.startswith(PREFIX) or target.startswith("//"):
        return PREFIX
    return target
