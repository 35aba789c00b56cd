"""The in-process worker pool: threads that claim queued jobs from the store and run them.

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

from aimass.artifacts.storage import ArtifactStore
from aimass.entities import Job, JobStatus
from aimass.errors import AimassError, Conflict
from aimass.jobs.runner import checkpoint_dir, run_job
from aimass.settings import Settings
from aimass.store import Store
from aimass.training.checkpoint import POINTER

__all__ = ["WorkerPool", "recover_stale_jobs"]

log = logging.getLogger("aimass.jobs.pool")

DIED = "the worker running this job stopped (the server process ended or crashed)"


def recover_stale_jobs(
    store: Store, artifacts: ArtifactStore, *, stale_after: float
) -> list[tuple[Job, str]]:
    """Requeue (with a checkpoint) or fail (without) running jobs whose worker died.

    Returns ``(job, action)`` pairs, action ``resumed`` or ``failed``.
    """
    before = datetime.now(UTC) - timedelta(seconds=stale_after)
    done: list[tuple[Job, str]] = []
    for job in store.jobs.stale(before):
        if (checkpoint_dir(artifacts, job.id) / POINTER).is_file():
            if store.jobs.requeue(job.id, attempt=job.attempt):
                store.jobs.log(job.id, f"{DIED}; queued again to resume from its checkpoint")
                done.append((job, "resumed"))
            continue
        reason = f"{DIED}, and it had no checkpoint to resume from; submit it again"
        try:
            store.jobs.finish(job.id, JobStatus.FAILED, error=reason, attempt=job.attempt)
        except Conflict:
            continue  # it came back to life or someone else recovered it
        store.jobs.log(job.id, reason, level="error")
        done.append((job, "failed"))
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

    def start(self) -> None:
        """Recover jobs of dead workers, then start the worker threads."""
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
        # Failures are recorded on the job by run_job; a claim lost to another
        # worker raises before anything runs. Neither may kill this thread.
        try:
            run_job(job.id, store=self.store, artifacts=self.artifacts, settings=self.settings)
        except AimassError:
            pass
        except Exception:
            log.exception("job runner crashed", extra={"job_id": job.id})
        finished = self.store.jobs.get(job.id)
        if self.on_finished is not None and finished.status.finished:
            self.on_finished(finished)
