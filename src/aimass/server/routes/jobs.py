"""Jobs: submit training or batch prediction, list, show (live metrics), logs, cancel,
download a batch prediction's results."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Request, status
from fastapi.responses import StreamingResponse

from aimass.errors import InvalidArgument, PermissionDenied
from aimass.jobs.batch import BatchPredictSpec
from aimass.schemas import (
    AuditJobCreate,
    BatchPredictJobCreate,
    EvaluateJobCreate,
    JobCreate,
    JobLogLineOut,
    JobOut,
    OptimizeJobCreate,
    TrainJobCreate,
)
from aimass.server.deps import PrincipalDep, ReadProject, StateDep, TrainProject, WorkspaceDep
from aimass.server.middleware import request_record
from aimass.server.quotas import charge_sync, output_policy
from aimass.server.state import ServerState
from aimass.workspace import Principal, Workspace

router = APIRouter(prefix="/v1/projects/{project}/jobs", tags=["jobs"])


def _submit_train(
    ws: Workspace, principal: Principal, project: str, body: TrainJobCreate
) -> JobOut:
    from aimass.jobs.train import TrainSpec

    principal.require("train", project=project, model=body.model)
    if body.alias:
        ws.models.check_alias_move(principal, project, body.model, body.alias)
    spec = TrainSpec(
        dataset=body.dataset,
        base=body.base,
        model=body.model,
        config=body.config,
        alias=body.alias,
        privacy=body.privacy,
    )
    return JobOut.from_entity(ws.jobs.submit_training(spec, project=project, reuse=body.reuse))


def _submit_batch(
    state: ServerState, principal: Principal, project: str, body: BatchPredictJobCreate
) -> JobOut:
    from aimass.refs import parse_ref

    ws = state.workspace
    model = parse_ref(body.model, kind="model").name
    for scope, name in (("predict", model), ("data:write", None)):
        if not principal.can(scope, project=project, model=name):
            raise PermissionDenied("batch prediction needs the scopes predict and data:write")
    spec = BatchPredictSpec(
        model=body.model,
        dataset=body.dataset,
        output=body.output,
        split=body.split,
        output_policy=principal.output_policy,  # the results are cut as predict would
    )
    output_policy(principal).check_task(
        ws.models.get(spec.model, project=project).task, principal.key_id
    )
    dataset = ws.datasets.get(spec.dataset, project=project)
    rows = dataset.num_rows if spec.split is None else dataset.splits.get(spec.split, 0)
    charge_sync(state, principal, rows)  # every row is one input of the key's budget
    return JobOut.from_entity(ws.jobs.submit_batch_predict(spec, project=project))


def _submit_evaluate(
    ws: Workspace, principal: Principal, project: str, body: EvaluateJobCreate
) -> JobOut:
    from aimass.jobs.evaluate import EvaluateSpec
    from aimass.refs import parse_ref

    spec = EvaluateSpec(
        model=body.model,
        dataset=body.dataset,
        split=body.split,
        group_field=body.group_field,
        options=body.options,
        pipeline=body.pipeline,
    )
    # A report runs the model over a dataset and attaches to the version: the same
    # standing as training it (for a pipeline: every model it runs).
    if spec.pipeline is not None:
        for model in ws.pipelines.get(spec.pipeline, project=project).models:
            principal.require("train", project=project, model=model)
    else:
        assert spec.model is not None
        principal.require("train", project=project, model=parse_ref(spec.model, kind="model").name)
    return JobOut.from_entity(ws.jobs.submit_evaluation(spec, project=project))


def _submit_optimize(
    ws: Workspace, principal: Principal, project: str, body: OptimizeJobCreate
) -> JobOut:
    from aimass.jobs.optimize import OptimizeSpec
    from aimass.refs import parse_ref

    # The graphs attach to the version and change how it is served: the standing of
    # training it, as for a report.
    principal.require("train", project=project, model=parse_ref(body.model, kind="model").name)
    spec = OptimizeSpec(
        model=body.model, dataset=body.dataset, split=body.split, threshold=body.threshold
    )
    return JobOut.from_entity(ws.jobs.submit_optimization(spec, project=project))


def _submit_audit(
    ws: Workspace, principal: Principal, project: str, body: AuditJobCreate
) -> JobOut:
    from aimass.jobs.audit import AuditSpec
    from aimass.refs import parse_ref

    # The attack runs the model over its training rows and attaches to the version: the
    # standing of training it, as for a report.
    principal.require("train", project=project, model=parse_ref(body.model, kind="model").name)
    spec = AuditSpec(
        model=body.model,
        dataset=body.dataset,
        max_examples=body.max_examples,
        calibrated=body.calibrated,
    )
    return JobOut.from_entity(ws.jobs.submit_audit(spec, project=project))


def _check_quota(state: ServerState, project: str, body: JobCreate) -> None:
    """At most ``max_active_jobs_per_project`` queued + running jobs; ``max_epochs`` per job."""
    subject = f"project:{project}"
    if isinstance(body, TrainJobCreate):
        epochs = body.config.get("epochs") if isinstance(body.config, dict) else None
        most = int(state.workspace.limits.value("max_epochs", subject))
        if isinstance(epochs, int | float) and epochs > most:
            raise InvalidArgument(
                f"config.epochs={epochs:,} is over this deployment's limit of {most:,} epochs "
                "per job (the project's stored limit, AIMASS_LIMIT_OVERRIDES or "
                "AIMASS_MAX_EPOCHS); ask for fewer",
                field="config.epochs",
                limit=most,
            )
    limit = int(state.workspace.limits.value("max_active_jobs_per_project", subject))
    active = state.workspace.jobs.active(project=project, most=limit + 1)
    if active >= limit:
        raise state.throttle.refuse_quota(
            "max_active_jobs_per_project",
            subject,
            value=limit,
            message=f"project {project!r} already has {active} queued or running jobs, the "
            f"limit (AIMASS_MAX_ACTIVE_JOBS_PER_PROJECT); wait for one to finish or cancel one",
        )


@router.post("", name="jobs.submit", status_code=status.HTTP_201_CREATED)
def submit_job(
    body: Annotated[JobCreate, Body()],
    project: ReadProject,
    principal: PrincipalDep,
    ws: WorkspaceDep,
    state: StateDep,
) -> JobOut:
    """Queue a job: ``{"kind": "train" | "batch-predict" | "evaluate" | "optimize" |
    "audit-privacy", ...}``.

    429 (with ``Retry-After``) while the project holds ``AIMASS_MAX_ACTIVE_JOBS_PER_PROJECT``
    queued or running jobs; a training job asks for at most ``AIMASS_MAX_EPOCHS`` epochs.
    """
    _check_quota(state, project, body)
    if isinstance(body, TrainJobCreate):
        return _submit_train(ws, principal, project, body)
    if isinstance(body, EvaluateJobCreate):
        return _submit_evaluate(ws, principal, project, body)
    if isinstance(body, OptimizeJobCreate):
        return _submit_optimize(ws, principal, project, body)
    if isinstance(body, AuditJobCreate):
        return _submit_audit(ws, principal, project, body)
    return _submit_batch(state, principal, project, body)


@router.get("", name="jobs.list")
def list_jobs(
    project: ReadProject,
    ws: WorkspaceDep,
    status_: Annotated[str | None, Query(alias="status", max_length=15)] = None,
    kind: Annotated[str | None, Query(max_length=31)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[JobOut]:
    """Newest jobs first."""
    found = ws.jobs.list(project=project, status=status_, kind=kind, limit=limit)
    return [JobOut.from_entity(j) for j in found]


@router.get("/{job_id}", name="jobs.get")
def get_job(job_id: str, project: ReadProject, ws: WorkspaceDep) -> JobOut:
    """A job with its live progress and metrics."""
    return JobOut.from_entity(ws.jobs.get(job_id, project=project))


@router.get("/{job_id}/logs", name="jobs.logs")
def job_logs(
    job_id: str,
    project: ReadProject,
    ws: WorkspaceDep,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[JobLogLineOut]:
    """Log lines after sequence number ``after`` (poll with the last one seen)."""
    lines = ws.jobs.logs(job_id, project=project, after=after, limit=limit)
    return [JobLogLineOut.from_entity(line) for line in lines]


_RESULT_MEDIA = ("application/vnd.apache.parquet", "text/csv", "application/x-ndjson")


@router.get(
    "/{job_id}/results",
    name="jobs.results",
    response_class=StreamingResponse,
    responses={200: {"content": {media: {} for media in _RESULT_MEDIA}}},
)
def job_results(
    job_id: str,
    project: ReadProject,
    principal: PrincipalDep,
    ws: WorkspaceDep,
    request: Request,
    fmt: Annotated[Literal["parquet", "csv", "jsonl"], Query(alias="format")] = "parquet",
) -> StreamingResponse:
    """A finished batch prediction's result dataset, streamed as Parquet, CSV or JSONL.

    Cut by the caller's output policy (as predict would show it); each download is
    written to the audit log.
    """
    from aimass.workspace.results import open_job_results

    policy = output_policy(principal)
    found = open_job_results(
        ws, job_id, project=project, fmt=fmt, policy=policy, key_id=principal.key_id
    )
    # Reads are not audited by the request pipeline; a download of predictions is.
    shown = str(policy) or "full"
    details = {"format": fmt, "dataset": found.dataset, "rows": found.rows, "policy": shown}
    ws.audit.writer.submit(request_record(request.scope, 200, b"", details=details))
    headers = {"content-disposition": f'attachment; filename="{found.filename}"'}
    return StreamingResponse(found.chunks, media_type=found.media_type, headers=headers)


@router.post("/{job_id}:cancel", name="jobs.cancel")
def cancel_job(job_id: str, project: TrainProject, ws: WorkspaceDep) -> JobOut:
    """Cancel a queued job now, a running one within one step."""
    return JobOut.from_entity(ws.jobs.cancel(job_id, project=project))
