"""Run a job record to completion with explicit status transitions.

``run_job`` claims a queued job (``queued → running``), calls the function
registered for its kind, and records the outcome (``succeeded``, ``failed``
with the reason, or ``cancelled``). A failed job changes nothing in the
registry: kinds register results only as their very last step.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimass.artifacts.storage import ArtifactStore, make_private
from aimass.entities import Job, JobStatus
from aimass.errors import AimassError, Cancelled, Conflict, InvalidArgument, JobFailed
from aimass.settings import Settings
from aimass.store import Store
from aimass.training.callbacks import Callback, LoopState

__all__ = [
    "CheckpointMirror",
    "JobContext",
    "JobReporter",
    "checkpoint_dir",
    "drop_checkpoint",
    "get_job_kind",
    "list_job_kinds",
    "pull_checkpoint",
    "register_job_kind",
    "run_claimed_job",
    "run_job",
]

log = logging.getLogger("aimass.jobs")


@dataclass
class JobContext:
    """What a job kind gets: the job, where to read and write, and extra callbacks."""

    job: Job
    store: Store
    artifacts: ArtifactStore
    settings: Settings
    callbacks: Sequence[Callback] = ()


JobFunction = Callable[[JobContext], dict[str, Any]]
_KINDS: dict[str, JobFunction] = {}


def register_job_kind(kind: str) -> Callable[[JobFunction], JobFunction]:
    """Decorator: ``@register_job_kind("train")`` on ``fn(ctx) -> result dict``."""

    def decorate(fn: JobFunction) -> JobFunction:
        if kind in _KINDS:
            raise InvalidArgument(f"job kind {kind!r} is registered already")
        _KINDS[kind] = fn
        return fn

    return decorate


def checkpoint_dir(artifacts: ArtifactStore, job_id: str) -> Path:
    """Where a job keeps its checkpoints (``runs/<job-id>/checkpoint``)."""
    return artifacts.path(f"runs/{job_id}/checkpoint")


def pull_checkpoint(artifacts: ArtifactStore, job_id: str) -> None:
    """Before a run: with object storage, fetch the job's checkpoint when none is here.

    A job resumed on another machine (its worker died) finds its epochs there.
    """
    from aimass.training.checkpoint import POINTER

    if not (checkpoint_dir(artifacts, job_id) / POINTER).is_file():
        artifacts.mirror_down(f"runs/{job_id}/checkpoint")


class CheckpointMirror(Callback):
    """After each checkpoint, upload it to object storage (no-op without one).

    A failed upload is logged on the job, not raised: the local checkpoint holds,
    and losing hours of training to a storage hiccup would be worse.
    """

    def __init__(self, artifacts: ArtifactStore, store: Store, job_id: str) -> None:
        self.artifacts = artifacts
        self.store = store
        self.job_id = job_id

    def on_checkpoint(self, state: LoopState, epoch: int) -> None:
        try:
            self.artifacts.mirror_up(f"runs/{self.job_id}/checkpoint")
        except AimassError as exc:
            message = f"checkpoint of epoch {epoch} not uploaded to object storage: {exc.message}"
            self.store.jobs.log(self.job_id, message, level="warning")


def _builtin_kinds() -> None:
    """Register the kinds aimass ships, once (imported late: they pull in torch)."""
    if "train" in _KINDS:
        return
    from aimass.jobs.audit import AUDIT_PRIVACY, run_audit_job
    from aimass.jobs.batch import BATCH_PREDICT, run_batch_predict
    from aimass.jobs.evaluate import run_evaluate_job
    from aimass.jobs.optimize import OPTIMIZE, run_optimize_job
    from aimass.jobs.train import run_train_job

    for kind, fn in (
        ("train", run_train_job),
        ("evaluate", run_evaluate_job),
        (BATCH_PREDICT, run_batch_predict),
        (OPTIMIZE, run_optimize_job),
        (AUDIT_PRIVACY, run_audit_job),
    ):
        _KINDS.setdefault(kind, fn)


def list_job_kinds() -> list[str]:
    """Registered job kinds, sorted."""
    _builtin_kinds()
    return sorted(_KINDS)


def get_job_kind(kind: str) -> JobFunction:
    """The function for ``kind``; the error lists the known kinds."""
    _builtin_kinds()
    try:
        return _KINDS[kind]
    except KeyError:
        raise InvalidArgument(
            f"unknown job kind {kind!r}; kinds: {', '.join(sorted(_KINDS))}", kind=kind
        ) from None


class LossCurve:
    """The training loss as at most ``size`` ``[step, loss]`` points, for the console's
    chart: a point every ``stride`` steps, the stride doubling (and every other point
    dropped) whenever the points would pass ``size``, so a long job stays small."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.stride = 1
        self.points: list[list[float]] = []

    def add(self, step: int, loss: float | None) -> bool:
        """Record ``loss`` at ``step`` if a point is due; whether the points changed."""
        if loss is None or math.isnan(loss) or step % self.stride:
            return False
        self.points.append([step, round(float(loss), 5)])
        if len(self.points) > self.size:
            self.points = self.points[::2]
            self.stride *= 2
        return True


