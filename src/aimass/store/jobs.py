"""Job records: the durable queue that training and batch jobs go through."""

from __future__ import annotations

import builtins
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from aimass.entities import Job, JobLogLine, JobStatus
from aimass.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound
from aimass.store._clock import utcnow
from aimass.store._common import SessionFactory, project_row
from aimass.store.tables import JobLogRow, JobRow, ProjectRow

__all__ = ["JobRepository"]


class JobRepository:
    """Create, claim, update and finish jobs with explicit status transitions."""

    def __init__(self, session: SessionFactory) -> None:
        self._session = session

    def create(self, project: str, kind: str, spec: dict[str, Any]) -> Job:
        """Queue a new job of ``kind`` in ``project``."""
        with self._session() as session:
            proj = project_row(session, project)
            row = JobRow(
                id=uuid.uuid4().hex,
                project=proj,
                kind=kind,
                status=JobStatus.QUEUED,
                spec=spec,
                metrics={},
                result={},
            )
            session.add(row)
            session.flush()
            return row.to_entity()

    @staticmethod
    def _row(
        session: Session, job_id: str, project: str | None = None, *, lock: bool = False
    ) -> JobRow:
        # Read-then-write transitions lock the row (SELECT ... FOR NO KEY UPDATE on
        # PostgreSQL), so a server's stale-job sweep and the worker finishing the job, or
        # two servers' sweeps, cannot both act on one status: the second sees the first's
        # result. NO KEY: appending to the job's log (a foreign key to it) is not blocked.
        row = session.get(JobRow, job_id, with_for_update={"key_share": True} if lock else None)
        if row is None or (project is not None and row.project.name != project):
            raise NotFound(
                f"job {job_id!r} not found; see 'aimass jobs list'", resource="job", id=job_id
            )
        return row

    def get(self, job_id: str, *, project: str | None = None) -> Job:
        """The job ``job_id`` (restricted to ``project`` when given)."""
        with self._session() as session:
            return self._row(session, job_id, project).to_entity()

    def list(
        self,
        project: str,
        *,
        status: JobStatus | None = None,
        kind: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Newest jobs first in ``project``, optionally only those in ``status`` / of ``kind``."""
        with self._session() as session:
            proj = project_row(session, project)
            query = select(JobRow).where(JobRow.project_id == proj.id)
            if status is not None:
                query = query.where(JobRow.status == status)
            if kind is not None:
                query = query.where(JobRow.kind == kind)
            rows = session.scalars(query.order_by(JobRow.created_at.desc()).limit(limit)).all()
            return [r.to_entity() for r in rows]

    def claim(self, job_id: str) -> Job:
        """Move a queued job to running; fail if someone else got there first."""
        now = utcnow()
        with self._session() as session:
            claimed = session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status == JobStatus.QUEUED)
                .values(
                    status=JobStatus.RUNNING,
                    started_at=now,
                    heartbeat_at=now,
                    attempt=JobRow.attempt + 1,
                )
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]  # UPDATE gives a CursorResult
                raise FailedPrecondition(f"job {job_id!r} is not queued", id=job_id)
            row = session.get(JobRow, job_id)
            assert row is not None
            session.refresh(row)
            return row.to_entity()

    def next_queued(self) -> Job | None:
        """The oldest queued job of any project, or ``None``."""
        with self._session() as session:
            row = session.scalar(
                select(JobRow)
                .join(ProjectRow)
                .where(JobRow.status == JobStatus.QUEUED)
                .order_by(JobRow.created_at)
                .limit(1)
            )
            return row.to_entity() if row is not None else None

    def report(
        self,
        job_id: str,
        *,
        progress: float | None = None,
        metrics: dict[str, Any] | None = None,
        attempt: int | None = None,
    ) -> bool:
        """Record progress/metrics and a heartbeat; returns True when the worker must stop.

        A worker must stop when a cancel was requested, or when the job is no longer
        its own (``attempt`` is stale because the job was recovered and re-claimed).
        """
        with self._session() as session:
            row = self._row(session, job_id, lock=True)
            if row.status != JobStatus.RUNNING or (attempt is not None and row.attempt != attempt):
                return True
            if progress is not None:
                row.progress = max(0.0, min(1.0, progress))
            if metrics:
                row.metrics = {**row.metrics, **metrics}
            row.heartbeat_at = utcnow()
            return row.cancel_requested

    def request_cancel(self, job_id: str, *, project: str | None = None) -> Job:
        """Ask a job to stop: queued jobs are cancelled at once, running ones within a step."""
        with self._session() as session:
            row = self._row(session, job_id, project, lock=True)
            if row.status == JobStatus.QUEUED:
                row.status = JobStatus.CANCELLED
                row.finished_at = utcnow()
                row.error = "cancelled before it started"
            elif row.status == JobStatus.RUNNING:
                row.cancel_requested = True
            session.flush()
            return row.to_entity()

    def finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        finished_at: datetime | None = None,
        attempt: int | None = None,
    ) -> Job:
        """Move a job to a terminal ``status`` with its result or error.

        With ``attempt``, only the worker holding that attempt may finish the job
        (a worker whose job was recovered and re-claimed gets a Conflict).
        """
        if not status.finished:
            raise InvalidArgument(f"job status {status!r} is not terminal", status=str(status))
        with self._session() as session:
            row = self._row(session, job_id, lock=True)
            if attempt is not None and (row.attempt != attempt or row.status != JobStatus.RUNNING):
                raise Conflict(
                    f"job {job_id} attempt {attempt} is no longer current (status {row.status}, "
                    f"attempt {row.attempt})",
                    id=job_id,
                )
            row.status = status
            row.result = result or {}
            row.error = error
            row.finished_at = finished_at or utcnow()
            if status == JobStatus.SUCCEEDED:
                row.progress = 1.0
            session.flush()
            return row.to_entity()

    def heartbeat(self, job_id: str, *, attempt: int) -> bool:
        """Mark a running job alive; returns False when it is no longer this attempt's."""
        with self._session() as session:
            done = session.execute(
                update(JobRow)
                .where(
                    JobRow.id == job_id,
                    JobRow.status == JobStatus.RUNNING,
                    JobRow.attempt == attempt,
                )
                .values(heartbeat_at=utcnow())
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]  # UPDATE gives a CursorResult

    def stale(self, before: datetime) -> builtins.list[Job]:
        """Running jobs whose last heartbeat is older than ``before`` (their worker died)."""
        with self._session() as session:
            rows = session.scalars(
                select(JobRow)
                .where(JobRow.status == JobStatus.RUNNING, JobRow.heartbeat_at < before)
                .order_by(JobRow.created_at)
            ).all()
            return [r.to_entity() for r in rows]

    def requeue(self, job_id: str, *, attempt: int) -> bool:
        """Put a dead attempt's running job back in the queue (to resume from a checkpoint)."""
        with self._session() as session:
            done = session.execute(
                update(JobRow)
                .where(
                    JobRow.id == job_id,
                    JobRow.status == JobStatus.RUNNING,
                    JobRow.attempt == attempt,
                )
                .values(status=JobStatus.QUEUED, cancel_requested=False)
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]  # UPDATE gives a CursorResult

    def log(self, job_id: str, message: str, *, level: str = "info") -> None:
        """Append a line to the job's log."""
        with self._session() as session:
            session.add(JobLogRow(job_id=job_id, level=level, message=message[:10_000]))

    def logs(
        self, job_id: str, *, project: str | None = None, after: int = 0, limit: int = 1000
    ) -> builtins.list[JobLogLine]:
        """Log lines of a job, oldest first, after sequence number ``after``."""
        with self._session() as session:
            self._row(session, job_id, project)
            rows = session.scalars(
                select(JobLogRow)
                .where(JobLogRow.job_id == job_id, JobLogRow.id > after)
                .order_by(JobLogRow.id)
                .limit(limit)
            ).all()
            return [r.to_entity() for r in rows]

    def counts(self) -> dict[str, int]:
        """Jobs per status, over every project (for the metrics endpoint)."""
        with self._session() as session:
            rows = session.execute(select(JobRow.status, func.count()).group_by(JobRow.status))
            found = {str(status): int(n) for status, n in rows}
        return {str(s): found.get(str(s), 0) for s in JobStatus}
