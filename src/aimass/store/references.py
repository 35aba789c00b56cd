"""What in the metadata store refers to artifacts, for garbage collection.

An artifact is referred to by its ``artifacts:KEY`` URI: the ``uri`` column of a
dataset version, a base model, a model version or an attachment (evaluation
reports, privacy audits, ONNX graphs), and any such string inside the JSON a
version keeps (a model version's metrics and lineage, a pipeline version's
evaluations). The JSON is searched rather than read field by field, so a field
added later that records a URI keeps its artifact alive without a change here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import select

from aimass.entities import JobStatus
from aimass.store._common import SessionFactory
from aimass.store.tables import (
    AttachmentRow,
    BaseModelRow,
    DatasetVersionRow,
    JobRow,
    ModelVersionRow,
    PipelineVersionRow,
)

__all__ = ["URI_PREFIX", "ReferenceRepository"]

URI_PREFIX = "artifacts:"


def _uris_in(value: Any) -> Iterator[str]:
    """Every ``artifacts:`` string anywhere inside a JSON value."""
    if isinstance(value, str):
        if value.startswith(URI_PREFIX):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _uris_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _uris_in(item)


class ReferenceRepository:
    """Read-only questions about what the store still needs."""

    def __init__(self, session: SessionFactory) -> None:
        self._session = session

    def artifact_uris(self) -> set[str]:
        """Every artifact URI some row of any project refers to."""
        found: set[str] = set()
        with self._session() as session:
            for column in (
                DatasetVersionRow.uri,
                BaseModelRow.uri,
                ModelVersionRow.uri,
                AttachmentRow.uri,
            ):
                found.update(session.scalars(select(column)).all())
            for metrics, lineage in session.execute(
                select(ModelVersionRow.metrics, ModelVersionRow.lineage)
            ):
                found.update(_uris_in(metrics))
                found.update(_uris_in(lineage))
            for evaluations in session.scalars(select(PipelineVersionRow.evaluations)):
                found.update(_uris_in(evaluations))
        return {uri for uri in found if uri.startswith(URI_PREFIX)}

    def job_statuses(self) -> dict[str, JobStatus]:
        """The status of every job of every project, by job id."""
        with self._session() as session:
            rows = session.execute(select(JobRow.id, JobRow.status)).all()
        return {job_id: JobStatus(status) for job_id, status in rows}
