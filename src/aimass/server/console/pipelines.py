"""Console pages for pipelines: a pipeline's page, a new pipeline or version, its aliases,
and trying a version on some texts.

Each action calls the REST API's own route function with the session's caller, as the
playground does for models: the same scope checks (``models:write`` to create and move
aliases, ``predict`` on every model of the pipeline to run it), the same spec checks,
input limits, query budget, output policy and per-step audit records.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from aimass.errors import InvalidArgument, NotFound
from aimass.server.console._render import (
    after_delete,
    form,
    form_body,
    guard,
    page,
    principal,
    require_csrf,
    state,
    version_field,
)
from aimass.server.console.pipeline_graph import BOX, draw
from aimass.server.console.pipeline_steps import row_count, rows_of, spec_from_rows
from aimass.server.console.urls import PREFIX
from aimass.serving.pipelines.spec import entry_of
from aimass.serving.pipelines.steps import STEP_TYPES

__all__ = ["editable_spec", "router"]

router = APIRouter(include_in_schema=False)

#: What the new-pipeline form starts from: a pipeline of one model step to edit.
EXAMPLE_SPEC = {"steps": [{"name": "classify", "type": "model", "model": "MODEL@production"}]}


def editable_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A stored (pinned) spec as its author wrote it: each model step names the reference
    it was created with (``sentiment@production``) and the pins are left for the server
    to make again; creating it again pins what those references name now."""
    out = copy.deepcopy(spec)
    for step in out["steps"]:
        if "pin" in step:
            step["model"] = step.pop("pin")["requested"]
        if "pins" in step:
            step["models"] = [pin["requested"] for pin in step.pop("pins")]
        step.pop("key_fingerprint", None)
    return out


async def _editor(
    request: Request, project: str, spec: dict[str, Any], rows: int | None
) -> dict[str, Any]:
    """What the step editor (``_steps.html``) shows: ``spec``'s rows, empty ones after
    them, the step types, and the project's models to pick references from."""
    models = await run_in_threadpool(state(request).workspace.models.list, project=project)
    shown = rows_of(spec)
    return {
        "rows": shown,
        "row_total": row_count(len(shown), rows),
        "step_types": list(STEP_TYPES),
        "models": models,
    }


async def _pipeline_page(
    request: Request,
    project: str,
    name: str,
    version: int | None,
    rows: int | None = None,
    **extra: Any,
) -> Response:
    me = principal(request)
    me.require("read", project=project)
    ws = state(request).workspace
    versions = await run_in_threadpool(ws.pipelines.versions, name, project=project)
    chosen = next((v for v in versions if v.version == version), versions[-1])
    editable = editable_spec(chosen.spec)
    return page(
        request,
        "pipeline.html",
        project=project,
        name=name,
        versions=versions,
        chosen=chosen,
        entry=entry_of(chosen.spec),
        graph=draw(chosen.spec),
        box=BOX,
        can_write=me.can("models:write", project=project),
        aliases=sorted(a for v in versions for a in v.aliases),
        can_predict=all(me.can("predict", project=project, model=m) for m in chosen.models),
        spec_text=json.dumps(editable, indent=2, ensure_ascii=False),
        version_shown=version,
        **await _editor(request, project, editable, rows),
        **extra,
    )


@router.get(PREFIX + "/p/{project}/pipelines/{name}", name="console.pipeline")
@guard
async def pipeline(
    request: Request, project: str, name: str, version: int | None = None, rows: int | None = None
) -> Response:
    """A pipeline's versions; the chosen one's steps with their pinned models, its
    evaluation reports, and forms to try it, move an alias and make a new version
    (``rows``: rows of the step editor)."""
    return await _pipeline_page(request, project, name, version, rows, results=None)


@router.get(PREFIX + "/p/{project}/new-pipeline", name="console.new_pipeline")
@guard
async def new_pipeline(request: Request, project: str, rows: int | None = None) -> Response:
    """The form for a new pipeline: a name, a description and the steps, in the step
    editor's table (``rows`` of them) or as JSON."""
    principal(request).require("models:write", project=project)
    example = json.dumps(EXAMPLE_SPEC)
    editor = await _editor(request, project, {"steps": []}, rows)
    return page(request, "pipeline_new.html", project=project, spec_text=example, **editor)


