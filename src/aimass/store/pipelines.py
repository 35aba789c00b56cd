"""Pipelines: versioned specs (the generic versioned repository) plus aliases.

A pipeline version is immutable and content-addressed like a dataset version:
creating the same pinned spec again returns the existing version. Aliases work
as model aliases do (``production`` → version 3), kept in their own table.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aimass.entities import PipelineVersion
from aimass.errors import Conflict, NotFound
from aimass.refs import LATEST, Ref, validate_name
from aimass.store._clock import utcnow
from aimass.store._common import project_row, retire_version, retry_on_duplicate
from aimass.store.registry import validate_alias
from aimass.store.tables import PipelineAliasRow, PipelineVersionRow
from aimass.store.versioned import _VersionedRepository

__all__ = ["PipelineRepository"]


class PipelineRepository(_VersionedRepository[PipelineVersionRow, PipelineVersion]):
    """Pipeline versions and aliases, scoped by project."""

    row_type = PipelineVersionRow
    kind = "pipeline"

    def _entity(self, row: PipelineVersionRow) -> PipelineVersion:
        return row.to_entity()

    def resolve(self, project: str, ref: Ref) -> PipelineVersion:
        """The version ``name@version``, ``name@alias`` or ``name@latest`` names."""
        if ref.version is not None or ref.alias in (None, LATEST):
            return self.get(project, ref.name, ref.version)
        validate_alias(ref.alias)
        with self._session() as session:
            row = self._alias_row(session, project, ref.name, ref.alias)
            if row is None:
                self.get(project, ref.name)  # NotFound for the pipeline itself first
                raise NotFound(
                    f"pipeline {ref.name!r} has no alias {ref.alias!r} "
                    f"(aliases: {self._alias_names(session, project, ref.name)}); set one with "
                    f"'aimass pipelines alias {ref.name} {ref.alias} VERSION'",
                    resource="pipeline_alias",
                    name=ref.name,
                    alias=ref.alias,
                )
            return row.version_row.to_entity()

    def set_alias(self, project: str, name: str, alias: str, version: int) -> PipelineVersion:
        """Point ``alias`` of pipeline ``name`` at ``version`` (moving it if set)."""
        validate_name(name, kind="pipeline")
        validate_alias(alias)
        return retry_on_duplicate(lambda: self._set_alias(project, name, alias, version))

    def _set_alias(self, project: str, name: str, alias: str, version: int) -> PipelineVersion:
        self.get(project, name, version)  # NotFound naming the latest version
        with self._session() as session:
            target = self._locked_row(session, project, name, version)
            current = self._alias_row(session, project, name, alias)
            if current is None:
                session.add(
                    PipelineAliasRow(
                        project_id=target.project_id, name=name, alias=alias, version_row=target
                    )
                )
            else:
                current.version_row = target
                current.updated_at = utcnow()
            session.flush()
            session.refresh(target)
            return target.to_entity()

    def delete_version(self, project: str, name: str, version: int) -> PipelineVersion:
        """Delete a version no alias points at; returns what was deleted (Conflict naming
        the aliases otherwise)."""
        validate_name(name, kind="pipeline")
        self.get(project, name, version)  # NotFound naming the latest version
        with self._session() as session:
            row = self._locked_row(session, project, name, version)
            if row.aliases:
                held = ", ".join(sorted(a.alias for a in row.aliases))
                raise Conflict(
                    f"pipeline {name!r} version {version} is held by alias(es) {held}; "
                    f"move them or remove them with 'aimass pipelines unalias {name} ALIAS'",
                    aliases=held,
                )
            entity = row.to_entity()
            retire_version(session, (row.project_id, self.kind, name), version)
            session.delete(row)
            return entity

    def _locked_row(
        self, session: Session, project: str, name: str, version: int
    ) -> PipelineVersionRow:
        proj = project_row(session, project)
        row = session.scalar(
            select(PipelineVersionRow)
            .where(
                PipelineVersionRow.project_id == proj.id,
                PipelineVersionRow.name == name,
                PipelineVersionRow.version == version,
            )
            .with_for_update()
        )
        if row is None:  # deleted since the caller's check
            raise NotFound(
                f"pipeline {name!r} has no version {version}",
                resource="pipeline",
                name=name,
                version=version,
            )
        return row

    def record_evaluation(
        self, project: str, name: str, version: int, report: str, record: dict[str, Any]
    ) -> PipelineVersion:
        """Store evaluation ``report`` (its headline numbers and URI) on a version,
        replacing a report of the same name; the row is locked, so two evaluations
        finishing together both stay."""
        self.get(project, name, version)  # NotFound naming the latest version
        with self._session() as session:
            row = self._locked_row(session, project, name, version)
            row.evaluations = {**(row.evaluations or {}), report: record}
            session.flush()
            return row.to_entity()

    def delete_alias(self, project: str, name: str, alias: str) -> None:
        """Remove ``alias`` from pipeline ``name``."""
        validate_name(name, kind="pipeline")
        validate_alias(alias)
        with self._session() as session:
            row = self._alias_row(session, project, name, alias)
            if row is None:
                raise NotFound(
                    f"pipeline {name!r} has no alias {alias!r}",
                    resource="pipeline_alias",
                    alias=alias,
                )
            session.delete(row)

    def _alias_row(
        self, session: Session, project: str, name: str, alias: str
    ) -> PipelineAliasRow | None:
        proj = project_row(session, project)
        return session.scalar(
            select(PipelineAliasRow).where(
                PipelineAliasRow.project_id == proj.id,
                PipelineAliasRow.name == name,
                PipelineAliasRow.alias == alias,
            )
        )

    def _alias_names(self, session: Session, project: str, name: str) -> str:
        proj = project_row(session, project)
        names = session.scalars(
            select(PipelineAliasRow.alias)
            .where(PipelineAliasRow.project_id == proj.id, PipelineAliasRow.name == name)
            .order_by(PipelineAliasRow.alias)
        ).all()
        return ", ".join(names) or "none"
