"""The registry (models, versions, aliases, cards, export, deletion) and predict."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, PlainTextResponse, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from aimass.errors import NotFound
from aimass.evaluation.html import REPORT_CSP
from aimass.refs import validate_name
from aimass.schemas import (
    AliasSet,
    AttachmentOut,
    BundleVerifyOut,
    ModelImport,
    ModelVersionOut,
    PredictRequest,
    PredictResponse,
    RegisteredModelOut,
)
from aimass.server.deps import (
    ModelsWriteProject,
    PredictProject,
    PrincipalDep,
    ReadProject,
    StateDep,
    WorkspaceDep,
)
from aimass.server.quotas import charge, output_policy
from aimass.server.state import ServerState
from aimass.workspace import Principal
from aimass.workspace.paths import allowed_path

router = APIRouter(prefix="/v1/projects/{project}/models", tags=["models"])


@router.get("", name="models.list")
def list_models(project: ReadProject, ws: WorkspaceDep) -> list[RegisteredModelOut]:
    """Registered models with their aliases."""
    return [RegisteredModelOut.from_entity(m) for m in ws.models.list(project=project)]


@router.post("", name="models.import", status_code=201)
def import_model(
    body: ModelImport, project: str, principal: PrincipalDep, ws: WorkspaceDep, state: StateDep
) -> ModelVersionOut:
    """Register a Hugging Face classifier directory in AIMASS_IMPORT_DIRS as a model version.

    Needs ``models:write`` on the model named (a key narrowed to it will do). The
    directory is read offline, safetensors only; importing the same weights again
    returns the version that holds them.
    """
    validate_name(project, kind="project")
    principal.require("models:write", project=project, model=body.name)
    source = allowed_path(ws.settings, body.path)
    version, created = ws.models.import_(
        str(source), name=body.name, alias=body.alias, project=project
    )
    state.forget_versions(project, body.name)
    return ModelVersionOut.from_entity(version).model_copy(update={"created": created})


@router.get("/{name}", name="models.get")
def get_model(name: str, project: ReadProject, ws: WorkspaceDep) -> RegisteredModelOut:
    """One registered model."""
    return RegisteredModelOut.from_entity(ws.models.registered(name, project=project))


@router.get("/{name}/versions", name="models.versions")
def list_versions(name: str, project: ReadProject, ws: WorkspaceDep) -> list[ModelVersionOut]:
    """Every version, oldest first."""
    return [ModelVersionOut.from_entity(v) for v in ws.models.versions(name, project=project)]


@router.get("/{name}/versions/{selector}", name="models.version")
def get_version(
    name: str, selector: str, project: ReadProject, ws: WorkspaceDep
) -> ModelVersionOut:
    """A version by number or alias (``latest`` is the newest)."""
    return ModelVersionOut.from_entity(ws.models.get(f"{name}@{selector}", project=project))


@router.get(
    "/{name}/versions/{selector}/card",
    name="models.card",
    response_class=PlainTextResponse,
)
def model_card(name: str, selector: str, project: ReadProject, ws: WorkspaceDep) -> str:
    """The generated model card (Markdown)."""
    return ws.models.card(f"{name}@{selector}", project=project)


@router.get("/{name}/versions/{selector}/verify", name="models.verify")
def verify_version(
    name: str, selector: str, project: ReadProject, ws: WorkspaceDep
) -> BundleVerifyOut:
    """Check the version's bundle signature, then every file against its manifest."""
    return BundleVerifyOut(**ws.models.verify(f"{name}@{selector}", project=project))


@router.get(
    "/{name}/versions/{selector}/export",
    name="models.export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-tar": {}}}},
)
def export_version(
    name: str, selector: str, request: Request, project: ModelsWriteProject, ws: WorkspaceDep
) -> StreamingResponse:
    """The version's bundle, decrypted, as an uncompressed tar stream of its files.

    Unpacked it is what ``aimass models export`` writes (``aimass.json`` and
    ``aimass.sig`` included). It hands out the weights, so it needs ``models:write``
    on the model (not ``read``), and every export is audited.
    """
    request.scope["state"]["audit"] = True  # a read, recorded like a change
    version, archive = ws.models.export_archive(f"{name}@{selector}", project=project)
    request.scope["state"]["audit_details"] = {
        "ref": version.ref,
        "digest": version.digest,
        "files": len(archive.names),
        "bytes": archive.size,
    }
    headers = {
        "content-length": str(archive.size),
        "content-disposition": f'attachment; filename="{version.name}-{version.version}.tar"',
        "x-aimass-ref": version.ref,
        "x-aimass-bundle-digest": version.digest,
    }
    return StreamingResponse(
        archive,
        media_type="application/x-tar",
        headers=headers,
        background=BackgroundTask(archive.close),
    )


@router.get("/{name}/versions/{selector}/attachments", name="models.attachments")
def list_attachments(
    name: str,
    selector: str,
    project: ReadProject,
    ws: WorkspaceDep,
    kind: Annotated[str | None, Query(max_length=63)] = None,
) -> list[AttachmentOut]:
    """Reports attached to a version (``kind``: ``evaluation``, ``privacy-audit``), newest first."""
    found = ws.models.attachments(f"{name}@{selector}", kind=kind, project=project)
    return [AttachmentOut.from_entity(a) for a in found]


