"""Projects: the tenants every resource belongs to."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select

from aimass.entities import Project
from aimass.errors import AlreadyExists
from aimass.refs import validate_name
from aimass.store._common import SessionFactory, project_row, retry_on_duplicate
from aimass.store.tables import ProjectRow

__all__ = ["DEFAULT_PROJECT", "ProjectRepository"]

DEFAULT_PROJECT = "default"


class ProjectRepository:
    """Create, look up and list projects."""

    def __init__(self, session: SessionFactory) -> None:
        self._session = session

    def create(self, name: str, *, description: str = "") -> Project:
        """Create project ``name``; raises AlreadyExists if it exists."""
        validate_name(name, kind="project")
        with self._session() as session:
            if session.scalar(select(ProjectRow).where(ProjectRow.name == name)) is not None:
                raise AlreadyExists(f"project {name!r} exists already", name=name)
            row = ProjectRow(name=name, description=description)
            session.add(row)
            session.flush()
            return row.to_entity()

    def ensure(self, name: str) -> Project:
        """Project ``name``, created when missing (safe when several processes race)."""
        validate_name(name, kind="project")
        return retry_on_duplicate(lambda: self._ensure(name))

    def _ensure(self, name: str) -> Project:
        with self._session() as session:
            row = session.scalar(select(ProjectRow).where(ProjectRow.name == name))
            if row is None:
                row = ProjectRow(name=name, description="")
                session.add(row)
                session.flush()
            return row.to_entity()

    def get(self, name: str) -> Project:
        """Project ``name`` or NotFound."""
        validate_name(name, kind="project")
        with self._session() as session:
            return project_row(session, name).to_entity()

    def set_limits(self, name: str, limits: Mapping[str, int | str]) -> Project:
        """Replace the limits stored with project ``name`` (an empty mapping clears them)."""
        validate_name(name, kind="project")
        with self._session() as session:
            row = project_row(session, name)
            row.limits = dict(limits) or None
            session.flush()
            return row.to_entity()

    def limits(self, name: str) -> dict[str, int | str]:
        """The limits stored with project ``name`` (empty for none, or an unknown project)."""
        with self._session() as session:
            row = session.scalar(select(ProjectRow).where(ProjectRow.name == name))
            return dict(row.limits or {}) if row is not None else {}

    def list(self) -> list[Project]:
        """All projects by name."""
        with self._session() as session:
            rows = session.scalars(select(ProjectRow).order_by(ProjectRow.name)).all()
            return [r.to_entity() for r in rows]
