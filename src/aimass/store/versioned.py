"""Datasets, base models and pipelines: named, numbered, content-addressed versions.

All follow the same rules, so one generic repository serves them
(:mod:`aimass.store.pipelines` adds aliases for pipelines): a version is
identified by ``(project, name, version)``, its content by ``digest``, and
re-registering identical content under the same name returns the existing
version instead of creating a new one.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from sqlalchemy import select

from aimass.entities import BaseModel, DatasetVersion, PipelineVersion
from aimass.errors import NotFound
from aimass.refs import validate_name
from aimass.store._common import (
    SessionFactory,
    describe_versions,
    next_version,
    project_row,
    retire_version,
    retry_on_duplicate,
)
from aimass.store.tables import BaseModelRow, DatasetVersionRow, PipelineVersionRow, ProjectRow

__all__ = ["BaseModelRepository", "DatasetRepository"]

RowT = TypeVar("RowT", DatasetVersionRow, BaseModelRow, PipelineVersionRow)
EntityT = TypeVar("EntityT", DatasetVersion, BaseModel, PipelineVersion)


class _VersionedRepository(Generic[RowT, EntityT]):
    row_type: type[RowT]
    kind: str

    def __init__(self, session: SessionFactory) -> None:
        self._session = session

    def _entity(self, row: RowT) -> EntityT:
        # Each subclass pairs its row type with its entity type; mypy cannot see
        # that pairing through two constrained type variables.
        raise NotImplementedError

    def create_version(self, project: str, name: str, **fields: Any) -> tuple[EntityT, bool]:
        """Register content under ``name``; return ``(version, created)``.

        When a version with the same ``digest`` exists, it is returned with
        ``created=False`` and nothing is written.
        """
        validate_name(name, kind=self.kind)
        # Two processes registering under one name pick the same next version: the
        # loser retries and gets the next one (or finds the winner's identical digest).
        return retry_on_duplicate(lambda: self._create_version(project, name, fields))

    def _create_version(
        self, project: str, name: str, fields: dict[str, Any]
    ) -> tuple[EntityT, bool]:
        row_type = self.row_type
        with self._session() as session:
            proj = project_row(session, project)
            existing = session.scalar(
                select(row_type).where(
                    row_type.project_id == proj.id,
                    row_type.name == name,
                    row_type.digest == fields["digest"],
                )
            )
            if existing is not None:
                return self._entity(existing), False
            version = next_version(
                session,
                row_type.version,
                row_type.project_id == proj.id,
                row_type.name == name,
                retired=(proj.id, self.kind, name),
            )
            row = row_type(project=proj, name=name, version=version, **fields)
            session.add(row)
            session.flush()
            return self._entity(row), True

    def _rows(self, project: str, name: str) -> list[EntityT]:
        validate_name(name, kind=self.kind)
        row_type = self.row_type
        with self._session() as session:
            proj = project_row(session, project)
            rows = session.scalars(
                select(row_type)
                .where(row_type.project_id == proj.id, row_type.name == name)
                .order_by(row_type.version)
            ).all()
            return [self._entity(r) for r in rows]

    def get(self, project: str, name: str, version: int | None = None) -> EntityT:
        """Version ``version`` of ``name`` (the latest when ``None``)."""
        found = self._rows(project, name)
        if not found:
            raise NotFound(
                f"{self.kind} {name!r} not found in project {project!r}; "
                f"see 'aimass {self.kind_plural} list'",
                resource=self.kind,
                name=name,
            )
        if version is None:
            return found[-1]
        for entity in found:
            if entity.version == version:
                return entity
        raise NotFound(
            f"{self.kind} {name!r} has no version {version} "
            f"({describe_versions([e.version for e in found])})",
            resource=self.kind,
            name=name,
            version=version,
        )

    def versions(self, project: str, name: str) -> list[EntityT]:
        """Every version of ``name``, oldest first."""
        return self._rows(project, name)

    def delete_version(self, project: str, name: str, version: int) -> EntityT:
        """Delete version ``version`` of ``name``; returns what was deleted (its artifact
        stays until ``aimass gc``)."""
        entity = self.get(project, name, version)  # NotFound naming the versions there are
        row_type = self.row_type

        def delete() -> None:
            with self._session() as session:
                proj = project_row(session, project)
                row = session.scalar(
                    select(row_type).where(
                        row_type.project_id == proj.id,
                        row_type.name == name,
                        row_type.version == version,
                    )
                )
                retire_version(session, (proj.id, self.kind, name), version)
                if row is not None:  # deleted meanwhile by another caller: the same outcome
                    session.delete(row)

        retry_on_duplicate(delete)  # two first deletions of one name both record it
        return entity

    def list(self, project: str) -> list[EntityT]:
        """The latest version of every ``name`` in ``project``, sorted by name."""
        row_type = self.row_type
        with self._session() as session:
            proj = project_row(session, project)
            rows = session.scalars(
                select(row_type)
                .join(ProjectRow)
                .where(row_type.project_id == proj.id)
                .order_by(row_type.name, row_type.version)
            ).all()
            latest: dict[str, RowT] = {}
            for row in rows:
                latest[row.name] = row
            return [self._entity(row) for row in latest.values()]

    @property
    def kind_plural(self) -> str:
        return "bases" if self.kind == "base model" else f"{self.kind}s"


class DatasetRepository(_VersionedRepository[DatasetVersionRow, DatasetVersion]):
    """Dataset versions (the Parquet files live in the artifact store)."""

    row_type = DatasetVersionRow
    kind = "dataset"

    def _entity(self, row: DatasetVersionRow) -> DatasetVersion:
        return row.to_entity()


class BaseModelRepository(_VersionedRepository[BaseModelRow, BaseModel]):
    """Base model versions (the bundles live in the artifact store)."""

    row_type = BaseModelRow
    kind = "base model"

    def _entity(self, row: BaseModelRow) -> BaseModel:
        return row.to_entity()
