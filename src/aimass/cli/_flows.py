"""What the CLI does in several calls of the operations contract, in either mode.

Training and evaluating from the CLI show a progress bar and wait for the result.
On a local home the job runs in this process with the training loop's own
progress callbacks; against a server it is submitted, then polled, and the polled
progress drives the same bar. Everything else the commands do is one call of
``backend()``, the same in both modes.
"""

from __future__ import annotations

import inspect
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass import schemas as s
from aimass.cli._common import local_home
from aimass.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from aimass.cli._common import Backend

# A downloaded report's private temporary folder (removed once the report is moved out).
REPORT_FOLDER_PREFIX = "aimass-report-"


def checked_call(
    operation: Callable[..., Any], fields: dict[str, Any], what: str, **fixed: Any
) -> Any:
    """``operation(**fields, **fixed)``, refusing a field of ``fields`` (the user's) it has
    no option for, or one that ``fixed`` (the command's own options) sets, by name."""
    known = [
        name
        for name, p in inspect.signature(operation).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in fixed
    ]
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise InvalidArgument(
            f"{what}: unknown field(s) {', '.join(unknown)}; the fields are {', '.join(known)}"
        )
    return operation(**fields, **fixed)


def train(
    ops: Backend,
    spec: dict[str, Any],
    *,
    project: str,
    reuse: bool = False,
    callbacks: Sequence[Any] = (),
) -> tuple[s.ModelVersionOut, bool]:
    """Train to the end: ``(the version, whether an identical one was reused)``."""
    ws = local_home()
    if ws is None:
        job = ops.jobs.submit_training(project=project, reuse=reuse, **spec)
        done = _wait(ops, job.id, project, callbacks)
        ref = f"{done.result['model']}@{done.result['version']}"
        return ops.models.get(ref, project=project), bool(done.result.get("reused"))
    from aimass.jobs.train import TrainSpec

    # The recipe is chosen (and its base imported) once, not by each step below.
    train_spec = ws.jobs.with_recipe(TrainSpec(**spec), project=project)
    found = ws.jobs.find_trained(train_spec, project=project) if reuse else None
    if found is not None:
        if train_spec.alias:
            found = ws.models.set_alias(
                found.name, train_spec.alias, found.version, project=project
            )
        return s.ModelVersionOut.from_entity(found), True
    version = ws.jobs.train(train_spec, project=project, callbacks=callbacks)
    return s.ModelVersionOut.from_entity(version), False


def evaluate(
    ops: Backend, spec: dict[str, Any], *, project: str, callbacks: Sequence[Any] = ()
) -> tuple[s.AttachmentOut, dict[str, Any], Path]:
    """Build an evaluation report: ``(attachment, report.json content, report.html)``."""
    ws = local_home()
    if ws is None:
        job = ops.jobs.submit_evaluation(project=project, **spec)
        done = _wait(ops, job.id, project, callbacks)
        ref, name = f"{done.result['model']}@{done.result['version']}", done.result["attachment"]
    else:
        from aimass.jobs.evaluate import EvaluateSpec

        attachment = ws.jobs.evaluate(EvaluateSpec(**spec), project=project, callbacks=callbacks)
        ref, name = f"{attachment.model}@{attachment.version}", attachment.name
    chosen = next(
        a for a in ops.models.attachments(ref, kind="evaluation", project=project) if a.name == name
    )
    html, report = report_files(ops, ref, name, project=project)
    return chosen, json.loads(report.read_text("utf-8")), html


def optimize(
    ops: Backend, spec: dict[str, Any], *, project: str, callbacks: Sequence[Any] = ()
) -> s.ModelVersionOut:
    """Build a version's ONNX graphs and parity record; returns the updated version."""
    ws = local_home()
    if ws is None:
        job = ops.jobs.submit_optimization(project=project, **spec)
        done = _wait(ops, job.id, project, callbacks)
        return ops.models.get(f"{done.result['model']}@{done.result['version']}", project=project)
    from aimass.jobs.optimize import OptimizeSpec

    version = ws.jobs.optimize(OptimizeSpec(**spec), project=project, callbacks=callbacks)
    return s.ModelVersionOut.from_entity(version)