class JobReporter(Callback):
    """Reports progress and metrics to the job record; stops on a cancel request.

    The store is consulted at most every ``interval`` seconds, so fast steps are
    not slowed down by database round trips.
    """

    def __init__(
        self, store: Store, job_id: str, *, attempt: int | None = None, interval: float = 0.05
    ) -> None:
        self.store = store
        self.job_id = job_id
        self.attempt = attempt
        self.interval = interval
        self._last = 0.0
        self._curve = LossCurve()
        self._curve_changed = False

    def _report(self, progress: float | None, metrics: dict[str, Any] | None, force: bool) -> bool:
        """Report unless one went out less than ``interval`` ago; whether it went out."""
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return False
        self._last = now
        stop = self.store.jobs.report(
            self.job_id, progress=progress, metrics=metrics, attempt=self.attempt
        )
        if stop:
            raise Cancelled(f"job {self.job_id} was cancelled")
        return True

    def _log(self, message: str) -> None:
        self.store.jobs.log(self.job_id, message)

    def on_phase(self, name: str, total: int) -> None:
        self._log(f"{name}: {total:,} items")

    def on_phase_advance(self, done: int) -> None:
        self._report(None, None, force=False)

    def on_train_start(self, state: LoopState) -> None:
        if state.resumed_from:
            self._log(
                f"resumed from the checkpoint after epoch {state.resumed_from} "
                f"(step {state.step} of {state.total_steps})"
            )
        self._log(f"training: {state.epochs} epochs, {state.total_steps:,} steps")

    def on_step_end(self, state: LoopState) -> None:
        metrics: dict[str, Any] = {"loss": state.loss, "step": state.step}
        self._curve_changed |= self._curve.add(state.step, state.loss)
        if self._curve_changed:
            metrics["curve"] = self._curve.points
        if self._report(state.progress, metrics, force=False):
            self._curve_changed = False

    def on_eval(self, state: LoopState, metrics: dict[str, Any]) -> None:
        scalars = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
        self._report(state.progress, {"epoch": state.epoch + 1, "validation": scalars}, force=True)
        shown = " ".join(f"{k}={v:.4g}" for k, v in scalars.items())
        self._log(f"epoch {state.epoch + 1}/{state.epochs} step {state.step}: {shown}")

    def on_checkpoint(self, state: LoopState, epoch: int) -> None:
        self._log(f"checkpoint saved after epoch {epoch}")


@contextmanager
def _heartbeat(store: Store, job: Job, interval: float) -> Iterator[None]:
    """Mark the job alive every ``interval`` seconds, whatever the job is doing."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                store.jobs.heartbeat(job.id, attempt=job.attempt)
            except AimassError as exc:  # a busy database must not kill the job
                log.warning("job heartbeat failed", extra={"job_id": job.id, "error": str(exc)})

    thread = threading.Thread(target=beat, name=f"heartbeat-{job.id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _finish(
    store: Store, artifacts: ArtifactStore, job: Job, status: JobStatus, **fields: Any
) -> Job:
    """Record the outcome, unless the job was recovered and handed to another attempt,
    then remove the job's checkpoint: a finished job is never resumed."""
    message = fields.get("error") or "done"
    store.jobs.log(job.id, f"{status}: {message}", level="info" if status != "failed" else "error")
    try:
        finished = store.jobs.finish(job.id, status, attempt=job.attempt, **fields)
    except Conflict:  # the attempt that replaced this one owns the checkpoint now
        log.warning("job attempt superseded", extra={"job_id": job.id, "attempt": job.attempt})
        return store.jobs.get(job.id)
    drop_checkpoint(store, artifacts, job.id)
    return finished