@router.post(PREFIX + "/p/{project}/pipelines", name="console.create_pipeline")
@guard
async def create_pipeline(request: Request, project: str) -> Response:
    """Create a pipeline version from the posted name, description and spec (the API's
    ``POST .../pipelines``); the browser goes to the version's page."""
    from aimass.schemas.pipelines import PipelineCreate
    from aimass.server.routes.pipelines import create_pipeline as create_route

    me = principal(request)
    fields = await form(request)
    require_csrf(request, fields)
    # The button pressed says which the spec is; a post without one (a script) that
    # carries a JSON spec means it.
    source = fields.get("source") or ("json" if fields.get("spec", "").strip() else "steps")
    spec = _json_spec(fields.get("spec", "")) if source == "json" else spec_from_rows(fields)
    body = form_body(
        PipelineCreate,
        "pipeline",
        name=fields.get("name", "").strip(),
        spec=spec,
        description=fields.get("description", "").strip(),
    )
    app = state(request)
    made = await run_in_threadpool(
        lambda: create_route(body=body, project=project, principal=me, ws=app.workspace, state=app)
    )
    target = f"{PREFIX}/p/{project}/pipelines/{made.name}?version={made.version}"
    return RedirectResponse(target, status_code=303)


def _json_spec(text: str) -> dict[str, Any]:
    try:
        spec = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(
            f'the spec is not JSON ({exc}); write it as in docs/pipelines.md, {{"steps": [...]}}'
        ) from None
    if not isinstance(spec, dict):
        raise InvalidArgument('the spec must be a JSON object: {"steps": [...]}')
    return spec


@router.post(PREFIX + "/p/{project}/pipelines/{name}/alias", name="console.move_pipeline_alias")
@guard
async def move_alias(request: Request, project: str, name: str) -> Response:
    """Point an alias of the pipeline at a version (the page asks for confirmation first)."""
    from aimass.schemas.registry import AliasSet
    from aimass.server.routes.pipelines import set_alias

    me = principal(request)
    fields = await form(request)
    require_csrf(request, fields)
    alias, version = fields.get("alias", "").strip(), version_field(fields)
    app = state(request)
    await run_in_threadpool(
        lambda: set_alias(
            name=name,
            alias=alias,
            body=AliasSet(version=version),
            project=project,
            principal=me,
            ws=app.workspace,
            state=app,
        )
    )
    return RedirectResponse(f"{PREFIX}/p/{project}/pipelines/{name}", status_code=303)


@router.post(PREFIX + "/p/{project}/pipelines/{name}/unalias", name="console.delete_pipeline_alias")
@guard
async def delete_alias(request: Request, project: str, name: str) -> Response:
    """Remove an alias of the pipeline (the API's ``DELETE .../aliases/{alias}``)."""
    from aimass.server.routes.pipelines import delete_alias as delete_route

    me = principal(request)
    fields = await form(request)
    require_csrf(request, fields)
    alias, app = fields.get("alias", "").strip(), state(request)
    await run_in_threadpool(delete_route, name, alias, project, me, app.workspace, app)
    return RedirectResponse(f"{PREFIX}/p/{project}/pipelines/{name}", status_code=303)


@router.post(
    PREFIX + "/p/{project}/pipelines/{name}/delete", name="console.delete_pipeline_version"
)
@guard
async def delete_version(request: Request, project: str, name: str) -> Response:
    """Delete a version no alias holds (the API's ``DELETE .../versions/{version}``)."""
    from aimass.server.routes.pipelines import delete_version as delete_route

    me = principal(request)
    fields = await form(request)
    require_csrf(request, fields)
    version, app = version_field(fields), state(request)
    await run_in_threadpool(delete_route, name, version, project, me, app.workspace, app)
    try:
        await run_in_threadpool(app.workspace.pipelines.versions, name, project=project)
    except NotFound:  # that was the last version
        return after_delete(project, "")
    return after_delete(project, f"pipelines/{name}")


@router.post(PREFIX + "/p/{project}/pipelines/{name}/try", name="console.try_pipeline")
@guard
async def try_pipeline(request: Request, project: str, name: str) -> Response:
    """Run the posted texts through a version (the API's ``:predict``) and show each
    input's answer, the step that decided it and its path through the steps."""
    from aimass.schemas import PredictRequest
    from aimass.server.routes.pipelines import predict as predict_route

    me = principal(request)
    fields = await form(request)
    require_csrf(request, fields)
    version = version_field(fields)
    texts = [line.strip() for line in fields.get("texts", "").splitlines() if line.strip()]
    body = form_body(PredictRequest, "try", inputs=texts)
    answer = await predict_route(f"{name}@{version}", project, body, request, me, state(request))
    return await _pipeline_page(
        request,
        project,
        name,
        version,
        results=list(zip(texts, answer.predictions, strict=True)),
        texts=fields.get("texts", ""),
    )
