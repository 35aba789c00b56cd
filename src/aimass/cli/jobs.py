"""``aimass jobs``: list, show, follow, cancel and submit training, evaluation and batch
prediction jobs (``aimass jobs results`` is in :mod:`aimass.cli.results`)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer

from aimass.cli._common import (
    JsonOpt,
    ProjectOpt,
    backend,
    command,
    console,
    emit_json,
    local_home,
    table,
    when,
)
from aimass.cli._flows import checked_call
from aimass.errors import InvalidArgument

jobs = typer.Typer(help="Training and batch-prediction jobs.", no_args_is_help=True)


# -- jobs --------------------------------------------------------------------------------------


@jobs.command("list")
@command
def jobs_list(
    status: Annotated[str | None, typer.Option(help="queued, running, succeeded, ...")] = None,
    limit: Annotated[int, typer.Option(help="Most jobs shown.")] = 50,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Newest jobs first."""
    found = backend().jobs.list(status=status, limit=limit, project=project)
    if json_out:
        emit_json(found)
        return
    table(
        "jobs",
        ["id", "kind", "status", "progress", "created", "error"],
        [
            [j.id, j.kind, j.status, f"{j.progress:.0%}", when(j.created_at), (j.error or "")[:60]]
            for j in found
        ],
    )


@jobs.command("show")
@command
def jobs_show(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """A job with its live progress and metrics."""
    job = backend().jobs.get(job_id, project=project)
    if json_out:
        emit_json(job)
        return
    console.print(
        f"[bold]{job.id}[/] {job.kind} {job.status} {job.progress:.0%} (attempt {job.attempt})"
    )
    console.print(f"  spec: {json.dumps(job.spec)}")
    if job.metrics:
        console.print(f"  metrics: {json.dumps(job.metrics)[:500]}")
    if job.result:
        console.print(f"  result: {json.dumps(job.result)}")
    if job.error:
        console.print(f"  error: {job.error}")


@jobs.command("logs")
@command
def jobs_logs(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until it ends.")
    ] = False,
    project: ProjectOpt = "default",
) -> None:
    """A job's log lines."""
    be = backend()
    after = 0
    while True:
        for line in be.jobs.logs(job_id, after=after, project=project):
            typer.echo(f"{line.time:%H:%M:%S} {line.level:5} {line.message}")
            after = line.seq
        if not follow or be.jobs.get(job_id, project=project).finished:
            return
        time.sleep(1.0)


@jobs.command("cancel")
@command
def jobs_cancel(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    project: ProjectOpt = "default",
) -> None:
    """Cancel a queued job now, a running one within one step."""
    job = backend().jobs.cancel(job_id, project=project)
    state = "cancelled" if job.status == "cancelled" else "cancel requested"
    console.print(f"job {job.id}: {state}")


@jobs.command("submit")
@command
def jobs_submit(
    kind: Annotated[
        str, typer.Argument(help="train, batch-predict, evaluate, optimize or audit-privacy.")
    ],
    spec: Annotated[
        str,
        typer.Option(
            help='The job as JSON, e.g. \'{"dataset": "reviews", "base": "minilm", '
            '"model": "churn"}\' or \'{"model": "churn@production", "dataset": "new", '
            '"output": "scored"}\'.'
        ),
    ],
    reuse: Annotated[bool, typer.Option(help="train: reuse an identical version.")] = False,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Queue a job for the server's workers (follow it with 'aimass jobs logs -f')."""
    try:
        body = json.loads(spec)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"--spec is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidArgument("--spec must be a JSON object")
    be = backend()
    submit: dict[str, Callable[..., Any]] = {
        "train": be.jobs.submit_training,
        "batch-predict": be.jobs.submit_batch_predict,
        "evaluate": be.jobs.submit_evaluation,
        "optimize": be.jobs.submit_optimization,
        "audit-privacy": be.jobs.submit_audit,
    }
    if kind not in submit:
        raise InvalidArgument(f"unknown job kind {kind!r}; use one of {', '.join(submit)}")
    options: dict[str, Any] = {"reuse": reuse} if kind == "train" else {}
    job = checked_call(submit[kind], body, "--spec", project=project, **options)
    if json_out:
        emit_json(job)
    else:
        console.print(f"queued {job.kind} job {job.id} ({job.status})")
        if local_home() is not None:
            console.print("  no server runs it from here: start 'aimass serve' on this home")
