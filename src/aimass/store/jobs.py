"""Job records: the durable queue that training and batch jobs go through."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from aimass.entities import Job, JobStatus
from aimass.errors import FailedPrecondition, InvalidArgument, NotFound
from aimass.store._common import SessionFactory, project_row
from aimass.store.tables import JobRow, ProjectRow, utcnow

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

    def get(self, job_id: str, *, project: str | None = None) -> Job:
        """The job ``job_id`` (restricted to ``project`` when given)."""
        with self._session() as session:
            row = session.get(JobRow, job_id)
            if row is None or (project is not None and row.project.name != project):
                raise NotFound(f"job {job_id!r} not found", resource="job", id=job_id)
            return row.to_entity()

    def list(self, project: str, *, status: JobStatus | None = None, limit: int = 100) -> list[Job]:
        """Newest jobs first in ``project``, optionally only those in ``status``."""
        with self._session() as session:
            proj = project_row(session, project)
            query = select(JobRow).where(JobRow.project_id == proj.id)
            if status is not None:
                query = query.where(JobRow.status == status)
            rows = session.scalars(query.order_by(JobRow.created_at.desc()).limit(limit)).all()
            return [r.to_entity() for r in rows]

    def claim(self, job_id: str) -> Job:
        """Move a queued job to running; fail if someone else got there first."""
        now = utcnow()
        with self._session() as session:
            claimed = session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status == JobStatus.QUEUED)
                .values(status=JobStatus.RUNNING, started_at=now, heartbeat_at=now)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
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
        self, job_id: str, *, progress: float | None = None, metrics: dict[str, Any] | None = None
    ) -> bool:
        """Record progress/metrics and a heartbeat; returns True if cancel was requested."""
        with self._session() as session:
            row = session.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"job {job_id!r} not found", resource="job", id=job_id)
            if progress is not None:
                row.progress = max(0.0, min(1.0, progress))
            if metrics:
                row.metrics = {**row.metrics, **metrics}
            row.heartbeat_at = utcnow()
            return row.cancel_requested

    def request_cancel(self, job_id: str, *, project: str | None = None) -> Job:
        """Ask a job to stop: queued jobs are cancelled at once, running ones within a step."""
        with self._session() as session:
            row = session.get(JobRow, job_id)
            if row is None or (project is not None and row.project.name != project):
                raise NotFound(f"job {job_id!r} not found", resource="job", id=job_id)
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
    ) -> Job:
        """Move a job to a terminal ``status`` with its result or error."""
        if not status.finished:
            raise InvalidArgument(f"job status {status!r} is not terminal", status=str(status))
        with self._session() as session:
            row = session.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"job {job_id!r} not found", resource="job", id=job_id)
            row.status = status
            row.result = result or {}
            row.error = error
            row.finished_at = finished_at or utcnow()
            if status == JobStatus.SUCCEEDED:
                row.progress = 1.0
            session.flush()
            return row.to_entity()
