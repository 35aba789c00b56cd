"""The training-time limit: running jobs past ``max_job_seconds`` are stopped.

A thread of the server looks at the running jobs every few seconds and asks
any that has run longer than its project's limit to stop, through the same
cancel request a user sends (the job stops within a step, ends ``cancelled``,
and changes nothing in the registry). The job's log says why, and the audit
log gets one ``limit.job_stopped`` entry per job stopped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from aimass.entities import Job, JobStatus
from aimass.settings import Settings
from aimass.store import Store

__all__ = ["JobDeadlines"]

log = logging.getLogger("aimass.server")


class JobDeadlines:
    """Stops running jobs that ran past ``max_job_seconds`` (per project, see the settings).

    Args:
        store: The metadata store the jobs are in.
        settings: ``max_job_seconds`` and its per-project overrides.
        on_stop: Called with each job asked to stop, and the limit it ran past.
    """

    def __init__(
        self, store: Store, settings: Settings, *, on_stop: Callable[[Job, float], None]
    ) -> None:
        self._store = store
        self._settings = settings
        self._on_stop = on_stop
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self, now: datetime | None = None) -> list[Job]:
        """Ask every running job past its limit to stop; the jobs asked."""
        now = now or datetime.now(UTC)
        stopped = []
        for project in self._store.projects.list():
            # Stored with the project, else AIMASS_LIMIT_OVERRIDES, else the setting.
            stored = project.limits.get("max_job_seconds")
            subject = f"project:{project.name}"
            limit = float(stored or self._settings.limit("max_job_seconds", subject))
            for job in self._store.jobs.list(project.name, status=JobStatus.RUNNING, limit=1000):
                if job.cancel_requested or job.started_at is None:
                    continue
                ran = (now - job.started_at).total_seconds()
                if ran <= limit:
                    continue
                self._store.jobs.log(
                    job.id,
                    f"stopping: the job has run {ran:,.0f} s, past the limit of {limit:,.0f} s "
                    "(AIMASS_MAX_JOB_SECONDS); resubmit with fewer epochs or ask the operator",
                    level="error",
                )
                self._store.jobs.request_cancel(job.id)
                log.warning("stopping a job past its time limit", extra={"job_id": job.id})
                self._on_stop(job, limit)
                stopped.append(job)
        return stopped

    def start(self) -> None:
        """Check in a daemon thread until :meth:`stop` (every 10 % of the limit, 1-30 s)."""
        every = min(30.0, max(1.0, self._settings.max_job_seconds / 10))
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(every,), name="aimass-job-deadlines", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop checking (waits for a check in progress)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self.check()
            except Exception:
                # A failed check (store busy) is retried at the next tick.
                log.exception("checking job time limits failed")
