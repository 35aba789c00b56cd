"""Pipelines: create (checked, models pinned), list, versions, aliases, and predict.

A pipeline's predict goes the way a model's does (input limits, the key's
concurrent-call slot, its query budget, its output policy) and each model step
runs on the served-model path of its pinned version (micro-batcher, runners),
so batching and the serving limits apply per model. The key needs ``predict``
on every model the pipeline runs. The audit log gets the call (the request
pipeline writes it) and one ``pipelines.step`` entry per step that ran, all with
the call's request id.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from aimass.entities import ModelVersion, PipelineVersion
from aimass.errors import NotFound
from aimass.refs import validate_name
from aimass.schemas import (
    AliasSet,
    PipelineCreate,
    PipelinePredictResponse,
    PipelineVersionOut,
    PredictRequest,
)
from aimass.server.deps import PrincipalDep, ReadProject, StateDep, WorkspaceDep
from aimass.server.quotas import charge, output_policy
from aimass.server.routes.models import report_response
from aimass.server.state import ServerState
from aimass.serving.policy import OutputPolicy
from aimass.store import AuditRecord
from aimass.workspace import Principal
from aimass.workspace.pipelines import pinned_version

router = APIRouter(prefix="/v1/projects/{project}/pipelines", tags=["pipelines"])


def _out(version: PipelineVersion, created: bool | None = None) -> PipelineVersionOut:
    return PipelineVersionOut.from_entity(version).model_copy(update={"created": created})


@router.get("", name="pipelines.list")
def list_pipelines(project: ReadProject, ws: WorkspaceDep) -> list[PipelineVersionOut]:
    """The latest version of every pipeline."""
    return [_out(p) for p in ws.pipelines.list(project=project)]


@router.post("", name="pipelines.create", status_code=201)
def create_pipeline(
    body: PipelineCreate,
    project: str,
    principal: PrincipalDep,
    ws: WorkspaceDep,
    state: StateDep,
) -> PipelineVersionOut:
    """Check a spec, pin its models (``NAME@ALIAS`` resolved now) and store a new version.

    Needs ``models:write`` in the project. Every problem of the spec comes back in one
    400, each naming the step, the value and the fix; the same pinned spec again
    returns the version that holds it (``created: false``).
    """
    validate_name(project, kind="project")
    principal.require("models:write", project=project)
    version, created = ws.pipelines.create(
        body.spec,
        name=body.name,
        description=body.description,
        created_by=principal.actor,
        project=project,
    )
    state.forget_pipelines(project, body.name)  # NAME and NAME@latest now mean this version
    return _out(version, created)


@router.get("/{name}", name="pipelines.get")
def get_pipeline(name: str, project: ReadProject, ws: WorkspaceDep) -> PipelineVersionOut:
    """The latest version of a pipeline."""
    return _out(ws.pipelines.get(name, project=project))


@router.get("/{name}/versions", name="pipelines.versions")
def list_versions(name: str, project: ReadProject, ws: WorkspaceDep) -> list[PipelineVersionOut]:
    """Every version, oldest first."""
    return [_out(p) for p in ws.pipelines.versions(name, project=project)]


@router.get("/{name}/versions/{selector}", name="pipelines.version")
def get_version(
    name: str, selector: str, project: ReadProject, ws: WorkspaceDep
) -> PipelineVersionOut:
    """A version by number or alias (``latest`` is the newest)."""
    return _out(ws.pipelines.get(f"{name}@{selector}", project=project))


@router.get(
    "/{name}/versions/{selector}/reports/{report}/report.{fmt}",
    name="pipelines.report_file",
    response_class=FileResponse,
)
def report_file(
    name: str, selector: str, report: str, fmt: str, project: ReadProject, ws: WorkspaceDep
) -> FileResponse:
    """A pipeline version's evaluation report as the HTML page or its JSON numbers."""
    return report_response(
        fmt,
        lambda: ws.pipelines.report_file(f"{name}@{selector}", report, fmt=fmt, project=project),
    )


@router.put("/{name}/aliases/{alias}", name="pipelines.set_alias")
def set_alias(
    name: str,
    alias: str,
    body: AliasSet,
    project: str,
    principal: PrincipalDep,
    ws: WorkspaceDep,
    state: StateDep,
) -> PipelineVersionOut:
    """Point an alias at a version (needs ``models:write`` in the project)."""
    validate_name(project, kind="project")
    principal.require("models:write", project=project)
    moved = ws.pipelines.set_alias(name, alias, body.version, project=project)
    state.forget_pipelines(project, name)
    return _out(moved)


@router.delete("/{name}/aliases/{alias}", name="pipelines.delete_alias")
def delete_alias(
    name: str,
    alias: str,
    project: str,
    principal: PrincipalDep,
    ws: WorkspaceDep,
    state: StateDep,
) -> dict[str, str]:
    """Remove an alias (needs ``models:write`` in the project)."""
    validate_name(project, kind="project")
    principal.require("models:write", project=project)
    ws.pipelines.delete_alias(name, alias, project=project)
    state.forget_pipelines(project, name)
    return {"deleted": alias}