def drop_checkpoint(store: Store, artifacts: ArtifactStore, job_id: str) -> None:
    """Remove a finished job's checkpoint, here and in object storage (its TensorBoard
    logs stay). A failure is logged on the job, not raised: the outcome is recorded
    already, and ``aimass gc`` removes what is left."""
    key = f"runs/{job_id}/checkpoint"
    try:
        if artifacts.exists(key):
            artifacts.delete(key)
    except (AimassError, OSError) as exc:
        store.jobs.log(
            job_id, f"checkpoint not removed ({exc}); 'aimass gc' removes it", level="warning"
        )


def run_job(
    job_id: str,
    *,
    store: Store,
    artifacts: ArtifactStore,
    settings: Settings,
    callbacks: Sequence[Callback] = (),
) -> Job:
    """Claim and run the queued job ``job_id``; returns the finished job record.

    Raises:
        JobFailed: the job failed (the record holds the reason too).
        Cancelled: the job was cancelled while running.
    """
    job = store.jobs.claim(job_id)
    return run_claimed_job(
        job, store=store, artifacts=artifacts, settings=settings, callbacks=callbacks
    )


def run_claimed_job(
    job: Job,
    *,
    store: Store,
    artifacts: ArtifactStore,
    settings: Settings,
    callbacks: Sequence[Callback] = (),
) -> Job:
    """Run ``job``, claimed already (``running``, its attempt current), to its outcome.

    The Ray executor claims in the server (so no two servers dispatch one job) and
    runs this on a Ray worker; otherwise as :func:`run_job`.
    """
    log.info("job started", extra={"job_id": job.id, "kind": job.kind})
    store.jobs.log(job.id, f"started {job.kind} job (attempt {job.attempt})")
    ctx = JobContext(
        job=job,
        store=store,
        artifacts=artifacts,
        settings=settings,
        callbacks=[*callbacks, JobReporter(store, job.id, attempt=job.attempt)],
    )
    try:
        # Decrypted copies the job reads (its dataset, its base) go when it ends.
        with _heartbeat(store, job, settings.job_heartbeat_seconds), artifacts.plaintext_scope():
            try:
                result = get_job_kind(job.kind)(ctx)
            finally:
                # TensorBoard writes its event files with the process umask.
                if artifacts.exists(f"runs/{job.id}"):
                    make_private(artifacts.path(f"runs/{job.id}"))
    except Cancelled as exc:
        _finish(store, artifacts, job, JobStatus.CANCELLED, error=str(exc))
        log.info("job cancelled", extra={"job_id": job.id})
        raise
    except KeyboardInterrupt:
        _finish(store, artifacts, job, JobStatus.CANCELLED, error="interrupted (Ctrl-C)")
        raise
    except AimassError as exc:
        _finish(store, artifacts, job, JobStatus.FAILED, error=f"[{exc.code}] {exc.message}")
        log.warning("job failed", extra={"job_id": job.id, "error": exc.message})
        raise
    except Exception as exc:
        _finish(
            store, artifacts, job, JobStatus.FAILED, error=f"[INTERNAL] {type(exc).__name__}: {exc}"
        )
        log.exception("job crashed", extra={"job_id": job.id})
        raise JobFailed(f"job {job.id} failed: {type(exc).__name__}: {exc}", job_id=job.id) from exc
    finished = _finish(store, artifacts, job, JobStatus.SUCCEEDED, result=result)
    log.info("job succeeded", extra={"job_id": job.id, **result})
    return finished