def audit_privacy(ops: Backend, spec: dict[str, Any], *, project: str) -> dict[str, Any]:
    """Run a membership-inference audit to the end; returns its report."""
    ws = local_home()
    if ws is None:
        job = ops.jobs.submit_audit(project=project, **spec)
        return dict(_wait(ops, job.id, project, ()).result["report"])
    from aimass.jobs.audit import AuditSpec

    return ws.jobs.audit_privacy(AuditSpec(**spec), project=project)


def report_files(ops: Backend, ref: str, name: str | None, *, project: str) -> tuple[Path, Path]:
    """Report ``name`` (default: the newest) of ``ref`` as ``(report.html, report.json)``
    in a new private temporary directory."""
    found = ops.models.attachments(ref, kind="evaluation", project=project)
    chosen = next((a for a in found if name is None or a.name == name), None)
    if chosen is None:
        known = ", ".join(a.name for a in found) or "none"
        raise NotFound(
            f"model {ref} has no evaluation report {name or ''!r} (reports: {known}); "
            f"create one with 'aimass evaluate {ref} --dataset NAME'"
        )
    return _download(lambda fmt: ops.models.report(ref, chosen.name, fmt=fmt, project=project))


def _download(fetch: Callable[[str], bytes]) -> tuple[Path, Path]:
    """``fetch("html")`` and ``fetch("json")`` written to a new private temporary directory."""
    folder = Path(tempfile.mkdtemp(prefix=REPORT_FOLDER_PREFIX))
    paths = []
    for fmt in ("html", "json"):
        target = folder / f"report.{fmt}"
        target.write_bytes(fetch(fmt))
        paths.append(target)
    return paths[0], paths[1]


def evaluate_pipeline(
    ops: Backend, spec: dict[str, Any], *, project: str, callbacks: Sequence[Any] = ()
) -> tuple[s.PipelineVersionOut, str, Path, Path]:
    """Build a pipeline version's evaluation report: ``(the version with the report
    recorded, the report's name, report.html, report.json)``."""
    ws = local_home()
    if ws is None:
        job = ops.jobs.submit_evaluation(project=project, **spec)
        done = _wait(ops, job.id, project, callbacks)
        ref, name = f"{done.result['pipeline']}@{done.result['version']}", done.result["name"]
    else:
        fields = {k: v for k, v in spec.items() if k != "pipeline"}
        version, name = ws.pipelines.evaluate(
            spec["pipeline"], project=project, callbacks=callbacks, **fields
        )
        ref = version.ref
    html, report = _download(lambda fmt: ops.pipelines.report(ref, name, fmt=fmt, project=project))
    return ops.pipelines.get(ref, project=project), name, html, report


def _wait(ops: Backend, job_id: str, project: str, callbacks: Sequence[Any]) -> s.JobOut:
    progress = _JobProgress(callbacks)
    try:
        return ops.jobs.wait(job_id, progress=progress, poll=0.5, project=project)
    finally:
        progress.close()


class _JobProgress:
    """Feeds polled job progress to a rich progress bar when callbacks were asked for."""

    def __init__(self, callbacks: Sequence[Any]) -> None:
        from rich.progress import Progress

        self._bar = Progress(transient=False) if callbacks else None
        self._task: Any = None
        self._started = time.monotonic()

    def __call__(self, job: s.JobOut) -> None:
        if self._bar is None:
            return
        if self._task is None:
            self._bar.start()
            self._task = self._bar.add_task(f"job {job.id[:8]} ({job.kind})", total=1.0)
        loss = job.metrics.get("loss")
        info = f"{job.status}" + (f" loss {loss:.4f}" if isinstance(loss, float) else "")
        self._bar.update(self._task, completed=job.progress, description=f"job {job.id[:8]} {info}")

    def close(self) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.stop()
