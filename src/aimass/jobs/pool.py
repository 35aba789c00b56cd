"""The worker pool: threads that claim queued jobs from the store and run them.

Each job runs in its thread, or with ``AIMASS_EXECUTOR=ray`` in a Ray actor the
thread waits on (``aimass.jobs.ray_executor``).

The store is the queue, so nothing is lost when the process stops: queued jobs
stay queued. A running job marks itself alive (heartbeat); one that has been
silent for ``job_stale_seconds`` lost its worker (the process died), and the
pool's sweep either puts it back in the queue to resume from its last
checkpoint or marks it failed with the reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from aimass.artifacts.storage import ArtifactStore
from aimass.entities import Job, JobStatus
from aimass.errors import AimassError, Conflict, InvalidArgument
from aimass.jobs.runner import checkpoint_dir, run_claimed_job
from aimass.settings import Settings
from aimass.store import Store
from aimass.training.checkpoint import POINTER

if TYPE_CHECKING:
    from aimass.jobs.ray_executor import RayExecutor

__all__ = ["WorkerPool", "recover_job", "recover_stale_jobs"]

log = logging.getLogger("aimass.jobs.pool")

DIED = "the worker running this job stopped (the server process ended or crashed)"


def recover_job(store: Store, artifacts: ArtifactStore, job: Job, why: str) -> str | None:
    """Requeue ``job`` (attempt ``job.attempt``, whose worker is gone) if it has a
    checkpoint, else fail it saying ``why``; ``resumed``, ``failed`` or ``None`` when
    the attempt was no longer current (it came back to life or was recovered)."""
    # With object storage the checkpoint may be in the bucket only (another machine's).
    local = (checkpoint_dir(artifacts, job.id) / POINTER).is_file()
    if local or artifacts.in_remote(f"runs/{job.id}/checkpoint"):
        if store.jobs.requeue(job.id, attempt=job.attempt):
            store.jobs.log(job.id, f"{why}; queued again to resume from its checkpoint")
            return "resumed"
        return None
    reason = f"{why}, and it had no checkpoint to resume from; submit it again"
    try:
        store.jobs.finish(job.id, JobStatus.FAILED, error=reason, attempt=job.attempt)
    except Conflict:
        return None
    store.jobs.log(job.id, reason, level="error")
    return "failed"


def recover_stale_jobs(
    store: Store, artifacts: ArtifactStore, *, stale_after: float
) -> list[tuple[Job, str]]:
    """Requeue (with a checkpoint) or fail (without) running jobs whose worker died.

    Returns ``(job, action)`` pairs, action ``resumed`` or ``failed``.
    """
    before = datetime.now(UTC) - timedelta(seconds=stale_after)
    done: list[tuple[Job, str]] = []
    for job in store.jobs.stale(before):
        action = recover_job(store, artifacts, job, DIED)
        if action is not None:
            done.append((job, action))
    return done


class WorkerPool:
    """``workers`` threads running queued jobs of every project, oldest first.

    Args:
        store: The metadata store (the durable queue).
        artifacts: Where jobs read and write artifacts.
        settings: Limits, device, heartbeat and staleness intervals.
        workers: Jobs run at once.
        poll_seconds: How often idle workers look for new jobs (``wake`` is immediate).
        on_finished: Called with each finished job record (the server audits it).
        open_artifacts: A module-level function opening the artifact store from
            settings; needed with ``settings.executor == "ray"``, where each job's
            body runs in a Ray actor that opens its own (see ``aimass.jobs.ray_executor``).
    """

    def __init__(
        self,
        *,
        store: Store,
        artifacts: ArtifactStore,
        settings: Settings,
        workers: int,
        poll_seconds: float = 1.0,
        on_finished: Callable[[Job], None] | None = None,
        open_artifacts: Callable[[Settings], ArtifactStore] | None = None,
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.settings = settings
        self.workers = workers
        self.poll_seconds = poll_seconds
        self.on_finished = on_finished
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._sweep_lock = threading.Lock()
        self._last_sweep = 0.0
        self.open_artifacts = open_artifacts
        self._ray: RayExecutor | None = None

    def start(self) -> None:
        """Recover jobs of dead workers, then start the worker threads.

        Raises:
            Unavailable: ``executor`` is ``ray`` and the Ray cluster cannot be reached.
        """
        if self.settings.executor == "ray" and self._ray is None:
            self._ray = self._ray_executor()
        self.sweep(force=True)
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"aimass-job-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        """A job was queued: let an idle worker look now."""
        with self._wake:
            self._wake.notify()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop claiming; give running jobs ``timeout`` s (the rest are recovered later)."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def sweep(self, *, force: bool = False) -> list[tuple[Job, str]]:
        """Recover stale jobs (at most once per heartbeat interval unless forced)."""
        now = time.monotonic()
        with self._sweep_lock:
            if not force and now - self._last_sweep < self.settings.job_heartbeat_seconds:
                return []
            self._last_sweep = now
        recovered = recover_stale_jobs(
            self.store, self.artifacts, stale_after=self.settings.job_stale_seconds
        )
        if self._ray is not None:
            try:
                for name in self._ray.reap():
                    log.info("removed a finished job's Ray actor", extra={"actor": name})
            except Exception as exc:
                log.warning("could not list Ray job actors", extra={"error": str(exc)})
        for job, action in recovered:
            log.warning("recovered job", extra={"job_id": job.id, "action": action})
            if action == "failed" and self.on_finished is not None:
                self.on_finished(self.store.jobs.get(job.id))
        return recovered

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                self.sweep()
                job = self.store.jobs.next_queued()
            except AimassError as exc:
                log.warning("job queue unavailable", extra={"error": exc.message})
                job = None
            if job is None:
                with self._wake:
                    self._wake.wait(self.poll_seconds)
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        try:
            claimed = self.store.jobs.claim(job.id)
        except AimassError:
            # Another worker (maybe another server) got it first: its outcome is that
            # worker's to report, or the audit log would record the job finishing twice.
            return
        # Failures are recorded on the job by the runner; none may kill this thread.
        try:
            if self._ray is not None:
                self._ray.run(claimed)
            else:
                run_claimed_job(
                    claimed, store=self.store, artifacts=self.artifacts, settings=self.settings
                )
        except AimassError:
            pass
        except Exception:
            log.exception("job runner crashed", extra={"job_id": job.id})
        finished = self.store.jobs.get(job.id)
        if self.on_finished is not None and finished.status.finished:
            self.on_finished(finished)

    def _ray_executor(self) -> RayExecutor:
        from aimass.jobs.ray_executor import RayExecutor

        if self.open_artifacts is None:
            raise InvalidArgument(
                "executor 'ray' needs the pool's open_artifacts (how a Ray worker opens "
                "the artifact store); construct WorkerPool with it, as the workspace does"
            )
        return RayExecutor(
            store=self.store,
            artifacts=self.artifacts,
            settings=self.settings,
            open_artifacts=self.open_artifacts,
            stopping=self._stop,
        )