@router.delete("/{name}/versions/{version}", name="pipelines.delete_version")
def delete_version(
    name: str,
    version: int,
    project: str,
    principal: PrincipalDep,
    ws: WorkspaceDep,
    state: StateDep,
) -> PipelineVersionOut:
    """Delete a version no alias points at (409 naming the aliases otherwise; needs
    ``models:write`` in the project)."""
    validate_name(project, kind="project")
    principal.require("models:write", project=project)
    deleted = ws.pipelines.delete_version(name, version, project=project)
    state.forget_pipelines(project, name)
    return _out(deleted)


@router.post("/{ref}:predict", name="pipelines.predict", tags=["predict"])
async def predict(
    ref: str,
    project: str,
    body: PredictRequest,
    request: Request,
    principal: PrincipalDep,
    state: StateDep,
) -> PipelinePredictResponse:
    """Run ``NAME@VERSION`` or ``NAME@ALIAS`` over a list of inputs.

    The key needs ``predict`` on every model of the pipeline (403 naming the first it
    lacks). A key with a query budget spends one input of it per input (not per step);
    its output policy applies to the results and their traces.
    """
    validate_name(project, kind="project")
    if not principal.sees(project):
        raise NotFound(f"project {project!r} does not exist", resource="project", name=project)
    await state.require_project(project)
    ws = state.workspace
    texts = ws.serving.check_inputs(body.inputs)
    policy = output_policy(principal)
    if body.explain:
        policy.check_explain(principal.key_id)
        ws.serving.check_explain_batch(texts)
    version = await state.resolve_pipeline(ref, project)
    ws.pipelines.require_predict(principal, version)
    async with state.throttle.holding(principal.key_id or principal.actor, "predict"):
        await charge(state, principal, len(texts))
        results = await _run(state, version, texts, body, request, principal)
    if not policy.is_full:
        results = _apply_policy(policy, results)
    return PipelinePredictResponse(
        pipeline=version.name, version=version.version, predictions=results
    )


async def _run(
    state: ServerState,
    version: PipelineVersion,
    texts: list[str],
    body: PredictRequest,
    request: Request,
    principal: Principal,
) -> list[dict[str, Any]]:
    from aimass.serving.pipelines import pseudonym_key, run_pipeline

    project = version.project

    async def resolve(pin: dict[str, Any]) -> ModelVersion:
        return pinned_version(pin, await state.resolve(pin["model"], project))

    async def predict_with(pin: dict[str, Any], batch: list[str]) -> list[dict[str, Any]]:
        model = await resolve(pin)
        started = time.perf_counter()
        results = await (await state.batcher(model)).predict(batch)
        state.metrics.predictions.labels(project, model.name).inc(len(batch))
        state.metrics.predict_latency.labels(project, model.name).observe(
            time.perf_counter() - started
        )
        return results

    async def explain_with(
        pin: dict[str, Any], batch: list[str], results: list[dict[str, Any]], method: Any
    ) -> list[dict[str, Any]]:
        # As for a model: explanations run on the version's back end, outside the batches.
        backend = await state.backend(await resolve(pin))
        return await run_in_threadpool(backend.explain, batch, results, method)

    ran: list[dict[str, Any]] = []
    request.scope["state"]["audit_details"] = {"pipeline": version.ref, "inputs": len(texts)}
    try:
        run = await run_pipeline(
            version.spec,
            texts,
            predict=predict_with,
            explain=explain_with,
            method=body.explain,
            ran=ran,
            key=pseudonym_key(version.spec, state.workspace.settings.home, project),
        )
    finally:
        _audit_steps(state, version, ran, request, principal)
    return run.results


def _audit_steps(
    state: ServerState,
    version: PipelineVersion,
    ran: list[dict[str, Any]],
    request: Request,
    principal: Principal,
) -> None:
    """One ``pipelines.step`` record per step that ran, linked by the request id."""
    request_id = request.scope["state"].get("request_id")
    base = f"/v1/projects/{version.project}/pipelines/{version.name}/versions/{version.version}"
    for step in ran:
        state.workspace.audit.writer.submit(
            AuditRecord(
                actor=principal.actor,
                key_id=principal.key_id,
                project=version.project,
                action="pipelines.step",
                resource=f"{base}/steps/{step['step']}",
                outcome="ok",
                request_id=request_id,
                details={"pipeline": version.ref, **step},
            )
        )
    request.scope["state"]["audit_details"]["steps"] = [step["step"] for step in ran]


def _apply_policy(policy: OutputPolicy, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The results as the key's output policy shows them; the trace loses its scores
    (they would show what the policy hides)."""
    shown = policy.apply(results)
    for result in shown:
        result["trace"] = [
            {k: v for k, v in entry.items() if k != "score"} for entry in result.get("trace", [])
        ]
    return shown