@router.get(
    "/{name}/versions/{selector}/reports/{report}/report.{fmt}",
    name="models.report_file",
    response_class=FileResponse,
)
def report_file(
    name: str, selector: str, report: str, fmt: str, project: ReadProject, ws: WorkspaceDep
) -> FileResponse:
    """An evaluation report as the self-contained HTML page or its JSON numbers."""

    def locate() -> Path:
        found = ws.reports.evaluations(f"{name}@{selector}", project=project)
        chosen = next((a for a in found if a.name == report), None)
        if chosen is None:
            known = ", ".join(a.name for a in found) or "none"
            raise NotFound(f"model {name}@{selector} has no report {report!r} (reports: {known})")
        return ws.reports.report_file(chosen, fmt=fmt)

    return report_response(fmt, locate)


def report_response(fmt: str, locate: Callable[[], Path]) -> FileResponse:
    """The report file ``locate()`` finds, served: ``html`` with the report's content
    security policy enforced, or ``json`` (NotFound for any other format, before looking)."""
    if fmt not in ("html", "json"):
        raise NotFound(f"reports come as report.html or report.json, not report.{fmt[:20]}")
    path = locate()
    media = "text/html; charset=utf-8" if fmt == "html" else "application/json"
    # The page carries the same policy as a meta tag; the header makes a browser enforce
    # it even when the file is opened from this API.
    headers = {"Content-Security-Policy": REPORT_CSP} if fmt == "html" else {}
    return FileResponse(path, media_type=media, headers=headers)


@router.delete("/{name}/versions/{version}", name="models.delete_version")
def delete_version(
    name: str, version: int, project: ModelsWriteProject, ws: WorkspaceDep, state: StateDep
) -> ModelVersionOut:
    """Delete a version that no alias points at (move or delete its aliases first)."""
    deleted = ws.models.delete_version(name, version, project=project)
    state.forget_versions(project, name)
    return ModelVersionOut.from_entity(deleted)


@router.put("/{name}/aliases/{alias}", name="models.set_alias")
def set_alias(
    name: str,
    alias: str,
    body: AliasSet,
    project: ReadProject,
    principal: PrincipalDep,
    ws: WorkspaceDep,
    state: StateDep,
) -> ModelVersionOut:
    """Point an alias at a version (protected aliases need models:write on the model)."""
    ws.models.check_alias_move(principal, project, name, alias)
    moved = ws.models.set_alias(name, alias, body.version, project=project)
    state.forget_versions(project, name)
    return ModelVersionOut.from_entity(moved)


@router.delete("/{name}/aliases/{alias}", name="models.delete_alias")
def delete_alias(
    name: str,
    alias: str,
    project: ReadProject,
    principal: PrincipalDep,
    ws: WorkspaceDep,
    state: StateDep,
) -> dict[str, str]:
    """Remove an alias (same rule as moving it)."""
    ws.models.check_alias_move(principal, project, name, alias)
    ws.models.delete_alias(name, alias, project=project)
    state.forget_versions(project, name)
    return {"deleted": alias}


@router.post("/{ref}:predict", name="models.predict", tags=["predict"])
async def predict(
    ref: str,
    body: PredictRequest,
    project: PredictProject,
    principal: PrincipalDep,
    state: StateDep,
) -> PredictResponse:
    """Predict a list of inputs with ``NAME@VERSION`` or ``NAME@ALIAS``.

    Concurrent calls for the same version are micro-batched (docs/serving.md#batched-serving).
    A key has at most ``AIMASS_MAX_PREDICTS_PER_KEY`` predict calls in flight at once; a
    key with a query budget spends one input of it per input, and a key with an output
    policy sees its predictions cut down (docs/operations.md#query-budgets-and-output-policy).
    """
    texts = state.workspace.serving.check_inputs(body.inputs)
    if body.explain:
        output_policy(principal).check_explain(principal.key_id)
    async with state.throttle.holding(principal.key_id or principal.actor, "predict"):
        return await _predict(ref, body, texts, project, state, principal)


async def _predict(
    ref: str,
    body: PredictRequest,
    texts: list[str],
    project: str,
    state: ServerState,
    principal: Principal,
) -> PredictResponse:
    started = time.perf_counter()
    ws = state.workspace
    version = await state.resolve(ref, project)
    policy = output_policy(principal)
    policy.check_task(version.task, principal.key_id)
    if body.explain:
        ws.serving.check_explain_batch(texts)
    await charge(state, principal, len(texts))
    results = await (await state.batcher(version)).predict(texts)
    if body.explain:
        # Explanations cost tens of forward passes each: bounded per call, computed by the
        # version's back end (a runner, which the batches of other callers then leave to
        # the other runners), outside the micro-batches so they never delay them.
        backend = await state.backend(version)
        results = await run_in_threadpool(backend.explain, texts, results, body.explain)
    if not policy.is_full:
        results = policy.apply(results)
    state.metrics.predictions.labels(project, version.name).inc(len(texts))
    state.metrics.predict_latency.labels(project, version.name).observe(
        time.perf_counter() - started
    )
    return PredictResponse(model=version.name, version=version.version, predictions=results)
